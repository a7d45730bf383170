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
                         {"pixel_acc": value + e * (seed + 1) / 1e5, "f1": value / 2, "loss": 1 - value})
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
    return next(df.value for df in at.dataframe if "pair (Δ = a − b)" in df.value.columns)


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
    # the pair table's numbers as CSV / Markdown / LaTeX (built when clicked)
    assert [e.proto.label for e in at.get("download_button")] == ["CSV", "Markdown", "LaTeX"]

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
    # the same three runs scored twice: the paired t-test, Wilcoxon's signed-rank p beside it
    assert table["test"].iloc[0] == "paired t (same runs)" and table["n"].iloc[0] == "3 pairs"
    assert table["rank test p (Mann-Whitney / Wilcoxon)"].iloc[0] == "0.25"     # 3 pairs: the exact minimum
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


# -- choices kept (page switches, the URL), the seeds table's Arrow, the cost before queueing ----------------
UNET_PRESET = "Course: U-Net variants at 200/400/1000"


def test_compare_choices_survive_a_page_switch(app_env, course_bundles, monkeypatch):
    monkeypatch.setenv("ADLAPP_CACHED_RUNS", str(course_bundles))
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/compare.py").run()
    at.selectbox(key="sig_preset").set_value(UNET_PRESET).run()
    at.radio(key="sig_correction").set_value("bh").run()
    at.switch_page("pages/runs.py").run()
    at.switch_page("pages/compare.py").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="sig_preset").value == UNET_PRESET
    assert at.multiselect(key="sig_epochs").value == [1, 2, 3]
    assert at.radio(key="sig_correction").value == "bh"


def reloaded(params: dict) -> AppTest:
    """Compare opened on a fresh session with `params` in the URL (what a reload sends)."""
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/compare.py")
    at.query_params.update(params)
    at.run()
    assert not at.exception, at.exception
    return at


def test_compare_choices_come_back_from_the_url(app_env, course_bundles, monkeypatch):
    monkeypatch.setenv("ADLAPP_CACHED_RUNS", str(course_bundles))
    at = reloaded({"sig_preset": UNET_PRESET, "sig_cross": "true", "sig_correction": "Benjamini-Hochberg (FDR)"})
    assert at.selectbox(key="sig_preset").value == UNET_PRESET
    assert at.multiselect(key="sig_variants").value == ["unet/normal", "unet/nearest", "unet/elu", "unet/nearest-elu"]
    assert at.multiselect(key="sig_epochs").value == [1, 2, 3]
    assert at.toggle(key="sig_cross").value and at.radio(key="sig_correction").value == "bh"
    _, cells = chart(at, "matrix")
    assert "other variant and epoch" in set(cells["family_text"])
    at = reloaded({"sig_preset": "Custom", "sig_experiment": "unet", "sig_variants": ["Normal", "Using ELU"],
                   "sig_epochs": ["2"]})
    assert at.selectbox(key="sig_preset").value == "Custom"
    assert at.multiselect(key="sig_variants").value == ["unet/normal", "unet/elu"]
    assert at.multiselect(key="sig_epochs").value == [2]
    _, cells = chart(at, "matrix")
    assert list(zip(cells["a"], cells["b"], strict=True)) == [("Normal", "Using ELU")]


def test_seeds_table_converts_to_arrow_without_a_logged_error(store):
    """A variant no run covers gets an empty "epochs per run": the column must stay numeric (Arrow-clean)."""
    import logging

    for name in ("cnn/bn-adam", "cnn/adam"):
        fill(store, replace(variant(name), epochs=3), CNN[name])
    fill(store, replace(variant("cnn/sgd"), epochs=2), CNN["cnn/sgd"])
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    log = logging.getLogger("streamlit.dataframe_util")
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        at = AppTest.from_file(PAGE, default_timeout=60).run()
        at.selectbox(key="sig_preset").set_value("Custom").run()
        at.multiselect(key="sig_variants").set_value(["cnn/bn-adam", "cnn/adam", "cnn/sgd"]).run()
        at.multiselect(key="sig_epochs").set_value([3]).run()
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    assert not at.exception, at.exception
    seeds = next(df.value for df in at.dataframe if "epochs per run" in df.value.columns)
    assert seeds.set_index("variant")["epochs per run"].isna().tolist() == [False, False, True]
    pa.Table.from_pandas(seeds)                                    # the displayed frame converts as it is
    assert not [r for r in records if "Arrow" in r.getMessage()], [r.getMessage() for r in records]


def test_queueing_says_the_cost_first_and_asks_above_the_threshold(store, monkeypatch):
    monkeypatch.setattr(jobs.LocalProcessBackend, "ensure_workers", lambda self: [])
    for name, values in CNN.items():
        fill(store, variant(name), values, epochs=[200])              # the course's 200 epochs, no timings
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.number_input(key="sig_target_n").set_value(4).run()          # 4 runs × 200 epochs: above 10 min
    (caption,) = [c for c in at.caption if c.value.startswith("Training 4 runs × 200 epochs takes")]
    assert "on this CPU" in caption.value and "rough rate" in caption.help
    assert at.button(key="sig_queue_btn").disabled
    (confirm,) = [c for c in at.checkbox if c.key.startswith("sig_queue_confirm")]
    assert confirm.label.startswith("I understand this takes")
    confirm.check().run()
    at.button(key="sig_queue_btn").click().run()
    assert not at.exception, at.exception
    assert "Queued 4 run(s)" in at.success[0].value and len(store.runs(status="queued")) == 4
