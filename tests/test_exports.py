"""adlapp.exports: figures rendered offline with their title, caption and source; tables as numbers."""
import io
import math

import altair as alt
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from adlapp import compare as cmp
from adlapp import exports, library, study_report

CACHED = library.PROJECT_ROOT / "cached_runs"      # the shipped study, whatever $ADLAPP_CACHED_RUNS says
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def study():
    return study_report.read_sources(None, CACHED)


@pytest.fixture(scope="module")
def cnn_figure(study):
    """Figure 1 as the Home page draws it, rendered once as PNG and SVG (~1.5 s)."""
    tables, prov = study
    tables = cmp.course_tables(tables)                      # the report's variants, as Home draws them
    chart = study_report.figure(tables, "cnn")
    caption = study_report.figure_caption("cnn")
    source = study_report.source_line(tables, "cnn", prov)
    files = exports.render(chart, "Figure 1 reborn: CNN variants", caption, source, formats=("png", "svg"))
    return files, caption, source


def test_the_source_line_names_the_bundle_the_runs_and_the_seeds(study):
    """Each bundle the figure's runs come from with its count of them (the shipped study is made in pieces, so
    the bundles are read off the provenance), then the seeds."""
    tables, prov = study
    course = cmp.course_tables(tables)
    keys = set(course.runs.loc[course.runs["experiment"] == "cnn", "key"])
    expected = "; ".join(f"{s.name}, {len(keys & s.keys)} runs" for s in prov.sources if keys & s.keys)
    assert expected.startswith("cached_runs/") and sum(len(keys & s.keys) for s in prov.sources) == len(keys)
    assert study_report.source_line(course, "cnn", prov) == f"{expected}, n = 5 seeds per variant"
    n_unet = int((course.runs["experiment"] == "unet").sum())
    assert study_report.source_line(course, "unet") == f"{n_unet} runs, n = 5 seeds per variant"   # no provenance


def test_the_png_is_a_png_of_a_sensible_size(cnn_figure):
    files, _, _ = cnn_figure
    png = files["png"]
    assert png.startswith(PNG_SIGNATURE)
    img = Image.open(io.BytesIO(png))
    img.load()
    assert 1000 <= img.width <= 4000 and 700 <= img.height <= 4000, img.size    # 3 columns at 2x scale


def test_the_svg_carries_the_title_caption_and_source_as_text(cnn_figure):
    files, caption, source = cnn_figure
    svg = files["svg"].decode()
    assert svg.lstrip().startswith("<svg")
    assert "Figure 1 reborn: CNN variants" in svg
    assert caption.split(";")[0] in svg                      # the caption's first words, wrapped but whole
    assert "Source: " + source.split(",")[0] in svg           # its first bundle; the line wraps like the caption


def test_a_small_chart_renders_with_its_caption_wrapped_into_lines():
    chart = alt.Chart(pd.DataFrame({"x": [1, 2, 3], "y": [3.0, 1.0, 2.0]})).mark_line().encode(x="x:Q", y="y:Q")
    caption = "word " * 60                                   # 300 characters: three wrapped lines
    spec = exports.titled(chart, "T", caption, "here").to_dict()
    assert spec["title"]["text"] == "T"
    lines = spec["title"]["subtitle"]
    assert len(lines) == 4 and lines[-1] == "Source: here" and all(len(s) <= exports.WRAP_CHARS for s in lines)
    assert exports.chart_png(chart, "T", scale=1).startswith(PNG_SIGNATURE)
    assert "Tiny" in exports.chart_svg(chart, "Tiny", "c")
    assert exports.chart_pdf(chart, "T").startswith(b"%PDF")
    with pytest.raises(ValueError, match="unknown format"):
        exports.render(chart, "T", formats=("gif",))


