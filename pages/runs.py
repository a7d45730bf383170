"""Runs: every run in the store with status and progress; cancel, delete, import and export bundles."""
import sqlite3

import streamlit as st

from adlapp import library, live, report
from adlapp.bundle import BundleError
from adlapp.store import ACTIVE, FINISHED, StoreError
from pages import _common as ui

st.title("Runs")
s, jobs = ui.store(), ui.backend()
st.caption(f"Store: `{s.db_path}` · trainer processes alive: {len(jobs.live_workers())}")
overview = live.runs_overview(s)
active = overview[overview["status"].isin(ACTIVE)]


@st.fragment(run_every=ui.POLL_S if len(active) else None)
def table() -> None:
    df = live.runs_overview(s) if len(active) else overview
    if df.empty:
        st.info("No runs in the store yet. Start some on the CNN or U-Net page, or import a bundle below.")
        return
    st.dataframe(df, hide_index=True, column_config={
        "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent"),
        "s/epoch": st.column_config.NumberColumn("s/epoch", format="%.2f")})
    if len(active) and not df["status"].isin(ACTIVE).any():
        st.rerun()


table()
labels = {r["key"]: report.run_label(r) for r in overview.to_dict("records")}
queued = overview[overview["status"] == "queued"]
if len(queued) and not jobs.live_workers():
    st.warning(f"{len(queued)} run(s) are queued but no trainer process is running.")
    if st.button("Start trainer processes", key="runs_workers_btn"):
        jobs.ensure_workers()
        st.rerun()

c1, c2 = st.columns(2)
with c1:
    cancel = st.multiselect("cancel runs", list(active["key"]), format_func=labels.get, key="runs_cancel_sel")
    if st.button("Cancel selected", key="runs_cancel_btn", disabled=not cancel):
        st.success("; ".join(f"{labels[k]}: {jobs.cancel(k)}" for k in cancel))
with c2:
    idle = overview.loc[overview["status"] != "running", "key"]
    delete = st.multiselect("delete runs", list(idle), format_func=labels.get, key="runs_delete_sel")
    if st.button("Delete selected", key="runs_delete_btn", disabled=not delete):
        try:
            for k in delete:
                s.delete(k)
        except (KeyError, StoreError, sqlite3.Error, OSError) as e:
            st.error(f"Not deleted: {e}")
        else:
            st.rerun()

st.subheader("Bundles")
c1, c2 = st.columns(2)
with c1:
    finished = int(overview["status"].isin(FINISHED).sum())
    st.download_button(f"Export {finished} finished run(s) as a bundle", data=lambda: library.export_bytes(s),
                       file_name="adlapp-runs.zip", mime="application/zip", key="runs_export_btn",
                       disabled=finished == 0)
    upload = st.file_uploader("import a bundle (.zip)", type=["zip"], key="runs_import_upload")
    if upload is not None and st.button("Import bundle", key="runs_import_btn"):
        try:
            st.success(f"Imported {len(library.import_bytes(s, upload.name, upload.getvalue()))} new run(s).")
        except (BundleError, StoreError, sqlite3.Error, OSError, MemoryError) as e:
            # One line naming what is wrong; the store is unchanged (a failed import removes its rows).
            st.error(f"Not imported: {e}")
with c2:
    cache = ui.cached()
    st.markdown(f"**cached_runs/** (`{library.cached_runs_dir()}`): {len(cache.bundles)} readable bundle(s)")
    if len(cache.bundles):
        st.dataframe(cache.bundles, hide_index=True)
    if st.button("Load all cached runs into the store", key="runs_load_cached_btn", disabled=cache.bundles.empty):
        added, _ = library.import_cached(s, library.cached_runs_dir())     # unreadable ones are warned above
        st.success(f"Loaded {len(added)} new run(s) from cached_runs/ (nothing was trained).")
