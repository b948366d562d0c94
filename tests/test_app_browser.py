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
    from app import inflight

    assert inflight.settle(), "callbacks still running 300 s after the last page"


@pytest.fixture(scope="module")
def playwright():
    """One Playwright for the module (its sync API allows one at a time)."""
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def page(app_url, playwright, tmp_path_factory):
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    page.goto(app_url)
    page.get_by_text("edit the policy cell by cell").click()  # open the editor
    expect(page.locator("#policy-editor textarea")).to_be_visible(timeout=30_000)
    yield page
    page.screenshot(path=str(tmp_path_factory.getbasetemp() / "app.png"), full_page=True)
    browser.close()


def test_page_draws_the_default_policy(page):
    expect(page.locator("#policy-status")).to_contain_text("Valid: 25 keyframe steps", timeout=30_000)
    expect(page.locator("#policy-paint td[data-b]")).to_have_count(50 * 9, timeout=30_000)  # steps x blocks
    expect(page.locator("#policy-paint td[data-u]")).to_have_count(50)  # the uncond row, one per step
    expect(page.locator("#policy-paint [data-speed]")).to_contain_text("counted speedup 1.54x")


def test_generate_compares_every_run_and_the_slider_picks_a_pair(page):
    page.locator("#glyphs textarea").fill("A7")
    steps = page.locator("#steps input[type=number]")
    steps.fill("10")
    steps.press("Enter")
    expect(page.locator("#policy-editor textarea")).to_have_value(
        re.compile(r"KFKFKFKFKF"), timeout=30_000)
    expect(page.locator("#policy-status")).to_contain_text("Valid: 5 keyframe steps", timeout=30_000)
    page.get_by_label("FR only (mixing off)").check()
    page.get_by_label("Auto-FR (shipped policy)").check()  # none ships for 10 steps: a note
    page.locator("#generate").click()
    results = page.locator("#results")
    expect(results).to_contain_text("Fewer steps (", timeout=90_000)
    expect(results).to_contain_text("FRDiff (your policy)")
    expect(results).to_contain_text("FR only (mixing off)")
    expect(page.locator("#compare-notes")).to_contain_text("Auto-FR (shipped policy): not run")
    expect(page.locator("#gallery img")).to_have_count(5, timeout=30_000)
    expect(page.locator("#diffs img")).to_have_count(4, timeout=30_000)
    expect(page.locator("#slider img").first).to_have_attribute("src", re.compile(r"\S+"))
    before = page.locator("#slider img").nth(1).get_attribute("src")
    page.locator("#slider-right input").click()
    page.get_by_role("option", name="FR only (mixing off)").click()
    expect(page.locator("#slider img").nth(1)).not_to_have_attribute("src", before, timeout=30_000)


def test_a_preset_fills_the_editor(page):
    page.locator("#preset input").click()
    page.get_by_role("option", name="whole-block skip, interval 2").click()
    editor = page.locator("#policy-editor textarea")
    expect(editor).to_have_value(re.compile(r"mid_block +KSKSKSKSKS"), timeout=30_000)
    expect(page.locator("#policy-status")).to_contain_text("residual-reuse block-steps", timeout=30_000)
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
    editor.fill("\n".join(rows))  # back to the valid policy for the tabs below
    expect(page.locator("#policy-status")).to_contain_text("Valid", timeout=30_000)


def test_redundancy_tab_measures_the_model_and_the_step_matrix(page):
    page.get_by_role("tab", name="Temporal redundancy").click()
    page.locator("#measure").click()
    expect(page.locator("#redundancy-summary")).to_contain_text("Most active block", timeout=60_000)
    expect(page.locator("#heatmap .js-plotly-plot")).to_be_visible()
    expect(page.locator("#pairwise .js-plotly-plot")).to_be_visible()
    page.locator("#block input").click()
    page.get_by_role("option", name="mid_block").click()
    expect(page.locator("#pairwise")).to_contain_text("mid", timeout=30_000)


def test_frequency_tab_shows_the_spectra_of_the_mixed_scores(page):
    page.get_by_role("tab", name="Frequency").click()
    page.locator("#spectra-run").click()
    expect(page.locator("#spectra-summary")).to_contain_text("low-frequency error", timeout=90_000)
    for plot in ("score-spectra", "lam", "image-spectra"):
        expect(page.locator(f"#{plot} .js-plotly-plot")).to_be_visible()


def test_trajectory_tab_records_once_and_scrubs(page):
    page.get_by_role("tab", name="Trajectory").click()
    page.locator("#trajectory-run").click()
    text = page.locator("#trajectory-text")
    expect(text).to_contain_text("Step 0 of 10", timeout=90_000)
    step = page.locator("#trajectory-step input[type=number]")
    step.fill("3")
    step.press("Enter")
    expect(text).to_contain_text("Step 3 of 10", timeout=10_000)
    for name in ("full", "frdiff"):
        expect(page.locator(f"#x0-{name} img").first).to_have_attribute("src", re.compile(r"\S+"))


