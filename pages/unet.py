"""U-Net: upsampling × activation (× batch-norm) at several epoch budgets; the course table reborn."""
import streamlit as st

from adlapp import compare, report
from adlapp.config import ACTIVATIONS, EXPERIMENT_INFO, LIMITS, UPSAMPLINGS, base_config
from adlapp.planning import StudyChoice, Toggles
from pages import _common as ui

BASE = base_config("unet")             # every default below is the course set-up's
DATASET = EXPERIMENT_INFO["unet"].dataset
SIZE_STEP = 2 ** BASE.model.depth      # the image side must halve `depth` times

st.title("U-Net: upsampling and activation")
st.caption("Binary segmentation of thin vessels (Figure 2 of the report). The budgets share one run per seed: "
           "a 1000-epoch run is scored on the test split after 200 and 400 epochs too.")
ui.data_card("unet")

left, right = st.columns(2)
with left:
    st.markdown("**Variants**")
    names = ui.variant_checkboxes("unet")
    with st.expander("Custom variant"):
        custom_on = st.checkbox("add a custom variant", key="unet_custom_on", **ui.KEEP)
        custom = Toggles(upsampling=st.selectbox("upsampling", UPSAMPLINGS, key="unet_custom_up", **ui.KEEP),
                         activation=st.selectbox("activation", ACTIVATIONS, key="unet_custom_act", **ui.KEEP))
    batchnorm = st.toggle("batch-norm in every block (all variants)", value=BASE.model.batchnorm, key="unet_bn",
                          **ui.KEEP)
with right:
    seeds_text = ui.seeds_input("unet")
    budgets = st.text_input("epoch budgets (test-scored after each)", value=",".join(map(str, BASE.test_epochs)),
                            help="Each seed trains once, to the longest budget, and the test split is scored "
                                 "after every budget: 200,400,1000 is one 1000-epoch run per seed.",
                            key="unet_budgets", **ui.KEEP)
    dataset = st.text_input(f"data set: {DATASET}, or a folder ROOT/{{train,val,test}}/{{images,masks}}/",
                            value=DATASET, key="unet_dataset", **ui.KEEP)
    with st.expander("Advanced: training-set size, image size, batch size, engine"):
        n_train = st.number_input(f"{DATASET}: training images", value=BASE.data.n_train, key="unet_n_train",
                                  help=f"From 1 to {LIMITS['n_train']:,}.", **ui.KEEP)
        size = st.number_input(f"image size (pixels, a multiple of {SIZE_STEP})", value=BASE.data.image_size,
                               step=SIZE_STEP, key="unet_image_size",
                               help=f"From {SIZE_STEP} to {LIMITS['image_size']}, a multiple of {SIZE_STEP}.",
                               **ui.KEEP)
        batch = st.number_input("batch size", value=BASE.batch_size, key="unet_batch",
                                help=f"From 1 to {LIMITS['batch_size']:,}.", **ui.KEEP)
        engine = ui.engine_controls("unet")

choice = StudyChoice(
    "unet", variants=tuple(names), custom=(custom,) if custom_on else (),
    common=Toggles(batchnorm=batchnorm, **engine), seeds=seeds_text, budgets=budgets, dataset=dataset,
    n_train=int(n_train), image_size=int(size), batch_size=int(batch))


def course_table(tables) -> None:
    table = report.course_table(compare.test_summary(tables, ["pixel_acc", "f1"]), "pixel_acc")
    if len(table):
        st.markdown("**The course table, reborn**: test pixel accuracy and F1, ours beside the report's")
        st.table(table)
        st.caption(report.COURSE_TABLE_CAPTION)


ui.launch_or_load(choice, extra=course_table)
