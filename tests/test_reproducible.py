"""scripts/check_reproducible.py on real tiny runs: a bundle exported from a store is retrained to exactly its
metrics and bitwise its weights (exit 0); a bundle with one test metric changed is caught, naming the metric
(exit 1); --max-epochs compares the first epochs of a longer run."""
from __future__ import annotations

import importlib.util
import sys

import pandas as pd
import pytest
import torch
from conftest import ROOT, tiny, train_into

from adlapp.bundle import export_store, read_bundle, write_bundle
from adlapp.store import RunStore, RunTables


def load_script():
    spec = importlib.util.spec_from_file_location("check_reproducible", ROOT / "scripts" / "check_reproducible.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module               # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


check = load_script()


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> dict:
    """A tiny CNN run (2 epochs) and a tiny U-Net run (3 epochs, test epochs 1, 2, 3), exported with weights."""
    root = tmp_path_factory.mktemp("reproduce")
    store = RunStore(root / "store")
    cnn, = train_into(store, tiny("cnn/adam"), seeds=(0,))
    unet, = train_into(store, tiny("unet/normal"), seeds=(0,))
    path = export_store(store, root / "study.zip", weights=True)
    return {"store": store, "bundle": path, "cnn": cnn, "unet": unet, "root": root}


def test_a_freshly_exported_bundle_is_reproduced_exactly(shipped, capsys):
    assert check.main(["--bundle", str(shipped["bundle"])]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if " seed 0: " in line]
    assert len(lines) == 2, out
    cnn_line = next(line for line in lines if line.startswith("cnn/adam seed 0"))
    unet_line = next(line for line in lines if line.startswith("unet/normal seed 0"))
    assert "2 epochs compared" in cnn_line and "3 epochs compared" in unet_line
    for line in lines:
        assert "metrics equal yes" in line and "max abs difference 0" in line and "weights equal yes" in line
    assert "2 of 2 run(s) reproduced exactly" in out and out.rstrip().endswith("every compared metric and weight "
                                                                              "is equal")


def test_a_changed_test_metric_is_named_and_fails(shipped, capsys):
    tables = read_bundle(shipped["bundle"]).tables
    tests = tables.tests.copy()
    row = (tests["key"] == shipped["cnn"]) & (tests["name"] == "acc") & (tests["epoch"] == 2)
    assert row.sum() == 1
    tests.loc[row, "value"] = (tests.loc[row, "value"] + 0.5) % 1.0      # still a valid accuracy
    store = shipped["store"]
    weights = {k: {e: store.weights_dir(k) / f"epoch-{e}.safetensors" for e in store.weight_epochs(k)}
               for k in (shipped["cnn"], shipped["unet"])}
    tampered = write_bundle(shipped["root"] / "tampered.zip", RunTables(tables.runs, tables.epochs, tests),
                            weights=weights)
    assert check.main(["--bundle", str(tampered)]) == 1
    out = capsys.readouterr().out
    cnn_line = next(line for line in out.splitlines() if line.startswith("cnn/adam seed 0"))
    assert "metrics equal NO" in cnn_line and "first difference: test acc at epoch 2: bundle " in cnn_line
    assert "weights equal yes" in cnn_line                                # only the metric was changed
    assert "metrics equal yes" in next(line for line in out.splitlines() if line.startswith("unet/normal"))
    assert "1 of 2 run(s) reproduced exactly" in out and "NOT reproducible" in out


def test_max_epochs_compares_the_first_epochs_of_a_longer_run(shipped, capsys):
    assert check.main(["--bundle", str(shipped["bundle"]), "--max-epochs", "2"]) == 0
    out = capsys.readouterr().out
    unet_line = next(line for line in out.splitlines() if line.startswith("unet/normal seed 0"))
    assert "2 epochs compared" in unet_line and "weights equal yes" in unet_line   # test epochs 1 and 2
    cnn_line = next(line for line in out.splitlines() if line.startswith("cnn/adam seed 0"))
    assert "2 epochs compared" in cnn_line                                # 2 is all the CNN run has


def test_tensor_differences_are_bitwise():
    a = {"w": torch.tensor([0.0, 1.0])}
    assert check.tensor_differences(a, {"w": torch.tensor([0.0, 1.0])}) == []
    assert check.tensor_differences(a, {"w": torch.tensor([-0.0, 1.0])}) == ["w: the bytes differ"]
    assert check.tensor_differences(a, {"w": torch.tensor([0.0, 1.0], dtype=torch.float64)})[0].startswith("w: ")
    assert check.tensor_differences(a, {"v": torch.tensor([0.0, 1.0])})[0].startswith("tensor names differ")


def test_chosen_runs_take_each_variants_lowest_seeds(shipped):
    runs = read_bundle(shipped["bundle"]).tables.runs
    later = runs.assign(seed=5)
    runs = pd.concat([later, runs], ignore_index=True)
    assert sorted(check.chosen_runs(runs, 1)["seed"]) == [0, 0]
    assert sorted(check.chosen_runs(runs, 2)["seed"]) == [0, 0, 5, 5]
