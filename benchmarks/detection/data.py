"""Datasets that ship inside scikit-learn, split once and cached per process.

Every scenario draws its data from here so that the validation split is the same
for every seed: a seed changes the initialisation and the batch order, not the
question the run is asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import torch


@dataclass(frozen=True)
class Split:
    """A train/validation split as float32 features and int64 labels (torch, CPU)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor

    @property
    def classes(self) -> int:
        return int(self.y_train.max()) + 1

    @property
    def features(self) -> int:
        return int(self.x_train.shape[1])

    def subset(self, n: int, seed: int) -> Split:
        """The first ``n`` training samples of a seeded permutation (for overfitting on purpose)."""
        g = torch.Generator().manual_seed(10_000 + seed)
        idx = torch.randperm(self.x_train.shape[0], generator=g)[:n]
        return Split(self.x_train[idx], self.y_train[idx], self.x_val, self.y_val)


def _split(x: np.ndarray, y: np.ndarray, val_fraction: float, standardize: bool) -> Split:
    from sklearn.model_selection import train_test_split

    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=val_fraction, random_state=0, stratify=y)
    if standardize:
        mean, std = x_tr.mean(0), x_tr.std(0) + 1e-8
        x_tr, x_va = (x_tr - mean) / std, (x_va - mean) / std
    return Split(
        torch.as_tensor(x_tr, dtype=torch.float32),
        torch.as_tensor(y_tr, dtype=torch.int64),
        torch.as_tensor(x_va, dtype=torch.float32),
        torch.as_tensor(y_va, dtype=torch.int64),
    )


@cache
def digits() -> Split:
    """scikit-learn's 8×8 handwritten digits (1,797 images), pixels scaled to [0, 1]; 500 held out."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return _split(d.data / 16.0, d.target, 500 / len(d.target), standardize=False)


@cache
def breast_cancer() -> Split:
    """scikit-learn's Wisconsin breast cancer table (569 × 30), standardised; 30% held out."""
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    return _split(d.data, d.target, 0.3, standardize=True)


@cache
def synthetic_classification() -> Split:
    """``make_classification``: 10,000 × 20, 10 informative features, 3 classes, no label noise; 25% held out."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=10_000, n_features=20, n_informative=10, n_classes=3, flip_y=0.0, random_state=0
    )
    return _split(x, y, 0.25, standardize=True)


DATASETS = {"digits": digits, "breast_cancer": breast_cancer, "classification": synthetic_classification}


def augment(x: torch.Tensor, g: torch.Generator, noise: float = 0.1, mask: float = 0.2) -> torch.Tensor:
    """An SSL view of 8×8 digits: a random shift of up to one pixel, pixel masking and Gaussian noise."""
    n = x.shape[0]
    img = x.view(n, 8, 8)
    dx, dy = (int(v) for v in torch.randint(-1, 2, (2,), generator=g))
    img = torch.roll(img, shifts=(dy, dx), dims=(1, 2))
    keep = (torch.rand(img.shape, generator=g) > mask).to(img.dtype)
    out = img * keep + noise * torch.randn(img.shape, generator=g)
    return out.reshape(n, 64)


def batches(n: int, batch_size: int, g: torch.Generator):
    """Endless shuffled mini-batch indices (epochs of a seeded permutation, last partial batch dropped)."""
    batch_size = min(batch_size, n)
    while True:
        perm = torch.randperm(n, generator=g)
        for i in range(0, n - batch_size + 1, batch_size):
            yield perm[i : i + batch_size]
