"""The informational signals (heads, init_distance, levels, probe, masking, the momentum target, the
norm spread) show in the report but never alert.

A short run gives every input; at step 200 the parameters turn NaN, so every one of these
signals writes a non-finite value. ``metricreg report`` must list their series with a category
and no thresholds (except ``heads/grad_ratio``'s zero-gradient rule and ``init_distance``'s jump
rule, which ignore non-finite values), and raise no alert on any of them.
"""

from __future__ import annotations

import json

import numpy as np

import metricreg as mr
from metricreg.cli import main
from tests.core.eventfiles import scalars

OURS = (
    "train/optimization/heads/",
    "train/optimization/init_distance",
    "train/levels/",
    "train/probe/",
    "train/masking/",
    "train/ema/momentum_target",
    "train/ema/momentum_error",
    "train/collapse_scale/norm_std",
)


def test_signals_are_reported_without_rules_and_never_alert(tmp_path, capsys):
    rng = np.random.default_rng(0)
    params = {
        "trunk": {"w": rng.standard_normal((8, 8))},
        "a_head": {"w": rng.standard_normal((8, 2))},
        "b_head": {"w": rng.standard_normal((8, 3))},
    }
    grads = {k: {n: rng.standard_normal(a.shape) for n, a in v.items()} for k, v in params.items()}
    targets = {"l0": rng.standard_normal((32, 8)), "l1": rng.standard_normal((32, 8))}
    feats, labels = rng.standard_normal((64, 8)), rng.integers(0, 3, 64)
    mask, z = (rng.random((16, 12)) < 0.5).astype(np.float32), rng.standard_normal((64, 8))
    teacher = {k: {n: a.copy() for n, a in v.items()} for k, v in params.items()}
    with mr.Monitor(tmp_path / "run") as mon:
        for step in range(401):
            if step == 200:
                for tree in (params, grads, targets):
                    for leaf in tree.values():
                        for a in leaf.values() if isinstance(leaf, dict) else [leaf]:
                            a[...] = np.nan
                feats[...] = np.nan
                mask[...] = np.nan
                z[...] = np.nan
            mon.step(
                step,
                model=params,
                grads=grads,
                heads={"a": "a_head", "b": "b_head"},
                predictions={k: t + 0.1 for k, t in targets.items()},
                targets=targets,
                probe=(feats, labels),
                mask=mask,
                embeddings=z,
                ema_model=teacher,
                momentum=0.99 if step < 200 else float("nan"),
                momentum_target=0.99 if step < 200 else float("nan"),
            )
    written = scalars(tmp_path / "run")
    ours = sorted(tag for tag in written if tag.startswith(OURS))
    assert "train/optimization/heads/grad_ratio" in ours and "train/levels/l1/nmse" in ours
    assert "train/probe/knn_accuracy" in ours and "train/optimization/init_distance" in ours
    assert {"train/masking/ratio", "train/ema/momentum_error", "train/collapse_scale/norm_std"} <= set(ours)
    assert np.isnan(written["train/ema/momentum_error"][-1][1]) and np.isnan(
        written["train/collapse_scale/norm_std"][-1][1]
    )
    assert np.isnan(written["train/optimization/init_distance"][-1][1])  # NaN reached the event file

    assert main(["report", str(tmp_path), "--json"]) == 0
    (run,) = json.loads(capsys.readouterr().out)["runs"]
    metrics = {m["tag"]: m for m in run["metrics"]}
    for tag in ours:
        if tag == "train/optimization/heads/grad_ratio":  # a rule: a head with no gradient at all
            assert metrics[tag]["thresholds"]["critical_above"] == 1e12
            continue
        if tag == "train/optimization/init_distance":  # a relative rule on jumps only; its NaN is not judged
            assert metrics[tag]["category"] == "stability" and metrics[tag]["status"] == "ok"
            continue
        assert metrics[tag]["category"] in ("optimization", "prediction", "probe", "ema", "collapse"), tag
        assert set(metrics[tag]["thresholds"].values()) == {None}, tag
    assert [a for a in run["alerts"] if a["tag"].startswith(OURS)] == []
    assert run["errors"] == []
