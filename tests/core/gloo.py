"""Launch real torch.distributed (gloo) worker processes for the multi-process tests.

One launcher for every such test so that each starts its ranks the same way (a free local port,
plugin autoload off, one OMP thread) and none can leave a hung rank behind when a case fails.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (for MASTER_PORT)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(
    worker: Path,
    args: Sequence[str] | Callable[[int], Sequence[str]],
    world: int,
    timeout: float,
    **env: str,
) -> list[int]:
    """Run ``world`` ranks of ``worker`` (its ``args``, or ``args(rank)``) to the end; their exit codes.

    Extra ``env`` entries are added to each rank's environment. A rank still running when the
    wait times out (or when any wait raises) is killed, and the error propagates.
    """
    port = str(free_port())
    procs = []
    for rank in range(world):
        rank_env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=port, RANK=str(rank), WORLD_SIZE=str(world))
        rank_env.update(METRICREG_DISABLE_PLUGIN_AUTOLOAD="1", OMP_NUM_THREADS="1", **env)
        argv = args(rank) if callable(args) else args
        procs.append(subprocess.Popen([sys.executable, str(worker), *argv], env=rank_env))
    try:
        return [proc.wait(timeout=timeout) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
