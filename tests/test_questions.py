"""The report's open questions (adlapp.questions, adlapp.convergence, the budget protocols and the BN toggles):
each answer recomputed independently from the runs with scipy, and each question answered on the Compare page
from bundles alone, without training anything."""
from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import ROOT, tiny, train_into
from scipy import stats as sps
from streamlit.testing.v1 import AppTest

from adlapp import compare as cmp
from adlapp import convergence, questions
from adlapp.bundle import export_store
from adlapp.config import (
    ADDED_DEFAULTS,
    COURSE_VARIANTS,
    ConfigError,
    config_from_dict,
    config_to_dict,
    display_name,
    run_key,
    training_signature,
    variant,
    variant_label,
)
from adlapp.models import build_model, describe
from adlapp.planning import SEPARATE_SEED_OFFSET, StudyChoice, make_requests, separate_budget_runs
from adlapp.store import RunStore, RunTables

APP = str(ROOT / "app.py")
SEEDS = (0, 1, 2)


# -- the BN toggles: config, keys, models ----------------------------------------------------------------------
def with_model(name: str, **model) -> object:
    cfg = variant(name)
    return replace(cfg, model=replace(cfg.model, **model))


def test_new_fields_at_their_default_keep_every_earlier_key():
    """A config dict written before the BN options existed (no such fields) and today's config are one run."""
    for name in ("cnn/bn-adam", "cnn/adam", "unet/normal"):
        cfg = variant(name)
        d = config_to_dict(cfg)
        for field_name in ADDED_DEFAULTS["model"]:
            d["model"].pop(field_name)
        old = config_from_dict(d)                      # parses with the defaults filled in
        assert old == cfg and run_key(old, 3) == run_key(cfg, 3)
        assert training_signature(d) == training_signature(cfg)
    moved = with_model("cnn/bn-adam", bn_position="after")
    assert run_key(moved, 0) != run_key(variant("cnn/bn-adam"), 0)
    assert training_signature(moved) != training_signature(variant("cnn/bn-adam"))


@pytest.mark.parametrize("name,model,why", [
    ("cnn/adam", {"bn_affine": True}, "only applies to the CNN with batchnorm on"),
    ("cnn/adam", {"bn_position": "after"}, "only applies to the CNN with batchnorm on"),
    ("unet/normal", {"batchnorm": True, "bn_layers": "conv1-3"}, "only applies to the CNN"),
    ("cnn/bn-adam", {"bn_layers": "conv4"}, "must be one of"),
    ("cnn/bn-adam", {"bn_position": "middle"}, "must be one of"),
])
def test_a_bn_option_that_changes_nothing_or_is_unknown_is_refused(name, model, why):
    with pytest.raises(ConfigError, match=why):
        with_model(name, **model)


def test_each_bn_toggle_builds_the_model_it_names():
    x = torch.randn(4, 3, 28, 28)
    course = build_model(variant("cnn/bn-adam"))
    n_course = sum(p.numel() for p in course.parameters())
    for cfg, extra_params, bn_layers in [
        (variant("cnn/bn-adam"), 0, {"bn2", "bn3"}),
        (variant("cnn/bn-after-adam"), 0, {"bn2", "bn3"}),
        (variant("cnn/bn-all-adam"), 0, {"bn1", "bn2", "bn3", "bn_fc"}),
        (variant("cnn/bn-affine-adam"), 2 * (32 + 32), {"bn2", "bn3"}),
        (with_model("cnn/bn-adam", bn_layers="conv1-3+fc", bn_affine=True), 2 * (64 + 32 + 32 + 512),
         {"bn1", "bn2", "bn3", "bn_fc"}),
    ]:
        model = build_model(cfg)
        assert sum(p.numel() for p in model.parameters()) == n_course + extra_params
        rows = describe(model, (3, 28, 28))
        norms = {r["layer"] for r in rows if r["type"].startswith("BatchNorm")}
        assert norms == bn_layers
        order = [r["layer"] for r in rows]
        if cfg.model.bn_position == "after":       # conv -> activation -> BN, by execution order
            assert order.index("act2") < order.index("bn2")
        else:
            assert order.index("bn2") < order.index("act2")
        assert [r["output_shape"] for r in rows if r["layer"] == "flatten"] == [(512,)]
        out = model(x)
        assert out.shape == (4, 53)
        out.sum().backward()
        assert all(p.grad is not None for p in model.parameters())


