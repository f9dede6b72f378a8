"""Per-head gradient and parameter statistics (multi-head models: loss balance between heads).

Input: ``heads`` = {head name: parameter-name prefix (``"rgb_head"``) or a torch submodule},
with ``grads`` (derived from a torch ``model``; JAX users pass the gradient pytree) and
``model`` (for the parameters; a submodule head carries its own). One rule: ``grad_ratio`` above
1e12, i.e. a head that receives no gradient at all (not written while ``warmup`` is true: a term
that joins after a warm-up gives its head a zero gradient by design). A finite ratio is informational (the
healthy ratio depends on the architecture, the loss weights and how far each head has fit).

=============================================  ==============================================================
tag (``train/…``)                              definition
=============================================  ==============================================================
``optimization/heads/<name>/grad_norm``        L2 norm of the head's gradients
``optimization/heads/<name>/param_mean``       mean of all the head's parameter entries
``optimization/heads/<name>/param_std``        std (ddof 1) of all the head's parameter entries
``optimization/heads/grad_ratio``              max / min of the heads' grad norms (≥ 2 heads; min clamped at 1e-30)
=============================================  ==============================================================

A prefix ``p`` selects the parameters named ``p`` or ``p.<anything>`` (names as
``metricreg.adapters`` gives them: DDP / torch.compile wrapper prefixes removed). A head that
matches no parameter is an error naming the head. Cost: one norm per gradient tensor and two
passes over the head's parameters, every 100 steps; results stay on the device.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from metricreg import adapters
from metricreg import arrays as A
from metricreg.builtins.stability import warming_up
from metricreg.hookspecs import hookimpl
from metricreg.spec import Health, Metric, PartialResult

HEADS_EVERY = 100
_TAG_BAD = re.compile(r"[^A-Za-z0-9_.\-]+")


def _label(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"heads: a head's name must be a non-empty string, got {name!r}")
    label = _TAG_BAD.sub("_", name).strip("._-")
    if not label:
        raise ValueError(f"heads: head name {name!r} has no letter or digit to use in a tag")
    return label


def _select(named: list[tuple[str, Any]], prefix: str) -> list[Any]:
    prefix = prefix.strip(".")
    return [a for n, a in named if n == prefix or n.startswith(prefix + ".")]


def _names_in(model: Any, params: list, sub: Any) -> set[str] | None:
    """The names in ``params`` (``adapters.named_parameters(model)``) of submodule ``sub``'s parameters."""
    if model is None or not adapters.is_torch_module(model):
        return None
    ids = {id(p) for p in sub.parameters()}
    raw = [p for _, p in model.named_parameters()]  # the order adapters.named_parameters keeps
    if len(raw) != len(params):
        return None
    return {name for (name, _), p in zip(params, raw, strict=True) if id(p) in ids} or None


def _head_arrays(spec: Any, name: str, params: list, grads: list, model: Any = None) -> tuple[list[Any], list[Any]]:
    """(parameters, gradients) of one head, from a prefix or a submodule."""
    if isinstance(spec, str):
        ps, gs = _select(params, spec), _select(grads, spec)
        if not ps and not gs:
            known = sorted({adapters.group_name(n, 1) for n, _ in (params or grads)})
            raise ValueError(
                f"heads[{name!r}]: prefix {spec!r} matches no parameter (top-level names: {', '.join(known) or 'none'})"
            )
        return ps, gs
    if adapters.is_torch_module(spec) or hasattr(spec, "named_parameters"):
        ps = [p for _, p in adapters.named_parameters(spec)]
        names = _names_in(model, params, spec)
        # The head's entries of `grads` (which may be what the loop passed, e.g. pre-clip gradients);
        # a submodule not found in `model` reads its own .grad.
        gs = [g for n, g in grads if n in names] if names else [g for _, g in adapters.named_grads(spec) or []]
        if not ps:
            raise ValueError(f"heads[{name!r}]: the module {type(spec).__name__} has no parameters")
        return ps, gs
    raise ValueError(
        f"heads[{name!r}]: expected a parameter-name prefix (str) or a torch submodule, got {type(spec).__name__}"
    )


def _mean_std(xs: list[Any]) -> tuple[Any, Any]:
    """Mean and std (ddof 1) over all entries of several arrays, two passes, widest float."""
    xs = [A.to_float(A.detach(x)) for x in xs]
    xp = A.namespace(xs[0])
    count = sum(adapters.numel(x) for x in xs)
    total = None
    for x in xs:
        part = xp.sum(x)
        total = part if total is None else total + part
    mean = total / float(count)
    sq = None
    for x in xs:
        part = xp.sum((x - mean) ** 2)
        sq = part if sq is None else sq + part
    return mean, xp.sqrt(sq / float(max(count - 1, 1)))


