"""CNN: choose variants, seeds, epochs and data; see what exists; train only what is missing; watch it learn."""
import streamlit as st

from adlapp import study
from adlapp.config import ACTIVATIONS, LIMITS, OPTIMIZERS
from pages import _common as ui

st.title("CNN: batch-norm and optimizers")
st.caption("The course CNN on 53 playing-card classes (Figure 1 of the report). Every variant is trained "
           "with each seed; curves show the mean over seeds and their spread.")

left, right = st.columns(2)
with left:
    st.markdown("**Variants**")
    names = ui.variant_checkboxes("cnn")
    with st.expander("Custom variant"):
        custom_on = st.checkbox("add a custom variant", key="cnn_custom_on", **ui.KEEP)
        custom = study.Toggles(batchnorm=st.toggle("batch-norm", key="cnn_custom_bn", **ui.KEEP),
                               optimizer=st.selectbox("optimizer", OPTIMIZERS, key="cnn_custom_opt", **ui.KEEP))
with right:
    lr = st.number_input("learning rate (all variants)", min_value=0.0, value=0.01, step=0.001, format="%g",
                         key="cnn_lr", **ui.KEEP)
    activation = st.selectbox("activation", ACTIVATIONS, index=ACTIVATIONS.index("elu"), key="cnn_activation",
                              **ui.KEEP)
    seeds_text = st.text_input("seeds: a count (3) or a list (0,1,2)", value="3", key="cnn_seeds", **ui.KEEP)
    epochs = st.number_input("epochs", min_value=0, max_value=LIMITS["epochs"], value=200, step=10,
                             key="cnn_epochs", **ui.KEEP)
    dataset = st.text_input("data set: cards, or a folder ROOT/{train,valid,test}/<class>/*.png", value="cards",
                            key="cnn_dataset", **ui.KEEP)
    with st.expander("Advanced: training-set size and batch size"):
        per_class = st.number_input("cards: training images per class", min_value=1,
                                    max_value=LIMITS["train_per_class"], value=20, key="cnn_train_per_class",
                                    **ui.KEEP)
        batch = st.number_input("batch size", min_value=1, max_value=LIMITS["batch_size"], value=64,
                                key="cnn_batch", **ui.KEEP)

choice = study.StudyChoice(
    "cnn", variants=tuple(names), custom=(custom,) if custom_on else (),
    common=study.Toggles(lr=lr, activation=activation), seeds=seeds_text, epochs=int(epochs),
    dataset=dataset, train_per_class=int(per_class), batch_size=int(batch))
ui.launch_or_load(choice)
