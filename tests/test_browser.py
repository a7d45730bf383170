"""The app in a real browser: `streamlit run app.py` + Debian's chromium driven by Playwright (no browser download).

Each test gets a fresh server with its own empty store (trainer processes the app started are stopped at
teardown) and the small real bundles of conftest's `course_bundles` as cached_runs/.
1. The course study: open Home, click "Open the course study", wait for the Vega-Lite charts to be drawn,
   check headings and the course table, then switch pages via the sidebar nav (Compare: charts; Runs: table
   page) and check each renders without a Streamlit exception.
2. Training from the UI: open /cnn first (a page URL on a fresh server must still get app.py's navigation),
   choose 4 tiny runs through the widgets, train, watch the live progress and chart, reload mid-run (nothing
   may be lost: the runs train on in their own processes), wait for the end, check the plan and Runs pages.
Timings go to stdout and .ci/artifacts/browser_timings.json (merged: each test writes its own keys),
screenshots to .ci/artifacts/ (git-ignored). Skips, with the reason, where chromium or playwright is missing
(CI installs both, see .ci/run).
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import ROOT, TINY_SEEDS, free_port, stop_process_group, wait_healthy

from adlapp.config import VARIANTS

ARTIFACTS = ROOT / ".ci" / "artifacts"
# course_bundles holds every registry variant x TINY_SEEDS: cnn.zip the CNN's, unet.zip the U-Net's
CNN_RUNS = sum(n.startswith("cnn/") for n in VARIANTS) * len(TINY_SEEDS)
ALL_RUNS = len(VARIANTS) * len(TINY_SEEDS)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]
CHART = ".vega-embed svg, .vega-embed canvas"   # Streamlit draws SVG; canvas past 2000 data points per chart
EXCEPTION = '[data-testid="stException"]'
HEALTH_TIMEOUT_S = 60
UI_TIMEOUT_MS = 30_000





@pytest.fixture
def server(tmp_path, course_bundles):
    """`streamlit run app.py` on a free port with an isolated store and the conftest bundles as cached_runs/.
    Yields (url, seconds from start to health ok, start time, log path); the process group is always killed."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, ADLAPP_STORE=str(tmp_path / "store"), ADLAPP_CACHED_RUNS=str(course_bundles),
               PYTHONUNBUFFERED="1")
    log_path = tmp_path / "streamlit.log"
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless=true",
           "--server.address=127.0.0.1", f"--server.port={port}", "--browser.gatherUsageStats=false"]
    with open(log_path, "w") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_healthy(url, proc, log_path, HEALTH_TIMEOUT_S)
        yield url, time.perf_counter() - t0, t0, log_path
    finally:
        stop_process_group(proc)
        _stop_workers(tmp_path / "store")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        return False


def _stop_workers(store_dir: Path, grace_s: float = 15.0) -> None:
    """SIGTERM the trainer processes the app started for this store (start_new_session: the server's process
    group does not include them; the job queue's worker registry names them), SIGKILL what outlives the grace."""
    from adlapp.jobs import WorkerRegistry

    pids = WorkerRegistry(store_dir).live()
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGTERM)        # a worker leads its own session: its children go too
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace_s
    while pids and time.monotonic() < deadline:
        time.sleep(0.2)
        pids = [pid for pid in pids if _alive(pid)]
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _settle(page) -> None:
    """Wait until the script run is over (stApp's data-test-script-state leaves 'running')."""
    page.wait_for_function(
        "() => { const a = document.querySelector('[data-testid=\"stApp\"]');"
        " return a && a.getAttribute('data-test-script-state') !== 'running'; }", timeout=UI_TIMEOUT_MS)


_COUNT_RERUNS = """() => {
  window.__adlReruns = 0;
  if (!window.__adlObserver) {
    window.__adlObserver = new MutationObserver(changes => {
      for (const c of changes) if (c.target.getAttribute('data-test-script-state') === 'running') window.__adlReruns++;
    });
    window.__adlObserver.observe(document.body,
      {attributes: true, subtree: true, attributeFilter: ['data-test-script-state']});
  }
}"""


