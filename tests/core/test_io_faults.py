"""I/O faults cost only what could not be written: the file stays readable, writing resumes."""

import errno
import logging
import os
import shutil
import struct
import subprocess
import sys
import textwrap

import pytest

import metricreg as mr
from metricreg import events
from metricreg.manifest import MANIFEST_TAG

from .eventfiles import latest_json, scalars


@pytest.fixture(autouse=True)
def hermetic(monkeypatch):
    monkeypatch.setenv("METRICREG_DISABLE_PLUGIN_AUTOLOAD", "1")


class FaultyFile:
    """The real event file, except that while ``failing`` a write lands half its bytes and raises."""

    def __init__(self, real, code):
        self.real = real
        self.code = code
        self.failing = False
        self.faults = 0

    def write(self, data):
        if self.failing:
            self.faults += 1
            self.real.write(bytes(data[: len(data) // 2]))  # a torn record, as a real full disk leaves
            raise OSError(self.code, os.strerror(self.code))
        return self.real.write(data)

    def __getattr__(self, name):
        return getattr(self.real, name)


def inject(mon, code):
    out = mon._writer._out
    faulty = FaultyFile(out._file, code)
    out._file = faulty
    return faulty


def whole_records(path):
    """The number of records in an event file; fails unless it is whole records end to end."""
    with open(path, "rb") as fh:
        data = fh.read()
    offset = count = 0
    while offset < len(data):
        assert offset + 12 <= len(data), f"a torn record header at byte {offset} of {len(data)}"
        (length,) = struct.unpack("<Q", data[offset : offset + 8])
        assert struct.unpack("<I", data[offset + 8 : offset + 12])[0] == events.masked_crc(data[offset : offset + 8])
        end = offset + 12 + length + 4
        assert end <= len(data), f"a torn record at byte {offset} of {len(data)}"
        assert struct.unpack("<I", data[end - 4 : end])[0] == events.masked_crc(data[offset + 12 : end - 4])
        offset, count = end, count + 1
    return count


def log_steps(mon, steps):
    for step in steps:
        mon.log({"v": float(step)}, step=step)
    mon.flush()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO, errno.EDQUOT])
def test_full_disk_loses_only_what_it_could_not_write_and_resumes(tmp_path, caplog, code):
    run = tmp_path / "run"
    mon = mr.Monitor(run, builtins=False, flush_secs=3600)
    faulty = inject(mon, code)
    with caplog.at_level(logging.WARNING, logger="metricreg"):
        log_steps(mon, range(100))
        faulty.failing = True
        log_steps(mon, range(100, 200))
        log_steps(mon, range(200, 300))  # still failing: a second flush, reported no second time
        faulty.failing = False
        log_steps(mon, range(300, 305))  # shorter than the torn bytes: only cutting back leaves whole records
        assert whole_records(mon.event_file) > 100
        log_steps(mon, range(305, 400))
        mon.close()
    assert faulty.faults >= 2
    assert mon._writer._thread.is_alive() is False  # finished normally, not killed
    data = scalars(run)
    # Everything before and after the fault is readable: no torn record stopped the reader.
    assert [s for s, _ in data["train/v"]] == [*range(100), *range(300, 400)]
    assert mon._writer.unwritten >= 200
    assert data["_metricreg/unwritten"][-1][1] == mon._writer.unwritten
    assert len(os.listdir(run)) == 1  # cut back to the last whole record, same file
    whole_records(mon.event_file)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert str(run) in errors[0] and os.strerror(code) in errors[0]
    assert any("could not be written" in r.getMessage() for r in caplog.records)


def test_deleted_logdir_is_recreated_and_the_new_file_is_complete(tmp_path):
    run = tmp_path / "run"
    mon = mr.Monitor(run, plugins=[], builtins=False, flush_secs=3600)
    log_steps(mon, range(50))
    shutil.rmtree(run)
    log_steps(mon, range(50, 100))  # lands in a deleted file: detected, counted
    log_steps(mon, range(100, 150))
    mon.close()
    assert [s for s, _ in scalars(run)["train/v"]] == list(range(100, 150))
    assert mon._writer.unwritten >= 50
    assert latest_json(run, MANIFEST_TAG)["series"]["train/v"]["kind"] == "scalar"  # the tab still turns on


def test_a_disk_that_never_recovers_costs_no_exception_at_close_or_exit(tmp_path):
    run = tmp_path / "run"
    script = textwrap.dedent(
        f"""
        import errno, os, metricreg as mr
        from tests.core.test_io_faults import inject
        mon = mr.Monitor({str(run)!r}, builtins=False, flush_secs=0.01)
        inject(mon, errno.ENOSPC).failing = True
        closed = mr.Monitor({str(tmp_path / "closed")!r}, builtins=False)
        inject(closed, errno.EIO).failing = True
        for step in range(200):
            mon.log({{"v": 1.0}}, step=step)
            closed.log({{"v": 1.0}}, step=step)
        closed.close()
        print("closed without raising")
        # mon is left to the atexit hook
        """
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert "closed without raising" in proc.stdout
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
    assert f"cannot write to the log directory {str(run)!r}" in proc.stderr
    assert "could not be written" in proc.stderr


def test_event_file_names_sort_in_the_order_they_were_opened(tmp_path):
    """TensorBoard reads a run's event files in name order and never goes back: the 10th file a
    process opens in one second must sort after the 9th (the counter was not zero-padded)."""
    from metricreg.recordfile import open_event_file

    opened = []
    for _ in range(12):
        handle, path = open_event_file(str(tmp_path))
        handle.close()
        opened.append(os.path.basename(path))
    assert sorted(opened) == opened
