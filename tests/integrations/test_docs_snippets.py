"""Every Python snippet in docs/integrations.md runs, as written, against the real packages.

Each runs in a fresh directory (the snippets write to runs/...); the Keras one in its own
process, since Keras fixes its backend at first import.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from metricreg.reader import find_runs, read_run

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "integrations.md"


def _snippets() -> list[tuple[str, str]]:
    out, heading, block = [], "top", None
    for line in DOC.read_text().splitlines(keepends=True):
        if block is not None:
            if line.startswith("```"):
                out.append((heading, "".join(block)))
                block = None
            else:
                block.append(line)
        elif line.startswith("## "):
            heading = line[3:].strip()
        elif line.startswith("```python"):
            block = []
    return out


SNIPPETS = _snippets()
NEEDS = {"Lightning": "lightning", "Hugging Face": "transformers", "accelerate": "accelerate", "Keras": "keras"}


def test_every_integration_has_a_snippet():
    assert {h.split()[0].rstrip(",") for h, _ in SNIPPETS} >= {
        "Lightning",
        "Hugging",
        "accelerate",
        "Keras",
        "JAX",
        "torchmetrics",
    }


@pytest.mark.slow
@pytest.mark.parametrize(("heading", "code"), SNIPPETS, ids=[h.split()[0].rstrip(",") for h, _ in SNIPPETS])
def test_snippet_runs(heading, code, tmp_path, monkeypatch):
    for prefix, module in NEEDS.items():
        if heading.startswith(prefix) and importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed")
    monkeypatch.chdir(tmp_path)
    if heading.startswith("Keras"):
        env = {**os.environ, "KERAS_BACKEND": "torch", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=240)
        assert proc.returncode == 0, proc.stderr[-4000:]
    else:
        exec(compile(code, f"{DOC.name}: {heading}", "exec"), {"__name__": "__snippet__"})
        import metricreg.monitor

        metricreg.monitor._close_all()  # what interpreter exit would do for a snippet's open Monitor
    runs = find_runs(tmp_path / "runs")
    health = [path for path in runs.values() if read_run(path).has_manifest]
    assert health, f"the {heading} snippet wrote no metricreg run: {sorted(runs)}"
    for path in health:
        assert read_run(path).errors == {}, path
