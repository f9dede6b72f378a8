"""A forked child never writes the parent's buffer or file; a Monitor in a DataLoader worker does nothing."""

import os
import subprocess
import sys
import textwrap

import pytest

from .eventfiles import scalars

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_script(code):
    env = {**os.environ, "METRICREG_DISABLE_PLUGIN_AUTOLOAD": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120, cwd=ROOT, env=env
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def test_a_forked_child_that_exits_normally_writes_nothing(tmp_path):
    run = tmp_path / "run"
    proc = run_script(
        f"""
        import os, sys, time, metricreg as mr
        mon = mr.Monitor({str(run)!r}, builtins=False, flush_secs=3600)  # records stay buffered until close
        for step in range(1000):
            mon.log({{"v": float(step)}}, step=step)
        time.sleep(0.2)  # the writer thread has them in its buffer, unflushed
        pid = os.fork()
        if pid == 0:
            mon.log({{"v": -1.0}}, step=5000)  # used in the child: ignored, warned once
            mon.step(5001)
            mon.log({{"v": -1.0}}, step=5002)
            sys.exit(0)  # a normal exit runs atexit handlers in the child
        assert os.waitpid(pid, 0)[1] == 0
        for step in range(1000, 1500):
            mon.log({{"v": float(step)}}, step=step)
        mon.close()
        """
    )
    assert [s for s, _ in scalars(run)["train/v"]] == list(range(1500))  # each point once, none from the child
    assert len(os.listdir(run)) == 1
    assert proc.stderr.count("used in a forked child process") == 1


def test_a_monitor_used_in_dataloader_workers_does_nothing_and_warns_once_per_worker(tmp_path):
    pytest.importorskip("torch")
    run = tmp_path / "run"
    proc = run_script(
        f"""
        import torch, metricreg as mr
        mon = mr.Monitor({str(run)!r}, builtins=False)

        class Data(torch.utils.data.Dataset):
            def __len__(self):
                return 16

            def __getitem__(self, i):
                mon.log({{"in_worker": float(i)}}, step=i)
                mon.step(i, loss=1.0)
                return torch.tensor(float(i))

        loader = torch.utils.data.DataLoader(Data(), num_workers=2, multiprocessing_context="fork")
        for step, batch in enumerate(loader):
            mon.log({{"batch": float(batch.sum())}}, step=step)
        mon.close()
        """
    )
    data = scalars(run)
    assert "train/in_worker" not in data
    assert [s for s, _ in data["train/batch"]] == list(range(16))
    assert proc.stderr.count("used in a forked child process") == 2  # once per worker