def test_painting_the_grid_rewrites_the_text_and_the_counted_speedup(page):
    """A click on a cell cycles its mode, the text grid follows, the counted speedup computed in
    the browser equals frdiff's cost model for the new policy, and undo takes it back."""
    from app.grid import block_costs
    from frdiff import KeyframePolicy, ScoreMixing
    from frdiff.cost import CallCosts

    editor = page.locator("#policy-editor textarea")
    expect(page.locator("#policy-paint td").first).to_be_visible(timeout=30_000)
    before = editor.input_value()
    policy = KeyframePolicy.from_text(before)
    step = next(s for s in range(1, policy.num_steps) if policy.mode(s, 0) in "KFS" and not policy.no_call(s))
    old = policy.mode(step, 0)
    page.locator(f'#policy-paint td[data-s="{step}"][data-b="0"]').click()
    expect(editor).not_to_have_value(before, timeout=30_000)
    after = KeyframePolicy.from_text(editor.input_value())
    assert after.mode(step, 0) == {"K": "F", "F": "S", "S": "K"}[old]
    assert all(after.mode(s, b) == policy.mode(s, b) for s in range(policy.num_steps)
               for b in range(len(policy.blocks)) if (s, b) != (step, 0))
    mixing = ScoreMixing(float(page.locator("#slope input[type=number]").input_value()),
                         float(page.locator("#bias input[type=number]").input_value()))
    expected = CallCosts(**block_costs("glyph-unet")).speedup(after, mixing)
    expect(page.locator("#policy-paint [data-speed]")).to_have_text(f"counted speedup {expected:.2f}x",
                                                                     timeout=30_000)
    edited = editor.input_value()
    page.locator("#policy-paint [data-undo]").click()
    expect(editor).not_to_have_value(edited, timeout=30_000)
    assert KeyframePolicy.from_text(editor.input_value()) == policy
    # the uncond row: a click makes the unconditional CFG half reuse at that step, the text gets
    # its @uncond line, the counted speedup halves that step's call; painting a cell keeps it
    page.locator(f'#policy-paint td[data-u="{step}"]').click()
    expect(editor).to_have_value(re.compile("@uncond"), timeout=30_000)
    reused = KeyframePolicy.from_text(editor.input_value())
    assert reused.uncond_reused(step) and reused.with_uncond(None) == policy
    expected = CallCosts(**block_costs("glyph-unet")).speedup(reused, mixing)
    expect(page.locator("#policy-paint [data-speed]")).to_have_text(f"counted speedup {expected:.2f}x",
                                                                     timeout=30_000)
    reused_text = editor.input_value()
    page.locator(f'#policy-paint td[data-s="{step}"][data-b="0"]').click()
    expect(editor).not_to_have_value(reused_text, timeout=30_000)
    assert KeyframePolicy.from_text(editor.input_value()).uncond == reused.uncond


def test_learning_draws_the_policy_as_it_goes_loads_it_and_stop_loads_nothing(page, monkeypatch):
    """The Learn tab: the tuner's checks redraw the policy, the result lands in the editor with
    its comparison; a Stop during a second run leaves the editor as it was."""
    from app import learn as learning
    from frdiff import KeyframePolicy

    monkeypatch.setattr(learning, "LEARN_LIMITS", learning.LearnLimits(iterations=2, seconds=240))
    editor = page.locator("#policy-editor textarea")
    before = editor.input_value()
    page.get_by_role("tab", name="Learn (Auto-FR)").click()
    target = page.locator("#learn-target input[type=number]")
    target.fill("1.5")
    target.press("Enter")
    page.locator("#learn-run").click()
    status = page.locator("#learn-status")
    expect(status).to_contain_text("Best structured start", timeout=120_000)
    expect(page.locator("#learn-policy .js-plotly-plot")).to_be_visible()
    expect(status).to_contain_text("Learned", timeout=180_000)
    expect(page.locator("#learn-results")).to_contain_text(learning.LEARNED)
    expect(page.locator("#learn-gallery img")).to_have_count(4, timeout=30_000)
    expect(editor).not_to_have_value(before, timeout=30_000)
    learned = editor.input_value()
    assert KeyframePolicy.from_text(learned).num_steps == KeyframePolicy.from_text(before).num_steps
    # a second run (long: many iterations), stopped once it has begun: nothing is loaded, the
    # editor keeps the learned policy
    monkeypatch.setattr(learning, "LEARN_LIMITS", learning.LearnLimits(iterations=500, seconds=240))
    target.fill("2.5")
    target.press("Enter")
    page.locator("#learn-run").click()
    expect(status).not_to_contain_text("Learned", timeout=60_000)
    page.locator("#learn-stop").click()
    page.wait_for_timeout(3_000)
    assert editor.input_value() == learned
    expect(status).not_to_contain_text("Learned")


