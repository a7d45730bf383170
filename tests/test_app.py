"""The app, headless: one AppTest smoke test per page, the launch → real trainer → live rows path, bad input,
cancel, bundles, and a proof that the viewing path never imports torch. Plus the pure planning functions
(adlapp.planning), the live view's progress (adlapp.live) and the words they are shown with (adlapp.report)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import replace

import pandas as pd
import pyarrow as pa
import pytest
from conftest import ROOT, TINY_SEEDS, assert_refused, tiny, tiny_cnn_page, tiny_unet_page, type_into
from streamlit.testing.v1 import AppTest

from adlapp import library, live, planning, report
from adlapp.config import (
    COURSE_VARIANTS,
    EXPERIMENT_INFO,
    VARIANTS,
    base_config,
    parse_seeds,
    run_key,
    variant,
    variant_label,
)
from adlapp.devices import DeviceInfo, parse_nvidia_smi
from adlapp.folder_layout import check_dataset_folder
from adlapp.jobs import WorkerRegistry
from adlapp.planning import StudyChoice, Toggles
from adlapp.store import RunStore

APP = str(ROOT / "app.py")


def app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=60)


def page(name: str) -> AppTest:
    at = app().run()
    at.switch_page(f"pages/{name}.py").run()
    assert not at.exception, at.exception
    return at


def chart(at: AppTest, index: int = 0) -> tuple[dict, pd.DataFrame]:
    """Spec and data actually sent to the browser for the page's index-th chart (see docs/streamlit.md).
    Charts are found by position: without on_select, st.altair_chart gives its element no key-based id."""
    el = at.get("vega_lite_chart")[index]
    arrow = el.proto.datasets[0].data.data if el.proto.datasets else el.proto.data.data
    data = pa.ipc.open_stream(arrow).read_all().to_pandas()
    return json.loads(el.proto.spec), data


def assert_curve_spec(spec: dict) -> None:
    """Log-scale epochs, a band (area) and a mean line, a legend-bound highlight, stable colours."""
    layers = spec["spec"]["layer"]
    marks = [layer["mark"]["type"] for layer in layers]
    assert "area" in marks and "line" in marks, marks
    assert all(layer["encoding"]["x"]["scale"]["type"] == "log" for layer in layers)
    assert any(p.get("bind") == "legend" for p in spec["params"])
    colour = layers[0]["encoding"]["color"]["scale"]
    assert len(colour["domain"]) == len(colour["range"]) == len(set(colour["range"]))


# -- pages --------------------------------------------------------------------------------------------------
def test_home_without_bundles_says_so(app_env):
    at = app().run()
    assert not at.exception
    at.button(key="home_open_btn").click().run()
    assert not at.exception
    assert "No cached runs yet" in at.info[0].value
    assert not at.get("vega_lite_chart")


def test_home_opens_course_study_and_skips_a_broken_bundle(app_env, cached_with_broken, monkeypatch):
    monkeypatch.setenv("ADLAPP_CACHED_RUNS", str(cached_with_broken))
    at = app().run()
    assert at.button(key="home_open_btn").label == "Open the course study"
    at.button(key="home_open_btn").click().run()
    assert not at.exception, at.exception
    assert any("broken.zip" in w.value for w in at.warning)            # reported, named, skipped
    assert [s.value for s in at.subheader] == ["Figure 1 reborn: CNN variants", "Figure 2 reborn: U-Net variants",
                                               "What the numbers say", "The report's open questions"]
    for exp, series in (("cnn", {"BN + Adam", "Adam", "SGD"}),
                        ("unet", {"Normal", "Nearest Neighbor", "Using ELU", "Nearest and ELU"})):
        spec, data = chart(at, 0 if exp == "cnn" else 1)
        assert_curve_spec(spec)
        assert set(data["series"]) == series
        assert (data.loc[data["kind"] == "mean", "n_seeds"] == 2).all()
        assert all("(n=2):" in p for p in data["panel"].unique())       # test metrics + seeds on every panel
    course = at.table[0].value
    assert list(course.index) == ["Normal", "Nearest Neighbor", "Using ELU", "Nearest and ELU"]   # display names
    assert list(course.columns) == [f"{e}: {what}" for e in (1, 2, 3) for what in
                                    ("pixel acc. (ours)", "F1 (ours)", "pixel acc. (report)")]
    ours = course[[c for c in course.columns if c.endswith("pixel acc. (ours)")]]
    assert ours.map(lambda c: c.endswith("(n=2)")).all().all()
    # the report has no 1/2/3-epoch budgets: its cells stay empty rather than borrowing another budget's number
    assert (course[[c for c in course.columns if c.endswith("(report)")]] == "–").all().all()
    at.checkbox(key="home_log_x").uncheck().run()
    spec, _ = chart(at, 0)
    assert spec["spec"]["layer"][0]["encoding"]["x"]["scale"]["type"] == "linear"


def test_cnn_page_finds_cached_runs_and_trains_nothing(app_env, course_bundles, monkeypatch):
    monkeypatch.setenv("ADLAPP_CACHED_RUNS", str(course_bundles))
    at = tiny_cnn_page(page("cnn"))
    assert not at.exception, at.exception
    plan = at.dataframe[0].value
    assert len(plan) == 6 and set(plan["where"]) == {"done (shipped with the app)"}
    assert at.button(key="cnn_train_btn").disabled                    # loading never retrains
    spec, data = chart(at)
    assert_curve_spec(spec)
    assert set(data["series"]) == {"BN + Adam", "Adam", "SGD"}
    assert set(data["metric"]) == {"training loss", "validation loss", "validation accuracy"}
    assert set(data["epoch"]) == {1, 2} and (data["n"] == 2).all()
    tests = at.dataframe[1].value
    assert set(tests["variant"]) == {"BN + Adam", "Adam", "SGD"} and (tests["n"] == 2).all()
    assert "acc · seed 1" in tests.columns
    at.selectbox(key="cnn_band").set_value("mean ± 1 sd (ddof=1)").run()
    at.checkbox(key="cnn_show_seeds").check().run()
    spec, data = chart(at)
    assert spec["spec"]["layer"][0]["encoding"]["y"]["field"] == "sd_lo"
    assert (data["kind"] == "seed").sum() == 6 * 2 * 3                   # runs × epochs × metrics


def test_unet_page_reproduces_the_course_table(app_env, course_bundles, monkeypatch):
    monkeypatch.setenv("ADLAPP_CACHED_RUNS", str(course_bundles))
    at = page("unet")
    assert [c.key for c in at.checkbox][:4] == ["unet_v_normal", "unet_v_nearest", "unet_v_elu",
                                                "unet_v_nearest-elu"]
    tiny_unet_page(at)
    assert not at.exception, at.exception
    assert set(at.dataframe[0].value["where"]) == {"done (shipped with the app)"}
    spec, data = chart(at)
    assert_curve_spec(spec)
    assert set(data["metric"]) == {"training loss", "validation loss", "validation F1"}
    assert [c.split(":")[0] for c in at.table[0].value.columns if c.endswith("pixel acc. (ours)")] == ["1", "2", "3"]


@pytest.mark.parametrize("widget,value,message", [
    ("cnn_seeds", "", "Choose at least one seed"),
    ("cnn_seeds", "0,0", "distinct"),
    ("cnn_seeds", "1000000", "at most 100"),     # took 149 s and 1.9 GB before
    ("cnn_seeds", ",", "give a count"),
    ("cnn_epochs", 0, "at least 1 epoch"),
    ("cnn_dataset", "FOLDER", "has no 'valid' folder"),
    ("cnn_v_bn-adam", None, "Choose at least one variant"),
])
def test_bad_input_shows_a_message_and_starts_nothing(app_env, monkeypatch, widget, value, message):
    def no_popen(*a, **k):
        raise AssertionError("nothing may be started from an invalid choice")

    monkeypatch.setattr(subprocess, "Popen", no_popen)
    at = page("cnn")
    if widget == "cnn_v_bn-adam":
        for key in ("cnn_v_bn-adam", "cnn_v_adam", "cnn_v_sgd"):
            at.checkbox(key=key).uncheck()
    elif widget == "cnn_dataset":
        (app_env / "mydata" / "train" / "cat").mkdir(parents=True)
        at.text_input(key=widget).set_value(str(app_env / "mydata"))
    else:
        type_into(at, widget, value)
    assert_refused(at, message)                                         # the button says nothing can start
    assert RunStore(app_env / "store").runs().empty


def test_runs_page_loads_cached_bundles_exports_and_deletes(app_env, course_bundles, monkeypatch):
    monkeypatch.setenv("ADLAPP_CACHED_RUNS", str(course_bundles))
    at = page("runs")
    assert "No runs in the store yet" in at.info[0].value
    at.button(key="runs_load_cached_btn").click().run()
    assert not at.exception, at.exception
    n = len(VARIANTS) * len(TINY_SEEDS)                                # course_bundles: every variant, 2 seeds
    assert f"Loaded {n} new run(s)" in at.success[0].value
    at.run()
    runs = at.dataframe[0].value
    assert len(runs) == n and set(runs["status"]) == {"done"} and (runs["progress"] == 1.0).all()
    assert at.get("download_button")[0].proto.label.startswith(f"Export {n} finished")
    victim = runs["key"].iloc[0]
    at.multiselect(key="runs_delete_sel").set_value([victim]).run()
    at.checkbox(key="runs_delete_confirm").check().run()
    at.button(key="runs_delete_btn").click().run()
    assert not at.exception
    assert victim not in set(RunStore(app_env / "store").runs()["key"])
    bundle = library.export_bytes(RunStore(app_env / "store"))
    assert len(library.import_bytes(RunStore(app_env / "other"), "mine.zip", bundle)) == n - 1


def test_failed_and_diverged_runs_show_their_error_and_the_rest_still_plots(app_env):
    store = RunStore(app_env / "store")
    outcomes = {("cnn/adam", 0): "done", ("cnn/adam", 1): "failed", ("cnn/sgd", 0): "diverged"}
    for (name, seed), status in outcomes.items():
        key, _ = store.enqueue(tiny(name), seed)
        store.claim(key)
        loss = float("nan") if status == "diverged" else 1.0
        store.record_epoch(key, 1, {"train_loss": loss, "val_loss": 1.0, "val_acc": 0.1, "seconds": 0.1})
        store.finish(key, status, error={"done": None, "failed": "RuntimeError: boom\ntraceback",
                                         "diverged": "training loss became non-finite at epoch 1"}[status],
                     diverged_epoch=1 if status == "diverged" else None)
    at = page("cnn")
    at.checkbox(key="cnn_v_bn-adam").uncheck()
    at = tiny_cnn_page(at, seeds="0,1")
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert "Adam seed 1 failed: RuntimeError: boom" in errors
    assert "SGD seed 0 diverged: training loss became non-finite at epoch 1" in errors
    plan = at.dataframe[0].value.set_index(["variant", "seed"])
    assert plan.loc[("Adam", 1), "where"] == "to train"                 # failed: may be trained again
    assert plan.loc[("SGD", 0), "where"] == "done (trained here)"       # diverged is a result
    _, data = chart(at)
    assert set(data["series"]) == {"Adam", "SGD"}
    loss = data[data["metric"] == "training loss"]
    assert loss[loss["series"] == "Adam"]["n"].tolist() == [2]       # the failed seed's recorded epoch counts
    assert loss[loss["series"] == "SGD"].empty                          # a NaN loss is not averaged in
    assert any("seed 1 failed" in c.value for c in at.caption)


def test_page_defaults_are_the_course_set_up(app_env):
    """Every default on the CNN and U-Net pages is read from the course base: untouched, the pages ask for
    exactly the course's registry variants (the others answer open questions and start unticked), seeds 0-2."""
    for exp, keys in (("cnn", ("lr_adam", "lr_sgd", "epochs", "train_per_class", "batch")),
                      ("unet", ("budgets", "n_train", "image_size", "batch"))):
        at = page(exp)
        base = base_config(exp)
        values = {"lr_adam": base.optim.lr, "lr_sgd": base.optim.lr, "epochs": base.epochs,
                  "train_per_class": base.data.train_per_class,
                  "batch": base.batch_size, "n_train": base.data.n_train, "image_size": base.data.image_size}
        for key in keys:
            if key == "budgets":
                assert at.text_input(key="unet_budgets").value == ",".join(map(str, base.test_epochs))
            else:
                assert at.number_input(key=f"{exp}_{key}").value == values[key], key
        assert at.text_input(key=f"{exp}_dataset").value == EXPERIMENT_INFO[exp].dataset
        expected = {run_key(variant(name), seed) for name in planning.registry_names(exp)
                    if name in COURSE_VARIANTS for seed in (0, 1, 2)}
        assert set(at.dataframe[0].value["key"]) == expected


