"""Two real processes on the gloo backend: one writer, reduced metrics."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .eventfiles import scalars

torch = pytest.importorskip("torch")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_one_writer_and_reductions(tmp_path):
    worker = Path(__file__).with_name("dist_worker.py")
    port = free_port()
    procs = []
    for rank in range(2):
        env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2")
        env["METRICREG_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        procs.append(subprocess.Popen([sys.executable, str(worker), str(tmp_path / "run")], env=env))
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    files = list((tmp_path / "run").glob("events.out.tfevents.*"))
    assert len(files) == 1  # only rank 0 writes
    data = scalars(tmp_path / "run")
    # loss on rank r at step s is (r + 1) * (s + 1): ranks hold (s+1) and 2(s+1).
    steps = [0, 5, 10]
    assert data["train/dist/mean"] == [(s, 1.5 * (s + 1)) for s in steps]
    assert data["train/dist/sum"] == [(s, 3.0 * (s + 1)) for s in steps]
    assert data["train/dist/max"] == [(s, 2.0 * (s + 1)) for s in steps]
    assert data["train/dist/min"] == [(s, 1.0 * (s + 1)) for s in steps]
    assert data["train/dist/local"] == [(s, 1.0 * (s + 1)) for s in steps]  # rank 0's own value
