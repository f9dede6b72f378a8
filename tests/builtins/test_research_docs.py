"""The runnable snippets of docs/metrics.md (fenced ``python`` blocks starting ``# example:``) run as written.

Each runs in a fresh directory (the snippets write to runs/...), and the tags its comment
promises must be in the run it wrote.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import metricreg.monitor
from tests.core.eventfiles import scalars

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
SNIPPETS = {
    m.group(1).strip(): m.group(0)[len("```python\n") : -len("```")]
    for m in re.finditer(r"```python\n# example: (.*)\n[\s\S]*?```", DOC.read_text())
}
EXPECTED = {
    "LiDAR from two augmented views per sample": ("runs/lidar", {"train/lidar": [0, 1000]}),
    "gradient noise scale in a gradient-accumulation loop": (
        "runs/gns",
        {f"train/gradient_noise/{m}": [0, 100, 200] for m in ("b_simple", "b_simple_ema", "snr", "g2")},
    ),
}


def test_the_doc_has_the_snippets():
    assert set(EXPECTED) <= set(SNIPPETS)


@pytest.mark.parametrize("title", sorted(EXPECTED))
def test_snippet_runs_and_writes_its_tags(title, tmp_path, monkeypatch):
    if "torch" in SNIPPETS[title]:
        pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("METRICREG_DISABLE_PLUGIN_AUTOLOAD", "1")
    try:
        exec(compile(SNIPPETS[title], f"{DOC.name}: {title}", "exec"), {"__name__": "__snippet__"})
    finally:
        metricreg.monitor._close_all()
    run, tags = EXPECTED[title]
    written = scalars(tmp_path / run)
    for tag, steps in tags.items():
        assert [s for s, _ in written[tag]] == steps, tag
