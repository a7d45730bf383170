"""adlapp: `streamlit run app.py`. Navigation over pages/, and a sidebar with the store, device and data sets."""
import streamlit as st

from adlapp import library
from adlapp.config import EXPERIMENT_INFO
from adlapp.devices import training_device
from pages import _common as ui

PAGES = [  # (file, title, icon, url path)
    ("pages/home.py", "Home", ":material/home:", "home"),
    ("pages/cnn.py", "CNN", ":material/grid_view:", "cnn"),
    ("pages/unet.py", "U-Net", ":material/blur_on:", "unet"),
    ("pages/inside.py", "Inside the models", ":material/account_tree:", "inside"),
    ("pages/predictions.py", "Predictions", ":material/visibility:", "predictions"),
    ("pages/compare.py", "Compare", ":material/compare_arrows:", "compare"),
    ("pages/runs.py", "Runs", ":material/list:", "runs"),
]

st.set_page_config(page_title="adlapp", page_icon="🔬", layout="wide")   # an emoji: no icon font fetched offline

nav = st.navigation([st.Page(f, title=t, icon=i, url_path=u, default=(u == "home")) for f, t, i, u in PAGES])

with st.sidebar:
    store_path = library.store_dir()
    st.markdown(f"**Saved runs**: `{store_path.name}/`",
                help=f"Every run trained here is saved in this folder (the run store): {store_path.resolve()}")
    st.markdown(f"**Training device**: {training_device().label}")
    chosen = {exp: st.session_state.get(f"{exp}_dataset", info.dataset) for exp, info in EXPERIMENT_INFO.items()}
    st.markdown("**Data sets**: " + " · ".join(f"{EXPERIMENT_INFO[e].title} `{d}`" for e, d in chosen.items()))
    st.number_input("runs trained at once", min_value=1, max_value=16,
                    value=ui.concurrency_default(), key="concurrency",
                    help="How many runs train side by side, each in its own background process (the queue's "
                         "trainer processes). Default: one per CUDA GPU, else one on CPU (two CPU trainers "
                         "only fight over the same cores).")
    ui.backend_choice()
nav.run()
