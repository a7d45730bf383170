"""Words: every formatter, sentence and caption the app, the CLI and exports show.

Numbers come from adlapp.stats / adlapp.compare, pictures from adlapp.charts; this module turns numbers into
text, so that one value reads the same on every page ("p < 0.001", "0.565 ± 0.021", "3 min 05 s").

This module imports neither torch nor streamlit.
"""
from __future__ import annotations

import math

__all__ = ["MINUS", "decimals", "number", "p_value", "p_clause", "mean_sd", "duration"]

MINUS = "\u2212"                    # a real minus sign: "−0.012" reads as a number, "-0.012" as a dash


def decimals(*values: float) -> int:
    """Decimals that show at least 3 places and 2 significant digits of the largest magnitude."""
    finite = [abs(v) for v in values if v is not None and math.isfinite(v) and v != 0]
    if not finite:
        return 3
    return int(min(8, max(3, 1 - math.floor(math.log10(max(finite))))))


def number(x: float | None, places: int | None = None, sign: bool = False) -> str:
    """`x` with `places` decimals (default: `decimals(x)`), a real minus sign, never "−0.000"; "n/a" when
    missing or not finite. `sign` puts "+" before positive values (differences)."""
    if x is None or not math.isfinite(x):
        return "n/a"
    places = decimals(x) if places is None else places
    if round(x, places) == 0:
        x = 0.0
    text = f"{x:+.{places}f}" if sign and x != 0 else f"{x:.{places}f}"
    return text.replace("-", MINUS)


def p_value(p: float | None) -> str:
    """"< 0.001", else 2 significant digits below 0.1 ("0.034") and 2 decimals above ("0.21")."""
    if p is None or not math.isfinite(p):
        return "n/a"
    if p < 0.001:
        return "< 0.001"
    if p < 0.1:
        return f"{p:.{1 - math.floor(math.log10(p))}f}"
    return f"{p:.2f}"


def p_clause(p: float | None) -> str:
    """"p = 0.034" or "p < 0.001", for running text."""
    text = p_value(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def mean_sd(mean: float | None, sd: float | None, places: int = 3) -> str:
    """"0.565 ± 0.021"; just the mean when sd is undefined (one seed); "–" when there is no value."""
    if mean is None or not math.isfinite(mean):
        return "–"
    text = number(mean, places)
    return text + (f" ± {number(sd, places)}" if sd is not None and math.isfinite(sd) else "")


def duration(seconds: float | None) -> str:
    """"42 s", "3 min 05 s", "1 h 07 min"; "" when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


# -- runs, plans and progress --------------------------------------------------------------------------------
# Words about runs: the plan of a study, a run's progress line, a run's label in pickers. Numbers come from
# adlapp.planning and adlapp.live.
__all__ += ["plan_summary", "progress_line", "run_label"]


def plan_summary(planned) -> str:
    """'9 run(s): 3 finished in the store, 3 in cached_runs/, 1 training or queued, 2 to train.' for the
    frame adlapp.planning.plan returns (its `where` column)."""
    counts = planned["where"].value_counts()
    parts = [f"{counts.get('store', 0)} finished in the store", f"{counts.get('cached', 0)} in cached_runs/",
             f"{counts.get('training', 0)} training or queued", f"{counts.get('missing', 0)} to train"]
    return f"{len(planned)} run(s): " + ", ".join(parts) + "."


def progress_line(variant: str, seed: int, status: str, epoch: int, epochs: int,
                  sec_per_epoch: float | None = None, eta_s: float | None = None) -> str:
    """'cnn/adam seed 0: running, epoch 4 of 10, 2.00 s/epoch, ETA 12 s' (the ETA only while running)."""
    text = f"{variant} seed {seed}: {status}, epoch {epoch} of {epochs}"
    if sec_per_epoch is not None:
        text += f", {sec_per_epoch:.2f} s/epoch"
    if eta_s is not None and status == "running":
        text += f", ETA {duration(eta_s)}"
    return text


def run_label(row: dict) -> str:
    """'cnn/adam seed 0 · done · 1a2b3c4d': one run in a picker (a row of adlapp.live.runs_overview)."""
    return f"{row['variant']} seed {int(row['seed'])} · {row['status']} · {str(row['key'])[:8]}"
