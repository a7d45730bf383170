"""The Predictions page in a real browser: `streamlit run app.py` + Debian's chromium driven by Playwright.

A fresh server on a store holding one tiny CNN run and one tiny U-Net run (trained for real, with weights); the
page must draw images (<img> elements that loaded) for each run, with no Streamlit exception on the page. The
server fixture follows tests/test_browser.py's (copied, not imported: its helpers are private to that file).
Skips, with the reason, where chromium or playwright is missing (CI installs both, see .ci/run).
"""
from __future__ import annotations

import os
import subprocess
import sys
import urllib.parse
import urllib.request

import pytest
from conftest import ROOT, free_port, stop_process_group, tiny, train_into, wait_healthy

from adlapp.config import EXPERIMENT_INFO
from adlapp.report import run_label
from adlapp.store import RunStore

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]
EXCEPTION = '[data-testid="stException"]'
HEALTH_TIMEOUT_S = 60
UI_TIMEOUT_MS = 60_000           # the first visit loads torch and runs the model on the test split
LOADED_IMAGES = "() => [...document.querySelectorAll('img')].filter(i => i.complete && i.naturalWidth > 0).length"





@pytest.fixture(scope="module")
def server(browser_tools, tmp_path_factory):
    """A store with a tiny CNN run and a tiny U-Net run, and `streamlit run app.py` on it (no cached_runs/);
    yields (url, {"cnn": label, "unet": label}, log path), each label the run's entry in the page's run picker;
    the server's process group is always killed."""
    root = tmp_path_factory.mktemp("browser_predictions")
    store = RunStore(root / "store")
    keys = {"cnn": train_into(store, tiny("cnn/adam"), seeds=(0,))[0],
            "unet": train_into(store, tiny("unet/normal"), seeds=(0,))[0]}
    # The picker is bound to the URL by its entry's text (Streamlit keeps a selectbox's formatted option there).
    rows = store.runs().set_index("key")
    labels = {name: f"{EXPERIMENT_INFO[name].title} · {run_label({**rows.loc[key], 'key': key})} · run store"
              for name, key in keys.items()}
    (root / "no_bundles").mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, ADLAPP_STORE=str(store.root), ADLAPP_CACHED_RUNS=str(root / "no_bundles"),
               PYTHONUNBUFFERED="1")
    log_path = root / "streamlit.log"
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless=true",
           "--server.address=127.0.0.1", f"--server.port={port}", "--browser.gatherUsageStats=false"]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_healthy(url, proc, log_path, HEALTH_TIMEOUT_S)
        yield url, labels, log_path
    finally:
        stop_process_group(proc)


def _settle(page) -> None:
    """Wait until the script run is over (stApp's data-test-script-state leaves 'running')."""
    page.wait_for_function(
        "() => { const a = document.querySelector('[data-testid=\"stApp\"]');"
        " return a && a.getAttribute('data-test-script-state') !== 'running'; }", timeout=UI_TIMEOUT_MS)


def _open(browser_tools, url: str, headline: str, log_path) -> dict:
    """Open `url` in chromium, wait for `headline` and the end of the script run; the page's image count and
    the text of any Streamlit exception."""
    chromium, sync_playwright = browser_tools
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(UI_TIMEOUT_MS)
            page.goto(url)
            try:
                page.get_by_text(headline).first.wait_for()
                page.get_by_role("heading", name="What the network learned").wait_for()
                _settle(page)
                page.wait_for_function(f"() => ({LOADED_IMAGES})() > 0", timeout=UI_TIMEOUT_MS)
            except Exception as e:
                raise AssertionError(f"{e}\n--- page ---\n{page.inner_text('body')[:2000]}\n--- server log ---\n"
                                     f"{log_path.read_text()[-2000:]}") from None
            return {"images": page.evaluate(LOADED_IMAGES), "img_elements": page.locator("img").count(),
                    "exceptions": [e.inner_text() for e in page.locator(EXCEPTION).all()]}
        finally:
            browser.close()


def test_the_page_draws_a_cnn_runs_images(browser_tools, server):
    url, labels, log_path = server
    query = urllib.parse.urlencode({"pred_run": labels["cnn"]})
    seen = _open(browser_tools, f"{url}/predictions?{query}", "Test accuracy at epoch 2", log_path)
    assert seen["exceptions"] == []
    assert seen["img_elements"] > 0 and seen["images"] > 0, seen


def test_the_page_draws_a_unet_runs_masks(browser_tools, server):
    url, labels, log_path = server
    query = urllib.parse.urlencode({"pred_run": labels["unet"]})
    seen = _open(browser_tools, f"{url}/predictions?{query}", "Test pixel accuracy at epoch 3", log_path)
    assert seen["exceptions"] == []
    assert seen["img_elements"] > 0 and seen["images"] > 0, seen
