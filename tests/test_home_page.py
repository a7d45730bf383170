"""AppTest of pages/home.py: the opened course study stays open across a page switch and a reload (the URL)."""
from conftest import ROOT
from streamlit.testing.v1 import AppTest

APP = str(ROOT / "app.py")


def test_the_opened_study_survives_a_page_switch_and_a_reload(app_env, course_bundles, monkeypatch):
    monkeypatch.setenv("ADLAPP_CACHED_RUNS", str(course_bundles))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.get("vega_lite_chart")                       # closed until asked for
    at.button(key="home_open_btn").click().run()
    assert len(at.get("vega_lite_chart")) == 2
    at.switch_page("pages/runs.py").run()
    at.switch_page("pages/home.py").run()
    assert not at.exception, at.exception
    assert len(at.get("vega_lite_chart")) == 2                 # back from another page: still open

    reload = AppTest.from_file(APP, default_timeout=60)        # a new session with the URL the page set
    reload.query_params["study"] = "open"
    reload.run()
    assert not reload.exception, reload.exception
    assert len(reload.get("vega_lite_chart")) == 2


def test_the_first_visit_builds_the_figures_before_the_click(app_env, course_bundles, monkeypatch):
    """Home loads the bundles and builds both figures (default view) while its visitor looks for the button:
    after the click nothing is built again, so a figure builder that now fails changes nothing on screen."""
    import streamlit as st

    from adlapp import charts

    st.cache_resource.clear()                                  # no figure left over from another test
    monkeypatch.setenv("ADLAPP_CACHED_RUNS", str(course_bundles))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.get("vega_lite_chart") and not at.exception

    def no_building(*args, **kwargs):
        raise AssertionError("a figure was built after the click")
    monkeypatch.setattr(charts, "figure_chart", no_building)
    at.button(key="home_open_btn").click().run()
    assert not at.exception, at.exception
    assert len(at.get("vega_lite_chart")) == 2

    at.checkbox(key="home_log_x").uncheck().run()              # another view is built on demand, as before
    assert at.exception and "built after the click" in str(at.exception[0].value)