def _new_page(p, url, width=1280):
    browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
    page = browser.new_page(viewport={"width": width, "height": 1000})
    page.goto(url)
    return browser, page


def test_a_link_opens_its_tab_with_its_settings_and_runs_it(app_url, playwright):
    """?tab=trajectory&model=glyph-dit&policy=uniform:3&seed=5: that tab, those settings, and
    the trajectory recorded with them (the issue's bar); a hostile link gets defaults and a notice."""
    browser, page = _new_page(playwright, app_url + "?tab=trajectory&model=glyph-dit&policy=uniform:3&seed=5&steps=8")
    expect(page.get_by_role("tab", name="Trajectory")).to_have_attribute("aria-selected", "true",
                                                                      timeout=30_000)
    expect(page.locator("#model input")).to_have_value("glyph-dit", timeout=30_000)
    expect(page.locator("#seed input")).to_have_value("5")
    page.get_by_text("edit the policy cell by cell").click()  # the editor's accordion opens closed
    expect(page.locator("#policy-editor textarea")).to_have_value(re.compile(r"^# spec: uniform:3\n"))
    expect(page.locator("#policy-status")).to_contain_text("Valid: 3 keyframe steps", timeout=30_000)
    expect(page.locator("#trajectory-text")).to_contain_text("Step 0 of 8", timeout=90_000)
    page.locator("#copy-link").click()
    expect(page.locator("#link textarea")).to_have_value(re.compile(r"tab=trajectory.*model=glyph-dit.*"
                                                                    r"seed=5.*policy=uniform%3A3"),
                                                         timeout=30_000)
    page.goto(app_url + "?tab=%3Cscript%3Ex%3C%2Fscript%3E&model=sdxl&policy=" + "K" * 30_000)
    notice = page.locator("#link-notice")
    expect(notice).to_contain_text("only partly restored", timeout=30_000)
    expect(notice).to_contain_text("the link's model was not valid")  # `model` renders as code
    assert "<script>" not in notice.inner_html()
    expect(page.locator("#model input")).to_have_value("glyph-unet")
    browser.close()


def test_at_phone_width_every_tab_opens_without_scrolling_the_page_sideways(app_url, playwright):
    browser, page = _new_page(playwright, app_url, width=390)
    expect(page.get_by_role("tab", name="Compare")).to_be_visible(timeout=30_000)  # the tab bar is drawn
    for name in ("Compare", "Temporal redundancy", "Frequency", "Learn (Auto-FR)", "Trajectory",
                 "Hub models (GPU)"):
        tab = page.get_by_role("tab", name=name)
        if not (tab.count() and tab.is_visible()):  # a narrow tab bar folds the rest into "More tabs"
            page.get_by_role("button", name="More tabs").click()
            tab = page.get_by_role("button", name=name, exact=True)
        tab.click()
        expect(page.get_by_role("tab", name=name)).to_have_attribute("aria-selected", "true")
        page.wait_for_timeout(300)
        width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1] + 1, (name, width)
    browser.close()


def test_every_tab_opens_on_a_result_before_any_click(app_url, playwright):
    """The first screen: images, heatmaps and spectra for the defaults, with nothing pressed."""
    browser, page = _new_page(playwright, app_url)
    expect(page.locator("#gallery img")).to_have_count(4, timeout=90_000)
    expect(page.locator("#compare-notes")).to_contain_text("An example for the default settings")
    for name, selector in (("Temporal redundancy", "#heatmap .js-plotly-plot"),
                           ("Frequency", "#score-spectra .js-plotly-plot"),
                           ("Trajectory", "#trajectory-curve .js-plotly-plot"),
                           ("Learn (Auto-FR)", "#learn-policy .js-plotly-plot")):
        page.get_by_role("tab", name=name).click()
        expect(page.locator(selector)).to_have_count(1, timeout=90_000)
    expect(page.locator("#x0-full img")).to_have_attribute("src", re.compile(r"\S+"))
    browser.close()


