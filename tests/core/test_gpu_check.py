"""benchmarks/gpu_check.py: the CPU smoke mode always, the real check when CUDA is present."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", METRICREG_DISABLE_PLUGIN_AUTOLOAD="1")
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


SMALL = ("--steps", "60", "--overhead-steps", "20", "--repeat", "1")


def test_cpu_smoke_mode_passes_and_prints_the_ratio():
    result = run("--device", "cpu", *SMALL)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS" in result.stdout
    assert "overhead ratio" in result.stdout


def test_a_metric_that_syncs_fails_the_check_and_is_named():
    result = run("--device", "cpu", "--inject-sync", *SMALL)
    assert result.returncode == 1
    assert "FAIL" in result.stdout
    assert "check/syncing" in result.stdout


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_no_host_sync_on_cuda_under_sync_debug_mode():
    result = run(timeout=600)
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS" in result.stdout
