"""One direction table: the live gap metric and the Health tab's derived gaps agree."""

import pytest

from metricreg import verdict
from metricreg.directions import direction_of


@pytest.mark.parametrize(
    ("name", "direction"),
    [
        ("loss", "lower_is_better"),
        ("val/nll", "lower_is_better"),
        ("accuracy", "higher_is_better"),
        ("top1_acc", "higher_is_better"),
        ("psnr", "higher_is_better"),
        ("ssim", "higher_is_better"),
        ("error_rate", "lower_is_better"),
        ("mystery", "lower_is_better"),
    ],
)
def test_directions_by_name(name, direction):
    assert direction_of(name) == direction
    assert verdict._direction_of(f"val/{name}") == direction
