"""A user's tag mapping: health rules for tags metricreg did not write itself.

Runs logged by hand (``SummaryWriter.add_scalar("collapse/std", ...)``) carry no
manifest, so the Health tab and ``metricreg report`` only know the conventional
tags (``train/loss`` + ``val/loss`` and friends). A small TOML file points rules
at the user's own names::

    # <logdir>/metricreg.toml
    [tags."collapse/std"]          # a tag, or a glob such as "*/collapse/std"
    rule = "collapse/std"          # a built-in rule, <metric>/<member> as `metricreg plugins` lists it

    [tags."grad/global_norm"]      # or your own thresholds: any Health field
    category = "stability"
    warn_above = 10.0
    critical_above = 100.0

    [[gap]]                        # a train/eval pair the tab cannot recognise by name
    train = "loss/train"
    eval = "loss/validation"
    name = "loss"                  # the gap tags become gap/loss, gap/loss_relative, gap/loss_gl

Where it is found (first match wins): an explicit path (``metricreg report
--mapping FILE``, ``tensorboard --metricreg_mapping FILE``), the environment
variable ``METRICREG_MAPPING``, else ``metricreg.toml`` at the top of the logdir.
A bad file raises :class:`MappingError` naming the file and the entry.
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import importlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from metricreg.spec import Health

FILE_NAME = "metricreg.toml"
ENV_VAR = "METRICREG_MAPPING"
_HEALTH_FIELDS = frozenset(Health.__dataclass_fields__)


class MappingError(ValueError):
    """A mapping file that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class GapRule:
    """A user-declared train/eval pair."""

    train: str
    eval: str
    name: str


@dataclass
class TagMapping:
    """Rules by tag pattern, and train/eval pairs, from one mapping file (or none)."""

    rules: dict[str, Health] = field(default_factory=dict)
    gaps: list[GapRule] = field(default_factory=list)
    path: str | None = None
    fingerprint: str = ""  # changes whenever the file's content does (part of the tab's ETags)

    def __bool__(self) -> bool:
        return bool(self.rules or self.gaps)

    def lookup(self, tag: str) -> Health | None:
        """The rule for a tag: an exact entry first, then the first matching glob."""
        health = self.rules.get(tag)
        if health is not None:
            return health
        for pattern, health in self.rules.items():
            if fnmatch.fnmatchcase(tag, pattern):
                return health
        return None

    def covers(self, tags: Iterable[str]) -> bool:
        """Whether any of these tags gets a rule or belongs to a declared pair."""
        tags = set(tags)
        if any(self.lookup(t) is not None for t in tags):
            return True
        return any(g.train in tags and g.eval in tags for g in self.gaps)


@lru_cache(maxsize=1)
def builtin_rules() -> dict[str, Health]:
    """``{"collapse/std": Health, "loss": Health, ...}``: every built-in metric's rule by name."""
    from metricreg.plugins import BUILTIN_PLUGINS

    rules: dict[str, Health] = {}
    for module_name in BUILTIN_PLUGINS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for metric in getattr(module, "METRICS", ()):
            health = metric.health
            if isinstance(health, Health):
                rules[metric.name] = health
            elif isinstance(health, Mapping):
                for member, rule in health.items():
                    rules[f"{metric.name}/{member}" if member else metric.name] = rule
    return rules


def _health(where: str, entry: Any) -> Health:
    if not isinstance(entry, Mapping):
        raise MappingError(f"{where}: expected a table, got {entry!r}")
    entry = dict(entry)
    rule_name = entry.pop("rule", None)
    unknown = sorted(set(entry) - _HEALTH_FIELDS)
    if unknown:
        raise MappingError(f"{where}: unknown key(s) {', '.join(unknown)} (use 'rule' or Health fields)")
    base: dict[str, Any] = {}
    if rule_name is not None:
        rules = builtin_rules()
        if not isinstance(rule_name, str) or rule_name not in rules:
            near = difflib.get_close_matches(rule_name, list(rules), n=3) if isinstance(rule_name, str) else []
            hint = f" (did you mean {', '.join(near[:5])}?)" if near else " (`metricreg plugins` lists the rules)"
            raise MappingError(f"{where}: no built-in rule named {rule_name!r}{hint}")
        base = rules[rule_name].to_dict()
    elif "category" not in entry:
        raise MappingError(f"{where}: give a built-in 'rule' or a 'category' with thresholds")
    base.update(entry)
    try:
        return Health.from_dict(base)
    except (ValueError, TypeError) as exc:
        raise MappingError(f"{where}: {exc}") from None


def parse_mapping(text: str, path: str = FILE_NAME) -> TagMapping:
    """Parse a mapping file's text; MappingError names the file and the culprit entry."""
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"{path}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"tags", "gap"})
    if unknown:
        raise MappingError(f'{path}: unknown section(s) {", ".join(unknown)} (expected [tags."..."] and [[gap]])')
    tags = data.get("tags", {})
    if not isinstance(tags, Mapping):
        raise MappingError(f"{path}: 'tags' must be a table of [tags.\"<tag>\"] entries")
    rules = {pattern: _health(f'{path}: [tags."{pattern}"]', entry) for pattern, entry in tags.items()}
    gaps = []
    raw_gaps = data.get("gap", [])
    if not isinstance(raw_gaps, list):
        raise MappingError(f"{path}: 'gap' must be an array of tables ([[gap]])")
    for i, entry in enumerate(raw_gaps):
        where = f"{path}: [[gap]] #{i + 1}"
        if not isinstance(entry, Mapping):
            raise MappingError(f"{where}: expected a table")
        train, evals, name = entry.get("train"), entry.get("eval"), entry.get("name")
        if not all(isinstance(v, str) and v for v in (train, evals)):
            raise MappingError(f"{where}: 'train' and 'eval' must be tag names")
        if name is None:
            name = train.rsplit("/", 1)[-1]
        if not isinstance(name, str) or not name or name.startswith("/") or name.endswith("/"):
            raise MappingError(f"{where}: 'name' must be a tag-like name such as 'loss', got {name!r}")
        extra = sorted(set(entry) - {"train", "eval", "name"})
        if extra:
            raise MappingError(f"{where}: unknown key(s) {', '.join(extra)}")
        gaps.append(GapRule(train, evals, name))
    digest = hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
    return TagMapping(rules, gaps, path, digest)


def find_mapping(logdir: str | os.PathLike[str] | None, explicit: str | None = None) -> str | None:
    """The mapping file that applies: ``explicit``, else ``$METRICREG_MAPPING``, else ``<logdir>/metricreg.toml``."""
    if explicit:
        return os.fspath(explicit)
    env = os.environ.get(ENV_VAR)
    if env:
        return env
    if logdir and "://" not in str(logdir):  # local logdirs only (not gs://, s3://, ...)
        candidate = os.path.join(os.fspath(logdir), FILE_NAME)
        if os.path.isfile(candidate):
            return candidate
    return None


def load_mapping(path: str | None) -> TagMapping:
    """The mapping at ``path`` (an empty one for None); MappingError if it cannot be read."""
    if path is None:
        return TagMapping()
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise MappingError(f"cannot read tag mapping {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise MappingError(f"{path}: not UTF-8 text: {exc}") from None
    return parse_mapping(text, path)
