"""A screenshot of the app for the README, taken in headless Chromium (Playwright drives it).

    python -m analysis.app_screenshot [--out assets/app.png] [--preset "Auto-FR tuned, 2.0x"]

Serves the app on localhost, types glyphs, picks a policy preset, presses Generate on the
defaults (glyph-unet, DDIM 50 steps) and saves the page once the three runs are shown. Needs
`pip install playwright` and a Chromium binary (Debian: `apt-get install chromium`).
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="assets/app.png")
    ap.add_argument("--glyphs", default="AK7R3X")
    ap.add_argument("--preset", default="Auto-FR tuned, 2.0x")
    args = ap.parse_args()
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from playwright.sync_api import expect, sync_playwright

    from app.ui import serve_locally

    chromium = find_chromium()
    if chromium is None:
        raise SystemExit("no Chromium found: install it (Debian: apt-get install chromium) or set FRDIFF_CHROMIUM")
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
            page.locator("#generate").click()
            expect(page.locator("#results")).to_contain_text("Fewer steps", timeout=120_000)
            page.wait_for_timeout(1500)  # let the plots finish drawing
            page.screenshot(path=args.out, full_page=True)
            browser.close()
    finally:
        demo.close()
    print(args.out)


if __name__ == "__main__":
    main()