def test_bn_after_the_activation_computes_bn_of_elu():
    model = build_model(variant("cnn/bn-after-adam")).train()
    x = torch.randn(8, 3, 28, 28)
    h = torch.nn.functional.elu(model.conv1(x))
    z = model.conv2(h)
    expected = torch.nn.functional.batch_norm(torch.nn.functional.elu(z), None, None, training=True)
    got = model.bn2(model.act2(model.conv2(h)))
    assert torch.allclose(got, expected, atol=1e-6)


def test_every_toggle_is_in_the_registry_and_the_cli(tmp_path):
    from adlapp.cli import main

    assert {"cnn/bn-sgd", "cnn/bn-after-adam", "cnn/bn-all-adam", "cnn/bn-affine-adam"} <= set(
        n for n in map(variant_label, map(variant, ("cnn/bn-sgd", "cnn/bn-after-adam", "cnn/bn-all-adam",
                                                    "cnn/bn-affine-adam"))))
    store = tmp_path / "s"
    assert main(["train", "cnn", "--batchnorm", "--bn-position", "after", "--bn-layers", "conv1-3", "--bn-affine",
                 "--epochs", "1", "--train-per-class", "1", "--store", str(store)]) == 0
    runs = RunStore(store).runs()
    cfg = config_from_dict(json.loads(runs["config"].iloc[0]))
    assert (cfg.model.bn_position, cfg.model.bn_layers, cfg.model.bn_affine) == ("after", "conv1-3", True)
    assert display_name(runs["variant"].iloc[0]) == \
        "Custom: BN (after the activation, also on conv1, affine) + Adam, lr 0.01, ELU"


# -- planning: a learning rate per optimiser, separate budgets ------------------------------------------------
def test_each_optimiser_gets_its_own_learning_rate():
    reqs, errors = make_requests(StudyChoice("cnn", variants=("cnn/adam", "cnn/sgd", "cnn/bn-sgd"), seeds=(0,),
                                             lrs=(("adam", 0.001), ("sgd", 0.1))))
    assert not errors
    assert {variant_label(c): c.optim.lr for c, _ in reqs} == {
        "cnn/nobn-elu-adam-lr0.001": 0.001, "cnn/nobn-elu-sgd-lr0.1": 0.1, "cnn/bn-elu-sgd-lr0.1": 0.1}
    _, errors = make_requests(StudyChoice("cnn", variants=("cnn/sgd",), lrs=(("sgd", -1.0),)))
    assert errors == ["SGD learning rate = -1: must be a positive number, e.g. 0.01."]


def test_separate_budgets_train_each_shorter_budget_on_seeds_no_other_budget_uses():
    cfg = variant("unet/normal")
    extra = separate_budget_runs(cfg, [0, 1], (200, 400, 1000))
    assert [(c.epochs, c.eval_at, s) for c, s in extra] == [
        (200, (), SEPARATE_SEED_OFFSET), (200, (), SEPARATE_SEED_OFFSET + 1),
        (400, (), 2 * SEPARATE_SEED_OFFSET), (400, (), 2 * SEPARATE_SEED_OFFSET + 1)]
    reqs, errors = make_requests(StudyChoice("unet", variants=("unet/normal",), seeds=(0, 1), budgets=(200, 400, 1000),
                                             protocol="separate"))
    assert not errors and len(reqs) == 2 + 4
    assert len({run_key(c, s) for c, s in reqs}) == 6          # six distinct runs
    cost = sum(c.epochs for c, _ in reqs)
    assert cost == 2 * (200 + 400 + 1000)                      # 1.6x the shared protocol's 2 x 1000


