"""User configuration: per-pattern schedule overrides and enable/disable.

Accepted shapes::

    {"collapse/*": {"every": 500}, "system/*": False}
    {"metrics": {"collapse/*": {"every": 500}}, "monitor": {"flush_secs": 5}}

or the path of a TOML (``[metrics."collapse/*"]``) or YAML file with the second
shape. Patterns are fnmatch patterns over metric names; later patterns win.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metricreg.schedules import Schedule, as_schedule

_OVERRIDE_KEYS = {"every", "enabled", "health"}
MONITOR_KEYS = {
    "flush_secs",
    "queue_size",
    "on_full",
    "max_queue_bytes",
    "max_failures",
    "cost_budget",
    "hang_after",
    "inputs",
    "dist_timeout",
}


class ConfigError(ValueError):
    """The configuration names an unknown key or holds a bad value."""


@dataclass
class Override:
    pattern: str
    enabled: bool | None = None
    every: Schedule | None = None
    health: dict[str, Any] | None = None


@dataclass
class Config:
    overrides: list[Override] = field(default_factory=list)
    monitor: dict[str, Any] = field(default_factory=dict)

    def for_metric(self, name: str) -> list[Override]:
        return [o for o in self.overrides if fnmatch.fnmatchcase(name, o.pattern)]


def load_config(source: Mapping[str, Any] | str | os.PathLike[str] | None) -> Config:
    if source is None:
        return Config()
    if isinstance(source, (str, os.PathLike)):
        source = _read_file(Path(source))
    if not isinstance(source, Mapping):
        raise ConfigError(f"config must be a dict or a file path, got {type(source).__name__}")
    if "metrics" in source or "monitor" in source:
        unknown = set(source) - {"metrics", "monitor"}
        if unknown:
            raise ConfigError(f"config: unknown top-level keys {sorted(unknown)} (expected 'metrics', 'monitor')")
        metrics = source.get("metrics") or {}
        monitor = dict(source.get("monitor") or {})
    else:
        metrics, monitor = source, {}
    bad = set(monitor) - MONITOR_KEYS
    if bad:
        raise ConfigError(f"config: unknown monitor options {sorted(bad)} (known: {sorted(MONITOR_KEYS)})")
    return Config([_override(p, v) for p, v in metrics.items()], monitor)


def _override(pattern: str, value: Any) -> Override:
    if not isinstance(pattern, str) or not pattern:
        raise ConfigError(f"config: metric pattern must be a non-empty string, got {pattern!r}")
    if isinstance(value, bool):
        return Override(pattern, enabled=value)
    if isinstance(value, (int, Schedule)) or callable(value):
        value = {"every": value}
    if not isinstance(value, Mapping):
        raise ConfigError(f"config[{pattern!r}]: expected true/false, a step count or a table, got {value!r}")
    unknown = set(value) - _OVERRIDE_KEYS
    if unknown:
        raise ConfigError(f"config[{pattern!r}]: unknown keys {sorted(unknown)} (known: {sorted(_OVERRIDE_KEYS)})")
    every = None
    if "every" in value:
        try:
            every = as_schedule(value["every"])
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"config[{pattern!r}]: bad every={value['every']!r}: {exc}") from None
    enabled = value.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise ConfigError(f"config[{pattern!r}]: enabled must be true or false, got {enabled!r}")
    health = value.get("health")
    if health is not None and not isinstance(health, Mapping):
        raise ConfigError(f"config[{pattern!r}]: health must be a table of Health fields")
    return Override(pattern, enabled=enabled, every=every, health=dict(health) if health else None)


def _read_file(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror}") from None
    if path.suffix == ".toml":
        import tomllib

        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ConfigError(f"reading {str(path)!r} needs PyYAML: pip install pyyaml") from None
        try:
            return yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {str(path)!r} is not valid YAML: {exc}") from None
    raise ConfigError(f"config file {str(path)!r}: use a .toml, .yaml or .yml file")
