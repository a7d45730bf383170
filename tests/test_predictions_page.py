"""The Predictions page and adlapp.predict: a run's stored weights, run again on its test split, reproduce the test
metrics the trainer stored for that epoch (the independent check), and the page shows them, its images, the
confusion matrix and the U-Net's error overlays, or says plainly that no run kept weights."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import ROOT, tiny, train_into
from streamlit.testing.v1 import AppTest

from adlapp import predict
from adlapp.data.cards import CLASS_NAMES
from adlapp.store import RunStore

APP = str(ROOT / "app.py")
GRID = 24                     # test images the page shows at once


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """One tiny CNN run (test epoch 2) and one tiny U-Net run (test epochs 1, 2, 3), trained for real."""
    store = RunStore(tmp_path_factory.mktemp("pred") / "store")
    cnn, = train_into(store, tiny("cnn/adam"), seeds=(0,))
    unet, = train_into(store, tiny("unet/normal"), seeds=(0,))
    return {"store": store, "cnn": cnn, "unet": unet}


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
    empty = predict.runs_with_weights(RunStore(tmp_path / "empty"))
    assert empty.empty and list(empty.columns) == predict.RUN_COLUMNS


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
def page(monkeypatch, store: RunStore | None = None) -> AppTest:
    if store is not None:
        monkeypatch.setenv("ADLAPP_STORE", str(store.root))
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/predictions.py").run()
    assert not at.exception, at.exception
    return at


def captions(at: AppTest) -> list[list[str]]:
    return [[i.caption for i in el.proto.imgs] for el in at.get("image")]


def test_page_without_weights_says_so(app_env, monkeypatch):
    at = page(monkeypatch)
    assert at.title[0].value == "What a trained model does"
    assert len(at.info) == 1 and "the shipped study predates this" in at.info[0].value
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
