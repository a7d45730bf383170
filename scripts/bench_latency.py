"""The latency a user feels, measured headless and broken down into its parts.

    python scripts/bench_latency.py [--repeats 3] [--skip-train]

(a) Cached study to first chart: a fresh Python process that imports the viewer modules (adlapp.library,
    adlapp.charts: no torch), loads cached_runs/ (`library.load_cached`), and builds the CNN page's first curve
    panel (`charts.curve_frame` + `charts.curves_spec`) and the Home figure (`charts.figure_chart`). "cold" is that
    first time in a new process (the app's first visitor after a start); "warm" repeats it inside the same
    process, as a running app does on a later click (its st.cache_data makes the loading part cheaper still).
    Files are in the OS page cache after the first repeat either way: this does not drop caches.
(a') The server side of the same clicks in the app: Streamlit's AppTest runs app.py (Home), clicks "Open the
    course study" a second later (timing when the first figure leaves the script, and the whole run), then the
    CNN page, which serves the course study from cached_runs/ (an empty temporary store), then that page again,
    timing each script run. What a browser adds (websocket, Vega-Lite rendering) is not in these numbers.
(b) Click to first live point: `python -m adlapp train cnn --epochs 1 --seeds 1 --device cpu` started with
    `subprocess` into a fresh temporary store, timed until the store holds its first epoch row. The parts are
    measured by separate probes: interpreter + `import torch`, the rest of adlapp's imports, building the card
    data, and the epoch's own seconds (from the store row); "other" is what is left (store, run bookkeeping,
    model build, process exit is not counted). The app's path adds a worker's start and queue polling on top.

Median of --repeats per line. Timings depend on the machine's load; say how busy it was when quoting them.
"""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Runs in a child process: prints one JSON object of seconds since the parent's Popen (`T0` in the environment).
_CACHED_CHILD = r"""
import json, os, time
t0 = float(os.environ["BENCH_T0"])
marks = {"interpreter": time.time() - t0}
from adlapp import charts, library, metrics
marks["imports"] = time.time() - t0
def first_chart():
    cache = library.load_cached(library.cached_runs_dir())
    loaded = time.time() - t0
    cnn = cache.tables.select(set(cache.tables.runs.loc[cache.tables.runs["experiment"] == "cnn", "key"]))
    frame = charts.curve_frame(cnn, metrics.curve_metrics("cnn"))
    panel = frame["metric"].iloc[0]
    spec = charts.curves_spec(frame[frame["metric"] == panel])
    assert spec is not None
    chart = time.time() - t0
    charts.figure_chart(cnn, "cnn").to_dict()
    return loaded, chart, time.time() - t0, cache
marks["tables_loaded"], marks["first_chart_spec"], marks["home_figure"], cache = first_chart()
start = time.time()
library.load_cached(library.cached_runs_dir())
marks["warm_tables_loaded"] = time.time() - start
t0 = start = time.time()
cnn = cache.tables.select(set(cache.tables.runs.loc[cache.tables.runs["experiment"] == "cnn", "key"]))
frame = charts.curve_frame(cnn, metrics.curve_metrics("cnn"))
charts.curves_spec(frame[frame["metric"] == frame["metric"].iloc[0]])
marks["warm_first_chart_from_loaded_tables"] = time.time() - start
print(json.dumps(marks))
"""

# Runs in a child process: the server side of a click, through Streamlit's AppTest (the page scripts as a running
# app executes them, without a browser): app start on Home, then the CNN page with the cached study, then a rerun.
_PAGE_CHILD = r"""
import json, os, time
t0 = float(os.environ["BENCH_T0"])
import streamlit as st
from streamlit.testing.v1 import AppTest
marks = {"streamlit imported": time.time() - t0}
sent = []                    # when each figure left the script (the pages look st.altair_chart up at each call)
_altair_chart = st.altair_chart
def _timed_chart(*args, **kwargs):
    out = _altair_chart(*args, **kwargs)
    sent.append(time.time())
    return out
st.altair_chart = _timed_chart
at = AppTest.from_file(os.path.join(os.environ["BENCH_ROOT"], "app.py"), default_timeout=120)
start = time.time(); at.run(); marks["app start: Home page run"] = time.time() - start
time.sleep(1.0)              # a visitor reads before clicking
start = time.time(); at.button(key="home_open_btn").click().run()
marks["Home: click to the first figure sent"] = sent[0] - start
marks["Home: click to the whole page"] = time.time() - start
start = time.time(); at.switch_page("pages/cnn.py").run()
marks["first CNN page run (cached study)"] = time.time() - start
assert not at.exception, at.exception
charts = len(at.get("vega_lite_chart")) + len(at.get("arrow_vega_lite_chart"))
start = time.time(); at.run(); marks["CNN page rerun (a later click)"] = time.time() - start
marks["charts on the CNN page"] = charts
print(json.dumps(marks))
"""

_IMPORT_TORCH = "import time, os; t0 = float(os.environ['BENCH_T0']); import torch; print(time.time() - t0)"
_IMPORT_ADLAPP = ("import time, torch; t = time.time(); import adlapp.cli, adlapp.runner, adlapp.train; "
                  "print(time.time() - t)")
_BUILD_DATA = ("import time, adlapp.data as d; t = time.time(); d.make_cards(train_per_class=20); "
               "print(time.time() - t)")


