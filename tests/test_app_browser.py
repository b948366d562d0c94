"""The app in a real browser: headless Chromium (Debian's package) driven by Playwright.

Skipped where Playwright or Chromium is missing, unless FRDIFF_REQUIRE_BROWSER=1 (CI sets it),
which makes a missing browser a failure."""

import os
import re

import pytest

from analysis.app_screenshot import CHROMIUM_FLAGS, find_chromium

CHROMIUM = find_chromium()
REQUIRED = os.environ.get("FRDIFF_REQUIRE_BROWSER") == "1"
try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None
if (sync_playwright is None or CHROMIUM is None) and not REQUIRED:
    pytest.skip("needs playwright and a Chromium binary", allow_module_level=True)

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def app_url():
    assert CHROMIUM and sync_playwright, "FRDIFF_REQUIRE_BROWSER=1 but playwright or chromium is missing"
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from app.ui import serve_locally

    demo, url = serve_locally()
    yield url
    demo.close()


@pytest.fixture(scope="module")
def page(app_url, tmp_path_factory):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.goto(app_url)
        yield page
        page.screenshot(path=str(tmp_path_factory.getbasetemp() / "app.png"), full_page=True)
        browser.close()


def test_page_draws_the_default_policy(page):
    expect(page.locator("#policy-status")).to_contain_text("Valid: 25 keyframe steps", timeout=30_000)
    expect(page.locator("#policy-grid .js-plotly-plot")).to_be_visible()


def test_generate_compares_three_runs(page):
    page.locator("#glyphs textarea").fill("A7")
    steps = page.locator("#steps input[type=number]")
    steps.fill("10")
    steps.press("Enter")
    expect(page.locator("#policy-editor textarea")).to_have_value(
        re.compile(r"KFKFKFKFKF"), timeout=30_000)
    expect(page.locator("#policy-status")).to_contain_text("Valid: 5 keyframe steps", timeout=30_000)
    page.locator("#generate").click()
    results = page.locator("#results")
    expect(results).to_contain_text("Fewer steps, same counted compute", timeout=60_000)
    expect(results).to_contain_text("FRDiff (edited policy)")
    expect(page.locator("#spectrum .js-plotly-plot")).to_be_visible()
    for name in ("full", "fast", "fewer"):  # each grid arrives as an image file
        expect(page.locator(f"#img-{name} img").first).to_have_attribute("src", re.compile(r"\S+"))


def test_a_preset_fills_the_editor(page):
    page.locator("#preset input").click()
    page.get_by_role("option", name="whole-block skip, interval 2").click()
    editor = page.locator("#policy-editor textarea")
    expect(editor).to_have_value(re.compile(r"mid_block +KSKSKSKSKS"), timeout=30_000)
    expect(page.locator("#policy-status")).to_contain_text("skipped block-steps", timeout=30_000)
    page.locator("#preset input").click()
    page.get_by_role("option", name="uniform, interval 2").click()
    expect(editor).to_have_value(re.compile(r"mid_block +KFKFKFKFKF"), timeout=30_000)


def test_editing_the_policy_redraws_it_live_and_bad_text_is_explained(page):
    editor = page.locator("#policy-editor textarea")
    text = editor.input_value()
    rows = [line for line in text.splitlines() if not line.startswith("#")]
    editor.fill("\n".join(line.replace("KFKFKFKFKF", "KKKKKFFFFF") for line in rows))
    expect(page.locator("#policy-status")).to_contain_text(
        "Valid: 5 keyframe steps, 0 steps with no network call", timeout=30_000)
    editor.fill("\n".join(rows[:1]).replace("KF", "KX", 1))
    expect(page.locator("#policy-status")).to_contain_text("unknown mode(s) X", timeout=30_000)
    page.locator("#generate").click()
    expect(page.get_by_text("unknown mode(s) X").first).to_be_visible(timeout=30_000)


def test_redundancy_tab_measures_the_model(page):
    page.get_by_role("tab", name="Temporal redundancy").click()
    page.locator("#measure").click()
    expect(page.locator("#redundancy-summary")).to_contain_text("Most active block", timeout=60_000)
    expect(page.locator("#heatmap .js-plotly-plot")).to_be_visible()
