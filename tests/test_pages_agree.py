"""The pages agree with each other: one colour per variant on every chart of the CNN, U-Net, Home and Compare
pages, and the same adjusted p for the same pair and family on Home (the reading) and Compare (the presets).

Both run the real app headless (AppTest) on bundles made by the real pipeline (tests/conftest.py).
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, tiny, tiny_cnn_page, tiny_unet_page, train_into
from streamlit.testing.v1 import AppTest

from adlapp import compare as cmp
from adlapp import report
from adlapp.config import VARIANTS, display_name
from adlapp.store import RunTables

APP = str(ROOT / "app.py")
NAMES = {display_name(v) for v in VARIANTS}


def app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=90)


def specs(at: AppTest) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("vega_lite_chart")]


def colour_scales(spec, found=None) -> list[dict[str, str]]:
    """Every nominal colour scale with an explicit domain and range in a Vega-Lite spec: {label: colour}."""
    found = [] if found is None else found
    if isinstance(spec, dict):
        colour = spec.get("encoding", {}).get("color", {}) if isinstance(spec.get("encoding"), dict) else {}
        scale = colour.get("scale", {}) if isinstance(colour, dict) else {}
        if isinstance(scale.get("domain"), list) and isinstance(scale.get("range"), list):
            found.append(dict(zip(scale["domain"], scale["range"], strict=True)))
        for v in spec.values():
            colour_scales(v, found)
    elif isinstance(spec, list):
        for v in spec:
            colour_scales(v, found)
    return found


def variant_colours(at: AppTest) -> list[dict[str, str]]:
    """The colour scales of the page's charts that colour variants (course display names)."""
    return [s for spec in specs(at) for s in colour_scales(spec) if set(s) & NAMES]


def test_one_colour_per_variant_on_every_page(app_env, course_bundles, monkeypatch):
    monkeypatch.setenv("ADLAPP_CACHED_RUNS", str(course_bundles))
    seen: dict[str, list[dict[str, str]]] = {}

    at = app().run()                                                   # Home: the two course figures
    at.button(key="home_open_btn").click().run()
    assert not at.exception, at.exception
    seen["home"] = variant_colours(at)

    at.switch_page("pages/cnn.py").run()                               # CNN: live curves of the cached runs
    tiny_cnn_page(at)
    assert not at.exception, at.exception
    seen["cnn"] = variant_colours(at)

    at.switch_page("pages/unet.py").run()                              # U-Net: the same, at the tiny budgets
    tiny_unet_page(at)
    assert not at.exception, at.exception
    seen["unet"] = variant_colours(at)

    at.switch_page("pages/compare.py").run()                           # Compare: strip plot and curve test
    at.toggle(key="sig_curve").set_value(True).run()
    assert not at.exception, at.exception
    seen["compare cnn"] = variant_colours(at)
    at.selectbox(key="sig_preset").set_value("Course: U-Net variants at 200/400/1000").run()
    assert not at.exception, at.exception
    seen["compare unet"] = variant_colours(at)
    at.selectbox(key="sig_experiment").set_value("cnn").run()          # every CNN variant, the questions' too
    at.multiselect(key="sig_variants").set_value([v for v in VARIANTS if v.startswith("cnn/")]).run()
    assert not at.exception, at.exception
    seen["compare every cnn variant"] = variant_colours(at)

    for page, scales in seen.items():
        assert scales, f"no variant colours on {page}"
    assert len(seen["compare cnn"]) >= 2                               # the strip plot and the curve test
    colour: dict[str, set[str]] = {}
    for scales in seen.values():
        for scale in scales:
            for name, c in scale.items():
                colour.setdefault(name, set()).add(c)
    assert set(colour) == NAMES                                        # every registry variant was drawn
    assert all(len(c) == 1 for c in colour.values()), colour           # ... in one colour everywhere
    for exp in ("cnn", "unet"):                                        # and variants side by side differ
        mine = [colour[display_name(v)].pop() for v in VARIANTS if v.startswith(exp + "/")]
        assert len(set(mine)) == len(mine)


@pytest.fixture(scope="module")
def three_seeds(course_bundles, tmp_path_factory) -> Path:
    """The course bundles plus a bundle with seed 2 of every registry variant: 3 seeds, so pairs are tested."""
    from adlapp.bundle import export_store
    from adlapp.store import RunStore

    root = tmp_path_factory.mktemp("three_seeds")
    folder = root / "cached_runs"
    shutil.copytree(course_bundles, folder)
    store = RunStore(root / "store")
    for name in VARIANTS:
        train_into(store, tiny(name), seeds=(2,))
    export_store(store, folder / "seed2.zip", provenance={"command": "pytest fixture"})
    return folder


