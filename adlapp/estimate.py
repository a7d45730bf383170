"""What training a set of runs will cost, from seconds per epoch measured on this machine.

Before a user commits to training, the app and the CLI say "≈ 14 runs × 1000 epochs ≈ 70 min on this
CPU". The rate comes from the `seconds` rows already recorded, most specific first:
  1. runs of the same training (config.training_signature) on the same device;
  2. runs of the same experiment on the same device, scaled by the training-set size;
  3. a rough figure measured on a 2-core CPU when nothing was recorded yet (and said to be rough).
The first epoch of a run (start-up, caches) is left out of every median.

This module imports neither torch nor streamlit.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import pandas as pd

from adlapp.config import RunConfig, base_config, run_key, training_signature
from adlapp.devices import DeviceInfo

__all__ = ["Cost", "training_cost", "device_label", "CONFIRM_ABOVE_S", "ROUGH_SECONDS_PER_EPOCH"]

CONFIRM_ABOVE_S = 10 * 60        # above this, launching asks for a confirmation
# Measured with scripts/bench_epoch.py on a 2-core CPU (torch 2.14.1, 2 threads) for the base configs:
# CNN 1,060 training + 265 validation images, U-Net 48 + validation images of 64 x 64.
ROUGH_SECONDS_PER_EPOCH = {"cnn": 1.3, "unet": 0.25}


@dataclass(frozen=True)
class Cost:
    runs: int
    epochs: int                  # epochs still to train, over all runs
    seconds: float               # wall time with `parallel` runs at once
    basis: str                   # where the rate comes from, for the sentence under the estimate

    @property
    def needs_confirmation(self) -> bool:
        return self.seconds > CONFIRM_ABOVE_S


def _train_size(cfg: RunConfig) -> int:
    return cfg.data.train_per_class if cfg.experiment == "cnn" else cfg.data.n_train


def _rates(runs: pd.DataFrame, epochs: pd.DataFrame, device: str) -> tuple[dict[str, float], dict[str, tuple]]:
    """Median s/epoch per training signature, and per experiment (median rate, median train size)."""
    if runs.empty or epochs.empty:
        return {}, {}
    secs = epochs[(epochs["name"] == "seconds") & (epochs["epoch"] > 1)]
    if secs.empty:
        return {}, {}
    mine = runs[runs["device"].fillna("") == device] if device else runs
    by_key = secs.groupby("key")["value"].median()
    per_sig: dict[str, list[float]] = {}
    per_exp: dict[str, list[tuple[float, int]]] = {}
    for r in mine.to_dict("records"):
        if r["key"] not in by_key.index:
            continue
        try:
            raw = json.loads(r["config"])
        except (TypeError, ValueError):
            continue
        rate = float(by_key[r["key"]])
        per_sig.setdefault(training_signature(raw), []).append(rate)
        data = raw.get("data", {})
        size = data.get("train_per_class" if r["experiment"] == "cnn" else "n_train")
        if isinstance(size, int) and size > 0:
            per_exp.setdefault(r["experiment"], []).append((rate, size))
    sig_rate = {k: float(pd.Series(v).median()) for k, v in per_sig.items()}
    exp_rate = {k: (float(pd.Series([a for a, _ in v]).median()), float(pd.Series([b for _, b in v]).median()))
                for k, v in per_exp.items()}
    return sig_rate, exp_rate


def training_cost(requests: list[tuple[RunConfig, int]], runs: pd.DataFrame, epochs: pd.DataFrame,
                  device: str = "cpu", parallel: int = 1, done_epochs: dict[str, int] | None = None) -> Cost:
    """Estimated wall time to train `requests` on `device`.

    runs/epochs: run rows and long epoch rows (RunTables.runs / .epochs) to measure rates from.
    device: the run table's device label of the machine that will train ("cpu", "cuda (NVIDIA …)").
    parallel: runs trained at once (trainer processes); on a CPU the processes share its cores, so the
    measured rates already include that and `parallel` only applies to GPUs.
    done_epochs: run key -> epochs already in a checkpoint (a resumed run trains only the rest).
    """
    sig_rate, exp_rate = _rates(runs, epochs, device)
    done_epochs = done_epochs or {}
    total_s, total_epochs, bases = 0.0, 0, set()
    for cfg, seed in requests:
        todo = max(0, cfg.epochs - done_epochs.get(run_key(cfg, seed), 0))
        sig = training_signature(cfg)
        if sig in sig_rate:
            rate, basis = sig_rate[sig], "measured"
        elif cfg.experiment in exp_rate:
            rate, size = exp_rate[cfg.experiment]
            rate, basis = rate * _train_size(cfg) / size, "scaled"
        else:
            rate = ROUGH_SECONDS_PER_EPOCH[cfg.experiment] * _train_size(cfg) / _train_size_default(cfg)
            basis = "rough"
        total_s += todo * rate
        total_epochs += todo
        bases.add(basis)
    share = max(1, parallel) if not device.startswith("cpu") else 1
    words = {"measured": "seconds per epoch measured for these runs on this machine",
             "scaled": "seconds per epoch measured for similar runs on this machine, scaled by data size",
             "rough": "a rough rate measured on a 2-core CPU (nothing recorded here yet)"}
    basis = "; ".join(words[b] for b in ("measured", "scaled", "rough") if b in bases) or "nothing to train"
    return Cost(len(requests), total_epochs, total_s / share if not math.isnan(total_s) else 0.0, basis)


def _train_size_default(cfg: RunConfig) -> int:
    return _train_size(base_config(cfg.experiment))


def device_label(info: DeviceInfo) -> str:
    """The run table's device label (adlapp.train.device_name) of the device `info` says a trainer will use:
    "cpu", "mps" or "cuda (NVIDIA H200)", so that rates are looked up for the machine that will train."""
    return f"cuda ({info.name})" if info.kind == "cuda" else info.kind
