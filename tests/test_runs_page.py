"""AppTest of pages/runs.py: actions show at once, stable cancel picker, confirmed delete, order, filter, columns."""
from __future__ import annotations

import time

import pytest
from conftest import ROOT, TINY_SEEDS, tiny
from streamlit.testing.v1 import AppTest

from adlapp import jobs
from adlapp.config import VARIANTS
from adlapp.store import RunStore

# course_bundles holds every registry variant x TINY_SEEDS: cnn.zip the CNN's, unet.zip the U-Net's
CNN_RUNS = sum(n.startswith("cnn/") for n in VARIANTS) * len(TINY_SEEDS)
ALL_RUNS = len(VARIANTS) * len(TINY_SEEDS)

APP = str(ROOT / "app.py")


def runs_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/runs.py").run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def no_workers(monkeypatch):
    """Queued runs stay queued: no trainer process is ever started."""
    monkeypatch.setattr(jobs.LocalProcessBackend, "ensure_workers", lambda self: [])
    monkeypatch.setattr(jobs.LocalProcessBackend, "live_workers", lambda self: [])


def texts(at) -> str:
    return " ".join(e.value for kind in ("info", "success", "error", "warning") for e in getattr(at, kind))


def test_an_import_shows_at_once(app_env, course_bundles):
    at = runs_page()
    assert "No runs in the store yet" in at.info[0].value
    at.file_uploader(key="runs_import_upload").upload("cnn.zip", (course_bundles / "cnn.zip").read_bytes()).run()
    at.button(key="runs_import_btn").click().run()          # one run, no reload
    assert not at.exception, at.exception
    assert f"Imported {CNN_RUNS} new run(s)" in at.success[0].value
    assert "No runs in the store yet" not in texts(at)
    assert len(at.dataframe[0].value) == CNN_RUNS
    assert at.get("download_button")[0].proto.label.startswith(f"Export {CNN_RUNS} finished")


def test_loading_cached_runs_shows_at_once(app_env, course_bundles, monkeypatch):
    monkeypatch.setenv("ADLAPP_CACHED_RUNS", str(course_bundles))
    at = runs_page()
    at.button(key="runs_load_cached_btn").click().run()
    assert f"Loaded {ALL_RUNS} new run(s)" in at.success[0].value
    assert "No runs in the store yet" not in texts(at)
    assert len(at.dataframe[0].value) == ALL_RUNS


def test_cancel_picker_keeps_a_run_that_starts_as_one_entry(app_env, no_workers):
    store = RunStore(app_env / "store")
    first, _ = store.enqueue(tiny("cnn/adam"), 0)
    second, _ = store.enqueue(tiny("cnn/adam"), 1)
    at = runs_page()
    picker = at.multiselect(key="runs_cancel_sel")
    assert set(picker.options) == {f"Adam seed {s} · {k[:8]}" for s, k in ((0, first), (1, second))}
    picker.set_value([second]).run()
    store.claim(second)                                      # the queued run starts
    at.run()
    assert not at.exception, at.exception
    picker = at.multiselect(key="runs_cancel_sel")
    assert picker.value == [second] and len(picker.options) == 2      # the same entry, not a second one
    store.finish(first, "done")                              # the other one ends: it leaves the picker
    at.run()
    assert at.multiselect(key="runs_cancel_sel").options == [f"Adam seed 1 · {second[:8]}"]
    at.button(key="runs_cancel_btn").click().run()
    assert not at.exception, at.exception
    assert "Adam seed 1" in at.success[0].value and store.cancel_requested(second)
    assert at.multiselect(key="runs_cancel_sel").value == []


def test_delete_asks_for_confirmation_and_names_finished_results(app_env, course_bundles, monkeypatch):
    monkeypatch.setenv("ADLAPP_CACHED_RUNS", str(course_bundles))
    at = runs_page()
    at.button(key="runs_load_cached_btn").click().run()
    store = RunStore(app_env / "store")
    keys = list(store.runs()["key"])
    at.multiselect(key="runs_delete_sel").set_value(keys).run()              # "Select all"
    assert at.button(key="runs_delete_btn").disabled
    assert any(f"{ALL_RUNS} of them are finished results" in w.value for w in at.warning)
    confirm = at.checkbox(key="runs_delete_confirm")
    assert confirm.label == f"Yes, delete {ALL_RUNS} run(s), {ALL_RUNS} of them finished result(s)"
    at.multiselect(key="runs_delete_sel").set_value(keys[:2]).run()
    at.checkbox(key="runs_delete_confirm").check().run()
    assert not at.button(key="runs_delete_btn").disabled
    at.button(key="runs_delete_btn").click().run()
    assert not at.exception, at.exception
    assert "Deleted 2 run(s)" in at.success[0].value
    assert len(store.runs()) == ALL_RUNS - 2 and len(at.dataframe[0].value) == ALL_RUNS - 2    # shown at once
    assert at.multiselect(key="runs_delete_sel").value == []
    at.multiselect(key="runs_delete_sel").set_value(keys[2:4]).run()
    assert not at.checkbox(key="runs_delete_confirm").value                    # a new choice: confirm again


def test_active_and_newest_first_status_filter_and_no_device_noise(app_env, no_workers):
    store = RunStore(app_env / "store")
    keys = []
    for seed in range(4):
        keys.append(store.enqueue(tiny("cnn/sgd"), seed)[0])
        time.sleep(0.01)
    store.claim(keys[1])
    store.finish(keys[1], "done")
    store.claim(keys[2])                     # running; 0 and 3 queued
    at = runs_page()
    table = at.dataframe[0].value
    assert list(table["key"]) == [keys[2], keys[3], keys[0], keys[1]]
    assert "device" not in table.columns and "error" not in table.columns and "notes" not in table.columns
    assert not table.drop(columns="progress").astype(str).isin(["None", "nan", "NaN"]).any().any()
    assert at.caption[0].help and "Trainer processes" in at.caption[0].help
    at.multiselect(key="runs_status").set_value(["queued"]).run()
    assert list(at.dataframe[0].value["key"]) == [keys[3], keys[0]]
    store.set_provenance(keys[2], "cpu", {}, None, 2)
    at.multiselect(key="runs_status").set_value([]).run()
    table = at.dataframe[0].value
    assert table.set_index("key")["device"].to_dict() == {keys[2]: "cpu", keys[3]: "", keys[0]: "", keys[1]: ""}


def test_runs_status_filter_is_kept_in_the_url(app_env, no_workers):
    store = RunStore(app_env / "store")
    store.enqueue(tiny("cnn/sgd"), 0)
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["runs_status"] = ["running"]
    at.run()
    at.switch_page("pages/runs.py")
    at.query_params["runs_status"] = ["running"]
    at.run()
    assert at.multiselect(key="runs_status").value == ["running"]
