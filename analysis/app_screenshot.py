"""Screenshots of the app's tabs for the README, taken in headless Chromium (Playwright).

    python -m analysis.app_screenshot [--out assets/app] [--preset "uniform, interval 2"]

Serves the app on localhost, types glyphs, picks a policy preset and, on the defaults
(glyph-unet, DDIM 50 steps), presses each tab's button and saves OUT.png (Compare, with every
method ticked), OUT-ab.png (uniform:2 against uniform:4), OUT-redundancy.png, OUT-frequency.png,
OUT-learn.png (a learned 2x policy) and OUT-trajectory.png (scrubbed to step 12) once its
results are shown. Needs `pip install playwright` and a Chromium binary (Debian: `apt-get install chromium`).
"""

from __future__ import annotations

import argparse
import os
import shutil

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def find_chromium() -> str | None:
    """A Chromium binary: $FRDIFF_CHROMIUM, else `chromium` or `chromium-browser` on the PATH."""
    return next((p for p in (os.environ.get("FRDIFF_CHROMIUM"), shutil.which("chromium"),
                             shutil.which("chromium-browser")) if p), None)


def _scrub_to_12(page, expect) -> None:
    step = page.locator("#trajectory-step input[type=number]")
    step.fill("12")
    step.press("Enter")
    expect(page.locator("#trajectory-text")).to_contain_text("Step 12", timeout=30_000)


# tab, its button, the element that shows its result, a text that appears once it is done,
# what to do before the screenshot, the file's suffix
TABS = [("A/B: two policies", "#ab-run", "#ab-summary", "differ most", None, "ab"),
        ("Temporal redundancy", "#measure", "#redundancy-summary", "Most active", None, "redundancy"),
        ("Frequency", "#spectra-run", "#spectra-summary", "error", None, "frequency"),
        ("Learn (Auto-FR)", "#learn-run", "#learn-status", "Learned", None, "learn"),
        ("Trajectory", "#trajectory-run", "#trajectory-text", "Step 0", _scrub_to_12, "trajectory")]


def _shoot(page, path: str) -> None:
    page.wait_for_timeout(1500)  # let the plots finish drawing
    page.screenshot(path=path, full_page=True)
    print(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="assets/app")
    ap.add_argument("--glyphs", default="AK7R3X")
    ap.add_argument("--preset", default="uniform, interval 2")
    args = ap.parse_args()
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from playwright.sync_api import expect, sync_playwright

    from app.ui import serve_locally

    chromium = find_chromium()
    if chromium is None:
        raise SystemExit("no Chromium found: install it (Debian: apt-get install chromium) or set FRDIFF_CHROMIUM")
    # the screenshots show what the buttons make for these settings: no first views, whose
    # notes would also satisfy the markers waited for below
    os.environ["FRDIFF_APP_FIRST_VIEWS"] = "0"
    demo, url = serve_locally()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.goto(url)
            page.locator("#glyphs textarea").fill(args.glyphs)
            page.locator("#preset input").click()
            page.get_by_role("option", name=args.preset).click()
            expect(page.locator("#policy-status")).to_contain_text("Valid", timeout=30_000)
            for box in page.locator("#methods input[type=checkbox]").all():
                box.check()
            page.locator("#generate").click()
            expect(page.locator("#compare-notes")).to_contain_text("Times are one run", timeout=300_000)
            _shoot(page, f"{args.out}.png")
            for tab, button, marker, text, then, name in TABS:
                page.get_by_role("tab", name=tab).click()
                page.locator(button).click()
                expect(page.locator(marker)).to_contain_text(text, timeout=300_000)
                if then is not None:
                    then(page, expect)
                _shoot(page, f"{args.out}-{name}.png")
            browser.close()
    finally:
        demo.close()
        from app import inflight

        inflight.settle()  # exiting with a model run going on in a worker thread aborts


if __name__ == "__main__":
    main()
