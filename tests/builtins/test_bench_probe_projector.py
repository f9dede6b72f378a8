"""benchmarks/bench_probe_projector.py honours ``--repeat`` for every row.

The copy rows and the projector write hardcoded ``repeat=3`` / ``1`` (review12 regression), so
``--repeat 1`` (a quick look) and ``--repeat 10`` (a careful measurement) timed them the same way.
The timing itself is stubbed (one call each, no clock): only the arguments are checked here.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_probe_projector.py"


@pytest.mark.parametrize("repeat", [1, 7])
def test_every_row_is_timed_with_the_requested_repeat(monkeypatch, capsys, repeat):
    monkeypatch.syspath_prepend(str(BENCH.parent))  # undone after the test, with the script's own insert
    monkeypatch.setenv("METRICREG_DISABLE_PLUGIN_AUTOLOAD", "1")  # the script's setdefault: kept to this test
    spec = importlib.util.spec_from_file_location("bench_probe_projector_under_test", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    repeats = []

    def per_call(fn, calls, n):
        fn()  # once: the piece must still run (the projector row reads the files it writes)
        repeats.append(n)
        return 1e-3

    monkeypatch.setattr(bench, "per_call", per_call)
    monkeypatch.setattr(bench, "anchor_step", lambda n: repeats.append(n) or 1e-3)
    monkeypatch.setattr(sys, "argv", ["bench_probe_projector.py", "--repeat", str(repeat)])
    bench.main()
    assert "projector 1000x256: write files" in capsys.readouterr().out
    assert len(repeats) >= 7 and set(repeats) == {repeat}
