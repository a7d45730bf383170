"""Predictions: what a trained model does on its test split, from a finished run's weights at one test epoch;
optionally a second run's model on the same images; and what the network learned (filters, feature maps,
activation histograms).

Imports torch (through adlapp.predict and adlapp.activations), like the Inside page: it runs stored models (from the
run store or straight from a shipped bundle's weights); it trains nothing.
"""
from pathlib import Path

import streamlit as st

from adlapp import activations, library, predict
from adlapp.config import EXPERIMENT_INFO
from adlapp.report import run_label
from pages import _common as ui

NO_WEIGHTS = ("No run here kept its model: neither the run store nor a bundle in cached_runs/ holds weights. Runs "
              "trained from now on keep their model at each test epoch — train a run on the CNN or U-Net page, or "
              "import a bundle with weights.")
GRID = 24                     # test images shown at once
MASK_ROWS = 4                 # U-Net test images shown
HISTOGRAM_IMAGES = 256        # test images whose activations the histograms pool (one evaluation batch)
NONE = ""                     # "compare with": no second run


@st.cache_data(show_spinner="Reading the shipped bundles' weights…", max_entries=4)
def _bundle_runs(folder: str, signature: tuple):
    return predict.bundle_runs_with_weights(folder)


@st.cache_resource(show_spinner="Loading the model…", max_entries=8)
def _model(source: str, location: str, key: str, epoch: int) -> predict.LoadedModel:
    return predict.load_model(source, location, key, epoch)


@st.cache_data(show_spinner="Running the model on the test split…", max_entries=8)
def _predict(source: str, location: str, key: str, epoch: int) -> predict.Predictions:
    return predict.predict_model(_model(source, location, key, epoch))


@st.cache_data(show_spinner="Recording the activations…", max_entries=16)
def _maps(source: str, location: str, key: str, epoch: int, image: int) -> list[activations.LayerMaps]:
    m = _model(source, location, key, epoch)
    return activations.feature_maps(m.model, m.data.test_x[image])


@st.cache_data(show_spinner="Recording the activations…", max_entries=8)
def _histograms(source: str, location: str, key: str, epoch: int, images: int):
    m = _model(source, location, key, epoch)
    return activations.activation_histograms(m.model, m.data.test_x[:images])


def source_words(row: dict) -> str:
    if row["source"] == "store":
        return "run store"
    return f"shipped study bundle file {Path(row['location']).name}"


def describe(row: dict, epoch: int) -> str:
    """'Adam seed 0 · 1a2b3c4d at epoch 200 (run store)': which run, which epoch, where its weights come from."""
    return f"{run_label(row)} at epoch {epoch} ({source_words(row)})"


st.title("What a trained model does")
st.caption("A finished run's model, as it was at one test epoch, run again on the test split: every prediction, "
           "not just the score. The accuracy here is recomputed from these predictions. Runs come from the run "
           "store or, without importing anything, from the weights a shipped study bundle (cached_runs/) carries.")
store = ui.store()
folder = library.cached_runs_dir()
runs = predict.runs_with_weights(store, _bundle_runs(str(folder), library.folder_signature(folder)))
if runs.empty:
    st.info(NO_WEIGHTS)
    st.stop()

rows = {r["key"]: r for r in runs.to_dict("records")}


def run_choice(k: str) -> str:
    if k == NONE:
        return "— none: one model —"
    return f"{EXPERIMENT_INFO[rows[k]['experiment']].title} · {run_label(rows[k])} · {source_words(rows[k])}"


cols = st.columns([3, 1])
key = cols[0].selectbox("run (model A)", list(rows), key="pred_run", **ui.KEEP, format_func=run_choice)
row = rows[key]
epochs = row["weight_epochs"]
epoch = int(cols[1].selectbox("epoch", epochs, index=len(epochs) - 1, key="pred_epoch",
                              help="The test epochs whose weights the run kept."))
others = [k for k in rows if k != key and rows[k]["experiment"] == row["experiment"]]
cols = st.columns([3, 1])
key_b = cols[0].selectbox("compare with (model B)", [NONE, *others], key="pred_run_b", format_func=run_choice,
                          help="A second run of the same experiment (another variant, or another seed), run on the "
                               "same test images.")
epoch_b = None
if key_b != NONE:
    epochs_b = rows[key_b]["weight_epochs"]
    epoch_b = int(cols[1].selectbox("epoch (B)", epochs_b,
                                    index=epochs_b.index(epoch) if epoch in epochs_b else len(epochs_b) - 1,
                                    key="pred_epoch_b", help="The test epochs whose weights run B kept."))
