"""The CNN and U-Net pages never contradict themselves, and say what training costs before it starts.

Each test here pins one item of "Pages that never contradict themselves, and a cost before every commitment":
finished runs serve any subset of their test budgets; cancelled runs resume and the plan says where; the plan,
its summary and the Train button follow the runs; invalid input disables launching and says why; the seed
default is the shipped study's; an estimate and a confirmation come before a long training; the words and
names are a student's; the server log stays free of errors.
"""
from __future__ import annotations

import json
import logging
from dataclasses import replace

import pandas as pd
import pytest
from conftest import ROOT, assert_refused, tiny, tiny_cnn_page, tiny_unet_page, type_into
from streamlit.testing.v1 import AppTest

from adlapp import estimate, planning, report
from adlapp.config import config_to_dict, display_name, run_key, variant, variant_label
from adlapp.devices import DeviceInfo
from adlapp.jobs import LocalProcessBackend
from adlapp.planning import StudyChoice, Toggles
from adlapp.store import RunStore

APP = str(ROOT / "app.py")


def page(name: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page(f"pages/{name}.py").run()
    assert not at.exception, at.exception
    return at


def captions(at: AppTest) -> list[str]:
    return [c.value for c in at.caption]


def rows(cfg, seeds, status="done") -> pd.DataFrame:
    """Run rows as the store and bundles have them (the columns `plan` reads)."""
    return pd.DataFrame([{"key": run_key(cfg, s), "status": status, "seed": s, "experiment": cfg.experiment,
                          "last_epoch": cfg.epochs, "config": json.dumps(config_to_dict(cfg))} for s in seeds])


NONE = pd.DataFrame(columns=["key", "status"])


@pytest.fixture
def no_trainers(monkeypatch):
    """Submitting queues runs in the store but starts no trainer process."""
    monkeypatch.setattr(LocalProcessBackend, "ensure_workers", lambda self: [])
    monkeypatch.setattr(LocalProcessBackend, "live_workers", lambda self: [])


# -- 1. a finished run serves every subset of its test budgets ----------------------------------------------
@pytest.mark.parametrize("budgets", ["200,1000", "1000", "400", "200,400,1000"])
def test_a_finished_run_serves_any_subset_of_its_budgets(budgets):
    full = variant("unet/normal")                    # 1000 epochs, test-scored after 200, 400, 1000
    reqs, errors = planning.make_requests(StudyChoice("unet", variants=("unet/normal",), seeds="2",
                                                      budgets=budgets))
    assert not errors
    planned = planning.plan(reqs, NONE, rows(full, (0, 1)))
    assert planned["where"].tolist() == ["cached", "cached"]
    assert planned["run"].tolist() == [run_key(full, 0), run_key(full, 1)]
    assert planning.missing_requests(reqs, planned) == []
    in_store = planning.plan(reqs, rows(full, (0,)), rows(full, (0, 1)))
    assert in_store["where"].tolist() == ["store", "cached"]               # the store first


def test_a_run_not_scored_at_a_budget_or_shorter_does_not_serve():
    full = variant("unet/normal")
    reqs, _ = planning.make_requests(StudyChoice("unet", variants=("unet/normal",), seeds="1", budgets="300,1000"))
    assert planning.plan(reqs, NONE, rows(full, (0,)))["where"].tolist() == ["missing"]     # never scored at 300
    reqs, _ = planning.make_requests(StudyChoice("unet", variants=("unet/normal",), seeds="1", budgets="2000"))
    assert planning.plan(reqs, NONE, rows(full, (0,)))["where"].tolist() == ["missing"]     # too short
    other = replace(full, data=replace(full.data, n_train=12))                               # another training
    reqs, _ = planning.make_requests(StudyChoice("unet", variants=("unet/normal",), seeds="1", budgets="1000"))
    assert planning.plan(reqs, NONE, rows(other, (0,)))["where"].tolist() == ["missing"]
    running = planning.plan(reqs, rows(full, (0,), status="running"), NONE)                  # will serve it
    assert running["where"].tolist() == ["training"] and running["run"][0] == run_key(full, 0)


@pytest.mark.parametrize("budgets,columns", [("1,3", ["1", "3"]), ("3", ["3"]), ("2", ["2"])])
def test_unet_page_uses_the_longer_cached_run_for_fewer_budgets(app_env, course_bundles, monkeypatch, budgets,
                                                               columns):
    """The bundle's tiny U-Net runs were trained to 3 epochs and scored after 1, 2 and 3 epochs."""
    monkeypatch.setenv("ADLAPP_CACHED_RUNS", str(course_bundles))
    at = tiny_unet_page(page("unet"))
    at.text_input(key="unet_budgets").set_value(budgets).run()
    assert not at.exception, at.exception
    plan = at.dataframe[0].value
    assert set(plan["where"]) == {"done (shipped with the app)"}, plan
    assert all(d.startswith("uses the 3-epoch run ") for d in plan["details"]) or budgets == "3"
    assert at.button(key="unet_train_btn").disabled
    shown = [c.split(":")[0] for c in at.table[0].value.columns if c.endswith("pixel acc. (ours)")]
    assert shown == columns                                      # the course table shows the budgets asked for
    _, data = chart(at)
    assert max(data["epoch"]) == max(int(b) for b in budgets.split(","))    # the curves stop there too


def chart(at: AppTest, index: int = 0):
    import pyarrow as pa
    el = at.get("vega_lite_chart")[index]
    arrow = el.proto.datasets[0].data.data if el.proto.datasets else el.proto.data.data
    return json.loads(el.proto.spec), pa.ipc.open_stream(arrow).read_all().to_pandas()


# -- 2. cancelled and interrupted runs resume from their checkpoint -----------------------------------------
def cancelled_run(store: RunStore, cfg, seed: int, epoch: int, checkpoint: bool) -> str:
    key, _ = store.enqueue(cfg, seed)
    store.claim(key)
    for e in range(1, epoch + 1):
        store.record_epoch(key, e, {"train_loss": 1.0, "val_loss": 1.0, "val_acc": 0.1, "seconds": 0.1})
    store.finish(key, "cancelled")
    if checkpoint:
        folder = store.checkpoint_dir(key)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / planning.CHECKPOINT_FILE).write_bytes(b"stand-in")
    return key


