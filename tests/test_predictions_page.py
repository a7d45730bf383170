"""The Predictions page and adlapp.predict: a run's stored weights, run again on its test split, reproduce the test
metrics the trainer stored for that epoch (the independent check), and the page shows them, its images, the
confusion matrix and the U-Net's error overlays, or says plainly that no run kept weights. Runs also come straight
from a bundle's weights (never imported), two runs are shown side by side (2x2 agreement table and McNemar's exact
test for the CNN, masks of both for the U-Net), and the "What the network learned" section shows filters,
feature maps and activation histograms."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import ROOT, tiny, train_into
from scipy.stats import binomtest
from streamlit.testing.v1 import AppTest

from adlapp import predict
from adlapp.bundle import export_store
from adlapp.data.cards import CLASS_NAMES
from adlapp.store import RunStore

APP = str(ROOT / "app.py")
GRID = 24                     # test images the page shows at once


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """Tiny runs trained for real: CNN Adam and BN + Adam (test epoch 2), U-Net normal and nearest neighbour
    (test epochs 1, 2, 3), seed 0 each; and a bundle of all four with their weights, in a folder of its own."""
    root = tmp_path_factory.mktemp("pred")
    store = RunStore(root / "store")
    cnn, = train_into(store, tiny("cnn/adam"), seeds=(0,))
    cnn_bn, = train_into(store, tiny("cnn/bn-adam"), seeds=(0,))
    unet, = train_into(store, tiny("unet/normal"), seeds=(0,))
    unet_nn, = train_into(store, tiny("unet/nearest"), seeds=(0,))
    bundle = export_store(store, root / "shipped" / "study.zip", weights=True)
    return {"store": store, "cnn": cnn, "cnn_bn": cnn_bn, "unet": unet, "unet_nn": unet_nn, "bundle": bundle}


def stored(store: RunStore, key: str, epoch: int) -> dict[str, float]:
    t = store.test_metrics([key])
    return t[t["epoch"] == epoch].set_index("name")["value"].to_dict()


# -- adlapp.predict ------------------------------------------------------------------------------------------------
def test_runs_with_weights_lists_finished_runs_and_their_epochs(trained, tmp_path):
    runs = predict.runs_with_weights(trained["store"]).set_index("key")
    assert list(runs.reset_index().columns) == predict.RUN_COLUMNS
    assert runs.loc[trained["cnn"], "weight_epochs"] == [2] and runs.loc[trained["cnn"], "name"] == "Adam"
    assert runs.loc[trained["unet"], "weight_epochs"] == [1, 2, 3]
    assert runs.loc[trained["unet"], "experiment"] == "unet" and runs.loc[trained["unet"], "seed"] == 0
    assert set(runs["source"]) == {"store"} and set(runs["location"]) == {str(trained["store"].root)}
    empty = predict.runs_with_weights(RunStore(tmp_path / "empty"))
    assert empty.empty and list(empty.columns) == predict.RUN_COLUMNS


def test_bundle_runs_are_listed_from_the_bundle_unless_the_store_has_them(trained, tmp_path):
    shipped = predict.bundle_runs_with_weights(trained["bundle"].parent)
    assert list(shipped.columns) == predict.RUN_COLUMNS and len(shipped) == 4
    assert set(shipped["source"]) == {"bundle"} and set(shipped["location"]) == {str(trained["bundle"])}
    assert shipped.set_index("key").loc[trained["unet"], "weight_epochs"] == [1, 2, 3]
    only_bundle = predict.runs_with_weights(RunStore(tmp_path / "empty"), shipped)
    assert sorted(only_bundle["key"]) == sorted(shipped["key"])
    both = predict.runs_with_weights(trained["store"], shipped)        # the local copy wins; each run once
    assert len(both) == 4 and set(both["source"]) == {"store"}
    assert predict.bundle_runs_with_weights(tmp_path / "no such folder").empty


def test_a_bundle_run_predicts_like_its_store_copy_without_being_imported(trained, tmp_path):
    empty = RunStore(tmp_path / "empty")
    for name, epoch in (("cnn", 2), ("unet", 3)):
        key = trained[name]
        loaded = predict.load_model("bundle", trained["bundle"], key, epoch)
        from_bundle = predict.predict_model(loaded)
        from_store = predict.predict(trained["store"], key, epoch)
        assert np.array_equal(from_bundle.predicted, from_store.predicted) and from_bundle.metrics == from_store.metrics
        assert from_bundle.recorded == stored(trained["store"], key, epoch)   # the bundle's own test rows
    assert empty.runs().empty                                             # nothing imported anywhere
    with pytest.raises(predict.PredictError, match="carries no weights for epoch 9"):
        predict.load_model("bundle", trained["bundle"], trained["cnn"], 9)
    tampered = tmp_path / "tampered.zip"
    data = bytearray(trained["bundle"].read_bytes())
    at = data.rindex(b"F32")                          # inside a weights header: the bundle's checks refuse it
    data[at:at + 3] = b"F16"
    tampered.write_bytes(bytes(data))
    with pytest.raises(predict.PredictError, match="tampered.zip: .*weights/"):
        predict.load_model("bundle", tampered, trained["cnn"], 2)


def test_agreement_counts_each_test_image_once_and_tests_the_discordant_ones(trained):
    a = predict.predict(trained["store"], trained["cnn"], 2)
    b = predict.predict(trained["store"], trained["cnn_bn"], 2)
    assert predict.same_test_images(a, b)
    agree = predict.agreement(a, b)
    right_a, right_b = a.truth == a.predicted, b.truth == b.predicted
    assert agree.n == len(a.truth) and agree.both_right + agree.only_a == right_a.sum()
    assert agree.both_right + agree.only_b == right_b.sum() and agree.both_wrong == (~right_a & ~right_b).sum()
    want = binomtest(agree.only_a, agree.discordant, 0.5).pvalue if agree.discordant else 1.0
    assert agree.p_value == want
    assert agree.table()["B right"].tolist() == [agree.both_right, agree.only_b]
    assert agree.table()["B wrong"].tolist() == [agree.only_a, agree.both_wrong]
    assert predict.Agreement(5, 0, 0, 3).p_value == 1.0
    assert predict.Agreement(0, 6, 0, 0).p_value == pytest.approx(2 * 0.5 ** 6)
    mask = predict.predict(trained["store"], trained["unet"], 3)
    assert not predict.same_test_images(a, mask)
    with pytest.raises(predict.PredictError, match="not run on the same test images"):
        predict.agreement(a, mask)


def test_cnn_predictions_reproduce_the_stored_accuracy(trained):
    store, key = trained["store"], trained["cnn"]
    p = predict.predict(store, key, 2)
    assert isinstance(p, predict.ClassPredictions)
    assert p.metrics["acc"] == stored(store, key, 2)["acc"]            # exactly: counts of the same argmax
    n = len(p.truth)
    assert p.confusion.shape == (53, 53) and p.confusion.sum() == n
    assert np.trace(p.confusion) / n == p.metrics["acc"] == np.mean(p.truth == p.predicted)
    assert p.class_names == CLASS_NAMES
    assert p.images.shape == (n, 28, 28, 3) and p.images.dtype == np.uint8 and p.images.max() > 200
    assert ((p.confidence > 0) & (p.confidence <= 1)).all()
    table = p.per_class()
    assert len(table) == 53 and table["test images"].sum() == n and table["correct"].sum() == np.trace(p.confusion)
    assert list(table["accuracy"]) == sorted(table["accuracy"])        # worst first
    cells = p.confusion_frame()
    assert cells["count"].sum() == n and (cells["count"] > 0).all()


def test_unet_predictions_reproduce_the_stored_pixel_accuracy_and_f1(trained):
    store, key = trained["store"], trained["unet"]
    for epoch in (1, 2, 3):
        p = predict.predict(store, key, epoch)
        assert isinstance(p, predict.MaskPredictions)
        want = stored(store, key, epoch)
        assert p.metrics["pixel_acc"] == pytest.approx(want["pixel_acc"], abs=1e-6), epoch
        assert p.metrics["f1"] == pytest.approx(want["f1"], abs=1e-6), epoch
    errors = p.errors(0)
    assert errors.shape == (*p.truth[0].shape, 3)
    fp = (~p.truth[0] & p.predicted[0]).sum()
    assert (errors == predict.ERROR_COLOURS["false positive"]).all(axis=-1).sum() == fp


def test_predict_refuses_a_missing_epoch_or_run(trained):
    with pytest.raises(predict.PredictError, match="no weights kept for epoch 7"):
        predict.predict(trained["store"], trained["cnn"], 7)
    with pytest.raises(predict.PredictError, match="not in the store"):
        predict.predict(trained["store"], "0" * 16, 1)


# -- the page ------------------------------------------------------------------------------------------------------
def page(monkeypatch, store: RunStore | None = None, cached=None) -> AppTest:
    if store is not None:
        monkeypatch.setenv("ADLAPP_STORE", str(store.root))
    if cached is not None:
        monkeypatch.setenv("ADLAPP_CACHED_RUNS", str(cached))
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/predictions.py").run()
    assert not at.exception, at.exception
    return at


def captions(at: AppTest) -> list[list[str]]:
    """Captions of every st.image call of the predictions part (before "What the network learned")."""
    return all_captions(at)[:learned_at(at)]


def all_captions(at: AppTest) -> list[list[str]]:
    return [[i.caption for i in el.proto.imgs] for el in at.get("image")]


def learned_at(at: AppTest) -> int:
    """Index of the first image group of the "What the network learned" section (the filters or the input)."""
    return next(i for i, g in enumerate(all_captions(at)) if g[0] == "#0" or g[0].startswith("feature maps input"))


def test_page_without_weights_says_so(app_env, monkeypatch):
    at = page(monkeypatch)
    assert at.title[0].value == "What a trained model does"
    assert len(at.info) == 1 and "neither the run store nor a bundle in cached_runs/ holds weights" in at.info[0].value
    assert not at.get("image") and not at.error


def test_page_shows_the_cnn_predictions(app_env, monkeypatch, trained):
    at = page(monkeypatch, trained["store"])
    at.selectbox(key="pred_run").set_value(trained["cnn"]).run()
    assert not at.exception, at.exception
    p = predict.predict(trained["store"], trained["cnn"], 2)
    assert any(f"Test accuracy at epoch 2: {p.metrics['acc']:.4f}" in m.value for m in at.markdown)
    grid, = captions(at)
    assert len(grid) == GRID and all(" → " in c for c in grid)
    assert grid[0].startswith(f"{p.class_names[p.truth[0]]} → {p.class_names[p.predicted[0]]} (")
    spec = json.loads(at.get("vega_lite_chart")[0].proto.spec)
    assert spec["mark"]["type"] == "rect" and spec["width"] == "container"
    assert {t["field"] for t in spec["encoding"]["tooltip"]} == {"true", "predicted", "count"}
    table = next(d.value for d in at.dataframe if "most often taken for" in d.value.columns)
    assert len(table) == 53
    at.toggle(key="pred_only_mistakes").set_value(True).run()
    assert not at.exception, at.exception
    mistakes, = captions(at)
    assert mistakes and all(c.split(" → ")[0] != c.split(" → ")[1].rsplit(" (", 1)[0] for c in mistakes)
    assert len(mistakes) == min(GRID, int((p.truth != p.predicted).sum()))


def test_page_shows_the_unet_rows(app_env, monkeypatch, trained):
    at = page(monkeypatch, trained["store"])
    at.selectbox(key="pred_run").set_value(trained["unet"]).run()
    assert not at.exception, at.exception
    rows = captions(at)
    assert len(rows) == 4 and [r[1:3] for r in rows] == [["truth", "prediction"]] * 4
    assert rows[0][0] == "test #0: input" and rows[0][3].startswith("errors: pixel acc ")
    assert at.selectbox(key="pred_epoch").value == 2      # the CNN run's epoch stays chosen: the U-Net run has it
    for epoch in (3, 1):
        at.selectbox(key="pred_epoch").set_value(epoch).run()
        assert not at.exception, at.exception
        m = predict.predict(trained["store"], trained["unet"], epoch).metrics
        assert any(f"Test pixel accuracy at epoch {epoch}: {m['pixel_acc']:.4f}, F1 {m['f1']:.4f}" in x.value
                   for x in at.markdown), epoch
        assert len(captions(at)) == 4
    at.selectbox(key="pred_run").set_value(trained["cnn"]).run()     # has no epoch 1: its own epoch instead
    assert not at.exception, at.exception
    assert any("Test accuracy at epoch 2:" in x.value for x in at.markdown)


def test_page_runs_a_shipped_bundle_without_importing_it(app_env, monkeypatch, trained):
    at = page(monkeypatch, cached=trained["bundle"].parent)              # app_env's store is empty
    box = at.selectbox(key="pred_run")
    assert len(box.options) == 4                                          # the options as the page labels them
    assert all(label.endswith(" · shipped study bundle file study.zip") for label in box.options)
    box.set_value(trained["cnn"]).run()
    assert not at.exception, at.exception
    assert any("shipped study bundle file study.zip" in c.value and "nothing is imported" in c.value
               for c in at.caption)
    p = predict.predict(trained["store"], trained["cnn"], 2)
    assert any(f"Test accuracy at epoch 2: {p.metrics['acc']:.4f}" in m.value for m in at.markdown)
    grid, = captions(at)
    assert len(grid) == GRID
    assert RunStore(app_env / "store").runs().empty                       # read from the zip, never imported


def test_page_sets_two_cnn_runs_side_by_side(app_env, monkeypatch, trained):
    at = page(monkeypatch, trained["store"])
    at.selectbox(key="pred_run").set_value(trained["cnn"]).run()
    assert trained["unet"] not in at.selectbox(key="pred_run_b").options   # only runs of the same experiment
    at.selectbox(key="pred_run_b").set_value(trained["cnn_bn"]).run()
    assert not at.exception, at.exception
    a = predict.predict(trained["store"], trained["cnn"], 2)
    b = predict.predict(trained["store"], trained["cnn_bn"], 2)
    agree = predict.agreement(a, b)
    table = next(d.value for d in at.dataframe if "B right" in d.value.columns)
    assert table.to_dict("list") == agree.table().to_dict("list")
    assert any(f"p = {agree.p_value:.4g}" in c.value and "not their variants" in c.value
               and f"{agree.n} test images" in c.value for c in at.caption)
    grid, = captions(at)
    assert len(grid) == GRID
    assert grid[0].startswith(f"{a.class_names[a.truth[0]]} · A: {a.class_names[a.predicted[0]]} (")
    assert f" · B: {b.class_names[b.predicted[0]]} (" in grid[0]
    at.toggle(key="pred_only_disagree").set_value(True).run()
    assert not at.exception, at.exception
    disagreements = int((a.predicted != b.predicted).sum())
    shown = captions(at)
    assert (len(shown[0]) if shown else 0) == min(GRID, disagreements)
    assert all(c.split(" · A: ")[1].split(" (")[0] != c.split(" · B: ")[1].split(" (")[0] for g in shown for c in g)


def test_page_sets_two_unet_runs_side_by_side(app_env, monkeypatch, trained):
    at = page(monkeypatch, trained["store"])
    at.selectbox(key="pred_run").set_value(trained["unet"]).run()
    at.selectbox(key="pred_run_b").set_value(trained["unet_nn"]).run()
    assert not at.exception, at.exception
    assert at.selectbox(key="pred_epoch_b").value == 2                  # A's epoch, which B kept too
    rows = captions(at)
    b = predict.predict(trained["store"], trained["unet_nn"], 2)
    assert len(rows) == 4 and [r[:2] for r in rows] == [["test #%d: input" % i, "truth"] for i in range(4)]
    one_b = b.image_metrics(0)
    assert rows[0][2].startswith("A: pixel acc ")
    assert rows[0][3] == f"B: pixel acc {one_b['pixel_acc']:.3f}, F1 {one_b['f1']:.3f}"
    assert any(f"Model B test pixel accuracy at epoch 2: {b.metrics['pixel_acc']:.4f}" in m.value for m in at.markdown)


def test_page_shows_what_the_cnn_learned(app_env, monkeypatch, trained):
    at = page(monkeypatch, trained["store"])
    at.selectbox(key="pred_run").set_value(trained["cnn"]).run()
    assert not at.exception, at.exception
    assert "What the network learned" in [h.value for h in at.header]
    learned = all_captions(at)[learned_at(at):]
    filters, source, *maps = learned
    assert filters == [f"#{i}" for i in range(64)] and source == ["feature maps input: test #0"]
    assert [m[0] for m in maps] == ["conv1 → activation: 64 channels of 24×24, channel 0 top left",
                                    "conv2 → activation: 32 channels of 20×20, channel 0 top left",
                                    "conv3 → activation: 32 channels of 8×8, channel 0 top left"]
    assert any("normalis" in c.value or "scaled on its own" in c.value for c in at.caption)
    hist = json.loads(at.get("vega_lite_chart")[-1].proto.spec)
    assert hist["facet"]["column"]["field"] == "layer"
    n = len(predict.predict(trained["store"], trained["cnn"], 2).truth)
    assert any(f"over the first {min(256, n)} test images" in c.value and f"{min(256, n) * 64 * 24 * 24:,} values"
               in c.value for c in at.caption)
    at.number_input(key="pred_act_image").set_value(5).run()
    assert not at.exception, at.exception
    assert ["feature maps input: test #5"] in all_captions(at)


def test_page_shows_the_unet_feature_maps(app_env, monkeypatch, trained):
    at = page(monkeypatch, trained["store"])
    at.selectbox(key="pred_run").set_value(trained["unet"]).run()
    assert not at.exception, at.exception
    source, *maps = all_captions(at)[learned_at(at):]
    assert source == ["feature maps input: test #0"]
    assert [m[0] for m in maps] == ["first encoder block (down.0): 8 channels of 32×32, channel 0 top left",
                                    "last decoder block (merge.2): 8 channels of 32×32, channel 0 top left"]


def test_shipped_bundle_folder_for_a_copy_of_the_store(trained, tmp_path):
    """A store holding the runs and the bundle holding them too: the page's listing takes each run once."""
    folder = tmp_path / "cached"
    folder.mkdir()
    shutil.copy(trained["bundle"], folder / "a.zip")
    shutil.copy(trained["bundle"], folder / "b.zip")
    shipped = predict.bundle_runs_with_weights(folder)
    assert len(shipped) == 4 and shipped["key"].is_unique