def _rerun(page, action) -> None:
    """Do `action` (a click, an Enter) and wait for the script run it starts to finish. _settle alone can look
    before that run has begun (the widget's message is still on its way to the server) and then reads the old
    page: a stale button or tick box that the new run removes under the test's hands. So count the transitions
    to 'running' from just before the action, wait for one (an action that changes nothing starts no run: a
    short wait, then carry on), then settle."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.evaluate(_COUNT_RERUNS)
    action()
    try:
        page.wait_for_function("() => window.__adlReruns > 0", timeout=5_000)
    except PlaywrightTimeout:
        pass
    _settle(page)


def _no_exception(page, where: str) -> None:
    boxes = page.locator(EXCEPTION)
    assert boxes.count() == 0, f"Streamlit exception on {where}: {boxes.first.inner_text()[:2000]}"


def _screenshot(page, name: str) -> None:
    """The whole page. Streamlit scrolls inside its own container, not the document, so full_page=True alone
    stops at the viewport: grow the viewport to the tallest scrolled content, shoot, restore."""
    size = page.viewport_size
    height = page.evaluate("() => Math.max(document.documentElement.scrollHeight,"
                           " ...[...document.querySelectorAll('*')].map(e => e.scrollHeight))")
    page.set_viewport_size({"width": size["width"], "height": min(max(height, size["height"]), 12_000)})
    try:
        page.wait_for_timeout(300)                 # let the layout follow the new size
        page.screenshot(path=str(ARTIFACTS / name), full_page=True)
    finally:
        page.set_viewport_size(size)


def _chart_overflow(page) -> list[int]:
    """Per chart: by how many px it sticks out of the main column (Streamlit then scrolls sideways, hiding
    panels and the legend); 0 when it fits."""
    return page.evaluate("""() => [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')].map(c => {
        const col = c.closest('[data-testid="stVerticalBlock"]').getBoundingClientRect();
        const fig = (c.querySelector('svg, canvas') || c).getBoundingClientRect();
        return Math.max(0, Math.round(fig.right - col.right)); })""")


def _warn_overflow(timings: dict, name: str, page) -> None:
    timings[name] = over = _chart_overflow(page)
    if any(px > 2 for px in over):
        warnings.warn(f"{name}: chart(s) wider than the main column by {over} px at "
                      f"{page.viewport_size['width']} px viewport (panels/legend need a sideways scroll)",
                      stacklevel=2)


def _report_failure(page, shot: str, log_path: Path) -> None:
    """Leave what is needed to debug a failed browser run: a screenshot and the server log's tail."""
    try:
        _screenshot(page, shot)
    except Exception:      # the page itself may be gone; the log still helps
        pass
    print("--- streamlit log tail ---\n" + log_path.read_text()[-3000:])


def _save_timings(timings: dict) -> None:
    """Merge into browser_timings.json: each test owns its keys, the other test's keys stay."""
    path = ARTIFACTS / "browser_timings.json"
    try:
        merged = json.loads(path.read_text())
    except (OSError, ValueError):
        merged = {}
    merged.update(timings)
    path.write_text(json.dumps(merged, indent=2) + "\n")


def _renderer(page) -> str:
    return "svg" if page.locator(".vega-embed svg").count() else "canvas"


@contextmanager
def _browser_page(browser_tools, log_path: Path, failure_shot: str):
    """A chromium page (1400 x 1000, UI timeouts) for one test; on failure a screenshot `failure_shot` and
    the server log's tail are saved before the error propagates."""
    chromium, sync_playwright = browser_tools
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / failure_shot).unlink(missing_ok=True)       # only a failing run leaves one
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(UI_TIMEOUT_MS)
            try:
                yield page
            except Exception:
                _report_failure(page, failure_shot, log_path)
                raise
        finally:
            browser.close()


