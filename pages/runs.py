"""Runs: every run in the store with status and progress; cancel, delete, import and export bundles.

Every action (import, load, cancel, delete) runs in its widget's callback, before the page is drawn, so the
table, the counts and the pickers below always show the store as the action left it. Pickers are keyed by run
key with labels that never change (no status in them): a run that moves from queued to running stays the same
entry, and the cancel list is redrawn with the live table while anything is active.
"""
import sqlite3

import pandas as pd
import streamlit as st

from adlapp import compare, library, live, report
from adlapp.bundle import BundleError
from adlapp.config import LIMITS, ConfigError, run_key
from adlapp.store import ACTIVE, CONTINUABLE, FINISHED, STATUSES, StoreError
from pages import _common as ui

HELP = ("**Store**: the SQLite database every run, epoch and test score is written to (the path above). "
        "**Trainer processes**: separate OS processes (`python -m adlapp worker`) that take runs from the queue "
        "and train them; they keep going when you switch pages or close the tab. **Queue**: runs waiting for a "
        "trainer (status *queued*). **Device**: where a run trained (CPU or GPU), known once it started. "
        "**Threads**: the CPU threads it trained with (results on CPU depend on it). **Source**: *local*, or "
        "the bundle a run was imported from. **Cancel** asks a trainer to stop after its current epoch; "
        "**delete** removes a run, its epochs and checkpoints.")
COLUMN_HELP = {"status": "queued: waiting for a trainer · running · done / diverged: a finished result · "
                         "failed / cancelled / interrupted: may be trained again (continues from its checkpoint)",
               "device": "where the run trained; empty until it starts",
               "threads": "CPU threads the run trained with: on CPU its numbers depend on it",
               "source": "local, or the bundle the run was imported from",
               "ETA": "time left while running: remaining epochs × seconds per epoch",
               "key": "the run's identity: a hash of its configuration, seed and code version"}
COLUMN_HELP["health"] = ("finished runs only: collapsed (learned, then fell back to chance), exploded (training "
                         "loss far above its start) or diverged (not finite); empty when healthy")
OPTIONAL = ("device", "threads", "health", "error", "notes")      # shown only when some run has a value
SHOWN_STATUSES = [s for s in STATUSES if s != "importing"]
KEEP = ui.KEEP
state = st.session_state


def ordered(df: pd.DataFrame) -> pd.DataFrame:
    """Running first, then queued, then the rest; newest first within each (the store lists oldest first)."""
    rank = df["status"].map({"running": 0, "queued": 1}).fillna(2)
    order = sorted(range(len(df)), key=lambda i: (rank.iloc[i], -i))
    return df.iloc[order].reset_index(drop=True)


@st.cache_data(show_spinner=False, max_entries=4)
def finished_health(path: str, finished: tuple[str, ...]) -> dict[str, str]:
    """key -> 'collapsed at epoch 42' for each flagged finished run (adlapp.health); recomputed only when the
    set of finished runs changes, not on every tick of the live table."""
    tables = ui.store().tables(keys=list(finished))
    flags = compare.run_health(tables, tables.runs)
    return {k: f"{h.reason} at epoch {h.epoch}" if h.epoch else h.reason for k, h in flags.items() if h.flagged}


def shown(df: pd.DataFrame, statuses: list[str]) -> pd.DataFrame:
    """The table as displayed: filtered by status, unknown optional columns left out, no 'None' cells."""
    done = tuple(sorted(df.loc[df["status"].isin(FINISHED), "key"]))
    flags = finished_health(str(ui.store().db_path), done) if done else {}
    df = df.assign(health=[flags.get(k, "") for k in df["key"]])
    view = ordered(df[df["status"].isin(statuses)] if statuses else df)
    for col in OPTIONAL:
        known = view[col].notna() & (view[col].astype(str).str.strip() != "")
        if not known.any():
            view = view.drop(columns=col)
        else:
            view[col] = [text(v) if k else "" for v, k in zip(view[col], known, strict=True)]
    view["s/epoch"] = [f"{v:.2f}" if pd.notna(v) else "" for v in pd.to_numeric(view["s/epoch"], errors="coerce")]
    return view


def text(v) -> str:
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def label_of(labels: dict):
    """A picker's format_func: the run's stable label, looked up live (a run imported or started since the
    labels were read falls back to its key)."""
    return lambda k: labels.get(k, k)


def say(where: str, level: str, text: str) -> None:
    for old in [k for k in state if str(k).startswith("runs_msg_")]:
        del state[old]
    state[f"runs_msg_{where}"] = (level, text)


def show_messages(where: str) -> None:
    """The last action's message, kept until the next action (the page redraws itself as runs change)."""
    if (msg := state.get(f"runs_msg_{where}")) is not None:
        getattr(st, msg[0])(msg[1])


def statuses_of(df: pd.DataFrame) -> set:
    return set(zip(df["key"], df["status"], strict=True))


