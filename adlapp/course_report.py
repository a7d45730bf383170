"""What the course report this lab grows from says, in numbers: the cells a student will look for.

The report trained its models on the public card and retina-vessel data sets; this app's built-in data are
generated in code (adlapp/data), so its numbers are a different experiment on different data. The app shows
the report's numbers *beside* its own, labelled as the report's, and says where the direction of a result
differs. Nothing here is a result of this app.

This module imports neither torch nor streamlit.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["UNET_PIXEL_ACC", "UNET_SD_RANGE", "NORMAL_Z", "SEEDS", "Direction", "DIRECTIONS", "report_cell"]

# The report's table: test pixel accuracy by epoch budget, mean over 3 seeds, three significant digits. Its
# spreads ("certainties") are given only as "all in the 0.011-0.013 range" and left out of the table.
UNET_PIXEL_ACC: dict[str, dict[int, float]] = {
    "unet/normal": {200: 0.976, 400: 0.977, 1000: 0.979},
    "unet/nearest": {200: 0.976, 400: 0.977, 1000: 0.978},
    "unet/elu": {200: 0.977, 400: 0.977, 1000: 0.977},
    "unet/nearest-elu": {200: 0.977, 400: 0.977, 1000: 0.978},
}
UNET_SD_RANGE = (0.011, 0.013)
# "Normal" after 200 vs 1000 epochs: "it only grows by 0.17-sigma", z = (a - b) / sqrt(sd_a^2 + sd_b^2).
NORMAL_Z = 0.17
SEEDS = 3


@dataclass(frozen=True)
class Direction:
    """One ordering the report states: `a` scores higher (`higher` True) or lower than `b` on `metric`."""
    experiment: str
    metric: str           # adlapp.metrics key
    a: str
    b: str
    higher: bool
    at: int | None        # evaluation epoch, None: the run's end
    words: str            # how the report says it


DIRECTIONS: tuple[Direction, ...] = (
    Direction("cnn", "test_acc", "cnn/bn-adam", "cnn/adam", True, 200,
              "batch-normalization helps in achieving a higher accuracy"),
    Direction("cnn", "test_acc", "cnn/adam", "cnn/sgd", True, 200, "SGD seems quite a lot less accurate than Adam"),
    Direction("unet", "test_loss", "unet/elu", "unet/normal", False, 200,
              "ELU gives a significantly lower final test loss at fewer epochs"),
    Direction("unet", "test_loss", "unet/nearest-elu", "unet/nearest", False, 200,
              "ELU gives a significantly lower final test loss at fewer epochs"),
    Direction("unet", "test_pixel_acc", "unet/normal", "unet/normal", True, None,
              "Normal after 1000 epochs scores 0.17σ above Normal after 200"),
)


def report_cell(variant: str, epoch: int) -> float | None:
    """The report's test pixel accuracy for this U-Net variant and budget, or None where it gives none."""
    return UNET_PIXEL_ACC.get(variant, {}).get(int(epoch))


def direction(experiment: str, metric: str, a: str, b: str, at: int | None) -> Direction | None:
    """The report's stated ordering of `a` and `b` (either way round) on `metric` at `at`, or None."""
    for d in DIRECTIONS:
        if (d.experiment, d.metric, d.at) == (experiment, metric, at) and {d.a, d.b} == {a, b} and a != b:
            return d
    return None


__all__ += ["direction"]
