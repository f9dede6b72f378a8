"""No host-device synchronisation in any built-in compute function (checked without a GPU).

Every compute function runs on torch **meta** tensors: they have shapes and dtypes but no
data, so anything that reads a value on the host (``.item()``, ``bool()``, ``float()``,
``.cpu()``, ``.numpy()``, a Python branch on a tensor) raises. Creating a tensor from
Python data on the device (``torch.tensor(1.0, device=...)``, which is a blocking
host-to-device copy and fails under ``torch.cuda.set_sync_debug_mode("error")``) is made to
raise too. The results must stay tensors on the input's device (or be Deferred host jobs).
"""

from __future__ import annotations

import pytest

from metricreg import arrays as A
from metricreg.builtins import (
    collapse,
    distillation,
    ema,
    generalization,
    gradient_noise,
    heads,
    init_distance,
    levels,
    lidar,
    loss,
    loss_parts,
    masking,
    optimization,
    prediction,
    probe,
    projector,
    reconstruction,
    representation,
    stability,
)
from metricreg.inputs import Inputs

torch = pytest.importorskip("torch")
META = torch.device("meta")


@pytest.fixture(autouse=True)
def no_uploads(monkeypatch):
    """Forbid tensors created from Python data on a non-CPU device (a hidden blocking copy)."""
    for name in ("tensor", "as_tensor", "asarray"):
        real = getattr(torch, name)

        def guarded(*args, _real=real, _name=name, **kwargs):
            device = kwargs.get("device")
            if device is not None and torch.device(device).type != "cpu":
                raise AssertionError(f"torch.{_name}(..., device={device}) uploads host data: a sync on CUDA")
            return _real(*args, **kwargs)

        monkeypatch.setattr(torch, name, guarded)


def on_device(result) -> None:
    values = result.values() if isinstance(result, dict) else [result]
    for v in values:
        assert isinstance(v, (torch.Tensor, A.Deferred, float, int)), type(v)
        if isinstance(v, torch.Tensor):
            assert v.device.type == "meta"


def meta(*shape, dtype=torch.float32):
    return torch.empty(*shape, device=META, dtype=dtype)


def model():
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)).to(META)
    for p in net.parameters():
        p.grad = torch.empty_like(p)
    return net


def test_collapse_family_and_spectrum():
    shared: dict = {}
    z = meta(30_000, 32)  # above the row cap: the sub-sampling index is built on the device
    on_device(collapse.collapse(z, step=0, shared=shared))
    on_device(collapse.collapse_spectrum(z, step=0, shared=shared))
    on_device(collapse.collapse(meta(8, 64), step=1, shared=shared))  # n < d route
    on_device(A.rankme(meta(100, 16)))


def test_ema_family():
    state: dict = {}
    student, teacher = model(), model()
    for step, m in ((0, 0.99), (100, torch.tensor(0.99).to(META))):
        out = ema.ema(
            student, teacher, step=step, state=state, momentum=m, student_out=meta(64, 4), teacher_out=meta(64, 4)
        )
        on_device({k: v for k, v in out.items() if k != "momentum"})
    state = {}
    for step in range(0, 700, 100):  # no momentum: sampled teacher displacement + the stall rule
        on_device(ema.ema(student, teacher, step=step, state=state))


def test_ema_momentum_against_its_schedule():
    student, teacher = model(), model()
    half = meta((), dtype=torch.bfloat16)
    for m, target in ((half, 0.996), (0.99, meta(1)), (half, meta(()))):
        out = ema.ema(student, teacher, step=0, state={}, momentum=m, momentum_target=target)
        on_device({k: v for k, v in out.items() if k != "momentum"})
        assert {"momentum_target", "momentum_error"} <= set(out)


def test_optimization_family():
    net = model()
    grads = optimization.derive_grads(net)
    gn = optimization.derive_grad_norm(grads)
    on_device(gn)
    state: dict = {}
    for _ in range(3):
        on_device(optimization.clip_fraction(gn, 1.0, state))
    shared: dict = {}
    optimization.update_snapshot(net, step=99, shared=shared)
    on_device(optimization.update_ratio(net, step=100, shared=shared))
    assert optimization.update_ratio(net, step=200, shared=shared) is None  # no snapshot: takes one
    on_device(optimization.update_ratio(net, step=300, shared=shared))
    on_device(optimization.grad_flow(grads))
    on_device(optimization.weight_histogram(net))
    on_device(optimization.grad_histogram(grads))
    big = {"w": meta(1000, 1000)}  # sampled (above the per-tensor cap)
    on_device(optimization.grad_histogram(big))
    on_device(optimization.update_ratio(big, step=0, shared={}) or 0.0)


def test_stability_family():
    states = [{} for _ in range(4)]
    for step in range(0, 1500, 50):
        value = meta(())
        on_device(stability.spikes(value, states[0]))
        on_device(stability.plateau(value, step, states[1]))
        on_device(stability.eval_plateau(value, states[2]))
        out = stability.loss_trend(value, step, states[3])
        if out is not None:
            on_device(out)
    on_device(stability.nonfinite_loss(meta(16)))
    on_device(stability.nonfinite_grads(meta(())))
    on_device(loss.loss(meta(16)))