def test_course_study_in_a_real_browser(browser_tools, server):
    url, health_s, t0, log_path = server
    timings = {"server_start_to_health_s": round(health_s, 2)}
    with _browser_page(browser_tools, log_path, "browser_failure.png") as page:
        console_errors = []
        page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
        failed_requests = []            # e.g. external fonts/telemetry: no network here, must not matter
        page.on("requestfailed", lambda r: failed_requests.append(f"{r.url} {r.failure}"))

        # Home: the button, then the study from the bundles
        page.goto(url)
        button = page.get_by_role("button", name="Open the course study")
        button.wait_for()
        timings["server_start_to_home_button_s"] = round(time.perf_counter() - t0, 2)
        _no_exception(page, "Home before the click")
        _settle(page)           # a visitor reads before clicking; the first visit's warm-up runs meanwhile
        timings["server_start_to_home_idle_s"] = round(time.perf_counter() - t0, 2)
        t_click = time.perf_counter()
        button.click()
        page.locator(CHART).first.wait_for(state="visible")
        timings["click_to_first_chart_s"] = round(time.perf_counter() - t_click, 2)
        timings["server_start_to_first_chart_s"] = round(time.perf_counter() - t0, 2)
        for text in ("Figure 1 reborn: CNN variants", "Figure 2 reborn: U-Net variants",
                     "U-Net test pixel accuracy and F1 by epoch budget", f"Loaded {ALL_RUNS} run(s) from 2 bundle(s)",
                     "These runs were trained on data generated in code"):
            page.get_by_text(text).first.wait_for()
        page.locator(CHART).nth(1).wait_for(state="visible")     # both figures drawn
        _settle(page)
        table = page.get_by_test_id("stTable")
        table.wait_for()            # element components load lazily: present in the DOM a moment later
        assert table.count() == 1
        cells = table.inner_text()
        for row in ("Normal", "Nearest Neighbor", "Using ELU", "Nearest and ELU", "(n=2)"):
            assert row in cells, (row, cells)
        assert page.locator(".vega-embed").count() == 2
        _no_exception(page, "Home after opening the study")
        timings["home_renderer"] = _renderer(page)
        _warn_overflow(timings, "home_chart_overflow_px", page)
        _screenshot(page, "browser_home_study.png")

        # Compare via the sidebar nav: charts from the same bundles
        nav = page.get_by_test_id("stSidebarNav")
        t_nav = time.perf_counter()
        nav.get_by_role("link", name="Compare").click()
        page.wait_for_url("**/compare")
        page.get_by_role("heading", name="Compare variants").wait_for()
        page.locator(CHART).first.wait_for(state="visible")
        timings["nav_to_compare_first_chart_s"] = round(time.perf_counter() - t_nav, 2)
        _settle(page)
        _no_exception(page, "Compare")
        timings["compare_renderer"] = _renderer(page)
        _warn_overflow(timings, "compare_chart_overflow_px", page)
        _screenshot(page, "browser_compare.png")

        # Runs via the sidebar nav: the isolated store is empty, so it says so
        t_nav = time.perf_counter()
        nav.get_by_role("link", name="Runs").click()
        page.wait_for_url("**/runs")
        page.get_by_role("heading", name="Runs").first.wait_for()
        page.get_by_text("No runs in the store yet").wait_for()
        page.get_by_role("heading", name="Bundles").wait_for()
        timings["nav_to_runs_rendered_s"] = round(time.perf_counter() - t_nav, 2)
        _settle(page)
        _no_exception(page, "Runs")
        _screenshot(page, "browser_runs.png")
        timings["browser_console_errors"] = console_errors[:20]
        timings["browser_failed_requests"] = failed_requests[:20]
    timings["server_start_to_end_s"] = round(time.perf_counter() - t0, 2)
    _save_timings(timings)
    print("\nbrowser timings:", json.dumps(timings, indent=2))


# -- train from the UI, watch it live, reload mid-run -------------------------------------------------------
LIVE_RUNS = [(v, s) for v in ("cnn/bn-adam", "cnn/adam") for s in (0, 1)]   # SGD unticked, seeds "2"
LIVE_EPOCHS = 10            # ~0.3-0.6 s an epoch on 1 card per class: ≥ 10 s of training, room for a reload
LIVE_DEADLINE_S = 120
CNN_HEADING = "CNN: batch-norm and optimizers"
PROGRESS = re.compile(r"(.+?) seed (\d+): (\w+), epoch (\d+) of (\d+)")   # variant: its key or display name
SEEDS_LABEL = re.compile(r"^seeds: ")
CARDS_LABEL = re.compile(r"training images per class$")
OLD_PLACE_WORDS = {"store": "finished (store)", "cached": "finished (cached_runs/)", "training": "training / queued",
                   "missing": "to train"}


def _place(where: str) -> str:
    """The plan table's words for a planning place (adlapp.report.PLACE_WORDS where the app has them)."""
    from adlapp import report

    return getattr(report, "PLACE_WORDS", OLD_PLACE_WORDS)[where]


def _variant_key(name: str) -> str:
    from adlapp.config import VARIANTS, display_name

    return next((v for v in VARIANTS if name in (v, display_name(v))), name)
RELOAD_FORGETS = ("a reload resets the CNN page to its default study: its widgets keep their values only in "
                  "the Streamlit session (persist_state), which a reload replaces; the runs trained on")


def _progress(page) -> dict[tuple[str, int], tuple[str, int]]:
    """The live view's progress bars: (variant, seed) -> (status, epoch shown)."""
    texts = page.locator('[data-testid="stProgress"]').all_inner_texts()
    return {(_variant_key(m[1]), int(m[2])): (m[3], int(m[4])) for t in texts if (m := PROGRESS.search(t))}


def _summary(page) -> str:
    """The plan's one-line caption: 'N run(s): a finished in the store, b in cached_runs/, ...'."""
    return page.get_by_text(re.compile(r"^\d+ run\(s\): ")).first.inner_text()


