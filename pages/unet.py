"""U-Net: upsampling × activation (× batch-norm) at several epoch budgets; the course table reborn."""
import streamlit as st

from adlapp import charts, study
from adlapp.config import ACTIVATIONS, LIMITS, UPSAMPLINGS
from pages import _common as ui

st.title("U-Net: upsampling and activation")
st.caption("Binary segmentation of thin vessels (Figure 2 of the report). The budgets share one run per seed: "
           "a 1000-epoch run is scored on the test split after 200 and 400 epochs too.")

left, right = st.columns(2)
with left:
    st.markdown("**Variants**")
    names = ui.variant_checkboxes("unet")
    with st.expander("Custom variant"):
        custom_on = st.checkbox("add a custom variant", key="unet_custom_on", **ui.KEEP)
        custom = study.Toggles(upsampling=st.selectbox("upsampling", UPSAMPLINGS, key="unet_custom_up",
                                                       **ui.KEEP),
                               activation=st.selectbox("activation", ACTIVATIONS, key="unet_custom_act",
                                                       **ui.KEEP))
    batchnorm = st.toggle("batch-norm in every block (all variants)", value=False, key="unet_bn", **ui.KEEP)
with right:
    seeds_text = st.text_input("seeds: a count (3) or a list (0,1,2)", value="3", key="unet_seeds", **ui.KEEP)
    budgets = st.text_input("epoch budgets (test-scored after each)", value="200,400,1000", key="unet_budgets",
                            **ui.KEEP)
    dataset = st.text_input("data set: vessels, or a folder ROOT/{train,val,test}/{images,masks}/",
                            value="vessels", key="unet_dataset", **ui.KEEP)
    with st.expander("Advanced: training-set size, image size, batch size"):
        n_train = st.number_input("vessels: training images", min_value=1, max_value=LIMITS["n_train"], value=48,
                                  key="unet_n_train", **ui.KEEP)
        size = st.number_input("image size (pixels, a multiple of 8)", min_value=8,
                               max_value=LIMITS["image_size"], value=64, step=8, key="unet_image_size",
                               **ui.KEEP)
        batch = st.number_input("batch size", min_value=1, max_value=LIMITS["batch_size"], value=8,
                                key="unet_batch", **ui.KEEP)

choice = study.StudyChoice(
    "unet", variants=tuple(names), custom=(custom,) if custom_on else (),
    common=study.Toggles(batchnorm=batchnorm), seeds=seeds_text, budgets=budgets, dataset=dataset,
    n_train=int(n_train), image_size=int(size), batch_size=int(batch))


def course_table(tables) -> None:
    table = charts.course_table(tables, "pixel_acc")
    if len(table):
        st.markdown("**The course table, reborn**: test pixel accuracy, mean ± sd (ddof=1) over n seeds")
        st.table(table)


ui.launch_or_load(choice, extra=course_table)
