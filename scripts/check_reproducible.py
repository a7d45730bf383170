"""Is the shipped study reproducible? Retrain runs of a bundle from their recorded config and seed and compare.

    python scripts/check_reproducible.py [--bundle PATH ...] [--seeds-per-variant N] [--max-epochs N]

For each bundle (default: every cached_runs/*.zip) and each variant in it, the runs of the lowest seed
(`--seeds-per-variant N`: the N lowest seeds) are trained again, on the CPU, from the config and seed the bundle
records, with the CPU thread count the run recorded (the runs table's `threads`; 1 where a bundle predates that
column, as the shipped study was made single-threaded), through adlapp.runner into a temporary store, exactly as a
queue worker trains. Then:

- every per-epoch metric (train_loss, val_*) and every test metric (acc, loss, pixel_acc, f1, best_*) the bundle
  holds must equal the retrained value exactly (`==`; two NaNs count as equal: a diverged epoch's loss is NaN in
  both). `seconds` is wall time and is never compared. A metric the bundle has and the retrained run lacks is a
  mismatch; metrics the retrained run records that an older bundle does not have are not compared.
- where the bundle carries the run's weights (`weights/<key>/epoch-E.safetensors`), the retrained run's tensors at
  those epochs must be bitwise equal to the shipped ones (same names, dtypes, shapes and bytes).

It prints one line per run (variant, seed, epochs compared, metrics equal, max abs difference, weights equal, and
the first differing metric) and exits 1 on any mismatch or unreadable bundle, 0 when everything is equal.

`--max-epochs N` is a quick partial check: it trains a copy of each config with `epochs=N` and no test epoch
beyond N (its `eval_at` keeps only epochs before N; epoch N is then scored too) and compares the first N epochs,
and the test epochs both runs scored. The first N epochs of a longer run are expected to be identical to such a
shorter run: the model is initialised from the same seed, the batch order comes from its own generator seeded
the same way and drawn once per epoch, the learning rate is constant (no schedule depends on the total number of
epochs), and evaluating the validation or test split draws no random numbers and leaves the weights alone. So
nothing in epochs 1..N can depend on how many epochs follow. (Test scores at an epoch the full run did not score
cannot be compared, nor weights kept only at such an epoch.)

A bundle is read through adlapp.bundle.read_bundle, which checks it whole; weights are parsed by safetensors
(tensors only, nothing is unpickled). Retraining the full shipped study takes as long as making it did (see
cached_runs/README.md); `--max-epochs 5` takes a minute or two.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run as a plain script from anywhere

import pandas as pd  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load as load_safetensors  # noqa: E402

from adlapp import bundle as bundle_mod  # noqa: E402
from adlapp import weights  # noqa: E402
from adlapp.config import config_from_dict  # noqa: E402
from adlapp.library import cached_runs_dir  # noqa: E402
from adlapp.runner import run_claimed  # noqa: E402
from adlapp.store import RunStore  # noqa: E402

WALL_TIME = "seconds"        # the one metric allowed to differ between two trainings


@dataclass
class Check:
    """One retrained run against its bundle: what was compared and the differences found."""

    variant: str
    seed: int
    epochs: int = 0                                         # epochs whose metrics were compared
    compared: int = 0                                       # metric values compared
    max_abs_diff: float = 0.0
    differences: list[str] = field(default_factory=list)    # "test acc at epoch 2: bundle 0.1 vs retrained 0.2"
    weights: bool | None = None                             # None: the bundle carries no weights to compare
    weight_differences: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return not self.differences and self.weights is not False

    def line(self) -> str:
        weights_word = {None: "not shipped", True: "yes", False: "NO"}[self.weights]
        text = (f"{self.variant} seed {self.seed}: {self.epochs} epoch{'' if self.epochs == 1 else 's'} compared "
                f"({self.compared} values), "
                f"metrics equal {'yes' if not self.differences else 'NO'}, max abs difference "
                f"{self.max_abs_diff:.3g}, weights equal {weights_word}")
        if self.differences:
            text += f"; first difference: {self.differences[0]} ({len(self.differences)} in all)"
        if self.weight_differences:
            text += f"; weights: {self.weight_differences[0]}"
        return text


def chosen_runs(runs: pd.DataFrame, seeds_per_variant: int) -> pd.DataFrame:
    """Each variant's runs of its `seeds_per_variant` lowest seeds (all runs of that seed: a variant may hold
    runs of several lengths)."""
    keep = []
    for _, group in runs.groupby("variant", sort=True):
        seeds = sorted(set(group["seed"].astype(int)))[:seeds_per_variant]
        keep.append(group[group["seed"].astype(int).isin(seeds)].sort_values(["seed", "key"]))
    return pd.concat(keep, ignore_index=True) if keep else runs.iloc[:0]


def threads_of(row: dict) -> int:
    value = row.get("threads")
    return 1 if value is None or value != value else int(value)


def retrain(row: dict, max_epochs: int | None, tmp: Path) -> tuple[RunStore, str, int, tuple[int, ...]]:
    """Train the run again on the CPU into a fresh store under `tmp`; (store, new key, last epoch compared,
    the test epochs the retrained run scored)."""
    cfg = config_from_dict(json.loads(row["config"]))
    if max_epochs is not None and max_epochs < cfg.epochs:
        cfg = dataclasses.replace(cfg, epochs=max_epochs, eval_at=tuple(e for e in cfg.eval_at if e < max_epochs))
    store = RunStore(tmp / row["key"])
    key, _ = store.enqueue(cfg, int(row["seed"]), command="scripts/check_reproducible.py")
    if store.claim(key) is None:
        raise RuntimeError(f"run {key}: could not be claimed in a fresh temporary store")
    own = torch.get_num_threads()
    torch.set_num_threads(threads_of(row))          # on CPU the numbers depend on the thread count
    try:
        # A flag that is never set: the default one would take over SIGTERM, which should end this script as usual.
        status = run_claimed(store, key, cfg, int(row["seed"]), device="cpu", flag=SimpleNamespace(set=False))
    finally:
        torch.set_num_threads(own)
    if status not in ("done", "diverged"):
        raise RuntimeError(f"retraining ended {status}: {store.get(key)['error']}")
    return store, key, min(cfg.epochs, int(row["last_epoch"])), cfg.test_epochs


def compare_metrics(check: Check, kind: str, shipped: pd.DataFrame, retrained: pd.DataFrame, last: int,
                    test_epochs: tuple[int, ...] | None) -> None:
    """Every bundle row of `kind` ("epoch" or "test") up to epoch `last` (tests: at epochs the retrained run
    scored) against the retrained row of the same epoch and name, exactly."""
    shipped = shipped[(shipped["epoch"] <= last) & (shipped["name"] != WALL_TIME)]
    if test_epochs is not None:
        shipped = shipped[shipped["epoch"].isin(test_epochs)]
    again = {(int(e), n): v for e, n, v in zip(retrained["epoch"], retrained["name"], retrained["value"], strict=True)}
    for epoch, name, value in zip(shipped["epoch"], shipped["name"], shipped["value"], strict=True):
        where = f"{kind} {name} at epoch {int(epoch)}"
        if (int(epoch), name) not in again:
            check.differences.append(f"{where}: in the bundle, not recorded by the retrained run")
            continue
        other = again[(int(epoch), name)]
        check.compared += 1
        if value == other or (math.isnan(value) and math.isnan(other)):
            continue
        diff = abs(value - other)
        check.max_abs_diff = max(check.max_abs_diff, diff if not math.isnan(diff) else math.inf)
        check.differences.append(f"{where}: bundle {value!r} vs retrained {other!r}")


def compare_weights(check: Check, loaded: bundle_mod.LoadedBundle, key: str, store: RunStore, new_key: str,
                    test_epochs: tuple[int, ...]) -> None:
    """The shipped safetensors of `key` at the epochs both runs kept against the retrained ones, bitwise."""
    shipped = {e: n for e, n in loaded.weights.get(key, {}).items() if e in test_epochs}
    if not shipped:
        return
    check.weights = True
    for epoch in sorted(shipped):
        blob = bundle_mod.read_weights(loaded, key, epoch)    # checksum compared again, size capped
        path = store.weights_dir(new_key) / weights.file_name(epoch)
        if not path.is_file():
            check.weights = False
            check.weight_differences.append(f"epoch {epoch}: the retrained run kept no weights")
            continue
        a, b = load_safetensors(bytes(blob)), load_safetensors(path.read_bytes())
        for why in tensor_differences(a, b):
            check.weights = False
            check.weight_differences.append(f"epoch {epoch}: {why}")


def tensor_differences(shipped: dict[str, torch.Tensor], again: dict[str, torch.Tensor]) -> list[str]:
    """Why two state dicts are not bitwise equal ([] when they are): names, dtypes, shapes, then raw bytes."""
    if set(shipped) != set(again):
        return [f"tensor names differ ({', '.join(sorted(set(shipped) ^ set(again)))})"]
    out = []
    for name in sorted(shipped):
        a, b = shipped[name], again[name]
        if a.dtype != b.dtype or a.shape != b.shape:
            out.append(f"{name}: {a.dtype} {tuple(a.shape)} vs {b.dtype} {tuple(b.shape)}")
        elif not torch.equal(_raw(a), _raw(b)):
            out.append(f"{name}: the bytes differ")
    return out


def _raw(t: torch.Tensor) -> torch.Tensor:
    """The tensor's bytes (so -0.0 differs from 0.0 and two NaNs of the same bits are equal)."""
    return t.contiguous().reshape(-1).view(torch.uint8)


