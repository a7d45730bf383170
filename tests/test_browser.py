"""The app in a real browser: `streamlit run app.py` + Debian's chromium driven by Playwright (no browser download).

One scenario over the small real bundles of conftest's `course_bundles`: open Home, click "Open the course
study", wait for the Vega-Lite charts to be drawn, check headings and the course table, then switch pages via
the sidebar nav (Compare: charts; Runs: table page) and check each renders without a Streamlit exception.
Timings go to stdout and .ci/artifacts/browser_timings.json, screenshots to .ci/artifacts/ (git-ignored).
Skips, with the reason, where chromium or playwright is missing (CI installs both, see .ci/run).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import pytest

from conftest import ROOT

ARTIFACTS = ROOT / ".ci" / "artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]
CHART = ".vega-embed svg, .vega-embed canvas"   # Streamlit draws SVG; canvas past 2000 data points per chart
EXCEPTION = '[data-testid="stException"]'
HEALTH_TIMEOUT_S = 60
UI_TIMEOUT_MS = 30_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
            return r.read().decode().strip() == "ok"
    except OSError:
        return False


@pytest.fixture(scope="session")      # session scope: checked before the session-scoped course_bundles trains
def browser_tools():
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("browser test needs Debian's chromium on PATH (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("browser test needs playwright (pip install -r requirements-dev.txt)")
    return chromium, sync_playwright


@pytest.fixture
def server(tmp_path, course_bundles):
    """`streamlit run app.py` on a free port with an isolated store and the conftest bundles as cached_runs/.
    Yields (url, seconds from start to health ok, start time, log path); the process group is always killed."""
    port = _free_port()
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
        deadline = t0 + HEALTH_TIMEOUT_S
        while not _healthy(url):
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            if time.perf_counter() > deadline:
                pytest.fail(f"streamlit not healthy after {HEALTH_TIMEOUT_S} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        yield url, time.perf_counter() - t0, t0, log_path
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _settle(page) -> None:
    """Wait until the script run is over (stApp's data-test-script-state leaves 'running')."""
    page.wait_for_function(
        "() => { const a = document.querySelector('[data-testid=\"stApp\"]');"
        " return a && a.getAttribute('data-test-script-state') !== 'running'; }", timeout=UI_TIMEOUT_MS)


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
                      f"{page.viewport_size['width']} px viewport (panels/legend need a sideways scroll)")


def _renderer(page) -> str:
    return "svg" if page.locator(".vega-embed svg").count() else "canvas"


def test_course_study_in_a_real_browser(browser_tools, server):
    chromium, sync_playwright = browser_tools
    url, health_s, t0, log_path = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "browser_failure.png").unlink(missing_ok=True)      # only a failing run leaves one
    timings = {"server_start_to_health_s": round(health_s, 2)}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(UI_TIMEOUT_MS)
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
            t_click = time.perf_counter()
            button.click()
            page.locator(CHART).first.wait_for(state="visible")
            timings["click_to_first_chart_s"] = round(time.perf_counter() - t_click, 2)
            timings["server_start_to_first_chart_s"] = round(time.perf_counter() - t0, 2)
            for text in ("Figure 1 reborn: CNN variants", "Figure 2 reborn: U-Net variants",
                         "U-Net test pixel accuracy by epoch budget", "Loaded 14 run(s) from 2 bundle(s)"):
                page.get_by_text(text).first.wait_for()
            page.locator(CHART).nth(1).wait_for(state="visible")     # both figures drawn
            _settle(page)
            table = page.get_by_test_id("stTable")
            table.wait_for()            # element components load lazily: present in the DOM a moment later
            assert table.count() == 1
            cells = table.inner_text()
            for row in ("Normal", "Nearest", "ELU", "Nearest+ELU", "(n=2)"):
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
        except Exception:
            try:
                _screenshot(page, "browser_failure.png")
            except Exception:
                pass
            print("--- streamlit log tail ---\n" + log_path.read_text()[-3000:])
            raise
        finally:
            browser.close()
    timings["server_start_to_end_s"] = round(time.perf_counter() - t0, 2)
    (ARTIFACTS / "browser_timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    print("\nbrowser timings:", json.dumps(timings, indent=2))