# -- actions: run in callbacks, before the page reads the store ---------------------------------------------
def do_import() -> None:
    upload = state.get("runs_import_upload")
    if upload is None:
        return
    try:
        added = library.import_bytes(ui.store(), upload.name, upload.getvalue())
    except (BundleError, StoreError, sqlite3.Error, OSError, MemoryError) as e:
        # One line naming what is wrong; the store is unchanged (a failed import removes its rows).
        say("import", "error", f"Not imported: {e}")
    else:
        say("import", "success", f"Imported {len(added)} new run(s).")


def do_load_cached() -> None:
    added, _ = library.import_cached(ui.store(), library.cached_runs_dir())    # unreadable ones are warned
    say("cached", "success", f"Loaded {len(added)} new run(s) from cached_runs/ (nothing was trained).")


def do_cancel(labels: dict) -> None:
    keys = state.get("runs_cancel_sel") or []
    jobs = ui.backend()
    say("cancel", "success", "; ".join(f"{labels.get(k, k)}: {jobs.cancel(k)}" for k in keys))
    state["runs_cancel_sel"] = []


def do_delete(labels: dict) -> None:
    keys = state.get("runs_delete_sel") or []
    if not keys or not state.get("runs_delete_confirm"):
        return
    s, deleted = ui.store(), []
    try:
        for k in keys:
            s.delete(k)
            deleted.append(k)
    except (KeyError, StoreError, sqlite3.Error, OSError) as e:
        say("delete", "error", f"Not deleted: {e}")
    else:
        say("delete", "success", f"Deleted {len(deleted)} run(s).")
    state["runs_delete_sel"] = [k for k in keys if k not in deleted]
    state["runs_delete_confirm"] = False


def do_continue(labels: dict) -> None:
    """Queue the chosen done run's continuation (a new run, adlapp.store.RunStore.continue_run) and make sure
    a trainer process takes it."""
    key, more = state.get("runs_continue_sel"), int(state.get("runs_continue_epochs") or 0)
    if not key:
        return
    try:
        child = ui.store().continue_run(key, more, command="app")
    except (KeyError, StoreError, ConfigError, sqlite3.Error, OSError) as e:
        say("continue", "error", f"Not continued: {e.args[0] if isinstance(e, KeyError) else e}")
        return
    name = f"{labels.get(key, key)} continued to {child.epochs} epochs ({child.key[:8]})"
    if not child.queued_now:
        say("continue", "info", f"{name}: already {child.status}" + (", nothing to train." if child.status in
                                                                      FINISHED else "."))
        return
    ui.backend().ensure_workers()
    say("continue", "success", f"{name}: queued as a new run; " + (
        f"it picks up from the checkpoint at epoch {child.from_epoch}." if child.from_checkpoint else
        "this run kept no checkpoint (e.g. it was imported), so the new run trains again from epoch 1."))


def continue_cost_caption(parent: str, more: int) -> None:
    """What the continuation would train and cost: only the `more` epochs after the parent's checkpoint (all
    of them when the parent kept none), at the seconds per epoch recorded on this machine."""
    try:
        child_cfg, seed, from_epoch, from_checkpoint = ui.store().continuation(parent, more)
    except (KeyError, StoreError, ConfigError, sqlite3.Error) as e:
        st.caption(f"Cannot continue: {e.args[0] if isinstance(e, KeyError) else e}")
        return
    cost, device = ui.training_cost([(child_cfg, seed)], ui.cached(),
                                    done_epochs={run_key(child_cfg, seed): from_epoch})
    start = (f"picks up at epoch {from_epoch} and trains epochs {from_epoch + 1}-{child_cfg.epochs}"
             if from_checkpoint else f"trains all {child_cfg.epochs} epochs again (the run kept no checkpoint)")
    st.caption(f"The new run {start}. {report.cost_sentence(cost, device)}", help=f"Estimated from {cost.basis}.")


def reset_confirm() -> None:
    state["runs_delete_confirm"] = False


def keep_valid(key: str, options: list[str]) -> None:
    """Drop picked keys that are no longer offered (a multiselect refuses values outside its options)."""
    picked = state.get(key)
    if picked and any(k not in options for k in picked):
        state[key] = [k for k in picked if k in options]


# -- the page ---------------------------------------------------------------------------------------------------
st.title("Runs")
s, jobs = ui.store(), ui.backend()
st.caption(f"Store: `{s.db_path}` · trainer processes alive: {len(jobs.live_workers())}", help=HELP)
overview = live.runs_overview(s)
any_active = bool(overview["status"].isin(ACTIVE).any())
statuses = st.multiselect("show runs with status", SHOWN_STATUSES, key="runs_status", placeholder="all statuses",
                          **KEEP)


