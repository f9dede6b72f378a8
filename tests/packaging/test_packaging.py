"""The distribution a user installs: built from this checkout with setuptools' own backend.

Warnings from the build are errors (a deprecated license table, a data folder setuptools
would drop); the wheel must carry the Health tab's bundle and the license; the sdist must
hold nothing besides what builds the wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

BUILD = """
import sys, warnings
from setuptools import build_meta
warnings.simplefilter("error")
kind, out = sys.argv[1], sys.argv[2]
print((build_meta.build_wheel if kind == "wheel" else build_meta.build_sdist)(out))
"""

pytestmark = pytest.mark.slow


def _build(kind: str, out: Path) -> Path:
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    proc = subprocess.run(
        [sys.executable, "-c", BUILD, kind, str(out)], cwd=ROOT, capture_output=True, text=True, env=env, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Warning" not in proc.stderr, proc.stderr[-4000:]
    return out / proc.stdout.strip().splitlines()[-1]


def test_wheel_has_the_tab_bundle_license_and_metadata(tmp_path):
    wheel = _build("wheel", tmp_path)
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        entry_points = zf.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert "metricreg_tensorboard/static/index.js" in names
    assert "metricreg/integrations/lightning.py" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.startswith("tests/") for n in names)
    assert "License-Expression: Apache-2.0" in metadata
    assert "Classifier: Programming Language :: Python :: 3.11" in metadata
    assert "Project-URL: Source" in metadata
    assert "Provides-Extra: integrations" in metadata
    assert "metricreg_health = metricreg_tensorboard.plugin:HealthLoader" in entry_points


def test_sdist_holds_only_what_builds_the_wheel(tmp_path):
    sdist = _build("sdist", tmp_path)
    with tarfile.open(sdist) as tf:
        names = [n.split("/", 1)[1] for n in tf.getnames() if "/" in n]
    assert "LICENSE" in names and "pyproject.toml" in names and "README.md" in names
    assert "tb_plugin/static/index.js" in names
    stray = [n for n in names if n.startswith(("tests", "frontend", "examples", "benchmarks")) or "__pycache__" in n]
    assert stray == []
