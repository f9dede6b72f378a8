"""The projector metric and its files: numpy / torch / JAX, halves, bad input, and faults that cost only it.

The files are read back with TensorBoard's own parsers (``ProjectorConfig`` text format, the
projector plugin's ``_read_tensor_tsv_file``); tests/tb_plugin/test_projector.py serves them through
the real plugin.
"""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from google.protobuf import text_format
from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig
from tensorboard.plugins.projector.projector_plugin import _read_tensor_tsv_file

import metricreg as mr
from metricreg import arrays as A
from metricreg import projector as files
from metricreg.builtins import projector as PJ
from tests.core.eventfiles import scalars


def config(run) -> ProjectorConfig:
    parsed = ProjectorConfig()
    text_format.Parse((run / files.CONFIG_FILENAME).read_text(), parsed)
    return parsed


def written(run, name: str) -> tuple[np.ndarray, list[str] | None]:
    entry = next(e for e in config(run).embeddings if e.tensor_name == name)
    labels = (run / entry.metadata_path).read_text().splitlines() if entry.metadata_path else None
    return _read_tensor_tsv_file(str(run / entry.tensor_path)), labels


def test_each_framework_writes_its_rows_exactly(fw, tmp_path):
    rng = np.random.default_rng(0)
    features = rng.standard_normal((1200, 3, 5))
    labels = rng.integers(0, 4, 1200)
    value = PJ.projector((fw.array(features), fw.array(labels)))
    assert isinstance(value, A.Deferred)  # nothing is converted or written on the training thread
    files.ProjectorFiles(str(tmp_path)).write("train/projector", 7, value)
    rows = np.asarray(A.row_indices(1200, PJ.PROJECTOR_MAX_ROWS, np, None))
    tensor, names = written(tmp_path, "train/projector@7")
    given = np.asarray(A.to_host(fw.array(features)), dtype=np.float64).reshape(1200, 15)
    assert np.array_equal(tensor, given[rows].astype(np.float32))  # 9 significant digits: float32-exact
    assert names == [str(x) for x in labels[rows]]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_torch_halves(tmp_path, dtype):
    torch = pytest.importorskip("torch")
    half = torch.randn(30, 8, generator=torch.Generator().manual_seed(1)).to(getattr(torch, dtype))
    files.ProjectorFiles(str(tmp_path)).write("p", 0, PJ.projector(half))
    tensor, labels = written(tmp_path, "p@0")
    assert np.array_equal(tensor, half.float().numpy()) and labels is None


def test_bad_inputs_name_the_projector():
    z = np.zeros((10, 4))
    with pytest.raises(ValueError, match="projector: 10 feature rows need n labels"):
        PJ.projector((z, np.arange(9)))
    with pytest.raises(ValueError, match=r"projector: features must be an \(n, d\) array"):
        PJ.projector((np.arange(10), np.arange(10)))
    with pytest.raises(ValueError, match="projector: expected features, \\(features, labels\\)"):
        PJ.projector("rows")
    assert PJ.projector(np.zeros((0, 4))) is None
    with pytest.raises(TypeError, match="p: an embedding metric must produce"):
        files.as_embedding(1.0, "p")


def test_keys_become_safe_paths_inside_the_run(tmp_path):
    run = files.ProjectorFiles(str(tmp_path))
    run.write("train/projector/../a b", 3, files.Embedding(np.ones((2, 2)), np.array(["x\ny", ""])))
    (entry,) = config(tmp_path).embeddings
    assert entry.tensor_path == "projector/train/projector/_/a_b/3/tensors.tsv"
    assert (tmp_path / entry.metadata_path).read_text() == "x y\n \n"  # one label per line, always


def test_write_faults_cost_only_the_projector(tmp_path, caplog):
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / files.CONFIG_FILENAME).write_text("not a projector config {")
    threads = []
    real = files.ProjectorFiles.write

    def recording(self, *args):
        threads.append(threading.current_thread().name)
        return real(self, *args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(files.ProjectorFiles, "write", recording)
        with mr.Monitor(tmp_path / "exp", max_failures=2) as mon:
            for step in range(10001):
                mon.step(step, loss=1.0, projector=np.ones((4, 2)))
                if step % 5000 == 0:  # the writer reports a failed write when it has run it, not at once
                    mon.flush()
    assert threads and threading.current_thread().name not in threads  # file I/O on the writer thread only
    error = mon.errors["projector"]
    assert error["count"] == 2 and error["disabled"] and "is not a ProjectorConfig" in error["last_message"]
    assert (tmp_path / "exp" / files.CONFIG_FILENAME).read_text() == "not a projector config {"  # left alone
    assert len(scalars(tmp_path / "exp")["train/loss"]) > 1000  # training and the other metrics carried on


def test_an_unwritable_run_directory_is_a_metric_error(tmp_path):
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / files.FOLDER).write_text("a file where the folder goes")
    with mr.Monitor(tmp_path / "exp") as mon:
        mon.step(0, loss=1.0, projector=np.ones((4, 2)))
    assert "projector" in mon.errors and not os.path.exists(tmp_path / "exp" / files.CONFIG_FILENAME)
    assert scalars(tmp_path / "exp")["train/loss"] == [(0, 1.0)]


def test_wide_features_are_bounded_in_values_not_only_rows(tmp_path):
    """1,000 rows of flattened images would be gigabytes of text per write; rows now shrink so a write holds
    at most PROJECTOR_MAX_VALUES values, and wider rows than that are an error naming the input (review12)."""
    d = 4096
    features = np.random.default_rng(4).standard_normal((1200, d)).astype(np.float32)
    labels = np.arange(1200)
    files.ProjectorFiles(str(tmp_path)).write("p", 0, PJ.projector((features, labels)))
    tensor, names = written(tmp_path, "p@0")
    rows = np.asarray(A.row_indices(1200, PJ.PROJECTOR_MAX_VALUES // d, np, None))
    assert tensor.shape == (PJ.PROJECTOR_MAX_VALUES // d, d) and tensor.size <= PJ.PROJECTOR_MAX_VALUES
    assert np.array_equal(tensor, features[rows]) and names == [str(x) for x in labels[rows]]
    with pytest.raises(ValueError, match=r"projector: features have 1,024,001 values per row \(shape \(2, 1024001\)\)"):
        PJ.projector(np.zeros((2, PJ.PROJECTOR_MAX_VALUES + 1), dtype=np.float32))
