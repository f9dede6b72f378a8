"""Tiny torch models for the scenarios: MLPs, a small CNN, SSL heads.

Kept deliberately small so that a full benchmark trains on two CPU cores in
minutes; what matters is that they are *real* networks trained by real
optimisers, so the monitored quantities behave as they do at scale.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


def mlp(sizes: list[int], act: str = "relu", dropout: float = 0.0, batchnorm: bool = False, last_act: bool = False):
    """Linear layers with an activation between them (and after the last one when ``last_act``)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or last_act:
            if batchnorm:
                layers.append(nn.BatchNorm1d(b))
            layers.append(ACTIVATIONS[act]())
            if dropout and i < len(sizes) - 2:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class Classifier(nn.Module):
    """``features`` (the penultimate representation) then a linear ``head``."""

    def __init__(self, features: nn.Module, width: int, classes: int) -> None:
        super().__init__()
        self.features = features
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.features(x)
        return self.head(z), z


class DigitsCNN(nn.Module):
    """Two 3×3 convolutions on the 8×8 image, average-pooled to 32 features."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.view(-1, 1, 8, 8))


class Siamese(nn.Module):
    """encoder → projector (→ predictor): BYOL's online network, or its teacher without a predictor."""

    def __init__(
        self,
        d_in: int = 64,
        hidden: int = 128,
        rep: int = 64,
        proj: int = 32,
        predictor: bool = True,
        batchnorm: bool = True,
    ) -> None:
        super().__init__()
        self.encoder = mlp([d_in, hidden, rep], last_act=True)
        self.projector = mlp([rep, hidden, proj], batchnorm=batchnorm)
        self.predictor = mlp([proj, hidden, proj], batchnorm=batchnorm) if predictor else None

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return h, self.projector(h)


class Wrapped(nn.Module):
    """BYOL as popular implementations write it: ``online_encoder`` and ``online_predictor`` attributes.

    The teacher is then ``copy.deepcopy(learner.online_encoder)``, whose parameter
    names lack the ``online_encoder.`` prefix the student's have.
    """

    def __init__(self) -> None:
        super().__init__()
        self.online_encoder = Siamese(predictor=False)
        self.online_predictor = mlp([32, 128, 32], batchnorm=True)