def head_stats(heads: Any, grads: Any = None, model: Any = None, warmup: Any = None) -> dict[str, Any] | None:
    """Per-head grad norm and parameter mean/std, plus the max/min grad-norm ratio.

    While ``warmup`` is true (a Python bool, as the stability rules read it) the ratio is not
    written: a head whose loss term joins after a warm-up gets a zero gradient by design.
    """
    if not isinstance(heads, Mapping):
        raise ValueError(f"heads: expected a dict {{head name: prefix or submodule}}, got {type(heads).__name__}")
    if not heads:
        return None
    params = adapters.named_parameters(model) if model is not None else []
    named_grads = adapters.named_grads(grads) if grads is not None else []
    out: dict[str, Any] = {}
    norms = []
    labels: dict[str, Any] = {}
    error: Exception | None = None
    for name, spec in heads.items():
        try:  # one bad head (a typo in its prefix) costs only itself
            label = _label(name)
            if label in labels:  # "a b" and "a_b" share a tag: one head's values would overwrite the other's
                raise ValueError(
                    f"heads: heads {labels[label]!r} and {name!r} both write the tag name {label!r}: rename one"
                )
            labels[label] = name
            ps, gs = _head_arrays(spec, name, params, named_grads or [], model)
        except ValueError as exc:
            error = error or exc
            continue
        if gs:
            norm = adapters.global_norm(gs)
            out[f"{label}/grad_norm"] = norm
            norms.append(norm)
        if ps:
            out[f"{label}/param_mean"], out[f"{label}/param_std"] = _mean_std(ps)
    if len(norms) >= 2 and not warming_up(warmup):
        xp = A.namespace(norms[0])
        stacked = xp.stack([xp.astype(n, norms[0].dtype) for n in norms])
        out["grad_ratio"] = xp.max(stacked) / xp.clip(xp.min(stacked), 1e-30, None)
    if error is not None:
        if not out:
            raise error
        raise PartialResult(out, error)  # the good heads are written, the bad one is reported
    return out or None


HEALTH_HEADS = Health(
    category="optimization",
    title="per-head gradients and parameters",
    description="Gradient L2 norm and parameter mean/std of each head given in `heads`. Informational: a head "
    "whose gradient falls orders of magnitude below the others may have stopped learning (loss imbalance), "
    "or merely fit its data; only a head with no gradient at all is judged (grad_ratio).",
    nonfinite=None,
)

# A head that gets *no* gradient at all (its loss weight is 0, its branch detached, its term
# dropped from the sum) has stopped learning whatever the model: max / min then reads ≥ 1e28 (the
# min is clamped at 1e-30). A finite ratio is not judged: on the detection benchmark a healthy
# classifier head that interpolates its training set falls to 1e-5× its own best and drives the
# ratio to 7e3, while a decoder whose loss weight drops 1,000× moves it less than that
# (docs/metrics.md, "Detection benchmark").
HEALTH_GRAD_RATIO = Health(
    category="optimization",
    critical_above=1e12,
    direction="lower_is_better",
    nonfinite=None,
    title="head gradient ratio",
    description="max / min of the heads' gradient norms. Critical above 1e12: one head receives no gradient "
    "at all (a loss weight of 0, a detached branch, a term dropped from the sum), so it has stopped "
    "learning. Finite imbalances are not judged: healthy runs reach 7e3 when one head fits its training "
    "set, so a head that merely learns far slower is not told apart.",
    remedy="A head gets no gradient: check its loss weight and schedule, that its term is still in the "
    "summed loss, and that nothing detaches its input (losses/<name>_share shows each term's part). A "
    "head frozen on purpose should be left out of `heads`; a term that joins after a warm-up needs "
    "`warmup=` passed (the ratio is not written while it is true).",
)

METRICS = [
    Metric(
        "optimization/heads",
        compute=head_stats,
        every=HEADS_EVERY,
        health={"": HEALTH_HEADS, "grad_ratio": HEALTH_GRAD_RATIO},
        description=HEALTH_HEADS.description,
    ),
]


@hookimpl
def metricreg_register_inputs(register):
    register("heads", description="{head name: parameter-name prefix or torch submodule}: per-head statistics")


@hookimpl
def metricreg_register_metrics(register):
    for metric in METRICS:
        register(metric)