def test_the_plan_says_where_a_cancelled_run_resumes(app_env):
    store = RunStore(app_env / "store")
    cfg = replace(tiny("cnn/adam"), epochs=10)
    with_ckpt = cancelled_run(store, cfg, 0, 4, checkpoint=True)
    cancelled_run(store, cfg, 1, 3, checkpoint=False)
    reqs = [(cfg, 0), (cfg, 1)]
    planned = planning.plan(reqs, store.runs(), NONE,
                            lambda k: (store.checkpoint_dir(k) / planning.CHECKPOINT_FILE).is_file())
    assert planned["where"].tolist() == ["missing", "missing"]
    assert planned["resume_from"].tolist() == [4, 0]
    assert planning.resumed_epochs(planned) == {with_ckpt: 4}
    details = [report.plan_detail(r) for r in planned.to_dict("records")]
    assert details[0] == "resumes from its checkpoint (epoch 4 of 10 recorded)"
    assert "starts again from epoch 1" in details[1]
    cost = estimate.training_cost(reqs, store.runs(), store.epoch_metrics()[0], "cpu",
                                  done_epochs=planning.resumed_epochs(planned))
    assert cost.epochs == 6 + 10


def test_the_checkpoint_file_name_is_the_trainers():
    from adlapp import train
    assert planning.CHECKPOINT_FILE == train._CHECKPOINT