def test_the_policy_grid_is_edited_from_the_keyboard(app_url, playwright):
    """One tab stop in the grid; arrows move it, a mode's letter sets the cell, and the text follows."""
    # opened by a link (mixing off: every reuse step makes a call; a link's page gets no first
    # views, so nothing else redraws the grid while keys are pressed)
    browser, page = _new_page(playwright, app_url + "?tab=learn&mixing=off")
    expect(page.locator('#policy-paint td[data-s="3"][data-b="0"]')).to_have_class("F", timeout=30_000)
    page.wait_for_timeout(3_000)  # the link's values and their redraws land (the page never goes network-idle)
    cell = page.locator('#policy-paint td[tabindex="0"]')
    expect(cell).to_have_count(1, timeout=30_000)
    assert (cell.get_attribute("data-s"), cell.get_attribute("data-b")) == ("1", "0")
    cell.focus()
    page.keyboard.press("ArrowRight")  # step 2 (a keyframe in uniform:2)
    page.keyboard.press("ArrowRight")  # step 3 (feature reuse)
    focused = page.locator('#policy-paint td[tabindex="0"]')
    expect(focused).to_have_attribute("data-s", "3")
    page.keyboard.press("K")
    expect(page.locator('#policy-paint td[data-s="3"][data-b="0"]')).to_have_class(re.compile(r"\bK\b"),
                                                                                   timeout=30_000)
    page.get_by_text("edit the policy cell by cell").click()
    expect(page.locator("#policy-editor textarea")).to_have_value(re.compile(r"down_blocks\.0\s+KFKK"),
                                                                  timeout=30_000)
    browser.close()


def test_a_cell_at_a_lam_zero_step_shows_its_mode_and_its_edits(app_url, playwright):
    """With score mixing, lam = 0 at the early steps: they make no call, whatever their modes.
    The cells keep their modes, drawn faded (class lam0), so an edit there visibly changes one."""
    browser, page = _new_page(playwright, app_url + "?tab=learn")  # a link: no first views redraw it
    cell = page.locator('#policy-paint td[data-s="3"][data-b="0"]')
    expect(cell).to_have_class(re.compile(r"^F lam0$"), timeout=30_000)
    assert "no call at this step (lam = 0" in cell.get_attribute("title")
    page.wait_for_timeout(3_000)  # the link's values and their redraws land
    cell.click()  # F -> S
    expect(cell).to_have_class(re.compile(r"^S lam0$"), timeout=30_000)
    expect(page.locator('#policy-paint td[data-s="2"][data-b="0"]')).to_have_class("K")  # a keyframe: a call
    browser.close()


def test_a_stale_redraw_does_not_undo_a_grid_edit(app_url, playwright):
    """The page's cheap events run in parallel, so their answers can land out of order. Here the
    edit's round trip (grid -> text -> grid) is held back while a redraw computed from the text
    as it was before the edit (score mixing switched on) lands first: the grid keeps the edit,
    with the redraw's lam."""
    browser, page = _new_page(playwright, app_url + "?tab=learn&mixing=off")
    cell = page.locator('#policy-paint td[data-s="3"][data-b="0"]')
    expect(cell).to_have_class("F", timeout=30_000)
    page.wait_for_timeout(3_000)  # the link's values and their redraws land
    held, holding = [], [True]

    def hold(route):  # the grid's value on its way to the text (only that event sends it)
        if holding[0] and '"short"' in (route.request.post_data or ""):
            held.append(route)
        else:
            route.continue_()

    page.route("**/*", hold)
    cell.click()  # F -> S, drawn at once
    expect(cell).to_have_class("S")
    page.locator("#mixing input").check()  # a redraw from the old text: rows F, lam 0 early on
    expect(cell).to_have_class("S lam0", timeout=30_000)  # its lam, the edit's mode
    page.wait_for_timeout(1_000)
    expect(cell).to_have_class("S lam0")
    assert len(held) == 1
    holding[0] = False
    held[0].continue_()
    page.get_by_text("edit the policy cell by cell").click()
    expect(page.locator("#policy-editor textarea")).to_have_value(re.compile(r"down_blocks\.0\s+KFKS"),
                                                                  timeout=30_000)
    expect(cell).to_have_class("S lam0")
    browser.close()


def test_two_links_opened_together_each_run_their_own_settings(app_url, playwright):
    """A link's run starts with its page's load (in its own group, beside the visitors' runs):
    two pages opened together, on different models, seeds and step counts, each get their own."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
    links = {"glyph-dit": "?tab=trajectory&model=glyph-dit&seed=5&steps=8",
             "glyph-unet": "?tab=trajectory&model=glyph-unet&seed=3&steps=6"}
    pages = {}
    for model, query in links.items():  # the second opens while the first one's run goes on
        pages[model] = browser.new_page(viewport={"width": 1280, "height": 1000})
        pages[model].goto(app_url + query)
    for model, steps in (("glyph-dit", 8), ("glyph-unet", 6)):
        page = pages[model]
        expect(page.locator("#trajectory-text")).to_contain_text(f"Step 0 of {steps}", timeout=90_000)
        expect(page.locator("#model input")).to_have_value(model)
    browser.close()
