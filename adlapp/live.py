"""What is training now: the incremental reader the live view polls, and each run's progress and ETA.

`LiveTail` keeps a cursor into the store's per-epoch rows and reads only the rows added since the previous
poll. `progress` turns run rows and `seconds` rows into "epoch k of N, s/epoch, ETA"; `runs_overview` is the
Runs page's table. The words are adlapp.report's (`progress_line`, `duration`).

This module imports neither torch nor streamlit.
"""
from __future__ import annotations

import math
import time
from typing import Any

import pandas as pd

from adlapp import report
from adlapp.config import display_name
from adlapp.store import ACTIVE, RunStore, RunTables

__all__ = ["LiveTail", "progress", "runs_overview", "OVERVIEW_COLUMNS"]

# threads: CPU threads the run trained with (its numbers depend on it); notes: resumes, skipped files.
OVERVIEW_COLUMNS = ["key", "experiment", "variant", "seed", "status", "progress", "epoch", "epochs", "device",
                    "threads", "duration", "s/epoch", "ETA", "source", "error", "notes"]
_PROGRESS_COLUMNS = ["key", "variant", "seed", "status", "epoch", "epochs", "fraction", "sec_per_epoch", "eta_s",
                     "duration_s", "text"]
_RECENT = 10          # seconds per epoch: median of the last 10 epochs (robust to the slow first epoch)


class LiveTail:
    """Accumulates the per-epoch rows of `keys`, reading only rows added since the previous poll."""

    def __init__(self, store: RunStore, keys: list[str]) -> None:
        self.store, self.keys = store, list(keys)
        self.cursor = 0
        self.frame = pd.DataFrame(columns=["key", "epoch", "name", "value"])

    def poll(self) -> int:
        """Read new rows; returns how many arrived. A rewritten row (a resumed epoch) replaces the old one."""
        if not self.keys:
            return 0
        new, self.cursor = self.store.epoch_metrics(self.keys, since_id=self.cursor)
        if len(new):
            frame = pd.concat([self.frame, new], ignore_index=True) if len(self.frame) else new
            self.frame = frame.drop_duplicates(["key", "epoch", "name"], keep="last").reset_index(drop=True)
        return len(new)

    def tables(self) -> RunTables:
        """The runs' rows as they are now, every epoch row read so far and their test rows."""
        if not self.keys:
            return RunTables.empty()
        return RunTables(self.store.runs(keys=self.keys), self.frame, self.store.test_metrics(self.keys))


def progress(runs: pd.DataFrame, epochs: pd.DataFrame, now: float | None = None) -> pd.DataFrame:
    """Per run: epoch k of N, seconds per epoch, ETA and duration, plus a one-line text.

    Seconds per epoch is the median of the run's last 10 recorded `seconds` (robust to the slow first epoch),
    else the time since start divided by the epochs done. ETA = remaining epochs × seconds per epoch.
    """
    now = time.time() if now is None else now
    recent = _seconds_per_epoch(epochs)
    rows = [_progress_row(r, recent.get(r["key"]), now) for r in runs.to_dict("records")]
    return pd.DataFrame(rows, columns=_PROGRESS_COLUMNS)


def runs_overview(store: RunStore) -> pd.DataFrame:
    """Every run in the store for the Runs page: status, progress, device, duration, ETA, error."""
    store.mark_stale()
    runs = store.runs()
    if runs.empty:
        return pd.DataFrame(columns=OVERVIEW_COLUMNS)
    prog = progress(runs, _recent_seconds(store, list(runs.loc[runs["status"] == "running", "key"])))
    out = runs[["key", "experiment", "variant", "seed", "status", "device", "threads", "source", "error",
                "notes"]].copy()
    out["variant"] = [display_name(v) for v in out["variant"]]      # one name per variant on every page
    out["progress"] = prog["fraction"].to_numpy()
    out["epoch"] = prog["epoch"].to_numpy()
    out["epochs"] = prog["epochs"].to_numpy()
    out["duration"] = [report.duration(s) for s in prog["duration_s"]]
    out["s/epoch"] = prog["sec_per_epoch"].to_numpy()
    out["ETA"] = [report.duration(s) if st == "running" else ""
                  for s, st in zip(prog["eta_s"], prog["status"], strict=True)]
    return out[OVERVIEW_COLUMNS]


def _progress_row(r: dict[str, Any], spe: float | None, now: float) -> dict[str, Any]:
    k, n = int(r.get("last_epoch") or 0), int(r["epochs"])
    started, finished = _num(r.get("started")), _num(r.get("finished"))
    spe = spe if spe is not None and math.isfinite(spe) else None     # a run whose `seconds` rows are all NaN
    if spe is None and k and started:
        spe = ((finished or now) - started) / k
    duration = ((finished or now) - started) if started else None
    status = r["status"]
    eta = (n - k) * spe if (status in ACTIVE and spe is not None) else None
    return {"key": r["key"], "variant": r["variant"], "seed": int(r["seed"]), "status": status, "epoch": k,
            "epochs": n, "fraction": min(1.0, k / n) if n else 0.0, "sec_per_epoch": spe, "eta_s": eta,
            "duration_s": duration,
            "text": report.progress_line(display_name(r["variant"]), int(r["seed"]), status, k, n, spe, eta)}


def _seconds_per_epoch(epochs: pd.DataFrame) -> dict[str, float]:
    """key -> median of the last `_RECENT` recorded `seconds` rows."""
    secs = epochs[epochs["name"] == "seconds"] if len(epochs) else epochs
    if not len(secs):
        return {}
    per_key = secs.sort_values("epoch").groupby("key")["value"].apply(lambda v: float(v.tail(_RECENT).median()))
    return per_key.to_dict()


def _recent_seconds(store: RunStore, running: list[str]) -> pd.DataFrame:
    """`seconds` rows of the running runs only (finished runs have their duration from start/finish)."""
    if not running:
        return pd.DataFrame(columns=["key", "epoch", "name", "value"])
    rows, _ = store.epoch_metrics(running)
    return rows[rows["name"] == "seconds"]


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None