st.caption(f"Model A: {describe(row, epoch)}."
           + (f" Model B: {describe(rows[key_b], epoch_b)}." if epoch_b is not None else "")
           + (" A bundle's weights are read from the zip after the bundle is checked whole; nothing is imported."
              if "bundle" in {row["source"], rows.get(key_b, {}).get("source")} else ""))

try:
    p = _predict(row["source"], row["location"], key, epoch)
    p_b = _predict(rows[key_b]["source"], rows[key_b]["location"], key_b, epoch_b) if epoch_b is not None else None
except predict.PredictError as e:
    st.error(str(e))
    st.stop()
if p_b is not None and not predict.same_test_images(p, p_b):
    st.warning("Model B's run was trained on other data (its test split differs), so the two cannot be compared "
               "image by image; showing model A alone.")
    p_b = None

differ = [m for m, v in p.metrics.items() if m in p.recorded and abs(p.recorded[m] - v) > 1e-9]
if differ:
    st.caption(f"The run's recorded {', '.join(f'{m} {p.recorded[m]:.4f}' for m in differ)} differ slightly: it "
               "was scored on its training device, these predictions on this machine's CPU.")

if isinstance(p, predict.ClassPredictions):
    n, right = len(p.truth), int((p.truth == p.predicted).sum())
    st.markdown(f"**Test accuracy at epoch {epoch}: {p.metrics['acc']:.4f}** ({right} of {n} test images right; "
                f"chance is {1 / len(p.class_names):.4f}) — model A, {run_label(row)}.")
    if p_b is None:
        only = st.toggle("only mistakes", key="pred_only_mistakes", **ui.KEEP)
        shown = [i for i in range(n) if not only or p.truth[i] != p.predicted[i]][:GRID]
        if shown:
            st.image([predict.enlarge(p.images[i], 84) for i in shown], width=84,
                     caption=[f"{p.class_names[p.truth[i]]} → {p.class_names[p.predicted[i]]} ({p.confidence[i]:.0%})"
                              for i in shown])
            st.caption(f"The first {len(shown)} {'misclassified ' if only else ''}test images of {n}: true → "
                       "predicted class (the model's softmax confidence in its prediction).")
        else:
            st.success("No mistakes: every test image is classified correctly at this epoch.")
    else:
        right_b = int((p_b.truth == p_b.predicted).sum())
        st.markdown(f"**Model B test accuracy at epoch {epoch_b}: {p_b.metrics['acc']:.4f}** ({right_b} of {n} "
                    f"test images right) — {run_label(rows[key_b])}.")
        agree = predict.agreement(p, p_b)
        st.subheader("Where the two models agree")
        st.dataframe(agree.table(), hide_index=True)
        st.caption(f"The {agree.n} test images, by which model classifies each right: both {agree.both_right}, only "
                   f"A {agree.only_a}, only B {agree.only_b}, neither {agree.both_wrong}. McNemar's exact test on "
                   f"the {agree.discordant} images exactly one model gets right (two-sided binomial test of "
                   f"{agree.only_a} of {agree.discordant} against ½): **p = {agree.p_value:.4g}**"
                   + (" (no such image: nothing tells the two apart)" if agree.discordant == 0 else "")
                   + ". It compares these two particular trained models (A at epoch "
                   f"{epoch}, B at epoch {epoch_b}) on this test set, not their variants: another seed of either "
                   "could come out the other way; the Compare page tests variants over seeds.")
        only = st.toggle("only images where they disagree", key="pred_only_disagree", **ui.KEEP)
        shown = [i for i in range(n) if not only or p.predicted[i] != p_b.predicted[i]][:GRID]

        def mark(q: predict.ClassPredictions, i: int) -> str:
            verdict = "✓" if q.predicted[i] == q.truth[i] else "✗"
            return f"{q.class_names[q.predicted[i]]} ({q.confidence[i]:.0%}) {verdict}"

        if shown:
            st.image([predict.enlarge(p.images[i], 84) for i in shown], width=84,
                     caption=[f"{p.class_names[p.truth[i]]} · A: {mark(p, i)} · B: {mark(p_b, i)}" for i in shown])
            st.caption(f"The first {len(shown)} {'of the images they disagree on' if only else 'test images'} of "
                       f"{n}: true class · A's and B's prediction (softmax confidence), ✓ right, ✗ wrong.")
        else:
            st.success("The two models predict the same class for every test image.")
    st.subheader("Confusion matrix" + (" (model A)" if p_b is not None else ""))
    st.caption(f"All {n} test images of {run_label(row)} at epoch {epoch}. Rows: the true class; columns: the class "
               "predicted; the diagonal is right. Hover a cell for the classes and the count.")
    st.altair_chart(predict.confusion_chart(p), width="stretch")
    st.subheader("Accuracy per class" + (" (model A)" if p_b is not None else ""))
    st.caption(f"Each class's test images ({n} in all) of {run_label(row)} at epoch {epoch}, worst first.")
    st.dataframe(p.per_class(), hide_index=True,
                 column_config={"accuracy": st.column_config.NumberColumn(format="%.2f")})