def test_the_test_summary_csv_has_numbers_that_round_trip_and_match_numpy(study):
    tables, _ = study
    df = exports.test_summary_table(tables)
    back = pd.read_csv(io.StringIO(exports.table_csv(df)))
    assert list(back.columns) == ["experiment", "series", "variant", "epoch", "metric", "label", "n", "mean", "sd",
                                  "min", "max"]
    for col in ("epoch", "n", "mean", "sd", "min", "max"):
        assert pd.api.types.is_numeric_dtype(back[col]), col
    assert len(back) == len(df) > 0
    runs = tables.runs.set_index("key")
    t = tables.tests.assign(variant=tables.tests["key"].map(runs["variant"]))
    for r in back.to_dict("records"):
        rows = t[(t["variant"] == r["variant"]) & (t["epoch"] == r["epoch"]) & (t["name"] == r["metric"])]
        v = rows["value"].astype(float).to_numpy()
        # every run scored at that epoch counts once: at the U-Net's 200 and 400 the separate-budget runs (seeds
        # 1000+, 2000+) join the shared runs' scores (the same training, so one series: compare.py); a sweep
        # run that diverged before the epoch has no score and is not in n
        assert r["n"] == len(v) == rows["key"].nunique() >= 2
        assert r["mean"] == pytest.approx(np.mean(v), rel=1e-12)
        assert r["sd"] == pytest.approx(np.std(v, ddof=1), rel=1e-12)
        assert (r["min"], r["max"]) == (v.min(), v.max())
    course = back[back["variant"].isin(["cnn/bn-adam", "cnn/adam", "cnn/sgd"]) & (back["metric"] == "acc")]
    assert list(course["n"]) == [5, 5, 5]             # the course CNN: 5 seeds each, none lost
    acc = back[(back["variant"] == "cnn/bn-adam") & (back["metric"] == "acc")].iloc[0]
    assert acc["label"] == "test accuracy" and round(acc["mean"], 3) == 0.565 and round(acc["sd"], 3) == 0.021


def test_markdown_and_latex_carry_the_values(study):
    tables, _ = study
    df = exports.test_summary_table(tables)
    md, tex = exports.table_markdown(df), exports.table_latex(df, caption="Test scores", ref="tab:test")
    first = df.iloc[0]
    for value in (first["mean"], first["sd"], first["min"], first["max"]):
        assert f"{value:.4g}" in md and f"{value:.4g}" in tex
    assert md.splitlines()[1].startswith("| --- |") and "---:" in md.splitlines()[1]     # numbers right-aligned
    assert len(md.splitlines()) == len(df) + 2
    assert r"pixel\_acc" in tex and r"\toprule" in tex and r"\label{tab:test}" in tex
    assert tex.count(r"\\") == len(df) + 1


def test_hand_made_tables_are_escaped_and_formatted():
    df = pd.DataFrame({"name": ["a|b", "50% & $x_1$"], "n": [3, 4], "mean": [0.123456, math.nan],
                       "ok": [True, False]})
    md = exports.table_markdown(df, digits=3)
    assert "| a\\|b | 3 | 0.123 | yes |" in md and "| 50% & $x_1$ | 4 |  | no |" in md
    assert md.splitlines()[1] == "| --- | ---: | ---: | --- |"
    tex = exports.table_latex(df)
    assert r"50\% \& \$x\_1\$ & 4 &  & no \\" in tex
    assert tex.startswith(r"\begin{tabular}{lrrl}")
    assert exports.table_latex(pd.DataFrame({"v": ["0.5 ± 0.1", "−1"]})).count(r"$\pm$") == 1
    indexed = pd.DataFrame({"x": [1.5]}, index=pd.Index(["Normal"], name="type"))
    assert exports.table_csv(indexed) == "type,x\nNormal,1.5\n"


def test_an_empty_summary_is_an_empty_table_with_the_columns():
    from adlapp.store import RunTables

    df = exports.test_summary_table(RunTables.empty())
    assert df.empty and "mean" in df.columns
    assert pd.read_csv(io.StringIO(exports.table_csv(df))).columns.tolist() == df.columns.tolist()