def check_bundle(path: Path, seeds_per_variant: int, max_epochs: int | None) -> list[Check]:
    loaded = bundle_mod.read_bundle(path)
    tables = loaded.tables
    checks = []
    with tempfile.TemporaryDirectory(prefix="adlapp-reproduce-") as tmp:
        for row in chosen_runs(tables.runs, seeds_per_variant).to_dict("records"):
            check = Check(str(row["variant"]), int(row["seed"]))
            store, new_key, last, test_epochs = retrain(row, max_epochs, Path(tmp))
            again = store.tables(keys=[new_key])
            key = row["key"]
            check.epochs = last
            compare_metrics(check, "epoch", tables.epochs[tables.epochs["key"] == key], again.epochs, last, None)
            compare_metrics(check, "test", tables.tests[tables.tests["key"] == key], again.tests, last, test_epochs)
            compare_weights(check, loaded, key, store, new_key, test_epochs)
            checks.append(check)
            print(check.line(), flush=True)
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--bundle", action="append", type=Path, default=None,
                        help="a bundle to check (repeatable; default: every cached_runs/*.zip)")
    parser.add_argument("--seeds-per-variant", type=int, default=1, metavar="N",
                        help="retrain the runs of each variant's N lowest seeds (default 1)")
    parser.add_argument("--max-epochs", type=int, default=None, metavar="N",
                        help="quick partial check: train and compare only the first N epochs")
    args = parser.parse_args(argv)
    if args.seeds_per_variant < 1 or (args.max_epochs is not None and args.max_epochs < 1):
        parser.error("--seeds-per-variant and --max-epochs must be at least 1")
    bundles = args.bundle or sorted(cached_runs_dir().glob("*.zip"))
    if not bundles:
        print(f"no bundle to check (none given and none in {cached_runs_dir()})")
        return 1
    ok = True
    for path in bundles:
        print(f"{path}:", flush=True)
        try:
            checks = check_bundle(path, args.seeds_per_variant, args.max_epochs)
        except bundle_mod.BundleError as e:
            print(f"  unreadable: {e}")
            ok = False
            continue
        ok &= all(c.equal for c in checks)
        print(f"{path.name}: {sum(c.equal for c in checks)} of {len(checks)} run(s) reproduced exactly", flush=True)
    print("reproducible: every compared metric and weight is equal" if ok else "NOT reproducible: see above")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
