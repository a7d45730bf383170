"""`python -m adlapp report` on the shipped study, as a fresh clone would run it, and adlapp.study_report."""
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from adlapp import compare as cmp
from adlapp import library, study_report

ROOT = Path(__file__).resolve().parents[1]
CACHED = library.PROJECT_ROOT / "cached_runs"

# `python -m adlapp report …` exactly (runpy, as -m does), then: was torch imported along the way?
_RUN_AND_CHECK_TORCH = (
    "import runpy, sys\n"
    "sys.argv = ['adlapp', *sys.argv[1:]]\n"
    "try:\n"
    "    runpy.run_module('adlapp', run_name='__main__', alter_sys=True)\n"
    "finally:\n"
    "    print('torch imported' if any(m.split('.')[0] == 'torch' for m in sys.modules) else 'no torch',"
    " file=sys.stderr)\n")


def _env() -> dict:
    """A fresh clone's environment: the default cached_runs/, no store named."""
    return {k: v for k, v in os.environ.items() if k not in ("ADLAPP_STORE", "ADLAPP_CACHED_RUNS")}


def adlapp(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "adlapp", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=_env())


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The report of cached_runs/ and an empty store, written by the CLI in a fresh interpreter."""
    tmp = tmp_path_factory.mktemp("report")
    (tmp / "store").mkdir()
    out = tmp / "out"
    proc = subprocess.run([sys.executable, "-c", _RUN_AND_CHECK_TORCH, "report", "--out", str(out), "--store",
                           str(tmp / "store")], cwd=ROOT, capture_output=True, text=True, timeout=180, env=_env())
    return proc, out


def test_the_cli_writes_the_report_without_torch(written):
    proc, out = written
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"wrote .*index\.html \(\d+ files, [\d.]+ MB\) in [\d.]+ s", proc.stdout), proc.stdout
    assert proc.stderr.strip().splitlines()[-1] == "no torch", proc.stderr
    assert (out / "index.html").is_file()


def test_every_figure_is_there_and_referenced(written):
    _, out = written
    page = (out / "index.html").read_text("utf-8")
    for stem in ("figure-1-cnn", "figure-2-unet"):
        for ext in ("png", "svg", "pdf"):
            assert (out / "figures" / f"{stem}.{ext}").stat().st_size > 10_000, (stem, ext)
        assert f'<img src="figures/{stem}.png"' in page and f'href="figures/{stem}.svg"' in page
    for path in (out / "figures").iterdir():
        assert f"figures/{path.name}" in page, path.name
    for ref in re.findall(r'(?:src|href)="([^"#:]+)"', page):      # every local link resolves
        assert (out / ref).is_file(), ref


def test_the_tables_parse_and_are_numeric(written):
    _, out = written
    page = (out / "index.html").read_text("utf-8")
    summary = pd.read_csv(out / "tables" / "test_summary.csv")
    assert {"cnn", "unet"} == set(summary["experiment"]) and (summary["n"] == 5).all()
    assert summary[["mean", "sd", "min", "max"]].dtypes.map(pd.api.types.is_float_dtype).all()
    compared = sorted((out / "tables").glob("compare_*.csv"))
    assert len(compared) == 4                                            # one per course preset
    for path in compared:
        pairs = pd.read_csv(path)
        assert len(pairs) and pd.api.types.is_float_dtype(pairs["p_adjusted"]), path.name
        assert f"tables/{path.name}" in page
    for path in (out / "tables").iterdir():
        assert path.stat().st_size > 0 and f"tables/{path.name}" in page, path.name
    assert "(report)" in page and "Normal" in page and "0.976" in page   # the course table beside the report's


def test_the_reading_and_the_provenance_are_in_the_page(written):
    _, out = written
    page = (out / "index.html").read_text("utf-8")
    tables, _ = study_report.read_sources(None, CACHED)
    # The report reads the course's own runs, as Home does: the separate-budget runs stay out of the course
    # reading (their protocol is the budgets question's).
    lines = study_report.reading(cmp.course_tables(tables))
    assert study_report.markdown_inline(lines[0]) in page
    assert study_report.markdown_inline(lines[-1]) in page
    assert "<strong>CNN, test accuracy after epoch 200</strong>" in page
    assert "**" not in page
    prov = json.loads((out / "provenance.json").read_text("utf-8"))
    shipped = {f"cached_runs/{p.name}" for p in CACHED.glob("*.zip")}
    sources = [(s["name"], s["runs"]) for s in prov["sources"]]
    assert {name for name, _ in sources} <= shipped and sum(n for _, n in sources) == len(tables.runs)
    assert prov["experiments"]["cnn"]["seeds"][:5] == [0, 1, 2, 3, 4] and prov["experiments"]["unet"]["devices"]
    assert prov["command"].startswith("python -m adlapp report --out ")
    name, n = sources[0]
    assert f"{name}: {n} runs" in page and "Data: 53 classes" in page
    assert "The report&#x27;s open questions" in page or "The report's open questions" in page


@pytest.mark.parametrize("args,needle", [
    (["--store", "/no/such/folder"], "--store /no/such/folder: no such folder"),
    (["--variants", "resnet"], "--variants 'resnet': unknown"),
    (["--experiment", "unet", "--variants", "adam"], "no runs of experiment(s) unet of variant(s) cnn/adam"),
])
def test_bad_arguments_are_one_line_and_exit_2(tmp_path, args, needle):
    (tmp_path / "store").mkdir()
    if "--store" not in args:
        args += ["--store", str(tmp_path / "store")]
    proc = adlapp("report", "--out", str(tmp_path / "out"), *args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m adlapp report: error: ") and needle in lines[0], lines
    assert not (tmp_path / "out").exists()


def test_help():
    proc = adlapp("report", "--help")
    assert proc.returncode == 0 and "--out" in proc.stdout and "--no-cached" in proc.stdout


def test_a_restricted_report_as_a_zip():
    """What the Home page's download builds, here for two CNN variants only: one figure, one preset."""
    tables, prov = study_report.read_sources(None, CACHED)
    data = study_report.report_zip(tables, prov, experiments=["cnn"], variants=["cnn/bn-adam", "cnn/sgd"])
    z = zipfile.ZipFile(io.BytesIO(data))
    names = set(z.namelist())
    assert {"study-report/index.html", "study-report/figures/figure-1-cnn.png",
            "study-report/tables/test_summary.csv", "study-report/tables/compare_course-cnn-optimisers-bn.csv"} <= names
    assert not any("unet" in n for n in names)
    summary = pd.read_csv(z.open("study-report/tables/test_summary.csv"))
    assert set(summary["variant"]) == {"cnn/bn-adam", "cnn/sgd"}
    page = z.read("study-report/index.html").decode()
    assert "BN + Adam vs SGD" in page and page.count("Adam vs SGD") == page.count("BN + Adam vs SGD")    # no Adam


def test_markdown_inline_renders_emphasis_and_escapes_the_rest():
    md = study_report.markdown_inline
    assert md("**CNN** is *less* <b> & `a*b*c`") == ("<strong>CNN</strong> is <em>less</em> &lt;b&gt; &amp; "
                                                    "<code>a*b*c</code>")
    assert md("σa² + σb² = 2 * 3 * 4") == "σa² + σb² = 2 * 3 * 4"       # a lone * is not emphasis