def _widget(page, test_id: str, label):
    """The widget whose label is `label` (a string: exactly; a pattern: matching)."""
    text = page.get_by_text(label, exact=True) if isinstance(label, str) else page.get_by_text(label)
    return page.get_by_test_id(test_id).filter(has=text)


def _set_input(page, test_id: str, label, value: str) -> None:
    box = _widget(page, test_id, label).locator("input")
    box.fill(value)
    _rerun(page, lambda: box.press("Enter"))    # Streamlit takes a text/number input's value on Enter (or blur)


def _choose_tiny_study(page) -> None:
    """Through the real widgets: SGD unticked, 2 seeds, LIVE_EPOCHS epochs, 1 training card per class."""
    _rerun(page, _widget(page, "stCheckbox", "SGD (cnn/sgd)").click)
    _set_input(page, "stTextInput", SEEDS_LABEL, "2")
    _set_input(page, "stNumberInput", "epochs", str(LIVE_EPOCHS))
    page.get_by_text("Advanced: training-set size, batch size, engine").click()
    _set_input(page, "stNumberInput", CARDS_LABEL, "1")


def _train(page, n: int) -> None:
    """Tick the cost confirmation if the page asks for one, then 'Train missing runs (n)'."""
    button = page.get_by_role("button", name=f"Train missing runs ({n})")
    button.wait_for()
    _settle(page)
    if button.is_disabled():            # above the threshold: the cost must be acknowledged first
        _rerun(page, page.get_by_test_id("stCheckbox").filter(has=page.get_by_text(re.compile(r"^I understand"))).click)
    button.click()


def _grid(page, index: int = 0) -> list[dict]:
    """The rows of the index-th st.dataframe, read from the accessibility table its canvas grid keeps in the
    DOM (visible rows and columns only; filled a moment after the canvas is drawn)."""
    sel = f'[data-testid="stDataFrame"] >> nth={index}'
    page.locator(sel).locator("tbody tr").first.wait_for(state="attached")
    head, *rows = page.locator(sel).evaluate(
        "g => { const t = g.querySelector('table'); return [[...t.querySelectorAll('thead th')].map(e => "
        "e.textContent), ...[...t.querySelectorAll('tbody tr')].map(r => [...r.querySelectorAll('td')].map("
        "e => e.textContent))]; }")
    return [dict(zip(head, r, strict=False)) for r in rows]     # a row may lack cells the header has


def _wait_grid(page, index: int, ok, what: str, timeout_s: float = 10.0) -> list[dict]:
    """_grid's rows once ok(rows) holds: the accessibility table can trail the canvas by a moment, and while
    it fills a row may still lack some of its cells (a KeyError or a half-read number in ok means "not yet")."""
    def holds(rows: list[dict]) -> bool:
        try:
            return bool(ok(rows))
        except (KeyError, ValueError):
            return False

    deadline = time.monotonic() + timeout_s
    while not holds(rows := _grid(page, index)):
        assert time.monotonic() < deadline, f"{what}: {rows}"
        page.wait_for_timeout(250)
    return rows


class _Watch:
    """Samples the page's progress bars and the store side by side: when each epoch first showed up in the
    store and on the page, and by how many epochs the page trailed the store."""

    def __init__(self, page, store, keys: dict) -> None:
        self.page, self.store, self.keys = page, store, keys
        self.seen_store: dict = {}      # (run, epoch) -> first time the store had it
        self.seen_page: dict = {}       # (run, epoch) -> first time the page showed it
        self.max_epoch_lag = 0
        self.blind: list[tuple[float, float]] = []     # page reloading: epochs stored then are not lag

    def sample(self) -> dict:
        shown = _progress(self.page)                    # the page first: the store can only be further on
        now = time.perf_counter()
        runs = self.store.runs(keys=list(self.keys.values()))
        in_store = {(r["variant"], int(r["seed"])): (r["status"], int(r["last_epoch"] or 0))
                    for r in runs.to_dict("records")}
        for run, (_, e) in in_store.items():
            for k in range(1, e + 1):
                self.seen_store.setdefault((run, k), now)
        for run, (_, e) in shown.items():
            for k in range(1, e + 1):
                self.seen_page.setdefault((run, k), now)
            self.max_epoch_lag = max(self.max_epoch_lag, in_store[run][1] - e)
        self.in_store = in_store
        return shown

    def max_lag_s(self) -> float | None:
        """Seconds from an epoch's first sighting in the store to its first sighting on the page (sampled
        every ~0.3 s), over the epochs the page could show: neither while reloading nor after the run ended."""
        lags = [self.seen_page[k] - self.seen_store[k] for k in self.seen_page if k in self.seen_store
                and not any(a <= self.seen_store[k] <= b for a, b in self.blind)]
        return round(max(lags), 2) if lags else None