def test_cnn_page_shows_the_resume_epoch(app_env):
    store = RunStore(app_env / "store")
    cancelled_run(store, tiny("cnn/adam"), 0, 1, checkpoint=True)
    at = page("cnn")
    at.checkbox(key="cnn_v_bn-adam").uncheck()
    at.checkbox(key="cnn_v_sgd").uncheck()
    at = tiny_cnn_page(at, seeds="1")
    plan = at.dataframe[0].value
    assert plan["where"].tolist() == ["to train"]
    assert plan["details"].tolist() == ["resumes from its checkpoint (epoch 1 of 2 recorded)"]


# -- 3. the plan, its summary and the button follow the runs -------------------------------------------------
def test_after_train_the_plan_and_button_show_training(app_env, no_trainers):
    at = page("cnn")
    at.checkbox(key="cnn_v_bn-adam").uncheck()
    at.checkbox(key="cnn_v_sgd").uncheck()
    at = tiny_cnn_page(at, seeds="2")
    assert at.button(key="cnn_train_btn").label == "Train missing runs (2)"
    at.button(key="cnn_train_btn").click().run()
    assert not at.exception, at.exception
    assert any("Queued 2 run(s)" in s.value for s in at.success)
    button = at.button(key="cnn_train_btn")
    assert button.disabled and button.label.startswith("Training 2 run(s)"), button.label
    assert set(at.dataframe[0].value["where"]) == {"training or waiting"}
    assert any(c.startswith("2 run(s): 0 trained here, 0 shipped with the app, 2 training or waiting")
               for c in captions(at))
    store = RunStore(app_env / "store")            # the runs end elsewhere; the next poll says so
    for key in store.runs()["key"]:
        store.claim(key)
        store.record_epoch(key, 1, {"train_loss": 1.0, "val_loss": 1.0, "val_acc": 0.1, "seconds": 0.1})
        store.finish(key, "done")
    at.run()
    assert set(at.dataframe[0].value["where"]) == {"done (trained here)"}
    assert at.button(key="cnn_train_btn").label == "Train missing runs: none missing"


# -- 4 and 6. invalid input disables launching and says why ---------------------------------------------------
@pytest.mark.parametrize("widget,value,message", [
    ("cnn_lr_adam", -0.5, "Adam learning rate = -0.5: must be a positive number"),
    ("cnn_lr_sgd", 0.0, "SGD learning rate = 0: must be a positive number"),
    ("cnn_epochs", 100_000_000, "Epochs = 100,000,000: at most 100,000 epochs"),
    ("cnn_seeds", "1000", "at most 100"),
    ("cnn_seeds", "0", "at least 1"),
    ("cnn_batch", 0, "Batch size = 0"),
])
def test_an_invalid_value_is_named_and_the_button_disabled(app_env, widget, value, message):
    at = tiny_cnn_page(page("cnn"), seeds="1")      # short: the button needs no confirmation
    assert not at.button(key="cnn_train_btn").disabled
    type_into(at, widget, value)
    assert_refused(at, message)


def test_make_requests_refuses_a_learning_rate_that_is_not_positive():
    for lr in (-0.5, 0.0, float("nan"), float("inf")):
        reqs, errors = planning.make_requests(StudyChoice("cnn", variants=("cnn/adam",), common=Toggles(lr=lr)))
        assert reqs == [] and any("Learning rate" in e for e in errors), (lr, errors)
    reqs, errors = planning.make_requests(StudyChoice("cnn", custom=(Toggles(optimizer="sgd", lr=-1.0),)))
    assert reqs == [] and errors


# -- 5. the seed default is the shipped study's --------------------------------------------------------------
def test_seed_default_is_the_shipped_studys(app_env, course_bundles, monkeypatch):
    monkeypatch.setenv("ADLAPP_CACHED_RUNS", str(course_bundles))
    for exp in ("cnn", "unet"):
        at = page(exp)
        assert at.text_input(key=f"{exp}_seeds").value == "2"         # the bundles hold seeds 0 and 1
        assert "→ 2 seeds: 0, 1" in captions(at)
    at.text_input(key="unet_seeds").set_value("1").run()
    assert any(c.startswith("→ 1 seed: 0 — the shipped study also has seed(s) 1; type 2") for c in captions(at))


