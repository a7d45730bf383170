"""scripts/summarize_cached.py's headline table over the shipped bundles, recomputed here with pandas alone."""
import pandas as pd
from conftest import ROOT, load_script

from adlapp.bundle import read_bundle_dir

CACHED = ROOT / "cached_runs"


summarize_cached = load_script("summarize_cached")


def test_the_headline_has_one_row_per_variant_length_and_test_epoch_with_ddof1_sd():
    bundles, errors = read_bundle_dir(CACHED)
    assert bundles and not errors
    lines = summarize_cached.headline(bundles)
    rows = [line for line in lines if line.startswith("| cnn/") or line.startswith("| unet/")]

    runs = pd.concat([b.tables.runs for b in bundles])
    tests = pd.concat([b.tables.tests for b in bundles]).merge(runs[["key", "experiment", "variant", "epochs"]])
    main = {"cnn": "acc", "unet": "pixel_acc"}
    expected = []
    for (exp, variant, epochs, epoch), g in tests.groupby(["experiment", "variant", "epochs", "epoch"]):
        score = g.loc[g["name"] == main[exp], "value"]
        f1 = g.loc[g["name"] == "f1", "value"]
        # a run that diverged before this epoch has no score here: counted beside n, not in it
        lost = runs[(runs["variant"] == variant) & (runs["epochs"] == epochs) & (runs["status"] == "diverged")
                    & (runs["last_epoch"] < epoch)]
        n = f"{len(score)} (+{len(lost)} diverged)" if len(lost) else f"{len(score)}"
        expected.append(f"| {variant} | {epochs} | {epoch} | {n} | "
                        f"{score.mean():.4f} ± {score.std(ddof=1):.4f} | "
                        + (f"{f1.mean():.4f} ± {f1.std(ddof=1):.4f} |" if len(f1) else "– |"))
    assert rows == expected
    epochs = pd.concat([b.tables.epochs for b in bundles])
    hours = epochs.loc[epochs["name"] == "seconds", "value"].sum() / 3600
    assert f"{len(bundles)} bundles, {len(runs)} runs, {hours:.1f} h of training in all" in lines[2]
    # The separate-budget runs are rows of their own, never pooled with the shared 1000-epoch runs.
    separate = (CACHED / "unet-normal-separate.zip").exists()
    assert any(row.startswith("| unet/normal | 200 | 200 |") for row in rows) == separate
    assert any(row.startswith("| unet/normal | 1000 | 200 |") for row in rows)


def test_the_readme_holds_the_current_headline():
    bundles, _ = read_bundle_dir(CACHED)
    text = (CACHED / "README.md").read_text()
    assert "\n".join(summarize_cached.headline(bundles)) in text, "run python scripts/summarize_cached.py --readme"