def test_page_choices_survive_switching_pages(app_env):
    at = page("cnn")
    at.text_input(key="cnn_seeds").set_value("5").run()
    at.switch_page("pages/runs.py").run()
    at.switch_page("pages/cnn.py").run()
    assert at.text_input(key="cnn_seeds").value == "5"


# -- real training from the page ----------------------------------------------------------------------------
def wait_for(at: AppTest, done, timeout: float = 90.0) -> AppTest:
    """Rerun the page (as the polling fragment would) until `done(at)` or the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        at.run()
        assert not at.exception, at.exception
        if done(at):
            return at
        time.sleep(0.5)
    raise AssertionError("timed out waiting for the trainer")


def only_adam(at: AppTest) -> AppTest:
    at.checkbox(key="cnn_v_bn-adam").uncheck()
    at.checkbox(key="cnn_v_sgd").uncheck()
    return at


def test_launch_starts_a_real_trainer_and_the_page_shows_its_rows(app_env):
    at = tiny_cnn_page(only_adam(page("cnn")), seeds="1")
    assert at.dataframe[0].value["where"].tolist() == ["to train"]
    at.button(key="cnn_train_btn").click().run()
    assert not at.exception, at.exception
    assert "Queued 1 run(s)" in at.success[0].value
    store = RunStore(app_env / "store")
    assert WorkerRegistry(store.root).live(), "a trainer process should be running"

    def finished(at):
        return at.dataframe and at.dataframe[0].value["where"].tolist() == ["done (trained here)"]

    wait_for(at, finished)
    _, data = chart(at)
    assert set(data["epoch"]) == {1, 2} and set(data["series"]) == {"Adam"}
    assert (data["n_seeds"] == 1).all()
    run = store.runs().iloc[0]
    assert run["status"] == "done" and run["device"] == "cpu" and run["last_epoch"] == 2
    assert at.dataframe[1].value["n"].tolist() == [1]                   # its test metrics


def test_cancel_from_the_runs_page_stops_a_real_trainer(app_env):
    at = tiny_cnn_page(only_adam(page("cnn")), seeds="1", epochs=500)
    at.button(key="cnn_train_btn").click().run()
    store = RunStore(app_env / "store")
    key = store.runs()["key"].iloc[0]
    deadline = time.monotonic() + 60
    while store.get(key)["last_epoch"] < 1 and time.monotonic() < deadline:
        time.sleep(0.3)
    at.switch_page("pages/runs.py").run()
    at.multiselect(key="runs_cancel_sel").set_value([key]).run()
    at.button(key="runs_cancel_btn").click().run()
    assert "cancelling" in at.success[0].value
    wait_for(at, lambda at: store.get(key)["status"] == "cancelled", timeout=30)
    assert 1 <= store.get(key)["last_epoch"] < 500


# -- the viewing path is torch-free -------------------------------------------------------------------------
def test_viewing_pages_never_import_torch(app_env, course_bundles):
    """Run Home (course study open), CNN, U-Net and Runs in a fresh interpreter; torch must stay unloaded."""
    script = textwrap.dedent(f"""
        import sys
        from streamlit.testing.v1 import AppTest
        import adlapp.planning, adlapp.live, adlapp.library, adlapp.folder_layout, adlapp.report, adlapp.charts
        import adlapp.store, adlapp.bundle, adlapp.config, adlapp.devices, adlapp.jobs
        at = AppTest.from_file({APP!r}, default_timeout=60).run()
        at.button(key="home_open_btn").click().run()
        assert len(at.get("vega_lite_chart")) == 2, "course study not shown"
        for p in ("cnn", "unet", "runs"):
            at.switch_page(f"pages/{{p}}.py").run()
            assert not at.exception, at.exception
        loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
        print("TORCH:", loaded)
        sys.exit(1 if loaded else 0)
    """)
    env = dict(os.environ, ADLAPP_CACHED_RUNS=str(course_bundles))
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]


def test_the_core_never_imports_streamlit():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "adlapp").rglob("*.py")
                 if any(line.strip().startswith(("import streamlit", "from streamlit"))
                        for line in p.read_text().splitlines())]
    assert offenders == []


# -- planning: pure functions -------------------------------------------------------------------------------
def runs_frame(rows):
    return pd.DataFrame(rows, columns=["key", "status"])


def test_plan_says_where_each_run_is():
    reqs = [(tiny("cnn/adam"), s) for s in range(5)]
    k = [run_key(c, s) for c, s in reqs]
    store = runs_frame([(k[0], "done"), (k[1], "running"), (k[2], "failed"), (k[3], "diverged")])
    cached = runs_frame([(k[2], "done"), (k[4], "cancelled")])
    planned = planning.plan(reqs, store, cached)
    assert planned["where"].tolist() == ["store", "training", "cached", "store", "missing"]
    assert set(planned["where"]) <= set(planning.PLACES)
    assert planning.missing_requests(reqs, planned) == [reqs[4]]
    assert report.plan_summary(planned).startswith("5 run(s): 2 trained here, 1 shipped with the app")


def test_make_requests_matches_the_registry_and_the_cli():
    reqs, errors = planning.make_requests(StudyChoice("unet", variants=("unet/normal",), seeds="2",
                                                      budgets="1000, 200,400"))
    assert not errors
    assert [(c, s) for c, s in reqs] == [(variant("unet/normal"), 0), (variant("unet/normal"), 1)]
    reqs, _ = planning.make_requests(StudyChoice(
        "cnn", variants=("cnn/adam",), custom=(Toggles(batchnorm=True),), seeds=(3,),
        common=Toggles(lr=0.01, activation="elu")))
    assert [c for c, _ in reqs] == [variant("cnn/adam"), variant("cnn/bn-adam")]   # custom == a named one


def test_make_requests_reads_seed_counts_lists_and_ranges():
    def seeds(text):
        reqs, errors = planning.make_requests(StudyChoice("cnn", variants=("cnn/adam",), seeds=text))
        assert not errors, errors
        return [s for _, s in reqs]

    assert seeds("3") == [0, 1, 2]                 # a count, as recorded commands like `--seeds 5` meant
    assert seeds("0,5,7") == [0, 5, 7]
    assert seeds("0-4") == [0, 1, 2, 3, 4]
    assert seeds("7,") == seeds("7-7") == [7]     # one particular seed


def test_one_path_to_a_config_trims_evaluations_to_the_run():
    """Toggles, sizes and the data set go through adlapp.planning.configure for the app and the CLI alike;
    an evaluation at or after the last epoch is dropped (it cannot change what the run records)."""
    cfg = planning.configure(variant("unet/normal"), planning.Toggles(activation="elu"),
                             planning.Sizes(epochs=300), planning.resolve_dataset("", "unet"))
    assert cfg == replace(variant("unet/elu"), epochs=300, eval_at=(200,))
    assert planning.configure(variant("unet/normal"), sizes=planning.Sizes(eval_at=(400, 200, 200, 1000))) == \
        variant("unet/normal")


def test_a_stepped_learning_rate_is_the_same_variant_and_run():
    """The lr stepper's float noise (0.01 + 0.001 - 0.001 != 0.01) must not make a custom variant, a new key
    and a retraining of runs the store has."""
    noisy = 0.01 + 0.001 - 0.001
    assert noisy != 0.01
    cfg = planning.Toggles(lr=noisy).apply(variant("cnn/adam"))
    assert cfg == variant("cnn/adam") and variant_label(cfg) == "cnn/adam"
    assert run_key(cfg, 0) == run_key(variant("cnn/adam"), 0)
    assert planning.Toggles(lr=0.0123456789012345).apply(variant("cnn/adam")).optim.lr == 0.0123456789012


@pytest.mark.parametrize("choice,message", [
    (StudyChoice("cnn", seeds="x"), "Choose at least one variant"),
    (StudyChoice("cnn", variants=("cnn/adam",), seeds="0"), "at least 1"),
    (StudyChoice("cnn", variants=("unet/elu",)), "not a cnn variant"),
    (StudyChoice("cnn", variants=("cnn/nope",)), "not a cnn variant"),
    (StudyChoice("unet", variants=("unet/elu",), budgets=""), "at least one epoch budget"),
    (StudyChoice("cnn", variants=("cnn/adam",), dataset="vessels"), "is for the unet experiment"),
    (StudyChoice("cnn", variants=("cnn/adam",), common=Toggles(lr=-1.0)), "Learning rate = -1:"),
])
def test_make_requests_rejects_bad_choices(choice, message):
    reqs, errors = planning.make_requests(choice)
    assert reqs == [] and any(message in e for e in errors), errors


def test_dataset_folder_check_names_the_problem(tmp_path):
    root = tmp_path / "cards"
    for split in ("train", "valid", "test"):
        for name in ("ace", "two"):                 # two classes: one alone is refused (it would score 1.0)
            (root / split / name).mkdir(parents=True)
            (root / split / name / "a.png").write_bytes(b"")
    assert check_dataset_folder(root, "cnn") is None
    (root / "test" / "king").mkdir()
    assert "has different classes" in check_dataset_folder(root, "cnn")
    seg = tmp_path / "seg"
    for split in ("train", "val", "test"):
        for kind in ("images", "masks"):
            (seg / split / kind).mkdir(parents=True)
            (seg / split / kind / "x1.png").write_bytes(b"")
    assert check_dataset_folder(seg, "unet") is None
    (seg / "val" / "images" / "x2.png").write_bytes(b"")
    assert "x2.png has no mask" in check_dataset_folder(seg, "unet")
    (tmp_path / "half" / "train").mkdir(parents=True)
    assert "has no 'valid' folder" in check_dataset_folder(tmp_path / "half", "cnn")
    assert "has no 'val' folder" in check_dataset_folder(tmp_path / "half", "unet")
    assert "does not exist" in check_dataset_folder(tmp_path / "nope", "cnn")


def test_progress_eta_and_seeds_parsing():
    runs = pd.DataFrame([{"key": "a", "variant": "cnn/adam", "seed": 0, "epochs": 10, "status": "running",
                          "last_epoch": 4, "started": 100.0, "finished": None}])
    epochs = pd.DataFrame({"key": "a", "epoch": [1, 2, 3, 4], "name": "seconds", "value": [9.0, 2.0, 2.0, 2.0]})
    p = live.progress(runs, epochs, now=120.0).iloc[0]
    assert (p["fraction"], p["sec_per_epoch"], p["eta_s"], p["duration_s"]) == (0.4, 2.0, 12.0, 20.0)
    assert "epoch 4 of 10" in p["text"] and "ETA 12 s" in p["text"]
    assert parse_seeds("3") == ([0, 1, 2], None) and parse_seeds("4, 7")[0] == [4, 7]
    assert parse_seeds("")[1] and parse_seeds("-1,2")[1]


def test_device_detection_reads_nvidia_smi_output():
    text = "GPU 0: NVIDIA H200 (UUID: GPU-123)\nGPU 1: NVIDIA H200 (UUID: GPU-456)\n"
    assert parse_nvidia_smi(text) == ["NVIDIA H200", "NVIDIA H200"]
    assert DeviceInfo("cuda", "NVIDIA H200", 2).label == "CUDA GPU: NVIDIA H200 (×2)"
    assert DeviceInfo("cpu", "AMD EPYC (2 cores)").label == "CPU: AMD EPYC (2 cores)"


def test_home_reads_the_numbers_out(app_env, course_bundles, monkeypatch):
    """The reading under "What the numbers say" comes from the bundles: 2 seeds each, so nothing is tested,
    and it says so with n, Δ and the seeds a test would need; Figure 2 carries the test markers."""
    monkeypatch.setenv("ADLAPP_CACHED_RUNS", str(course_bundles))
    at = app().run()
    at.button(key="home_open_btn").click().run()
    assert not at.exception, at.exception
    assert at.subheader[-2].value == "What the numbers say"
    assert any("Compare page" in c.value for c in at.caption)
    text = next(m.value for m in reversed(at.markdown) if m.value.startswith("- **CNN, test accuracy"))
    bullets = [line[2:] for line in text.splitlines()]
    assert bullets[0].startswith("**CNN, test accuracy after epoch 2** (n = 2 per variant): not tested")
    assert sum(b.startswith("**U-Net, test pixel accuracy after epoch") for b in bullets) == 3   # 1, 2, 3
    assert all("seeds per group" in b or "No seeds can be planned" in b for b in bullets[:4])
    assert any(b.startswith("**Normal, 3 vs 1 epochs**") and "z = Δ/√(σa² + σb²) = " in b for b in bullets)
    assert any("ELU gives a lower test loss" in b for b in bullets)
    _, data = chart(at, 1)
    marks = data[data["kind"] == "test"]
    assert sorted(set(marks["epoch"])) == [1, 2, 3] and set(marks["metric"]) == {"validation F1"}