def reading_pairs(bullets: list[str]) -> list[tuple[str, str, str, str, int]]:
    """(bullet head, a, b, adjusted p text, family size) for every pair the Home reading gives an adjusted p."""
    name = "|".join(re.escape(n) for n in sorted(NAMES, key=len, reverse=True))
    pair = re.compile(rf"(?P<a>{name})(?: vs | is higher than | is lower than )(?P<b>{name})(?::| \()"
                      rf"[^;]*?adjusted p (?P<p>= [0-9.]+|< 0\.001) \(Holm over (?P<m>\d+) pairs?\)")
    budget = re.compile(r"adjusted p (?P<p>= [0-9.]+|< 0\.001) \(Holm over (?P<m>\d+) pairs?\)")
    out = []
    head = ""
    for b in bullets:
        head = b.split("**")[1] if b.startswith("**") else head
        if re.match(r"Normal, \d+ vs \d+ epochs", head):             # one variant at two budgets: no "a vs b"
            out += [(head, "Normal", "Normal", m["p"].lstrip("= "), int(m["m"])) for m in budget.finditer(b)]
            continue
        out += [(head, m["a"], m["b"], m["p"].lstrip("= "), int(m["m"])) for m in pair.finditer(b)]
    return out


def compare_table(at: AppTest, preset: str) -> pd.DataFrame:
    at.selectbox(key="sig_preset").set_value(preset).run()
    assert not at.exception, at.exception
    table = next(df.value for df in at.dataframe if "pair (Δ = a − b)" in df.value.columns)
    return table.set_index("pair (Δ = a − b)")


def test_home_and_compare_give_the_same_adjusted_p_for_the_same_pair_and_family(app_env, three_seeds,
                                                                                 monkeypatch):
    monkeypatch.setenv("ADLAPP_CACHED_RUNS", str(three_seeds))
    at = app().run()
    at.button(key="home_open_btn").click().run()
    assert not at.exception, at.exception
    reading = next(m.value for m in at.markdown if m.value.startswith("- **CNN, test accuracy"))
    bullets = [line[2:] for line in reading.splitlines()]
    said = reading_pairs(bullets)

    at.switch_page("pages/compare.py").run()
    assert not at.exception, at.exception
    checked = set()
    for head, a, b, p, m in said:
        if head.startswith("CNN"):
            table = compare_table(at, "Course: CNN optimisers & BN")
            row, family = table.loc[f"{a} vs {b}"], "epoch 2"
        elif head.startswith("U-Net"):
            epoch = re.search(r"after epoch (\d+)", head)[1]
            table = compare_table(at, "Course: U-Net variants at 200/400/1000")
            row, family = table.loc[f"{a} @ {epoch} vs {b} @ {epoch}"], f"epoch {epoch}"
        elif head.startswith("Normal"):
            table = compare_table(at, "Course: normal 200 vs 1000")
            (row,) = [r for _, r in table.iterrows()]
            family = "same variant, two epochs"
        else:
            assert "ELU gives a lower test loss" in head
            table = compare_table(at, "Course: ELU vs ReLU test loss at 200")
            row, family = table.loc[f"{a} vs {b}"], "chosen pairs"
        assert row["p adjusted (Holm)"] == p, (head, a, b)
        assert row["family (pairs corrected over)"] == f"{family} · {report.plural(m, 'pair')}", (head, a, b)
        checked.add(head.split(",")[0] if not head.startswith("U-Net") else head)
    # every family the reading tests was checked: CNN, the U-Net budgets 1-3, Normal 3 vs 1, the ELU claim
    assert len(checked) == 6, checked


def test_the_reading_is_the_presets_analysis(three_seeds):
    """The numbers behind the words: every family the Home reading reads is the Compare preset's family, pair
    for pair, with the same adjusted p (exactly) and family size."""
    from adlapp.library import load_cached

    tables: RunTables = load_cached(three_seeds).tables
    findings = cmp.course_study(tables)
    assert len(findings) == 6
    opts = cmp.options(tables)
    for f in findings:
        res = cmp.analyse(tables, cmp.resolve(f.preset, opts)[1])
        mine = res.pairs[res.pairs["family"] == f.family]
        assert len(mine) and mine["tested"].all()
        pd.testing.assert_frame_equal(f.pairs, mine)


def test_the_compare_cli_gives_the_homes_families_and_adjusted_p(three_seeds, monkeypatch, capsys, tmp_path):
    """`python -m adlapp compare --preset P --json` (store + cached_runs/, as the Compare page reads them)
    reports, for every family the Home reading reads, the same pairs, tests, family sizes and adjusted p."""
    from adlapp import cli
    from adlapp.library import load_cached

    monkeypatch.setenv("ADLAPP_CACHED_RUNS", str(three_seeds))
    findings = cmp.course_study(load_cached(three_seeds).tables)
    empty_store = tmp_path / "store"
    empty_store.mkdir()
    for f in findings:
        experiment = cmp.PRESETS[f.preset].selection.experiment
        assert cli.main(["compare", "--experiment", experiment, "--preset", f.preset, "--store", str(empty_store),
                         "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        (family,) = [fam for fam in out["families"] if fam["name"] == f.family]
        want = f.pairs.to_dict("records")
        assert [(p["a_label"], p["b_label"]) for p in family["pairs"]] == [(r["a"], r["b"]) for r in want]
        for got, r in zip(family["pairs"], want, strict=True):
            assert got["test"] == r["test"] and got["p_adj"] == pytest.approx(r["p_adjusted"], rel=1e-12)
            assert got["significant"] == r["significant"] and family["size"] == r["family_size"]
        by_label = {g["label"]: g for g in out["groups"]}
        for g in f.comparison.groups:
            assert by_label[g.label]["seeds"] == list(g.seeds) and by_label[g.label]["n"] == g.n
