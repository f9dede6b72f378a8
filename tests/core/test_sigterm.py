"""SIGTERM (sent by SLURM, Kubernetes, ...) loses nothing already logged, then the previous handler runs."""

import os
import signal
import subprocess
import sys
import textwrap

from .eventfiles import scalars

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def start(code):
    env = {**os.environ, "METRICREG_DISABLE_PLUGIN_AUTOLOAD": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    return proc


def test_sigterm_with_the_default_handler_writes_everything_then_terminates(tmp_path):
    run = tmp_path / "run"
    proc = start(
        f"""
        import sys, time, metricreg as mr
        mon = mr.Monitor({str(run)!r}, builtins=False, flush_secs=3600)  # nothing flushed on its own
        for step in range(500):
            mon.log({{"v": float(step)}}, step=step)
        print("ready", flush=True)
        time.sleep(120)
        """
    )
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    assert proc.returncode == -signal.SIGTERM  # the default action still happened
    assert [s for s, _ in scalars(run)["train/v"]] == list(range(500))


def test_sigterm_hands_over_to_a_previous_python_handler_and_logging_goes_on(tmp_path):
    run = tmp_path / "run"
    proc = start(
        f"""
        import signal, time, metricreg as mr
        from tests.core.eventfiles import scalars
        stop = []
        signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(signum))  # a graceful-stop handler
        mon = mr.Monitor({str(run)!r}, builtins=False, flush_secs=3600)
        for step in range(500):
            mon.log({{"v": float(step)}}, step=step)
        print("ready", flush=True)
        while not stop:
            time.sleep(0.01)
        print("previous handler ran; on disk:", len(scalars({str(run)!r})["train/v"]), flush=True)
        for step in range(500, 600):  # e.g. a final checkpoint step
            mon.log({{"v": float(step)}}, step=step)
        mon.close()
        """
    )
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "previous handler ran; on disk: 500" in out  # flushed before the handover
    assert [s for s, _ in scalars(run)["train/v"]] == list(range(600))