# -- the plateau diagnostic -------------------------------------------------------------------------------------
def curves(slopes: list[float], epochs: int = 100, noise: float = 0.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for s, slope in enumerate(slopes):
        for e in range(1, epochs + 1):
            rows.append({"seed": s, "epoch": e, "value": 0.5 + slope * e / 100 + noise * rng.standard_normal()})
    return pd.DataFrame(rows)


def test_plateau_slopes_and_interval_match_scipy():
    data = curves([0.02, 0.05, 0.03, 0.04], epochs=100, noise=0.001)
    p = convergence.plateau(data, "val_acc", higher_is_better=True)
    assert (p.start, p.end) == (81, 100) and p.n_seeds == 4
    expected = [sps.linregress(g.loc[g.epoch >= 81, "epoch"], g.loc[g.epoch >= 81, "value"]).slope * 100
                for _, g in data.groupby("seed")]
    assert np.allclose(p.slopes, expected, rtol=1e-10)
    low, high = sps.t.interval(0.95, 3, loc=np.mean(expected), scale=sps.sem(expected))
    assert math.isclose(p.ci_low, low, rel_tol=1e-9) and math.isclose(p.ci_high, high, rel_tol=1e-9)
    assert p.verdict == "still improving"
    assert p.gain(200)[0] == pytest.approx(2 * p.mean)


def test_plateau_verdicts():
    assert convergence.plateau(curves([-0.1, -0.12, -0.09]), "val_acc", True).verdict == "getting worse"
    assert convergence.plateau(curves([-0.1, -0.12, -0.09]), "val_loss", False).verdict == "still improving"
    flat = convergence.plateau(curves([0.05, -0.05, 0.01]), "val_acc", True)
    assert flat.verdict == "flat" and flat.ci_low < 0 < flat.ci_high
    assert convergence.plateau(curves([0.1]), "val_acc", True).verdict == "too few seeds"
    assert convergence.plateau(curves([0.1, 0.2], epochs=5), "val_acc", True) is None


# -- answers on real (tiny) runs ---------------------------------------------------------------------------------
def tiny_sweep(optimizer: str, lr: float):
    cfg = tiny("cnn/adam" if optimizer == "adam" else "cnn/sgd")
    return replace(cfg, optim=replace(cfg.optim, lr=lr))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Tiny runs of every question's variants, 3 seeds each (enough to test), in a store and as bundles."""
    root = tmp_path_factory.mktemp("questions")
    store = RunStore(root / "store")
    for name in ("cnn/bn-adam", "cnn/adam", "cnn/bn-sgd", "cnn/sgd", "cnn/bn-after-adam", "cnn/bn-all-adam",
                 "cnn/bn-affine-adam", "unet/normal", "unet/nearest"):
        train_into(store, tiny(name), seeds=SEEDS)
    for opt in ("adam", "sgd"):
        for lr in (0.001, 0.1):
            train_into(store, tiny_sweep(opt, lr), seeds=SEEDS)
    for name in ("unet/normal",):
        for cfg, seed in separate_budget_runs(tiny(name), list(SEEDS), (1, 2, 3)):
            train_into(store, cfg, seeds=(seed,))
    folder = root / "cached_runs"
    export_store(store, folder / "study.zip", provenance={"command": "pytest fixture"})
    return {"store": store, "tables": store.tables(), "folder": folder}


def values(tables: RunTables, name: str, metric: str, epoch: int, epochs: int | None = None) -> dict[int, float]:
    """seed -> test value of the runs of variant `name` (only runs of `epochs` epochs when given)."""
    runs = tables.runs[(tables.runs["variant"] == name) & (tables.runs["status"] == "done")]
    if epochs is not None:
        runs = runs[runs["epochs"] == epochs]
    t = tables.tests[(tables.tests["name"] == metric) & (tables.tests["epoch"] == epoch)]
    by_key = dict(zip(t["key"], t["value"], strict=True))
    return {int(s): float(by_key[k]) for k, s in zip(runs["key"], runs["seed"], strict=True) if k in by_key}


def test_bn_sgd_answer_is_welch_with_holm_over_its_two_pairs(study):
    t = study["tables"]
    ans = questions.answer("bn-sgd", t)
    assert ans.status == "partial"                      # the full-size runs are not there
    ps = []
    for a, b in (("cnn/bn-adam", "cnn/adam"), ("cnn/bn-sgd", "cnn/sgd")):
        xa, xb = list(values(t, a, "acc", 2).values()), list(values(t, b, "acc", 2).values())
        ps.append(sps.ttest_ind(xa, xb, equal_var=False).pvalue)
    holm = sorted(ps)
    adjusted = {ps.index(holm[0]): min(1, 2 * holm[0]), ps.index(holm[1]): min(1, max(2 * holm[0], holm[1]))}
    table = ans.table
    assert len(table) == 2
    for i, line in enumerate(ans.lines[:2]):
        assert f"adjusted {questions.rep.p_value(adjusted[i])}" in line, (line, adjusted)
    assert "with Adam BN changes test accuracy at epoch 2" in ans.headline
    assert "with SGD BN changes" in ans.headline
    # The early-stop line names its criterion and, per variant, the epochs it chose (median and range).
    (best,) = [line for line in ans.lines if line.startswith("Scored at each run's lowest-validation-loss epoch")]
    tests = t.tests[(t.tests["name"] == "best_epoch") & (t.tests["epoch"] == 2)]
    for name, shown in (("cnn/bn-adam", "(range): BN + Adam"), ("cnn/sgd", ", SGD")):
        keys = set(t.runs.loc[t.runs["variant"] == name, "key"])
        chosen = tests.loc[tests["key"].isin(keys), "value"]
        assert len(chosen) == 3
        assert f"{shown} {chosen.median():g} ({chosen.min():g}-{chosen.max():g})" in best


def test_bn_where_compares_each_placement_with_the_course_one(study):
    ans = questions.answer("bn-where", study["tables"])
    assert len(ans.table) == 3
    assert all(" vs BN + Adam" in line for line in ans.lines[:3])


def test_sgd_tuned_chooses_each_optimisers_lr_on_validation(study):
    t = study["tables"]
    ans = questions.answer("sgd-tuned", t)
    means = {}
    for opt in ("adam", "sgd"):
        for lr in (0.001, 0.01, 0.1):
            cfg = tiny_sweep(opt, lr)
            keys = set(t.runs.loc[t.runs["variant"] == variant_label(cfg), "key"])
            ep = t.epochs[(t.epochs["name"] == "val_acc") & (t.epochs["epoch"] == 2) & t.epochs["key"].isin(keys)]
            means[(opt, lr)] = ep["value"].mean()
    chosen = {opt: max((lr for o, lr in means if o == opt), key=lambda lr: (means[(opt, lr)], -lr))
              for opt in ("adam", "sgd")}
    picked = ans.table[ans.table["chosen"]].set_index("optimizer")["lr"].to_dict()
    assert picked["Adam"] == pytest.approx(chosen["adam"]) or means[("adam", picked["Adam"])] == means[
        ("adam", chosen["adam"])]
    assert picked["SGD"] == pytest.approx(chosen["sgd"]) or means[("sgd", picked["SGD"])] == means[
        ("sgd", chosen["sgd"])]
    assert "The test split played no part in choosing" in ans.lines[0]
    assert (ans.table["seeds"] == 3).all()


def test_sgd_tuned_never_chooses_a_rate_a_seed_diverged_at_nor_counts_its_last_score(study):
    """One seed of SGD's chosen rate diverges after epoch 1 with a flattering validation accuracy there: the
    rate keeps its 2 finished seeds' mean (the diverged one counted beside it), and another, stable, rate is
    chosen."""
    t = study["tables"]
    before = questions.answer("sgd-tuned", t).table.set_index(["optimizer", "lr"])
    sgd_lr = before[before["chosen"]].loc["SGD"].index[0]
    label = before.loc[("SGD", sgd_lr), "variant"]
    keys = list(t.runs.loc[t.runs["variant"] == label, "key"])
    lost = keys[0]
    runs = t.runs.copy()
    runs.loc[runs["key"] == lost, ["status", "last_epoch"]] = ["diverged", 1]
    ep = t.epochs[(t.epochs["key"] != lost) | (t.epochs["epoch"] <= 1)].copy()
    ep.loc[(ep["key"] == lost) & (ep["name"] == "val_acc"), "value"] = 1.0
    broken = RunTables(runs, ep, t.tests[t.tests["key"] != lost])

    ans = questions.answer("sgd-tuned", broken)
    row = ans.table.set_index(["optimizer", "lr"]).loc[("SGD", sgd_lr)]
    kept = ep[(ep["name"] == "val_acc") & ep["key"].isin(keys[1:])]
    kept = kept[kept["epoch"] == kept["epoch"].max()]
    assert row["diverged"] == 1 and row["seeds"] == 2 and not row["chosen"]
    assert row["val acc (last epoch), mean"] == pytest.approx(kept["value"].mean())
    chosen = ans.table[ans.table["chosen"]].set_index("optimizer")
    assert chosen.loc["SGD", "lr"] != sgd_lr and chosen.loc["SGD", "diverged"] == 0
    assert any(line.startswith("Diverged") and f"SGD lr {sgd_lr:g} 1 of 3 seeds" in line for line in ans.lines)


def test_sgd_tuned_says_when_the_equal_rate_already_was_each_optimisers_best(study):
    t = study["tables"]
    course = set(t.runs.loc[t.runs["variant"].isin(["cnn/adam", "cnn/sgd"]), "key"])
    ep = t.epochs.copy()
    ep.loc[ep["key"].isin(course) & (ep["name"] == "val_acc"), "value"] = 1.0     # lr 0.01 best for both
    ans = questions.answer("sgd-tuned", RunTables(t.runs, ep, t.tests))
    assert set(ans.table.loc[ans.table["chosen"], "variant"]) == {"cnn/adam", "cnn/sgd"}
    assert ("best rate among those swept (Adam 0.001, 0.01, 0.1; SGD 0.001, 0.01, 0.1) is the course's equal "
            "lr 0.01, so the course's comparison already was the tuned one") in ans.headline


def test_budgets_answer_pairs_shared_runs_and_not_separate_ones(study):
    t = study["tables"]
    ans = questions.answer("budgets", t)
    row = ans.table.set_index(["variant", "protocol"])
    shared = row.loc[("Normal", "shared")]
    a, b = values(t, "unet/normal", "pixel_acc", 1, epochs=3), values(t, "unet/normal", "pixel_acc", 3, epochs=3)
    assert shared["test"] == "paired t"
    assert shared["p"] == pytest.approx(sps.ttest_rel([a[s] for s in SEEDS], [b[s] for s in SEEDS]).pvalue)
    separate = row.loc[("Normal", "separate")]
    short = values(t, "unet/normal", "pixel_acc", 1, epochs=1)
    assert sorted(short) == [s + SEPARATE_SEED_OFFSET for s in SEEDS]
    assert separate["test"] == "Welch"
    assert separate["p"] == pytest.approx(sps.ttest_ind(list(short.values()), list(b.values()), equal_var=False).pvalue)
    assert separate["epochs trained"] == 3 * (1 + 2 + 3) and shared["epochs trained"] == 3 * 3
    assert "separate runs per budget" in ans.headline
    # Nearest has shared runs only here: the protocols are compared on Normal alone, cost 18 vs 9 epochs.
    assert "which cost 2.0× the epochs (on Normal, the variant(s) with both so far)" in ans.headline
    narrower = shared["CI width"] < separate["CI width"]
    assert (f"{'narrower' if narrower else 'not narrower'} than the {questions.rep.number(separate['CI width'], 4)}"
            in ans.headline)


def test_course_tables_leave_question_runs_out_of_the_course_figures(study):
    t = study["tables"]
    course = cmp.course_tables(t)
    assert set(course.runs["variant"]) <= set(COURSE_VARIANTS)
    assert (course.runs.loc[course.runs["variant"] == "unet/normal", "epochs"] == 3).all()
    assert len(course.runs) == 3 * 3 + 3 * 2            # bn-adam, adam, sgd; normal, nearest (3 seeds each)
    everything = cmp.analyse(t, cmp.Selection("unet", ("unet/normal",), (1,), "test_pixel_acc"))
    shared = cmp.analyse(t, cmp.Selection("unet", ("unet/normal",), (1,), "test_pixel_acc", protocol="shared"))
    assert everything.groups[0].n == 6 and shared.groups[0].n == 3
    assert cmp.has_budget_protocols(t, "unet") and not cmp.has_budget_protocols(t, "cnn")


def test_converged_answer_reads_every_course_variant(study):
    ans = questions.answer("converged", study["tables"])
    assert ans.status == "no data"        # tiny runs are shorter than the diagnostic's 10-epoch window


# -- the pages ---------------------------------------------------------------------------------------------------
@pytest.fixture
def env(study, tmp_path, monkeypatch):
    monkeypatch.setenv("ADLAPP_CACHED_RUNS", str(study["folder"]))
    monkeypatch.setenv("ADLAPP_STORE", str(tmp_path / "empty-store"))
    return tmp_path / "empty-store"


@pytest.mark.parametrize("qid", [q.id for q in questions.QUESTIONS])
def test_each_question_is_answered_on_the_compare_page_without_training(env, qid):
    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page("pages/compare.py").run()
    at.selectbox(key="q_choice").set_value(qid).run()
    assert not at.exception, at.exception
    q = questions.question(qid)
    text = " ".join(m.value for m in at.markdown) + " ".join(
        e.value for kind in ("success", "warning", "info") for e in at.get(kind))
    assert q.quote.strip("“”")[:30] in text
    assert questions.answer(qid, _tables(env)).headline in text
    button = at.button(key=f"q_{qid}_train_btn")
    assert "Train missing runs" in button.label                   # offered, not pressed
    assert RunStore(env).runs().empty                              # nothing queued, nothing trained


def _tables(store_dir) -> RunTables:
    from adlapp import library

    return RunTables.concat([RunStore(store_dir).tables(), library.load_cached(library.cached_runs_dir()).tables])


def test_home_reads_the_open_questions(env):
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["study"] = "open"
    at.run()
    assert not at.exception, at.exception
    text = " ".join(m.value for m in at.markdown)
    for q in questions.QUESTIONS:
        assert f"**{q.title}**" in text


# -- epochs vs batches on the x axis -----------------------------------------------------------------------------
def test_batches_per_epoch_is_ceil_of_training_images_over_batch_size(study):
    from adlapp.config import CARD_CLASSES, batches_per_epoch
    from adlapp.data.cards import CLASS_NAMES

    assert CARD_CLASSES == len(CLASS_NAMES)
    assert batches_per_epoch(variant("cnn/adam")) == math.ceil(20 * 53 / 64) == 17
    assert batches_per_epoch(variant("unet/normal")) == 48 // 8 == 6
    folder = replace(variant("cnn/adam"), data=replace(variant("cnn/adam").data, name="/some/folder"))
    assert batches_per_epoch(folder) is None
    t = study["tables"]
    assert cmp.batches_per_epoch(t, "cnn") == math.ceil(53 / 64)          # tiny: 1 card per class, batch 64
    assert cmp.batches_per_epoch(t, "unet") == 1                         # 4 images in batches of 4
    runs = t.runs.copy()
    i = runs.index[runs["experiment"] == "cnn"][0]
    d = json.loads(runs.at[i, "config"])
    d["batch_size"] = 8                                                  # one run trained otherwise
    runs.at[i, "config"] = json.dumps(d)
    assert cmp.batches_per_epoch(RunTables(runs, t.epochs, t.tests), "cnn") is None


def test_batches_axis_labels_epochs_times_batches():
    from adlapp import charts

    x = charts._x(True, 17).to_dict()
    assert x["title"] == "batches (log scale): 1 epoch = 17 batches"
    assert "datum.value * 17" in x["axis"]["labelExpr"] and x["field"] == "epoch"
    assert charts._x(False).to_dict()["title"] == "epoch"


def test_home_figure_in_batches_and_one_variant_per_line(env):
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["study"] = "open"
    at.run()
    at.checkbox(key="home_x_batches").check()
    at.selectbox(key="home_per_line").set_value(1).run()
    assert not at.exception, at.exception
    specs = [json.loads(el.proto.spec) for el in at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")]
    text = json.dumps(specs)
    assert "1 epoch = 1 batches" in text                                  # tiny CNN: 53 images, batch 64


def test_compare_spread_counts_the_runs_the_chosen_protocol_scores(env):
    """The Compare page's spread-across-seeds reading uses the page's budget protocol: with every run, Normal's
    first budget pools its shared and separate runs (6 seeds, then 3) and the reading says the groups are mixed;
    with shared runs only, 3 seeds at every budget, the same runs scored again; with separate runs only, each
    budget its own 3 runs (Nearest, with no 1-epoch runs, drops out of the test)."""
    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page("pages/compare.py").run()
    at.selectbox(key="sig_experiment").set_value("unet").run()

    def spread_reading() -> tuple[str, str]:
        lines = [m.value for m in at.markdown if m.value.startswith("- ")]
        normal = next(x for x in lines if x.startswith("- Normal: sd "))
        return normal, next(x for x in lines if "seed matter *less*" in x)

    for protocol, n_words, relation in (("all", "n = 6 then 3;", "pooling runs trained only to that budget"),
                                        ("shared", "n = 3;", "the same runs scored again"),
                                        ("separate", "n = 3;", "its own runs")):   # Nearest: no 1-epoch runs
        at.radio(key="sig_protocol").set_value(protocol).run()
        assert not at.exception, at.exception
        normal, answer = spread_reading()
        assert n_words in normal and relation in answer, (protocol, normal, answer)