def test_study_seeds_and_their_text():
    cnn = [variant(n) for n in planning.registry_names("cnn")]
    runs = pd.concat([rows(c, range(5)) for c in cnn] + [rows(replace(cnn[0], epochs=7), (9,))])
    runs["variant"] = [variant_label(c) for c in cnn for _ in range(5)] + ["cnn/bn-adam"]
    assert planning.study_seeds("cnn", runs) == [0, 1, 2, 3, 4]
    assert planning.study_seeds("unet", runs) == []
    for seeds, text in (([0, 1, 2, 3, 4], "5"), ([7], "7,"), ([0], "0,"), ([0, 1, 2, 7], "0-2,7"), ([3, 5], "3,5")):
        assert planning.seeds_text(seeds) == text
        assert planning.parse_seeds(text) == (seeds, None)


# -- 6. a cost before a commitment -------------------------------------------------------------------------
def test_a_long_training_says_its_cost_and_asks_first(app_env, no_trainers):
    at = page("cnn")                                  # 3 variants x 3 seeds x 200 epochs, nothing recorded
    cost = [c for c in captions(at) if c.startswith("Training 9 runs × 200 epochs takes ≈ ")]
    assert cost and cost[0].endswith(" min on this CPU.") or "GPU" in cost[0], captions(at)
    assert at.button(key="cnn_train_btn").disabled
    tick = [c for c in at.checkbox if c.label.startswith("I understand this takes ≈ ")]
    assert len(tick) == 1
    tick[0].check().run()
    assert not at.button(key="cnn_train_btn").disabled


def test_a_short_training_says_its_cost_and_needs_no_confirmation(app_env):
    at = tiny_cnn_page(page("cnn"), seeds="1")
    assert any(c.startswith("Training 3 runs × 2 epochs takes ≈ ") for c in captions(at)), captions(at)
    assert not [c for c in at.checkbox if c.label.startswith("I understand")]
    assert not at.button(key="cnn_train_btn").disabled


def test_cost_sentence_and_device_label():
    c = estimate.Cost(14, 14_000, 4200.0, "rough")
    assert report.cost_sentence(c) == "Training 14 runs × 1,000 epochs takes ≈ 70 min on this CPU."
    assert report.cost_sentence(c, "cuda (NVIDIA H200)").endswith("on this GPU (NVIDIA H200).")
    assert report.cost_sentence(estimate.Cost(2, 1_501, 30.0, "")) == \
        "Training 2 runs, 1,501 epochs in all takes ≈ 30 s on this CPU."
    assert report.confirm_label(c) == "I understand this takes ≈ 70 min"
    assert report.cost_sentence(estimate.Cost(0, 0, 0.0, "")) == "Nothing to train."
    assert estimate.device_label(DeviceInfo("cuda", "NVIDIA H200", 2)) == "cuda (NVIDIA H200)"
    assert estimate.device_label(DeviceInfo("cpu", "AMD EPYC (2 cores)")) == "cpu"


# -- 7. words and names a student understands ----------------------------------------------------------------
def test_custom_variants_have_one_readable_name(app_env):
    cfg = replace(variant("cnn/sgd"), model=replace(variant("cnn/sgd").model, batchnorm=True, activation="relu"),
                  optim=replace(variant("cnn/sgd").optim, lr=0.005))
    assert display_name(variant_label(cfg)) == "Custom: BN + SGD, lr 0.005, ReLU"
    unet = replace(variant("unet/nearest"), model=replace(variant("unet/nearest").model, activation="elu"),
                   optim=replace(variant("unet/nearest").optim, name="sgd"))
    assert display_name(variant_label(unet)) == "Custom: nearest neighbour, ELU, SGD, lr 0.001"
    assert display_name("cnn/adam") == "Adam" and display_name("something else") == "something else"
    at = page("cnn")
    for key in ("cnn_v_bn-adam", "cnn_v_adam", "cnn_v_sgd"):
        at.checkbox(key=key).uncheck()
    at.checkbox(key="cnn_custom_on").check()
    at.toggle(key="cnn_custom_bn").set_value(True)
    at.selectbox(key="cnn_custom_opt").set_value("sgd")
    at.selectbox(key="cnn_activation").set_value("relu")
    at.number_input(key="cnn_lr_sgd").set_value(0.005)
    at.run()
    assert not at.exception, at.exception
    assert set(at.dataframe[0].value["variant"]) == {"Custom: BN + SGD, lr 0.005, ReLU"}