def _child(code: str, **env_extra: str) -> str:
    env = {**os.environ, "BENCH_T0": repr(time.time()), "PYTHONPATH": str(ROOT), "BENCH_ROOT": str(ROOT), **env_extra}
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip().splitlines()[-1]


def cached_study(repeats: int) -> dict[str, float]:
    runs = [json.loads(_child(_CACHED_CHILD)) for _ in range(repeats)]
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def page_runs(repeats: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as store:       # an empty store: the page serves the study from cached_runs/
        runs = [json.loads(_child(_PAGE_CHILD, ADLAPP_STORE=store)) for _ in range(repeats)]
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def _first_epoch_row(db: Path) -> float | None:
    """The first epoch's `seconds` once the store has an epoch row (None before)."""
    if not db.exists():
        return None
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1) as con:
            row = con.execute("SELECT value FROM epoch_metrics WHERE epoch = 1 AND name = 'seconds'").fetchone()
    except sqlite3.Error:                                  # the trainer is still creating the schema
        return None
    return None if row is None else float(row[0])


def launched_run() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as store:
        db = Path(store) / "runs.sqlite"
        cmd = [sys.executable, "-m", "adlapp", "train", "cnn", "--epochs", "1", "--seeds", "1", "--device", "cpu",
               "--store", store]
        t0 = time.time()
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while (epoch_seconds := _first_epoch_row(db)) is None:
                if proc.poll() not in (None, 0):
                    raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}")
                time.sleep(0.01)
            total = time.time() - t0
        finally:
            proc.wait()
    return {"total": total, "epoch": epoch_seconds}


def queued_run(warm: bool) -> float:
    """Seconds from queueing a 1-epoch CNN run to its first epoch row, as the app's Train button does it: a
    warm trainer (LocalProcessBackend.prewarm: started earlier, torch imported, data built, waiting) or a cold
    one (started by the submission)."""
    sys.path.insert(0, str(ROOT))                         # run as a plain script from anywhere
    from adlapp.config import variant
    from adlapp.jobs import LocalProcessBackend
    from adlapp.store import RunStore

    with tempfile.TemporaryDirectory() as folder:
        store = RunStore(folder)
        jobs = LocalProcessBackend(store, concurrency=1, device="cpu", idle_exit=60 if warm else 0)
        if warm:
            jobs.prewarm("cnn")
            log = Path(folder) / "logs"
            while not any(b"ready" in f.read_bytes() for f in log.glob("worker-*.log")):
                time.sleep(0.05)
        cfg = replace(variant("cnn/bn-adam"), epochs=1)
        t0 = time.time()
        jobs.submit([(cfg, 0)], command="bench_latency")
        while _first_epoch_row(store.db_path) is None:
            time.sleep(0.01)
        total = time.time() - t0
        for pid in jobs.live_workers():
            os.kill(pid, 15)
        while jobs.live_workers():
            time.sleep(0.05)
    return total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip-train", action="store_true", help="only (a), the cached study")
    p.add_argument("--queued-only", action="store_true", help="only (c), a queued run with a cold or warm trainer")
    args = p.parse_args()
    if args.queued_only:
        return queued(args.repeats)

    cached = cached_study(args.repeats)
    print(f"(a) cached study to first chart (seconds from process start; median of {args.repeats})")
    for name, secs in cached.items():
        print(f"    {name:38} {secs:6.3f}")
    pages = page_runs(args.repeats)
    print(f"(a') the app's server side (streamlit AppTest, no browser; seconds; median of {args.repeats})")
    for name, secs in pages.items():
        print(f"    {name:38} {secs:6.3f}" if name != "charts on the CNN page" else f"    {name:38} {secs:6.0f}")
    if args.skip_train:
        return
    parts: dict[str, list[float]] = {"interpreter + import torch": [], "adlapp imports": [],
                                     "build card data": [], "first epoch (store row)": [], "total": []}
    for _ in range(args.repeats):                          # interleaved: probes and the real launch alternate
        parts["interpreter + import torch"].append(float(_child(_IMPORT_TORCH)))
        parts["adlapp imports"].append(float(_child(_IMPORT_ADLAPP)))
        parts["build card data"].append(float(_child(_BUILD_DATA)))
        launch = launched_run()
        parts["first epoch (store row)"].append(launch["epoch"])
        parts["total"].append(launch["total"])
    med = {k: statistics.median(v) for k, v in parts.items()}
    other = med["total"] - sum(v for k, v in med.items() if k != "total")
    print(f"(b) `python -m adlapp train cnn --epochs 1` to its first epoch row (median of {args.repeats})")
    for name, secs in med.items():
        if name == "total":
            print(f"    {'other (store, run set-up, model build)':38} {other:6.3f}")
        print(f"    {name:38} {secs:6.3f}")
    queued(args.repeats)


def queued(repeats: int) -> None:
    cold, warm = [], []
    for _ in range(repeats):                               # interleaved, as everything here
        cold.append(queued_run(False))
        warm.append(queued_run(True))
    print(f"(c) a queued run to its first epoch row, as the Train button (median of {repeats})")
    print(f"    {'cold trainer (started by the click)':38} {statistics.median(cold):6.3f}")
    print(f"    {'warm trainer (started when runs went missing)':38} {statistics.median(warm):6.3f}")


if __name__ == "__main__":
    main()
