"""An append-only event file that survives I/O faults.

Why a module of its own: a full disk (ENOSPC), a quota (EDQUOT), a failing
device (EIO) or a deleted log directory must cost only the values that could
not be written. The file must never hold a partial record (TensorBoard stops
reading a file at the first torn record), the writer thread must not die, and
writing must resume by itself when the fault goes away.

How: bytes are written unbuffered, whole records at a time, and the offset of
the last complete record is remembered. When a write fails, the file is cut
back to that offset. When that is impossible (the file or its directory was
deleted, the device fails), a fresh event file is opened in the log directory
(re-created if needed) on the next attempt. What could not be written is
counted, and reported once per fault episode.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("metricreg")

_file_counter = 0
_counter_lock = threading.Lock()


class LogdirError(OSError):
    """The log directory cannot be created or written."""


def open_event_file(logdir: str) -> tuple[Any, str]:
    """Create the run directory and a fresh event file, or fail clearly now."""
    global _file_counter
    try:
        os.makedirs(logdir, exist_ok=True)
    except OSError as exc:
        raise LogdirError(f"metricreg cannot create the log directory {logdir!r}: {exc.strerror or exc}") from None
    if not os.path.isdir(logdir):
        raise LogdirError(f"metricreg log directory {logdir!r} exists and is not a directory")
    with _counter_lock:
        _file_counter += 1
        counter = _file_counter
    name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.{counter:06d}.metricreg"
    path = os.path.join(logdir, name)
    try:
        handle = open(path, "wb", buffering=0)  # noqa: SIM115 - owned by RecordFile until close()
    except OSError as exc:
        raise LogdirError(f"metricreg cannot write to the log directory {logdir!r}: {exc.strerror or exc}") from None
    return handle, path


def live_writers(logdir: str) -> list[int]:
    """Other live processes on this host with a metricreg event file in ``logdir`` (by the pid in its name)."""
    host, me, pids = socket.gethostname(), os.getpid(), set()
    try:
        names = os.listdir(logdir)
    except OSError:
        return []
    for name in names:
        parts = name.split(".")
        # events.out.tfevents.<time>.<host>.<pid>.<counter>.metricreg (the host may hold dots)
        if not (name.startswith("events.out.tfevents.") and name.endswith(".metricreg") and len(parts) >= 8):
            continue
        if ".".join(parts[4:-3]) != host or not parts[-3].isdigit():
            continue
        pid = int(parts[-3])
        if pid != me and _alive(pid):
            pids.add(pid)
    return sorted(pids)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


class RecordFile:
    """Appends whole records; on a fault, cuts back, counts the loss and retries later.

    ``header()`` gives the bytes every new file starts with (the file version and
    the run's manifest), so a file opened after a fault is a complete event file.
    """

    def __init__(self, logdir: str, header: Callable[[], bytes]) -> None:
        self.logdir = logdir
        self._header = header
        self._file, self.path = open_event_file(logdir)
        self.paths = [self.path]
        self._offset = 0  # end of the last complete record in the current file
        self._fault: str | None = None  # the current fault episode's error, None while healthy
        self._cut_back = True  # whether the current file ends at a record boundary
        self.lost_records = 0
        self.lost_bytes = 0
        self.faults = 0
        self.closed = False
        self.write(header(), 0)

    def write(self, data: bytes, records: int) -> bool:
        """Append ``data`` (``records`` whole records). False, with the loss counted, if it cannot."""
        if self.closed:
            self._lose(data, records)
            return False
        if self._fault is not None and not self._recover():
            self._lose(data, records)
            return False
        try:
            if self._deleted():
                raise FileNotFoundError(f"the event file {self.path} was deleted")
            self._write_all(data)
        except OSError as exc:
            self._failed(exc)
            self._lose(data, records)
            return False
        except ValueError:  # closed under the writer thread by a close() that timed out
            self._lose(data, records)
            return False
        self._offset += len(data)
        if self._fault is not None:
            log.warning(
                "metricreg: writing to %r again (now %s); %d records could not be written during the fault",
                self.logdir,
                os.path.basename(self.path),
                self.lost_records,
            )
            self._fault = None
        return True

    def close(self) -> None:
        """Close the file; never raises (a failing close is reported like a failing write)."""
        if self.closed:
            return
        self.closed = True
        try:
            self._file.close()
        except OSError as exc:
            self._failed(exc)

    # --- internals ---------------------------------------------------------------------------

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = self._file.write(view)
            if written is None:  # non-blocking file with no room: treat as a fault
                raise BlockingIOError("the event file accepted no bytes")
            view = view[written:]

    def _deleted(self) -> bool:
        """True when the file was unlinked (writes would succeed and go nowhere)."""
        try:
            return os.fstat(self._file.fileno()).st_nlink == 0
        except (OSError, ValueError):
            return False  # a file object without a descriptor: trust its writes

    def _failed(self, exc: OSError) -> None:
        """Start (or continue) a fault episode; cut the file back to its last whole record."""
        if self._fault is None:
            self.faults += 1
            self._fault = f"{type(exc).__name__}: {exc}"
            log.error(
                "metricreg: cannot write to the log directory %r (%s); training continues, and what cannot "
                "be written is counted until writing works again",
                self.logdir,
                self._fault,
            )
        self._cut_back = self._truncate()

    def _truncate(self) -> bool:
        try:
            if self._deleted():
                return False
            self._file.truncate(self._offset)
            self._file.seek(self._offset)
            return True
        except (OSError, ValueError):
            return False

    def _recover(self) -> bool:
        """Try to leave the fault episode: the same file if it ends cleanly, else a new file."""
        if not self._cut_back:
            self._cut_back = self._truncate()
        if self._cut_back and not self._deleted():
            return True  # the next write tells whether the fault is gone
        try:
            handle, path = open_event_file(self.logdir)
        except OSError:
            return False
        try:
            self._file.close()
        except (OSError, ValueError):
            pass
        self._file, self.path, self._offset = handle, path, 0
        self.paths.append(path)
        self._cut_back = True
        header = self._header()
        try:
            self._write_all(header)
        except OSError as exc:
            self._failed(exc)
            return False
        self._offset = len(header)
        return True

    def _lose(self, data: bytes, records: int) -> None:
        self.lost_records += records
        self.lost_bytes += len(data)