else:
    m = p.metrics
    st.markdown(f"**Test pixel accuracy at epoch {epoch}: {m['pixel_acc']:.4f}, F1 {m['f1']:.4f}** over "
                f"{len(p.truth)} test images (a pixel is foreground where the logit > 0) — model A, {run_label(row)}.")
    if p_b is None:
        st.caption("Errors: white = foreground found, orange = false positive (predicted, not there), blue = false "
                   "negative (missed); black = background, right.")
        for i in range(min(MASK_ROWS, len(p.truth))):
            one = p.image_metrics(i)
            st.image([predict.enlarge(a, 128) for a in (p.images[i], p.truth[i].astype("uint8") * 255,
                                                        p.predicted[i].astype("uint8") * 255, p.errors(i))],
                     caption=[f"test #{i}: input", "truth", "prediction",
                              f"errors: pixel acc {one['pixel_acc']:.3f}, F1 {one['f1']:.3f}"], width=128)
    else:
        m_b = p_b.metrics
        st.markdown(f"**Model B test pixel accuracy at epoch {epoch_b}: {m_b['pixel_acc']:.4f}, F1 {m_b['f1']:.4f}** "
                    f"over the same {len(p_b.truth)} test images — {run_label(rows[key_b])}.")
        st.caption("Each row: one test image, its true mask, model A's and model B's predicted masks, with the pixel "
                    "accuracy and F1 of that image alone.")
        for i in range(min(MASK_ROWS, len(p.truth))):
            one, one_b = p.image_metrics(i), p_b.image_metrics(i)
            st.image([predict.enlarge(a, 128) for a in (p.images[i], p.truth[i].astype("uint8") * 255,
                                                        p.predicted[i].astype("uint8") * 255,
                                                        p_b.predicted[i].astype("uint8") * 255)],
                     caption=[f"test #{i}: input", "truth",
                              f"A: pixel acc {one['pixel_acc']:.3f}, F1 {one['f1']:.3f}",
                              f"B: pixel acc {one_b['pixel_acc']:.3f}, F1 {one_b['f1']:.3f}"], width=128)

# -- what the network learned (model A) ----------------------------------------------------------------------
st.header("What the network learned")
st.caption(f"Read off model A ({describe(row, epoch)}) with forward hooks: what its layers output during an ordinary "
           "forward pass.")
loaded = _model(row["source"], row["location"], key, epoch)
n_test = len(p.truth)
if isinstance(p, predict.ClassPredictions):
    st.subheader("First-layer filters")
    filters = activations.first_layer_filters(loaded.model)
    st.image(activations.filter_tiles(filters), width=48, caption=[f"#{i}" for i in range(len(filters))])
    st.caption(f"The {len(filters)} filters of conv1, each {filters.shape[1]}×{filters.shape[2]} weights over the 3 "
               "colour channels, shown as an RGB tile enlarged 12×. Each filter is scaled on its own: its lowest "
               "weight black, its highest full colour, so compare patterns, not brightness, between tiles.")
image = int(st.number_input("test image for the feature maps", min_value=0, max_value=n_test - 1, value=0,
                            key="pred_act_image", help=f"Index into the {n_test} test images."))
st.subheader(f"Feature maps of test image #{image}")
st.image(predict.enlarge(p.images[image], 96), width=96, caption=f"feature maps input: test #{image}")
for layer in _maps(row["source"], row["location"], key, epoch, image):
    c, h, w = layer.maps.shape
    scale = max(1, 96 // w)
    st.image(activations.feature_grid(layer.maps, scale=scale),
             caption=f"{activations.layer_title(layer.layer)}: {c} channels of {h}×{w}, channel 0 top left")
st.caption("Each channel is scaled on its own (its lowest value black, its highest white; a channel that is "
           "constant on this image, e.g. switched off everywhere, is grey) and enlarged.")
if isinstance(p, predict.ClassPredictions):
    st.subheader("Activation histograms")
    images = min(HISTOGRAM_IMAGES, n_test)
    hist = _histograms(row["source"], row["location"], key, epoch, images)
    st.altair_chart(activations.histogram_chart(hist))
    per_layer = hist.groupby("layer", sort=False)["values"].first()
    st.caption(f"Every value after each activation over the first {images} test images ("
               + "; ".join(f"{layer}: {v:,} values" for layer, v in per_layer.items())
               + f"), in {activations.HISTOGRAM_BINS} equal bins between each layer's own lowest and highest value.")
