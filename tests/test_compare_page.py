"""AppTest smoke tests of pages/compare.py on a real RunStore filled with chosen values (no training)."""
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from adlapp import jobs
from adlapp.config import variant
from adlapp.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "pages" / "compare.py")
APP = str(ROOT / "app.py")

CNN = {"cnn/bn-adam": [0.62, 0.64, 0.63], "cnn/adam": [0.55, 0.58, 0.56], "cnn/sgd": [0.30, 0.34]}


def fill(store, cfg, seeds_values, *, epochs=None, curve=lambda e, v: v):
    """Record runs of `cfg` the way the trainer does: enqueue, claim, one record_epoch per epoch, finish."""
    for seed, value in enumerate(seeds_values):
        key, _ = store.enqueue(cfg, seed)
        assert store.claim(key)[0] == key
        for e in epochs or range(1, cfg.epochs + 1):
            metrics = {"train_loss": 1 - value, "val_loss": 1 - value}
            metrics.update({"val_acc": curve(e, value)} if cfg.experiment == "cnn" else
                           {"val_pixel_acc": curve(e, value), "val_f1": value / 2})
            tests = None
            if e in cfg.test_epochs:
                tests = ({"acc": value, "loss": 1 - value} if cfg.experiment == "cnn" else
                         {"pixel_acc": value + e / 1e5, "f1": value / 2, "loss": 1 - value})
            store.record_epoch(key, e, metrics, tests)
        store.finish(key, "done")


@pytest.fixture
def store(app_env):
    """A real, empty store in tmp_path ($ADLAPP_STORE) and no cached bundles (conftest.app_env)."""
    return RunStore(app_env / "store")


def _first_mark(spec):
    if "vconcat" in spec:
        return "vconcat"
    mark = spec["layer"][0]["mark"] if "layer" in spec else spec["mark"]
    return mark["type"] if isinstance(mark, dict) else mark


CHARTS = {"matrix": "rect", "strip": "circle", "power": "line", "curve": "vconcat"}


def chart(at, name):
    """The spec and the first dataset actually sent to the browser (AppTest exposes no chart keys, so a
    chart is found by its first mark: the heatmap is the only rect chart, the strip plot the only circles)."""
    for el in at.get("vega_lite_chart"):
        spec = json.loads(el.proto.spec)
        if _first_mark(spec) == CHARTS[name]:
            return spec, pa.ipc.open_stream(el.proto.datasets[0].data.data).read_all().to_pandas()
    raise AssertionError(f"no {name} chart")


def pair_table(at):
    return next(df.value for df in at.dataframe if "Welch p" in df.value.columns)


def test_cnn_preset_matrix_sentences_and_small_n(store, monkeypatch):
    for name, values in CNN.items():
        fill(store, replace(variant(name), epochs=3), values, curve=lambda e, v: v * e / 3)
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, at.exception
    assert at.selectbox(key="sig_preset").value == "Course: CNN optimisers & BN"
    assert at.multiselect(key="sig_epochs").value == [3]          # no 200-epoch runs: latest epoch instead
    spec, cells = chart(at, "matrix")
    assert len(cells) == 3                                        # one cell per pair of 3 groups
    assert spec["layer"][0]["encoding"]["color"]["scale"]["domainMid"] == 0
    text = " ".join(m.value for m in at.markdown)
    for pair in ("BN + Adam vs Adam", "BN + Adam vs SGD", "Adam vs SGD"):
        assert f"- {pair}: Δ =" in text
    assert "significant after Holm over 1 pair at epoch 3" in text    # SGD (n=2) is not in the family
    assert any("SGD (n = 2)" in w.value and "n < 3" in w.value for w in at.warning)
    _, points = chart(at, "strip")
    assert len(points) == 8                                       # every seed is drawn

    at.toggle(key="sig_curve").set_value(True).run()
    assert not at.exception, at.exception
    _, curve = chart(at, "curve")
    assert set(curve["label"]) == {"BN + Adam", "Adam"}

    monkeypatch.setattr(jobs.LocalProcessBackend, "ensure_workers", lambda self: [])   # no trainer processes
    at.number_input(key="sig_target_n").set_value(4).run()
    at.button(key="sig_queue_btn").click().run()
    assert not at.exception, at.exception
    assert "Queued 4 run(s)" in at.success[0].value
    queued = store.runs(status="queued")
    assert sorted(zip(queued["variant"], queued["seed"], strict=True)) == [
        ("cnn/adam", 3), ("cnn/bn-adam", 3), ("cnn/sgd", 2), ("cnn/sgd", 3)]
    assert set(queued["epochs"]) == {3}                           # the runs' own config, not the registry's