def test_each_optimiser_trains_at_its_own_learning_rate_and_bn_placement_is_a_custom_variant(app_env):
    """The lr fields are per optimiser (the report kept both at 0.01; SGD may need another), and the BN
    placement toggles make a custom variant whose name says where BN goes."""
    at = page("cnn")
    at.checkbox(key="cnn_v_bn-adam").uncheck()
    at.number_input(key="cnn_lr_sgd").set_value(0.1)
    at.run()
    variants = set(at.dataframe[0].value["variant"])
    assert variants == {"Adam", "Custom: SGD, lr 0.1, ELU"}, variants
    at.checkbox(key="cnn_custom_on").check()
    at.toggle(key="cnn_custom_bn").set_value(True).run()
    at.radio(key="cnn_custom_bn_position").set_value("after")
    at.selectbox(key="cnn_custom_bn_layers").set_value("conv1-3+fc")
    at.run()
    assert not at.exception, at.exception
    assert "Custom: BN (after the activation, also on conv1, also before the linear layer) + Adam, lr 0.01, ELU" \
        in set(at.dataframe[0].value["variant"])


def test_seeds_field_says_count_or_list_and_echoes_the_seeds(app_env):
    at = page("cnn")
    field = at.text_input(key="cnn_seeds")
    assert "3 means seeds 0, 1, 2" in field.label and "count" in field.help
    assert "→ 3 seeds: 0, 1, 2" in captions(at)
    for text, echo in (("1", "→ 1 seed: 0"), ("7,", "→ 1 seed: 7"), ("0-4", "→ 5 seeds: 0, 1, 2, 3, 4")):
        at.text_input(key="cnn_seeds").set_value(text).run()
        assert echo in captions(at), captions(at)


def test_no_infrastructure_words_on_the_study_pages(app_env, course_bundles, monkeypatch):
    monkeypatch.setenv("ADLAPP_CACHED_RUNS", str(course_bundles))
    at = tiny_cnn_page(page("cnn"))
    shown = " ".join(captions(at)) + " ".join(at.dataframe[0].value["where"])
    for word in ("cached_runs/", "(store)", "queue"):
        assert word not in shown, word
    home = AppTest.from_file(APP, default_timeout=60).run()           # the sidebar, as app.py draws it
    assert home.sidebar.number_input(key="concurrency").label == "runs trained at once"
    assert "trainer processes" in home.sidebar.number_input(key="concurrency").help


# -- 8. the server log stays clean ---------------------------------------------------------------------------
def test_study_pages_log_no_errors(app_env, course_bundles, monkeypatch, caplog):
    monkeypatch.setenv("ADLAPP_CACHED_RUNS", str(course_bundles))
    store = RunStore(app_env / "store")
    cancelled_run(store, tiny("cnn/adam"), 0, 1, checkpoint=True)     # a plan with every kind of row
    with caplog.at_level(logging.WARNING):
        at = tiny_cnn_page(page("cnn"), seeds="0-2")
        tiny_unet_page(page("unet"), seeds="0-2")
        at.checkbox(key="cnn_show_seeds").check().run()
    bad = [r.getMessage() for r in caplog.records if "ScriptRunContext" not in r.getMessage()]
    assert not bad, bad