def test_generalization_gap():
    shared: dict = {}
    for _ in range(3):
        generalization.accumulate(Inputs({"loss": meta(()), "accuracy": meta(())}, {}, {}), shared)
    state: dict = {}
    for _ in range(2):
        out = generalization.gap(Inputs({"loss": meta(()), "accuracy": 0.5}, {}, {}), shared, state, split="val")
        on_device(out)
        generalization.accumulate(Inputs({"loss": 1.0, "accuracy": meta(())}, {}, {}), shared)


def test_prediction_family():
    on_device(prediction.cosine(meta(4, 10, 8), meta(4, 10, 8)))
    on_device(prediction.nmse(meta(40, 8), meta(40, 8)))
    on_device(prediction.psnr(meta(2, 3, 8, 8), meta(2, 3, 8, 8)))
    on_device(prediction.paired((meta(2000, 8), meta(2000, 8))))
    on_device(prediction.similarity_image({"a": meta(100, 8), "b": meta(100, 8)}))


def test_representation_signals():
    shared: dict = {}
    on_device(representation.collapse_scale(meta(30_000, 32)))  # row cap, n >= d: masked d×d covariance
    on_device(representation.collapse_scale(meta(8, 64, dtype=torch.bfloat16)))  # n < d: n×n route
    on_device(representation.alpha_req(meta(500, 16), step=0, shared=shared))


def test_distillation_signals():
    on_device(distillation.dino(teacher_logits=meta(64, 128), student_logits=meta(64, 128), teacher_temp=0.04))
    on_device(
        distillation.dino(
            teacher_logits=meta(64, 128, dtype=torch.bfloat16),
            student_logits=meta(64, 128),
            teacher_temp=meta(()),
            teacher_center=meta(128),
        )
    )
    on_device(distillation.dino(teacher_probs=meta(8, 16), student_probs=meta(8, 16)))


def test_reconstruction_spread():
    on_device(reconstruction.psnr_spread(meta(4, 3, 8, 8), meta(4, 3, 8, 8)))
    on_device(reconstruction.psnr_hist(meta(4, 8, 8, dtype=torch.bfloat16), meta(4, 8, 8, dtype=torch.bfloat16)))


def test_loss_parts():
    on_device(loss_parts.losses({"recon": meta(()), "pred": meta(16), "kl": 0.5}))
    on_device(loss_parts.losses({"a": 1.0, "b": meta((), dtype=torch.bfloat16)}))
    on_device(loss_parts.warmup(meta((), dtype=torch.bool)))


def test_head_statistics():
    net = model()
    grads = optimization.derive_grads(net)
    on_device(heads.head_stats({"first": "0", "last": net[2]}, grads=grads, model=net))


def test_init_distance():
    state: dict = {}
    net = model()
    for _ in range(2):
        on_device(init_distance.init_distance(net, state=state))
    big = {"w": meta(1000, 1000)}  # sampled (above the per-tensor cap)
    on_device(init_distance.init_distance(big, state={}))


def test_prediction_levels():
    pairs = levels.derive_pairs({"l0": meta(40, 8), "l1": meta(4, 10, 8)}, {"l0": meta(40, 8), "l1": meta(4, 10, 8)})
    for pair in pairs.values():
        on_device(levels.level_cosine(pair))
        on_device(levels.level_nmse(pair))


def test_knn_probe():
    labels = torch.empty(600, device=META, dtype=torch.int64)
    on_device(probe.knn_accuracy((meta(600, 16), labels)))  # two row blocks
    on_device(probe.knn_accuracy({"features": meta(5000, 8), "labels": meta(5000, dtype=torch.int64)}))  # sub-sampled
    with pytest.raises(ValueError, match="probe: features are on meta but labels on cpu"):
        probe.knn_accuracy((meta(600, 16), torch.zeros(600, dtype=torch.int64)))


def test_masking():
    on_device(masking.masking(meta(64, 196, dtype=torch.bool)))
    on_device(masking.masking(meta(8, 4, 4, dtype=torch.bfloat16)))  # (B, H, W) grid of 0/1 entries
    on_device(masking.masking(meta(49, dtype=torch.bool)))  # one mask for the batch


def test_linear_probe_only_queues_its_host_copy():
    labels = torch.empty(5000, device=META, dtype=torch.int64)
    for features in (meta(600, 16), meta(5000, 8, dtype=torch.bfloat16)):  # halves widened on the device
        result = probe.linear_accuracy((features, labels[: features.shape[0]]))
        assert isinstance(result, A.Deferred)  # the float64 fit waits for the writer thread
        rows = projector.projector((features, labels[: features.shape[0]]))
        assert isinstance(rows, A.Deferred)  # the projector's files too


def test_lidar():
    on_device(lidar.lidar(meta(1000, 2, 256)))  # covariances on the device, eigensolves a host job
    on_device(lidar.lidar(meta(20_000, 2, 8, dtype=torch.bfloat16)))  # above the row cap: sub-sampled on the device


def test_gradient_noise():
    grads = [{"w": meta(8, 4), "b": meta(4, dtype=torch.bfloat16)} for _ in range(3)]
    on_device(gradient_noise.gradient_noise(grads, microbatch_size=16, state={}))
    on_device(
        gradient_noise.gradient_noise(grads, batch_size=torch.empty((), device=META, dtype=torch.int64), state={})
    )
    net = model()
    acc = gradient_noise.accumulate(net, microbatch_size=16)
    acc.begin(0)
    for _ in range(3):
        acc.micro_step()
    state: dict = {}
    for _ in range(2):  # the EMA ratio from its state
        on_device(gradient_noise.gradient_noise(acc, state=state))
