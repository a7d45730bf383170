"""adlapp: `streamlit run app.py`. Navigation over pages/, and a sidebar with the store, device and data sets."""
from pathlib import Path

import streamlit as st

from adlapp import study
from adlapp.devices import training_device
from pages import _common as ui

HERE = Path(__file__).resolve().parent
PAGES = [  # (file, title, icon, url path); optional pages are listed once their file exists
    ("pages/home.py", "Home", ":material/home:", "home"),
    ("pages/cnn.py", "CNN", ":material/grid_view:", "cnn"),
    ("pages/unet.py", "U-Net", ":material/blur_on:", "unet"),
    ("pages/compare.py", "Compare", ":material/compare_arrows:", "compare"),
    ("pages/teaching.py", "Inside the models", ":material/school:", "teaching"),
    ("pages/runs.py", "Runs", ":material/list:", "runs"),
]

st.set_page_config(page_title="adlapp", page_icon="🔬", layout="wide")   # an emoji: no icon font fetched offline

pages = [st.Page(f, title=t, icon=i, url_path=u, default=(u == "home"))
         for f, t, i, u in PAGES if (HERE / f).exists()]
nav = st.navigation(pages)

with st.sidebar:
    store_path = study.store_dir()
    st.markdown(f"**Store**: `{store_path.name}/`", help=f"Run store (SQLite): {store_path.resolve()}")
    st.markdown(f"**Training device**: {training_device().label}")
    st.markdown(f"**Data sets**: CNN `{st.session_state.get('cnn_dataset', 'cards')}` · "
                f"U-Net `{st.session_state.get('unet_dataset', 'vessels')}`")
    st.number_input("trainer processes (queue concurrency)", min_value=1, max_value=16,
                    value=ui.concurrency_default(), key="concurrency",
                    help="How many runs train at once. Default: one per CUDA GPU, else one on CPU "
                         "(two CPU trainers only fight over the same cores).")
nav.run()
