"""CNN: choose variants, seeds, epochs and data; see what exists; train only what is missing; watch it learn."""
import streamlit as st

from adlapp.config import ACTIVATIONS, EXPERIMENT_INFO, LIMITS, OPTIMIZERS, base_config
from adlapp.planning import StudyChoice, Toggles
from pages import _common as ui

BASE = base_config("cnn")              # every default below is the course set-up's
DATASET = EXPERIMENT_INFO["cnn"].dataset

st.title("CNN: batch-norm and optimizers")
st.caption("The course CNN on 53 generated playing-card classes (Figure 1 of the report). Every variant is trained "
           "with each seed; curves show the mean over seeds and their spread.")
ui.data_card("cnn")

left, right = st.columns(2)
with left:
    st.markdown("**Variants**")
    names = ui.variant_checkboxes("cnn")
    with st.expander("Custom variant"):
        custom_on = st.checkbox("add a custom variant", key="cnn_custom_on", **ui.KEEP)
        custom = Toggles(batchnorm=st.toggle("batch-norm", key="cnn_custom_bn", **ui.KEEP),
                         optimizer=st.selectbox("optimizer", OPTIMIZERS, key="cnn_custom_opt", **ui.KEEP))
with right:
    lr = st.number_input("learning rate (all variants)", value=BASE.optim.lr, step=0.001, format="%g", key="cnn_lr",
                         help="A positive number, e.g. 0.01 (the course's).", **ui.KEEP)
    activation = st.selectbox("activation", ACTIVATIONS, index=ACTIVATIONS.index(BASE.model.activation),
                              key="cnn_activation", **ui.KEEP)
    seeds_text = ui.seeds_input("cnn")
    epochs = st.number_input("epochs", value=BASE.epochs, step=10, key="cnn_epochs",
                             help=f"From 1 to {LIMITS['epochs']:,}.", **ui.KEEP)
    dataset = st.text_input(f"data set: {DATASET}, or a folder ROOT/{{train,valid,test}}/<class>/*.png",
                            value=DATASET, key="cnn_dataset", **ui.KEEP)
    with st.expander("Advanced: training-set size and batch size"):
        per_class = st.number_input(f"{DATASET}: training images per class", value=BASE.data.train_per_class,
                                    key="cnn_train_per_class", help=f"From 1 to {LIMITS['train_per_class']:,}.",
                                    **ui.KEEP)
        batch = st.number_input("batch size", value=BASE.batch_size, key="cnn_batch",
                                help=f"From 1 to {LIMITS['batch_size']:,}.", **ui.KEEP)

choice = StudyChoice(
    "cnn", variants=tuple(names), custom=(custom,) if custom_on else (),
    common=Toggles(lr=lr, activation=activation), seeds=seeds_text, epochs=int(epochs),
    dataset=dataset, train_per_class=int(per_class), batch_size=int(batch))
ui.launch_or_load(choice)
