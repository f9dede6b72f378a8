"""The tag mapping file (metricreg.toml): parsing, lookup and errors that name the culprit."""

from __future__ import annotations

import pytest

from metricreg.mapping import ENV_VAR, MappingError, builtin_rules, find_mapping, load_mapping, parse_mapping


def test_builtin_rule_with_overrides_and_glob_precedence():
    mapping = parse_mapping(
        """
[tags."*/std"]
category = "other"
warn_below = 0.5

[tags."collapse/std"]
rule = "collapse/std"
persistence = 3
"""
    )
    exact = mapping.lookup("collapse/std")
    base = builtin_rules()["collapse/std"]
    assert exact.persistence == 3 and exact.critical_below == base.critical_below
    assert exact.category == "collapse" and exact.remedy == base.remedy
    assert mapping.lookup("ema/std").category == "other"  # the glob
    assert mapping.lookup("nothing") is None
    assert mapping.covers(["ema/std"]) and not mapping.covers(["loss"])


def test_fingerprint_follows_the_content():
    a = parse_mapping('[tags."x"]\ncategory = "other"\nwarn_above = 1.0\n')
    b = parse_mapping('[tags."x"]\ncategory = "other"\nwarn_above = 2.0\n')
    assert a.fingerprint and a.fingerprint != b.fingerprint
    assert parse_mapping('[tags."x"]\ncategory = "other"\nwarn_above = 1.0\n').fingerprint == a.fingerprint


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[tags", "not valid TOML"),
        ("[rules]\nx = 1\n", "unknown section(s) rules"),
        ('[tags."a"]\nrule = "collapse/sdt"\n', "no built-in rule named 'collapse/sdt' (did you mean collapse/std"),
        ('[tags."a"]\nwarn_above = 1.0\n', "give a built-in 'rule' or a 'category'"),
        ('[tags."a"]\ncategory = "x"\nwarn_abov = 1.0\n', "unknown key(s) warn_abov"),
        ('[tags."a"]\ncategory = "x"\nwarn_above = 5.0\ncritical_above = 1.0\n', "contradict"),
        ('[tags."a"]\ncategory = 5\n', "category name 5 is malformed"),
        ('[[gap]]\ntrain = "a"\n', "'train' and 'eval' must be tag names"),
        ('[[gap]]\ntrain = "a"\neval = "b"\nname = "/x"\n', "'name' must be a tag-like name"),
        ("tags = 3\n", "'tags' must be a table"),
    ],
)
def test_errors_name_the_file_and_entry(text, message):
    with pytest.raises(MappingError) as info:
        parse_mapping(text, "runs/metricreg.toml")
    assert str(info.value).startswith("runs/metricreg.toml: ") and message in str(info.value)
    if "[tags." in text and "TOML" not in message and "section" not in message:
        assert '[tags."a"]' in str(info.value)


def test_where_the_file_is_found(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert find_mapping(str(tmp_path)) is None
    (tmp_path / "metricreg.toml").write_text('[tags."x"]\nrule = "loss"\n')
    assert find_mapping(str(tmp_path)) == str(tmp_path / "metricreg.toml")
    assert find_mapping("gs://bucket/runs") is None and find_mapping("") is None
    monkeypatch.setenv(ENV_VAR, "/elsewhere.toml")
    assert find_mapping(str(tmp_path)) == "/elsewhere.toml"
    assert find_mapping(str(tmp_path), "given.toml") == "given.toml"
    assert load_mapping(None).rules == {} and not load_mapping(None)
    with pytest.raises(MappingError, match="cannot read tag mapping .*nope.toml"):
        load_mapping(str(tmp_path / "nope.toml"))


def _doc_mappings() -> list[str]:
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "health-tab.md").read_text()
    return re.findall(r"```toml\n(.*?)```", text, flags=re.S)


def test_the_documented_mapping_files_parse():
    blocks = _doc_mappings()
    assert len(blocks) >= 2
    for block in blocks:
        assert parse_mapping(block, "docs/health-tab.md")


def test_the_documented_seeds_mapping_judges_the_seeds_tags():
    """The docs' H-JEPA example: a raw std collapsing to 0.005, a steady EMA momentum."""
    import numpy as np

    from metricreg.verdict import evaluate_run

    (block,) = [b for b in _doc_mappings() if "level*_mean_std_per_dim" in b]
    mapping = parse_mapping(block)
    steps = np.arange(50)
    series = {
        "train/collapse/level0_mean_std_per_dim": (steps, np.linspace(0.3, 0.005, 50), steps * 1.0),
        "train/collapse/level1_mean_std_per_dim": (steps, np.full(50, 0.3), steps * 1.0),
        "train/ema/momentum_current": (steps, np.linspace(0.996, 1.0, 50), steps * 1.0),
        "train/unmapped": (steps, np.zeros(50), steps * 1.0),
    }
    verdict = evaluate_run("hjepa", None, series, mapping=mapping)
    assert verdict.category_status["collapse"] == "critical" and set(verdict.category_status) == {"collapse", "ema"}
    (alert,) = [a for a in verdict.alerts if a.level == "critical"]
    # The built-in std rule's relative part judges a fall within one interval (< 0.25x the point
    # before): a steady decline has none, so the seeds' own floors decide, warn below 0.05
    # escalating in place to critical below 0.01 (one alert).
    assert alert.tag == "train/collapse/level0_mean_std_per_dim" and alert.threshold == pytest.approx(0.01)
    assert (alert.onset_level, alert.basis) == ("warn", "")
    assert alert.onset_value < 0.05 and alert.critical_step > alert.first_step
    assert alert.remedy == builtin_rules()["collapse/std"].remedy  # the built-in rule's remedy came along
    assert "train/unmapped" not in {m.tag for m in verdict.metrics}
