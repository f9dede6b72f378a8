"""Pieces every integration shares: building the Monitor, optimizer snapshots, eval keys.

Kept free of framework imports: objects are recognised by duck typing or by the framework
already being in ``sys.modules``.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from metricreg.hookspecs import hookimpl
from metricreg.monitor import Monitor

log = logging.getLogger("metricreg")

_HYPER_KEYS = ("momentum", "weight_decay")


def make_monitor(logdir: str | os.PathLike[str], rank: int | None, world_size: int | None, **kwargs: Any) -> Monitor:
    """A Monitor whose rank and world size come from the trainer, not from torch.distributed.

    The trainer's view decides which process writes (``Monitor(rank=, world_size=)``); where
    torch.distributed disagrees with it, metricreg makes no cross-rank traffic (see
    metricreg.distributed.start_exchange).
    """
    if rank is None:
        return Monitor(logdir, **kwargs)
    return Monitor(logdir, rank=rank, world_size=world_size if world_size is not None else 1, **kwargs)


class ParamGroups:
    """The learning rates of an optimizer as they were when read: for ``optimizer=`` inputs.

    Schedulers change ``param_groups`` after the optimizer step; a snapshot taken before the
    step records the learning rate that step used.
    """

    __slots__ = ("param_groups",)

    def __init__(self, groups: Iterable[Mapping[str, Any]]) -> None:
        self.param_groups = [
            {k: g[k] for k in ("lr", "name") if k in g} for g in groups if isinstance(g, Mapping) and "lr" in g
        ]

    @classmethod
    def of(cls, optimizer: Any) -> ParamGroups | None:
        groups = getattr(optimizer, "param_groups", None)
        return cls(groups) if groups else None


def hyperparameters(optimizer: Any) -> dict[str, float]:
    """Momentum (or Adam's β₁) and weight decay per param group, as Lightning's LearningRateMonitor logs them."""
    out: dict[str, float] = {}
    groups = getattr(optimizer, "param_groups", None) or []
    for i, group in enumerate(groups):
        if not isinstance(group, Mapping):
            continue
        suffix = "" if len(groups) == 1 else f"/group{i}"
        momentum = group.get("momentum")
        if momentum is None and isinstance(group.get("betas"), (tuple, list)):
            momentum = group["betas"][0]
        for key, value in (("momentum", momentum), ("weight_decay", group.get("weight_decay"))):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[f"optimization/{key}{suffix}"] = float(value)
    return out


def split_key(key: str, prefixes: Mapping[str, str]) -> tuple[str, str] | None:
    """(split, name) for an eval key such as ``val_loss``, ``val/acc`` or ``val_loss_epoch``; None otherwise.

    Per-step copies (``_step``) are skipped: the epoch value is the evaluation point.
    """
    for prefix, split in prefixes.items():
        for sep in ("/", "_"):
            if key.startswith(prefix + sep):
                name = key[len(prefix) + 1 :]
                if name.endswith("_step"):
                    return None
                if name.endswith("_epoch"):
                    name = name[: -len("_epoch")]
                return (split, name) if name else None
    return None


def share_stop(stop: bool) -> bool:
    """Rank 0's stop decision on every rank (a broadcast when torch.distributed is initialised).

    Call it at steps that are the same on every rank (a pure function of the step), so that
    every rank makes the same collective.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return bool(stop)
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return bool(stop)
    backend = dist.get_backend()
    device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
    flag = torch.tensor([1.0 if stop else 0.0], device=device)
    dist.broadcast(flag, src=0)
    return bool(flag.item())


LEVELS = {"warn": ("warn", "critical"), "critical": ("critical",)}


class StopOn:
    """A metricreg plugin: an alert at ``level`` or worse (on tags matching ``tags``) asks the run to stop.

    What Lightning's ``SpikeDetection`` does for loss spikes, for any health rule. The alert that
    stopped the run is kept in ``alert``.
    """

    def __init__(self, level: str, tags: Iterable[str] = ("*",)) -> None:
        if level not in LEVELS:
            raise ValueError(f"stop_on must be one of {sorted(LEVELS)}, got {level!r}")
        self.levels = LEVELS[level]
        self.tags = tuple(tags)
        self.alert: Any = None

    @hookimpl
    def metricreg_on_alert(self, alert: Any, monitor: Any) -> None:
        if not alert.active or alert.level not in self.levels or monitor.should_stop:
            return
        if not any(fnmatch.fnmatchcase(alert.tag, pattern) for pattern in self.tags):
            return
        self.alert = alert
        monitor.request_stop(f"{alert.tag} {alert.level} at step {alert.first_step} (value {alert.value:.4g})")


def stop_plugin(stop_on: str | None, tags: Iterable[str] = ("*",)) -> StopOn | None:
    """The StopOn plugin for an integration's ``stop_on=`` argument (None: no automatic stop)."""
    if stop_on is None:
        return None
    return StopOn(stop_on, tags)
