"""Predictions: what a trained model does on its test split, from a finished run's weights at one test epoch.

Imports torch (through adlapp.predict), like the Inside page: it runs stored models; it trains nothing.
"""
import streamlit as st

from adlapp import predict
from adlapp.config import EXPERIMENT_INFO
from adlapp.report import run_label
from adlapp.store import RunStore
from pages import _common as ui

NO_WEIGHTS = ("Runs trained from now on keep their model at each test epoch; the shipped study predates this — "
              "train a run on the CNN or U-Net page, or import a bundle with weights.")
GRID = 24                     # test images shown at once
MASK_ROWS = 4                 # U-Net test images shown


@st.cache_data(show_spinner="Running the model on the test split…", max_entries=8)
def _predict(root: str, key: str, epoch: int) -> predict.Predictions:
    return predict.predict(RunStore(root), key, epoch)


st.title("What a trained model does")
st.caption("A finished run's model, as it was at one test epoch, run again on the test split: every prediction, "
           "not just the score. The accuracy here is recomputed from these predictions.")
store = ui.store()
runs = predict.runs_with_weights(store)
if runs.empty:
    st.info(NO_WEIGHTS)
    st.stop()

rows = {r["key"]: r for r in runs.to_dict("records")}
cols = st.columns([3, 1])
key = cols[0].selectbox("run", list(rows), key="pred_run", **ui.KEEP,
                        format_func=lambda k: f"{EXPERIMENT_INFO[rows[k]['experiment']].title} · {run_label(rows[k])}")
epochs = rows[key]["weight_epochs"]
epoch = cols[1].selectbox("epoch", epochs, index=len(epochs) - 1, key="pred_epoch",
                          help="The test epochs whose weights the run kept.")
try:
    p = _predict(str(store.root), key, int(epoch))
except predict.PredictError as e:
    st.error(str(e))
    st.stop()

stored = store.test_metrics([key])
stored = stored[stored["epoch"] == int(epoch)].set_index("name")["value"].to_dict()
differ = [m for m, v in p.metrics.items() if m in stored and abs(stored[m] - v) > 1e-9]
if differ:
    st.caption(f"The run's stored {', '.join(f'{m} {stored[m]:.4f}' for m in differ)} differ slightly: it was scored "
               "on its training device, these predictions on this machine's CPU.")

if isinstance(p, predict.ClassPredictions):
    n, right = len(p.truth), int((p.truth == p.predicted).sum())
    st.markdown(f"**Test accuracy at epoch {epoch}: {p.metrics['acc']:.4f}** ({right} of {n} test images right; "
                f"chance is {1 / len(p.class_names):.4f}).")
    only = st.toggle("only mistakes", key="pred_only_mistakes", **ui.KEEP)
    shown = [i for i in range(n) if not only or p.truth[i] != p.predicted[i]][:GRID]
    if shown:
        st.image([predict.enlarge(p.images[i], 84) for i in shown], width=84,
                 caption=[f"{p.class_names[p.truth[i]]} → {p.class_names[p.predicted[i]]} ({p.confidence[i]:.0%})"
                          for i in shown])
        st.caption(f"The first {len(shown)} {'misclassified ' if only else ''}test images: true → predicted class "
                   "(the model's softmax confidence in its prediction).")
    else:
        st.success("No mistakes: every test image is classified correctly at this epoch.")
    st.subheader("Confusion matrix")
    st.caption("Rows: the true class; columns: the class predicted; the diagonal is right. Hover a cell for the "
               "classes and the count.")
    st.altair_chart(predict.confusion_chart(p), width="stretch")
    st.subheader("Accuracy per class")
    st.dataframe(p.per_class(), hide_index=True,
                 column_config={"accuracy": st.column_config.NumberColumn(format="%.2f")})
else:
    m = p.metrics
    st.markdown(f"**Test pixel accuracy at epoch {epoch}: {m['pixel_acc']:.4f}, F1 {m['f1']:.4f}** over "
                f"{len(p.truth)} test images (a pixel is foreground where the logit > 0).")
    st.caption("Errors: white = foreground found, orange = false positive (predicted, not there), blue = false "
               "negative (missed); black = background, right.")
    for i in range(min(MASK_ROWS, len(p.truth))):
        one = p.image_metrics(i)
        st.image([predict.enlarge(a, 128) for a in (p.images[i], p.truth[i].astype("uint8") * 255,
                                                    p.predicted[i].astype("uint8") * 255, p.errors(i))],
                 caption=[f"test #{i}: input", "truth", "prediction",
                          f"errors: pixel acc {one['pixel_acc']:.3f}, F1 {one['f1']:.3f}"], width=128)
