"""Inside the models: the course CNN and U-Net layer by layer, read off the real models, and the data they learn from.

The only page that imports torch (through adlapp.anatomy): it builds the models to describe them; it trains nothing.
"""
from dataclasses import replace

import streamlit as st

from adlapp import anatomy
from adlapp.config import ACTIVATIONS, BN_LAYERS, BN_POSITIONS, EXPERIMENT_INFO, LIMITS, UPSAMPLINGS, base_config
from pages import _common as ui

BN_NOTE = {
    "cnn": "In the course CNN, batch-norm sits **after conv2 and conv3, before the nonlinearity** (\"we add the BN "
           "transform immediately before the nonlinearity\"), as `BatchNorm2d(affine=False)`: it normalises each "
           "channel over the batch but has no learnable γ/β, so it adds **no parameters** — the BN + Adam variant "
           "has exactly as many as Adam. With batch-norm off, those two places hold an identity.",
    "unet": "In the U-Net (this project's choice; the report gives no architecture), batch-norm, when on, follows "
            "every 3×3 convolution of a double-conv block, before the nonlinearity, with learnable γ/β (2 "
            "parameters per channel); those convolutions then drop their bias, which β replaces.",
}


@st.cache_data(show_spinner="Drawing one card of every class…")
def _card_samples():
    return anatomy.card_samples()


@st.cache_data(show_spinner="Growing the vessel images…")
def _vessel_samples():
    return anatomy.vessel_samples()


@st.cache_data(show_spinner=False)
def _splits(experiment: str):
    return anatomy.split_table(experiment)


@st.cache_data(show_spinner=False)
def _variants(experiment: str):
    return anatomy.variant_parameters(experiment)


st.title("Inside the models")
st.caption("Every layer of the model the CNN and U-Net pages train: its output shape, its parameters and what it "
           "does, read off the real PyTorch model (one forward pass of zeros). Optimizer and learning rate change "
           "how the weights are trained, not what the model is, so they are not here.")
experiment = st.radio("model", ("cnn", "unet"), format_func=lambda e: EXPERIMENT_INFO[e].title, horizontal=True,
                      key="inside_experiment", **ui.KEEP)
base = base_config(experiment)
cols = st.columns(4)
bn = cols[0].toggle("batch-norm", value=base.model.batchnorm, key=f"inside_{experiment}_bn", **ui.KEEP)
act = cols[1].selectbox("activation", ACTIVATIONS, index=ACTIVATIONS.index(base.model.activation),
                        key=f"inside_{experiment}_activation", **ui.KEEP)
model = replace(base.model, batchnorm=bn, activation=act)
if experiment == "cnn" and bn:        # where BN goes: the report's open question, its answer on the Compare page
    c1, c2, c3 = st.columns(3)
    model = replace(model,
                    bn_position=c1.radio("BN relative to the activation", BN_POSITIONS, horizontal=True,
                                         key="inside_cnn_bn_position", **ui.KEEP),
                    bn_layers=c2.selectbox("layers with BN", BN_LAYERS, key="inside_cnn_bn_layers", **ui.KEEP,
                                           help="conv2-3: the course's; conv1-3 also the first conv; +fc: "
                                                "BatchNorm1d on the 512 features before the linear layer"),
                    bn_affine=c3.toggle("affine (learnable γ, β)", key="inside_cnn_bn_affine", **ui.KEEP))
if experiment == "unet":
    model = replace(model, upsampling=cols[2].selectbox("upsampling", UPSAMPLINGS, key="inside_unet_upsampling",
                                                        **ui.KEEP))
default_side = anatomy.default_input_shape(base)[-1]
side = int(cols[3].number_input("input size (pixels, square)", min_value=1, max_value=LIMITS["image_size"],
                                value=default_side, step=2 ** base.model.depth if experiment == "unet" else 1,
                                key=f"inside_{experiment}_size", help=f"The data are {default_side}×{default_side}.",
                                **ui.KEEP))
cfg = replace(base, model=model)

st.subheader("Layer by layer")
try:
    table = anatomy.layer_table(cfg, (3, side, side))
except anatomy.AnatomyError as e:
    text = str(e)
    st.error(f"This input size does not fit the model. {text[:1].upper()}{text[1:]}")
    if e.walk:
        st.caption("The spatial size, as far as it goes: " + anatomy.walk_text(e.walk))
else:
    total = anatomy.total_parameters(cfg)
    if experiment == "cnn":
        st.markdown("**Spatial size, step by step** (no padding: a k×k convolution takes k−1 pixels off, a 2×2 "
                    "max-pool halves, rounding down): " + anatomy.walk_text(anatomy.cnn_walk(side)))
        st.dataframe(table, hide_index=True)
    else:
        st.dataframe(anatomy.unet_levels(cfg, (3, side, side)), hide_index=True)
        with st.expander(f"Every layer ({len(table)})"):
            st.dataframe(table, hide_index=True)
    st.markdown(f"**{total:,} parameters** in total (the sum of `p.numel()` over the model's parameters).")

st.subheader("Where batch-norm sits")
st.markdown(BN_NOTE[experiment])

st.subheader("Parameters per variant")
if experiment == "unet":
    st.dataframe(anatomy.upsampling_comparison(cfg), hide_index=True)
    st.markdown(anatomy.nearest_vs_transpose(cfg))
st.dataframe(_variants(experiment), hide_index=True)

st.subheader("The data it learns from")
ui.data_card(experiment)
st.dataframe(_splits(experiment), hide_index=True)
if experiment == "cnn":
    st.caption("The first training image of each of the 53 classes, as the model sees it (standardisation undone).")
    names, images = zip(*_card_samples(), strict=True)
    st.image(list(images), caption=list(names), width=84)
else:
    st.caption("Training images and their vessel masks (white = vessel), as the model sees them.")
    for image, mask in _vessel_samples():
        st.image([image, mask], caption=["image", "mask"], width=128)
