"""Shared fixtures: real bundles made by the real pipeline (trainer → store → export), at tiny sizes.

`course_bundles` trains 2 seeds of every registry variant for a few epochs on tiny built-in data (in this
process, once per test session) and exports them like cached_runs/ would hold them. Tests that view the
bundles point $ADLAPP_CACHED_RUNS at the folder; the app itself never imports torch.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from adlapp.config import VARIANTS, RunConfig, variant

ROOT = Path(__file__).resolve().parents[1]
TINY_SEEDS = (0, 1)


def load_script(name: str):
    """scripts/NAME.py as a module (the scripts are not a package). Registered in sys.modules first: dataclasses
    look their module up while the class is built."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def tiny(name: str) -> RunConfig:
    """The registry variant at test size: CNN 2 epochs on 1 card per class; U-Net 3 epochs with test
    scores after epochs 1, 2 and 3 (the course's 200/400/1000 budgets in miniature) on 4 small images."""
    cfg = variant(name)
    if cfg.experiment == "cnn":
        return replace(cfg, epochs=2, data=replace(cfg.data, train_per_class=1))
    return replace(cfg, epochs=3, eval_at=(1, 2), batch_size=4,
                   data=replace(cfg.data, n_train=4, image_size=32))


def train_into(store, cfg: RunConfig, seeds=TINY_SEEDS) -> list[str]:
    """Enqueue, claim and train (cfg, seed) for real through adlapp.runner, as a queue worker would."""
    from adlapp.runner import run_claimed  # imports torch: only the fixtures train

    keys = []
    for seed in seeds:
        key, _ = store.enqueue(cfg, seed, command="pytest")
        claimed = store.claim(key)
        assert claimed is not None, key
        status = run_claimed(store, key, cfg, seed, device="cpu", flag=SimpleNamespace(set=False))
        assert status == "done", store.get(key)["error"]
        keys.append(key)
    return keys


def tiny_cnn_page(at, seeds: str = "2", epochs: int = 2):
    """Set the CNN page (an AppTest) to the sizes of `tiny()`, so it finds the course_bundles runs."""
    at.text_input(key="cnn_seeds").set_value(seeds)
    at.number_input(key="cnn_epochs").set_value(epochs)
    at.number_input(key="cnn_train_per_class").set_value(1)
    return at.run()


def tiny_unet_page(at, seeds: str = "2"):
    """Set the U-Net page (an AppTest) to the sizes of `tiny()`: budgets 1,2,3 on 4 images of 32 px."""
    at.text_input(key="unet_seeds").set_value(seeds)
    at.text_input(key="unet_budgets").set_value("1,2,3")
    at.number_input(key="unet_n_train").set_value(4)
    at.number_input(key="unet_image_size").set_value(32)
    at.number_input(key="unet_batch").set_value(4)
    return at.run()


def type_into(at, key: str, value):
    """Type `value` into the page's text field (a str) or number field (anything else) with this key."""
    field = at.text_input(key=key) if isinstance(value, str) else at.number_input(key=key)
    field.set_value(value)


def assert_refused(at, message: str, button: str = "cnn_train_btn") -> None:
    """Rerun the page: it names the problem (`message` in an error) and its launch button is disabled."""
    at.run()
    assert not at.exception, at.exception
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert at.button(key=button).disabled


@pytest.fixture(scope="session")
def course_bundles(tmp_path_factory) -> Path:
    """A cached_runs/-like folder with cnn.zip and unet.zip: 2 seeds × every registry variant, trained."""
    from adlapp.bundle import export_store
    from adlapp.store import RunStore

    root = tmp_path_factory.mktemp("course")
    store = RunStore(root / "store")
    for name in VARIANTS:
        train_into(store, tiny(name))
    out = root / "cached_runs"
    export_store(store, out / "cnn.zip", experiment="cnn", provenance={"command": "pytest fixture"})
    export_store(store, out / "unet.zip", experiment="unet", provenance={"command": "pytest fixture"})
    return out


@pytest.fixture
def cached_with_broken(course_bundles, tmp_path) -> Path:
    """The course bundles plus one unreadable bundle, which must be reported and skipped."""
    folder = tmp_path / "cached_runs"
    shutil.copytree(course_bundles, folder)
    (folder / "broken.zip").write_bytes(b"this is not a zip file")
    return folder


@pytest.fixture
def app_env(tmp_path, monkeypatch):
    """An isolated store and an empty cached_runs/ for the app; tests may point the latter elsewhere."""
    monkeypatch.setenv("ADLAPP_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("ADLAPP_WARM_WORKERS", "0")     # no trainer process per page view (test_warm_worker: on)
    empty = tmp_path / "no_bundles"
    empty.mkdir()
    monkeypatch.setenv("ADLAPP_CACHED_RUNS", str(empty))
    monkeypatch.syspath_prepend(str(ROOT))        # `from pages import _common` outside the app's own run
    yield tmp_path
    from adlapp.jobs import WorkerRegistry  # stop trainer processes a failed test left behind

    for pid in WorkerRegistry(tmp_path / "store").live():
        os.kill(pid, signal.SIGTERM)

# -- the real-browser tests (test_browser*.py) share these -------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(url: str) -> bool:
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


def wait_healthy(url: str, proc, log_path, timeout_s: float) -> None:
    """Until the streamlit server `proc` answers its health check; fail with its log's tail if it exits or
    does not answer within `timeout_s`."""
    deadline = time.perf_counter() + timeout_s
    while not healthy(url):
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        if time.perf_counter() > deadline:
            pytest.fail(f"streamlit not healthy after {timeout_s} s:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.1)


def stop_process_group(proc) -> None:
    """SIGTERM the server's process group, SIGKILL it if it lingers."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

