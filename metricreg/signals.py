"""SIGTERM (what SLURM, Kubernetes and most schedulers send first): nothing already logged is lost.

Installed once, from the main thread, when the first Monitor starts. On SIGTERM:

* previous handler is the default (terminate): close every open Monitor (flush, close
  the file), then terminate the way the default would, so the exit status still says
  "killed by SIGTERM";
* previous handler is a Python function (a framework's graceful-stop handler):
  flush every open Monitor, then call it; training may go on, and logging with it;
* previous handler is SIG_IGN: the process ignores SIGTERM, so do nothing.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

log = logging.getLogger("metricreg")

_installed = False
_previous: Any = None


def install(close_all: Callable[[], None], flush_all: Callable[[], None]) -> bool:
    """Chain a SIGTERM handler in front of the current one; False where that is impossible."""
    global _installed, _previous
    if _installed or not hasattr(signal, "SIGTERM"):
        return _installed
    if threading.current_thread() is not threading.main_thread():
        return False  # signal handlers can only be set from the main thread
    try:
        previous = signal.getsignal(signal.SIGTERM)
    except (ValueError, OSError):
        return False
    if previous is None:  # installed from C: we could not hand over to it
        return False

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        handler = _previous
        if handler is signal.SIG_IGN:
            return
        if callable(handler):
            _quietly(flush_all)
            handler(signum, frame)
            return
        _quietly(close_all)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    try:
        signal.signal(signal.SIGTERM, on_sigterm)
    except (ValueError, OSError):
        return False
    _previous = previous
    _installed = True
    return True


def _quietly(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception as exc:  # a signal handler that raises would hide the signal
        log.error("metricreg: writing on SIGTERM failed: %r", exc)