def test_train_from_the_ui_watch_live_reload_mid_run(browser_tools, server):
    """Open /cnn first on a fresh server, choose a tiny study through the widgets, train it, watch the live
    view, reload mid-run (the runs train on in their own OS processes: nothing may be lost), wait for the
    end, then check the Runs page. The server fixture stops the trainer processes the app started."""
    from adlapp.store import RunStore

    url, health_s, t0, log_path = server
    store_dir = log_path.parent / "store"          # the fixture's ADLAPP_STORE
    timings: dict = {}
    with _browser_page(browser_tools, log_path, "browser_live_failure.png") as page:

        # a page URL first on a fresh server: it must still run through app.py (sidebar nav present)
        t_open = time.perf_counter()
        page.goto(url + "/cnn")
        page.get_by_role("heading", name=CNN_HEADING).wait_for()
        nav = page.get_by_test_id("stSidebarNav")
        nav.wait_for()
        for link in ("Home", "CNN", "U-Net", "Compare", "Runs"):
            assert nav.get_by_role("link", name=link, exact=True).count() == 1, link
        _settle(page)
        _no_exception(page, "CNN on first visit")
        timings["live_open_cnn_s"] = round(time.perf_counter() - t_open, 2)

        _choose_tiny_study(page)
        _no_exception(page, "CNN after choosing the study")
        assert re.match(r"4 run\(s\): 0 [^,]+, 0 [^,]+, 0 [^,]+, 4 to train", _summary(page)), _summary(page)

        # train; progress at once, a live chart once the first epoch is in the store
        t_click = time.perf_counter()
        _train(page, 4)
        page.get_by_text("Queued 4 run(s)").wait_for()
        page.get_by_test_id("stProgress").first.wait_for()
        timings["live_click_to_progress_s"] = round(time.perf_counter() - t_click, 2)
        page.locator(CHART).first.wait_for(state="visible", timeout=60_000)
        timings["live_click_to_first_chart_s"] = round(time.perf_counter() - t_click, 2)
        store = RunStore(store_dir)
        keys = {(r["variant"], int(r["seed"])): r["key"] for r in store.runs().to_dict("records")}
        assert sorted(keys) == sorted(LIVE_RUNS), keys
        watch = _Watch(page, store, keys)

        deadline = time.monotonic() + LIVE_DEADLINE_S
        before = watch.sample()
        while not any(k >= 1 for _, k in before.values()):
            assert time.monotonic() < deadline, f"no epoch shown: {before}"
            page.wait_for_timeout(200)
            before = watch.sample()
        assert set(before) == set(LIVE_RUNS), before          # every active run has its bar
        assert any(st == "running" for st, _ in before.values()), before
        _no_exception(page, "CNN while training")
        print(f"\nbefore the reload: {before}")

        # reload mid-run: a new Streamlit session; the runs keep training in their own processes
        t_reload = time.perf_counter()
        page.reload()
        page.get_by_role("heading", name=CNN_HEADING).wait_for()
        _settle(page)
        kept_choice = _summary(page).startswith("4 run(s):")
        timings["live_reload_keeps_choice"] = kept_choice
        if not kept_choice:      # the app forgot the study: choose it again, as its user would have to
            warnings.warn(f"{RELOAD_FORGETS}; the page showed {_summary(page)!r}", stacklevel=1)
            _choose_tiny_study(page)
        page.get_by_test_id("stProgress").first.wait_for()
        page.locator(CHART).first.wait_for(state="visible")
        timings["live_reload_to_chart_s"] = round(time.perf_counter() - t_reload, 2)
        _no_exception(page, "CNN after the reload")
        after = watch.sample()
        _screenshot(page, "browser_live_training.png")          # mid-run: progress bars and live chart
        watch.blind.append((t_reload, time.perf_counter()))
        print(f"after the reload:  {after}")
        assert re.match(r"4 run\(s\): \d [^,]+, 0 [^,]+, \d [^,]+, 0 to train", _summary(page)), _summary(page)
        assert after, "nothing training any more right after the reload: make LIVE_EPOCHS larger"
        for run, (_, k) in before.items():          # nothing lost: each run is as far or further on
            if run in after:
                assert after[run][1] >= k, (run, before, after)
            else:
                assert watch.in_store[run][0] == "done", (run, before, after, watch.in_store)
        page.get_by_role("button", name=re.compile(                                     # no re-queueing
            r"^(Train missing runs: none missing|Training \d+ run)")).first.wait_for()
        _wait_grid(page, 0, lambda rows: len(rows) == 4 and {r["where"] for r in rows} <= {
            _place("training"), _place("store")}, "after the reload the plan should see the runs")

        # the end: every bar gone, the store done, the page re-planned once by itself
        while watch.sample() or any(st != "done" for st, _ in watch.in_store.values()):
            assert time.monotonic() < deadline, f"not finished after {LIVE_DEADLINE_S} s: {watch.in_store}"
            page.wait_for_timeout(250)
        page.get_by_text(re.compile(r"^4 run\(s\): 4 ")).wait_for()
        timings["live_click_to_all_finished_s"] = round(time.perf_counter() - t_click, 2)
        timings["live_max_epoch_lag"] = watch.max_epoch_lag
        timings["live_max_lag_s"] = watch.max_lag_s()
        assert len(store.runs()) == 4 and set(store.runs()["last_epoch"]) == {LIVE_EPOCHS}
        _settle(page)
        assert page.locator(CHART).count() >= 1
        _no_exception(page, "CNN after training")
        t_grid = time.perf_counter()
        _wait_grid(page, 0, lambda rows: sorted((_variant_key(r["variant"]), int(r["seed"])) for r in rows) ==
            sorted(LIVE_RUNS) and {(r["where"], r["status"]) for r in rows} == {(_place("store"), "done")},
            "the plan table should list the 4 runs as finished (store), done")
        timings["live_plan_grid_catch_up_s"] = round(time.perf_counter() - t_grid, 2)
        _warn_overflow(timings, "live_cnn_chart_overflow_px", page)
        _screenshot(page, "browser_live_finished.png")

        # Runs: the four runs, done
        t_nav = time.perf_counter()
        nav.get_by_role("link", name="Runs").click()
        page.wait_for_url("**/runs")
        page.get_by_role("button", name="Export 4 finished run(s) as a bundle").wait_for()
        _settle(page)
        _no_exception(page, "Runs after training")
        done = ("done", str(LIVE_EPOCHS), str(LIVE_EPOCHS))
        _wait_grid(page, 0, lambda rows: sorted((_variant_key(r["variant"]), int(r["seed"])) for r in rows) ==
            sorted(LIVE_RUNS) and {(r["status"], r["epoch"], r["epochs"]) for r in rows} == {done},
            "the Runs table should list the 4 runs as done")
        page.get_by_text("trainer processes alive:").first.wait_for()
        timings["live_nav_to_runs_s"] = round(time.perf_counter() - t_nav, 2)
    _save_timings(timings)
    print("\nlive timings:", json.dumps(timings, indent=2))
    assert kept_choice, RELOAD_FORGETS