@st.fragment(run_every=ui.POLL_S if any_active else None)
def active_part() -> None:
    """The table and the cancel picker, redrawn every tick while runs are queued or running."""
    df = live.runs_overview(s) if any_active else overview
    if df.empty:
        st.info("No runs in the store yet. Start some on the CNN or U-Net page, or import a bundle below.")
        return
    view = shown(df, statuses)
    if view.empty:
        st.info(f"No run has the status {', '.join(statuses)} ({len(df)} run(s) in the store).")
    else:
        config = {c: st.column_config.Column(c, help=h) for c, h in COLUMN_HELP.items() if c in view.columns}
        config["progress"] = st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0,
                                                             format="percent")
        config["s/epoch"] = st.column_config.TextColumn("s/epoch", help="seconds per epoch (median of the last 10)")
        st.dataframe(view, hide_index=True, column_config=config)
    labels = {r["key"]: report.run_label(r) for r in df.to_dict("records")}
    active = ordered(df[df["status"].isin(ACTIVE)])
    options = list(active["key"])
    keep_valid("runs_cancel_sel", options)
    st.multiselect("cancel runs (queued or running)", options, format_func=label_of(labels),
                   key="runs_cancel_sel", placeholder="no run is queued or running" if not options else
                   "choose runs to cancel")
    st.button("Cancel selected", key="runs_cancel_btn", disabled=not state.get("runs_cancel_sel"),
              on_click=do_cancel, args=(labels,))
    show_messages("cancel")
    if any_active and statuses_of(df) != statuses_of(overview):
        st.rerun()           # a run started or ended: redraw the whole page (counts, delete list, polling)


active_part()
queued = overview[overview["status"] == "queued"]
if len(queued) and not jobs.live_workers():
    st.warning(f"{len(queued)} run(s) are queued but no trainer process is running.")
    if st.button("Start trainer processes", key="runs_workers_btn"):
        jobs.ensure_workers()
        st.rerun()

labels = {r["key"]: report.run_label(r) for r in overview.to_dict("records")}
idle = ordered(overview[overview["status"] != "running"])
keep_valid("runs_delete_sel", list(idle["key"]))
delete = st.multiselect("delete runs (not running)", list(idle["key"]), format_func=label_of(labels),
                        key="runs_delete_sel", on_change=reset_confirm)
if delete:
    lost = int(overview["status"].isin(FINISHED)[overview["key"].isin(delete)].sum())
    st.warning(f"Deleting removes {len(delete)} run(s) with their epochs and checkpoints; there is no undo. "
               + (f"{lost} of them are finished results: getting them back means training them again."
                  if lost else "None of them is a finished result."))
    st.checkbox(f"Yes, delete {len(delete)} run(s), {lost} of them finished result(s)", key="runs_delete_confirm")
st.button("Delete selected", key="runs_delete_btn", on_click=do_delete, args=(labels,),
          disabled=not (delete and state.get("runs_delete_confirm")))
show_messages("delete")

continuable = ordered(overview[overview["status"] == CONTINUABLE])
if state.get("runs_continue_sel") not in [None, *continuable["key"]]:
    del state["runs_continue_sel"]                 # deleted since it was picked: a selectbox refuses it
c1, c2 = st.columns([3, 1])
c1.selectbox("continue a done run for more epochs", list(continuable["key"]), index=None,
             format_func=label_of(labels), key="runs_continue_sel",
             placeholder="no run is done" if continuable.empty else "choose a done run",
             help="Trains the same settings and seed for more epochs as a NEW run that shares this run's history "
                  "(the run itself is left as it is). It picks up from this run's last checkpoint and is scored on "
                  "the test split at this run's test epochs too, so its numbers equal a fresh run of that many "
                  "epochs.")
c2.number_input("more epochs", min_value=1, max_value=LIMITS["epochs"] - 1, value=100, step=1,
                key="runs_continue_epochs")
if state.get("runs_continue_sel"):
    continue_cost_caption(state["runs_continue_sel"], int(state.get("runs_continue_epochs") or 100))
st.button(f"Continue for {int(state.get('runs_continue_epochs') or 100)} more epochs", key="runs_continue_btn",
          disabled=not state.get("runs_continue_sel"), on_click=do_continue, args=(labels,))
show_messages("continue")

st.subheader("Bundles")
c1, c2 = st.columns(2)
with c1:
    finished = int(overview["status"].isin(FINISHED).sum())
    st.download_button(f"Export {finished} finished run(s) as a bundle", data=lambda: library.export_bytes(s),
                       file_name="adlapp-runs.zip", mime="application/zip", key="runs_export_btn",
                       disabled=finished == 0)
    upload = st.file_uploader("import a bundle (.zip)", type=["zip"], key="runs_import_upload")
    if upload is not None:
        st.button("Import bundle", key="runs_import_btn", on_click=do_import)
    show_messages("import")
with c2:
    cache = ui.cached()
    st.markdown(f"**cached_runs/** (`{library.cached_runs_dir()}`): {len(cache.bundles)} readable bundle(s)")
    if len(cache.bundles):
        st.dataframe(cache.bundles, hide_index=True)
    st.button("Load all cached runs into the store", key="runs_load_cached_btn", disabled=cache.bundles.empty,
              on_click=do_load_cached)
    show_messages("cached")