def test_unet_normal_200_vs_1000_and_custom_edits(store):
    fill(store, variant("unet/normal"), [0.976, 0.979, 0.977], epochs=[200, 400, 1000])
    fill(store, variant("unet/elu"), [0.977, 0.976, 0.978], epochs=[200, 400, 1000])
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.selectbox(key="sig_preset").set_value("Course: normal 200 vs 1000").run()
    assert not at.exception, at.exception
    assert at.multiselect(key="sig_variants").value == ["unet/normal"]
    _, cells = chart(at, "matrix")
    assert list(zip(cells["a"], cells["b"], strict=True)) == [("Normal @ 200", "Normal @ 1000")]
    table = pair_table(at)
    assert "course z = d/√2 (standardised Δ, not a test)" in table.columns
    assert table["Mann-Whitney p"].iloc[0].startswith("cannot reach 0.05")      # 3 vs 3
    at.multiselect(key="sig_variants").set_value(["unet/normal", "unet/elu"]).run()
    assert at.selectbox(key="sig_preset").value == "Custom"
    _, cells = chart(at, "matrix")
    # 4 groups: the pair within each epoch and each variant against itself across epochs, each family its own
    assert len(cells) == 4 and set(cells["family_text"]) == {"epoch 200", "epoch 1000", "same variant, two epochs"}
    assert dict(zip(cells["family_text"], cells["family_size"], strict=True))["same variant, two epochs"] == 2
    at.toggle(key="sig_cross").set_value(True).run()               # asked for: Normal @ 200 vs ELU @ 1000 too
    _, cells = chart(at, "matrix")
    assert len(cells) == 6 and (cells["family_text"] == "other variant and epoch").sum() == 2
    at.radio(key="sig_correction").set_value("bh").run()
    at.radio(key="sig_colour").set_value("hedges_g").run()
    assert not at.exception, at.exception
    assert "p adjusted (BH)" in pair_table(at).columns


def test_empty_store_says_what_to_do(store):
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert "No finished runs yet" in at.info[0].value


def test_course_bundles_through_the_app(app_env, course_bundles, monkeypatch):
    """The real pipeline's bundles (2 seeds per variant): every group is n < 3, so nothing is tested."""
    monkeypatch.setenv("ADLAPP_CACHED_RUNS", str(course_bundles))
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/compare.py").run()
    assert not at.exception, at.exception
    _, cells = chart(at, "matrix")
    assert len(cells) == 3 and not cells["significant"].any()
    (small,) = [w.value for w in at.warning if "n < 3" in w.value]     # one warning naming all three
    assert small.count("(n = 2)") == 3
    at.selectbox(key="sig_preset").set_value("Course: U-Net variants at 200/400/1000").run()
    assert not at.exception, at.exception
    assert at.multiselect(key="sig_epochs").value == [1, 2, 3]    # the tiny runs' evaluations, as Home reads them
    _, cells = chart(at, "matrix")
    assert len(cells) == 3 * 6 + 4 * 3                            # 6 pairs per epoch; each variant across epochs
    at.selectbox(key="sig_preset").set_value("Course: ELU vs ReLU test loss at 200").run()
    assert not at.exception, at.exception
    assert at.multiselect(key="sig_epochs").value == [1]          # the smallest budget
    _, cells = chart(at, "matrix")
    assert list(zip(cells["a"], cells["b"], strict=True)) == [("Using ELU", "Normal"),
                                                              ("Nearest and ELU", "Nearest Neighbor")]


def test_compare_page_never_imports_torch(store):
    """The viewing path stays torch-free: run the page in a fresh interpreter and look at sys.modules."""
    for name, values in CNN.items():
        fill(store, replace(variant(name), epochs=2), values)
    script = textwrap.dedent(f"""
        import sys
        from streamlit.testing.v1 import AppTest
        at = AppTest.from_file({PAGE!r}, default_timeout=60).run()
        assert not at.exception, at.exception
        assert at.get("vega_lite_chart"), "no charts"
        sys.exit(1 if any(m == "torch" or m.startswith("torch.") for m in sys.modules) else 0)
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=dict(os.environ), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
