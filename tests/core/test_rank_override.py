"""Monitor(rank=, world_size=): the launcher's view wins over torch.distributed's."""

import logging

import pytest

import metricreg as mr


@pytest.fixture(autouse=True)
def hermetic(monkeypatch):
    monkeypatch.setenv("METRICREG_DISABLE_PLUGIN_AUTOLOAD", "1")


def test_a_non_zero_rank_writes_nothing_and_says_why(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="metricreg"):
        mon = mr.Monitor(tmp_path / "run", builtins=False, rank=1, world_size=2)
    assert (mon.rank, mon.world_size) == (1, 2)
    assert mon.event_file is None
    mon.step(0, loss=1.0)
    mon.close()
    assert not (tmp_path / "run").exists() or not list((tmp_path / "run").iterdir())
    assert "no cross-rank reduction" in caplog.text


def test_rank_zero_of_one_is_a_plain_single_process_run(tmp_path):
    with mr.Monitor(tmp_path / "run", builtins=False, rank=0, world_size=1) as mon:
        assert (mon.rank, mon.world_size) == (0, 1)
        assert mon.event_file is not None


@pytest.mark.parametrize(
    ("kwargs", "culprit"),
    [
        ({"rank": 2, "world_size": 2}, "0 <= rank < world_size"),
        ({"rank": -1, "world_size": 2}, "0 <= rank < world_size"),
        ({"rank": 0, "world_size": 0}, "0 <= rank < world_size"),
        ({"rank": 1}, "must be given together"),
        ({"world_size": 2}, "must be given together"),
        ({"rank": 0.0, "world_size": 2}, "must be integers"),
        ({"rank": True, "world_size": 2}, "must be integers"),
    ],
)
def test_bad_overrides_name_the_argument(tmp_path, kwargs, culprit):
    with pytest.raises(ValueError, match="rank") as info:
        mr.Monitor(tmp_path / "run", builtins=False, **kwargs)
    assert culprit in str(info.value)
    assert not (tmp_path / "run").exists()


def test_numpy_integers_are_accepted(tmp_path):
    np = pytest.importorskip("numpy")
    with mr.Monitor(tmp_path / "run", builtins=False, rank=np.int64(0), world_size=np.int32(1)) as mon:
        assert (mon.rank, mon.world_size) == (0, 1)