# -- one walk: train, watch, reload, import, cancel a run that started, a Compare preset through a reload -------
WALK_EPOCHS = 60            # two runs one after the other (concurrency 1 on CPU): the second trains long enough
WALK_DEADLINE_S = 300       # a bound, not a target: the walk takes ~45-75 s; a loaded 2-core CI box needs slack
WALK_PRESET = "Course: U-Net variants at 200/400/1000"


def _choose_option(page, test_id: str, label: str, option: str) -> None:
    """Open a selectbox/multiselect by its label and click one option in its list. Inside a polling fragment
    (the Runs page's cancel picker) a tick can redraw the widget and close its list between the two clicks:
    then open it again, for up to UI_TIMEOUT_MS."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    deadline = time.monotonic() + UI_TIMEOUT_MS / 1000
    while True:
        _widget(page, test_id, label).get_by_role("combobox").first.click()
        try:
            page.get_by_role("option", name=option).first.click(timeout=3_000)
            break
        except PlaywrightTimeout:
            assert time.monotonic() < deadline, f"option {option!r} of {label!r} never clickable"
            page.keyboard.press("Escape")
    _rerun(page, lambda: page.keyboard.press("Escape"))


def test_walk_train_reload_import_cancel_compare(browser_tools, server, course_bundles):
    """CNN: 2 tiny Adam runs (one trains, one waits) → 'training' on CNN and Runs → reload mid-run keeps the
    choices and stays live → Runs: import a bundle, shown at once → the waiting run, picked for cancelling while
    queued, starts: still one entry; cancel it → Compare: a preset survives a reload. No traceback in the log."""
    from adlapp.store import RunStore

    url, _, t0, log_path = server
    store = RunStore(log_path.parent / "store")
    timings: dict = {}
    with _browser_page(browser_tools, log_path, "browser_walk_failure.png") as page:
        deadline = time.monotonic() + WALK_DEADLINE_S
        page.goto(url + "/cnn")
        page.get_by_role("heading", name=CNN_HEADING).wait_for()
        _settle(page)
        for box in ("BN + Adam (cnn/bn-adam)", "SGD (cnn/sgd)"):
            _rerun(page, _widget(page, "stCheckbox", box).click)
        _set_input(page, "stTextInput", SEEDS_LABEL, "2")
        _set_input(page, "stNumberInput", "epochs", str(WALK_EPOCHS))
        page.get_by_text("Advanced: training-set size, batch size, engine").click()
        _set_input(page, "stNumberInput", CARDS_LABEL, "1")
        assert _summary(page).endswith("2 to train."), _summary(page)
        _train(page, 2)
        page.get_by_text("Queued 2 run(s)").wait_for()
        page.get_by_text(re.compile(r"seed \d: running, epoch")).first.wait_for(timeout=60_000)
        keys = {int(r["seed"]): r["key"] for r in store.runs().to_dict("records")}
        assert sorted(keys) == [0, 1], keys
        _no_exception(page, "CNN while training")

        # reload mid-run: the choices come back from the URL and the view is still live
        page.reload()
        page.get_by_role("heading", name=CNN_HEADING).wait_for()
        _settle(page)
        assert _summary(page).startswith("2 run(s): "), _summary(page)
        page.get_by_text(re.compile(r"seed \d: running, epoch")).first.wait_for()
        _no_exception(page, "CNN after the reload")
        _screenshot(page, "browser_walk_cnn_training.png")
        timings["walk_training_reloaded_s"] = round(time.perf_counter() - t0, 2)

        # Runs: the active runs, running first; pick the waiting run for cancelling while it is queued
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Runs").click()
        page.wait_for_url("**/runs")
        page.get_by_role("heading", name="Runs").first.wait_for()
        _settle(page)
        _wait_grid(page, 0, lambda r: len(r) == 2 and r[0]["status"] == "running", "running first")
        assert store.get(keys[1])["status"] == "queued", "the second run should still wait: more epochs"
        label = f"Adam seed 1 · {keys[1][:8]}"
        _choose_option(page, "stMultiSelect", "cancel runs (queued or running)", label)

        # import a bundle: the table, the export count and the pickers show its runs at once
        page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
            str(course_bundles / "cnn.zip"))
        page.get_by_role("button", name="Import bundle").click()
        page.get_by_text(f"Imported {CNN_RUNS} new run(s).").wait_for()
        _settle(page)
        assert page.get_by_text("No runs in the store yet").count() == 0
        page.get_by_role("button", name=re.compile(rf"Export ({CNN_RUNS}|{CNN_RUNS + 1}) finished run\(s\)")).wait_for()
        # the grid draws only the rows in view (virtualised): the imported ones must be among them at once
        _wait_grid(page, 0, lambda r: sum(x["source"] == "bundle:cnn.zip" for x in r) >= min(CNN_RUNS, 8),
                   f"the {CNN_RUNS} imported runs at once")
        _no_exception(page, "Runs after the import")

        # the queued run starts: the picked entry stays one chip, then it is cancelled
        while store.get(keys[1])["status"] != "running":
            assert time.monotonic() < deadline, store.runs()[["key", "status", "last_epoch"]]
            page.wait_for_timeout(250)
        page.wait_for_timeout(2 * 1000)                  # two ticks of the live fragment
        cancel_box = _widget(page, "stMultiSelect", "cancel runs (queued or running)")
        chips = cancel_box.locator("[data-tag]").all_inner_texts()
        assert chips == [label], chips
        _no_exception(page, "Runs after the run started")
        page.get_by_role("button", name="Cancel selected").click()
        page.get_by_text(re.compile(r"Adam seed 1 · .*cancel")).first.wait_for()
        while store.get(keys[1])["status"] != "cancelled":
            assert time.monotonic() < deadline, store.get(keys[1])
            page.wait_for_timeout(250)
        _settle(page)
        _no_exception(page, "Runs after cancelling")
        _screenshot(page, "browser_walk_runs.png")
        timings["walk_cancelled_s"] = round(time.perf_counter() - t0, 2)

        # Compare: a preset survives a reload (it is in the URL)
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Compare").click()
        page.wait_for_url("**/compare")
        page.get_by_role("heading", name="Compare variants").wait_for()
        _settle(page)
        _choose_option(page, "stSelectbox", "Preset", WALK_PRESET)
        page.locator(CHART).first.wait_for(state="visible")
        page.wait_for_function("() => decodeURIComponent(location.search).includes('sig_preset')")
        page.reload()
        page.get_by_role("heading", name="Compare variants").wait_for()
        _settle(page)
        preset = _widget(page, "stSelectbox", "Preset")
        shown = preset.evaluate("e => e.innerText + ' ' + [...e.querySelectorAll('input')].map(i => i.value)"
                                ".join(' ')")
        assert WALK_PRESET in shown, shown
        page.locator(CHART).first.wait_for(state="visible")
        _no_exception(page, "Compare after the reload")
        _screenshot(page, "browser_walk_compare.png")
        timings["walk_end_s"] = round(time.perf_counter() - t0, 2)
        log = log_path.read_text()
        assert "Traceback" not in log, log[-3000:]
    _save_timings(timings)
    print("\nwalk timings:", json.dumps(timings, indent=2))


# -- the live curves fit the page on a laptop and on a phone ----------------------------------------------------
FIT_VIEWPORTS = (1280, 400)
FIT_QUERY = "cnn_seeds=2&cnn_epochs=2&cnn_train_per_class=1"      # conftest's tiny(): the course_bundles runs
_CHART_WIDTHS = """() => [...document.querySelectorAll('.vega-embed')].map(e => {
    const parent = e.parentElement, fig = e.querySelector('svg, canvas') || e;
    const col = e.closest('[data-testid="stVerticalBlock"]') || parent;
    return {embed: Math.round(e.getBoundingClientRect().width), embed_scroll: e.scrollWidth,
            figure: Math.round(fig.getBoundingClientRect().width), parent: parent.clientWidth,
            column: Math.round(col.getBoundingClientRect().width),
            past_column: Math.round(fig.getBoundingClientRect().right - col.getBoundingClientRect().right)}; })"""


def test_curves_fit_their_container_at_1280_and_400_px(browser_tools, server):
    """The CNN page's live curves (the course bundles' runs, nothing trained) at a 1280 px and a 400 px wide
    viewport: no chart, its drawing (svg/canvas) included, is wider than the element Streamlit puts it in or than
    the main column, so no panel or legend needs a sideways scroll. Widths go to browser_timings.json."""
    url, _, t0, log_path = server
    timings: dict = {}
    with _browser_page(browser_tools, log_path, "browser_fit_failure.png") as page:
        for width in FIT_VIEWPORTS:
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(f"{url}/cnn?{FIT_QUERY}")
            page.get_by_role("heading", name=CNN_HEADING).wait_for()
            page.locator(CHART).first.wait_for(state="visible")
            _settle(page)
            page.wait_for_timeout(300)                 # vega-embed lays out after the element appears
            _no_exception(page, f"CNN at {width} px")
            timings[f"fit_cnn_{width}px"] = sizes = page.evaluate(_CHART_WIDTHS)
            _screenshot(page, f"browser_fit_cnn_{width}px.png")
            assert sizes, "no chart drawn"
            for s in sizes:
                assert s["figure"] <= s["parent"] + 1 and s["embed_scroll"] <= s["parent"] + 1, (width, s)
                assert s["past_column"] <= 1, (width, s)
    timings["fit_end_s"] = round(time.perf_counter() - t0, 2)
    _save_timings(timings)
    print("\nfit widths:", json.dumps(timings, indent=2))


def test_home_figures_fit_at_1280_px_and_wrap_at_400_px(browser_tools, server):
    """Home's course figures (the course bundles) at 1280 px with every variant side by side, and at 400 px
    with one variant per line (the "variants per line" choice, kept in the URL): no figure wider than its
    container or the main column. Screenshots under .ci/artifacts/."""
    url, _, t0, log_path = server
    timings: dict = {}
    with _browser_page(browser_tools, log_path, "browser_home_fit_failure.png") as page:
        for width, per_line in ((1280, "all"), (400, "1")):
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(f"{url}/?study=open&home_per_line={per_line}")
            page.locator(CHART).first.wait_for(state="visible")
            _settle(page)
            page.wait_for_timeout(300)
            _no_exception(page, f"Home at {width} px")
            timings[f"fit_home_{width}px"] = sizes = page.evaluate(_CHART_WIDTHS)
            _screenshot(page, f"browser_fit_home_{width}px.png")
            assert len(sizes) >= 2, "the two course figures are not drawn"
            for s in sizes:
                assert s["figure"] <= s["parent"] + 1 and s["embed_scroll"] <= s["parent"] + 1, (width, s)
                assert s["past_column"] <= 1, (width, s)
    timings["home_fit_end_s"] = round(time.perf_counter() - t0, 2)
    _save_timings(timings)

