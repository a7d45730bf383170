"""CNN: choose variants, seeds, epochs and data; see what exists; train only what is missing; watch it learn."""
import streamlit as st

from adlapp.config import ACTIVATIONS, BN_LAYERS, BN_POSITIONS, EXPERIMENT_INFO, LIMITS, OPTIMIZERS, base_config
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
        bn = st.toggle("batch-norm", key="cnn_custom_bn", **ui.KEEP)
        placement = {}
        if bn:       # where BN goes: the report's open question (its choice: before the activation, conv2-3)
            placement = dict(
                bn_position=st.radio("BN relative to the activation", BN_POSITIONS, horizontal=True,
                                     key="cnn_custom_bn_position", **ui.KEEP,
                                     help="before: conv → BN → ELU (the course); after: conv → ELU → BN"),
                bn_layers=st.selectbox("layers with BN", BN_LAYERS, key="cnn_custom_bn_layers", **ui.KEEP,
                                       help="conv2-3 is the course's; conv1-3 also normalises the first conv; "
                                            "+fc adds BatchNorm1d on the 512 features before the linear layer"),
                bn_affine=st.toggle("affine BN (learnable scale and shift)", key="cnn_custom_bn_affine",
                                    **ui.KEEP, help="The course used affine=False."))
        custom = Toggles(batchnorm=bn, optimizer=st.selectbox("optimizer", OPTIMIZERS, key="cnn_custom_opt", **ui.KEEP),
                         **placement)
with right:
    lr_cols = st.columns(2)
    lrs = tuple((opt, lr_cols[i].number_input(
        f"learning rate: {'Adam' if opt == 'adam' else 'SGD'}", value=BASE.optim.lr, step=0.001, format="%g",
        key=f"cnn_lr_{opt}", **ui.KEEP,
        help="A positive number. The course kept Adam and SGD at the same 0.01; each optimiser may have its own "
             "best rate (the lr-sweep question on the Compare page)."))
        for i, opt in enumerate(OPTIMIZERS))
    activation = st.selectbox("activation", ACTIVATIONS, index=ACTIVATIONS.index(BASE.model.activation),
                              key="cnn_activation", **ui.KEEP)
    seeds_text = ui.seeds_input("cnn")
    epochs = st.number_input("epochs", value=BASE.epochs, step=10, key="cnn_epochs",
                             help=f"From 1 to {LIMITS['epochs']:,}.", **ui.KEEP)
    dataset = st.text_input(f"data set: {DATASET}, or a folder ROOT/{{train,valid,test}}/<class>/*.png",
                            value=DATASET, key="cnn_dataset", **ui.KEEP)
    with st.expander("Advanced: training-set size, batch size, engine"):
        per_class = st.number_input(f"{DATASET}: training images per class", value=BASE.data.train_per_class,
                                    key="cnn_train_per_class", help=f"From 1 to {LIMITS['train_per_class']:,}.",
                                    **ui.KEEP)
        batch = st.number_input("batch size", value=BASE.batch_size, key="cnn_batch",
                                help=f"From 1 to {LIMITS['batch_size']:,}.", **ui.KEEP)
        engine = ui.engine_controls("cnn")

choice = StudyChoice(
    "cnn", variants=tuple(names), custom=(custom,) if custom_on else (),
    common=Toggles(activation=activation, **engine), lrs=lrs, seeds=seeds_text, epochs=int(epochs),
    dataset=dataset, train_per_class=int(per_class), batch_size=int(batch))
ui.launch_or_load(choice)
