"""The portfolio page as a family opens it: Debian's chromium, headless, driven by Playwright (no browser
download: `executable_path` points at the system's chromium, which `.ci/run` installs).

Without chromium (or Playwright) the test skips and says why; under CI=true it fails instead. The
screenshot is kept in the test's output folder.
"""

from __future__ import annotations

import os
import shutil

import pytest
from click.testing import CliRunner
from PIL import Image
from sqlalchemy import text

from bot.cli import main
from tests.test_portfolio_demo import HOSTILE, PRIVATE_MESSAGE, PRIVATE_NEED, seed_term

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def browser_or_skip():
    """Playwright's sync API and the system chromium, or a skip (a failure under CI) naming what is missing."""
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "the playwright package is not installed (pip install -e '.[test]')"
    if missing is None and CHROMIUM is None:
        missing = "Debian's chromium is not installed (apt-get install -y chromium; .ci/run does it)"
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and {missing}")
        pytest.skip(missing)
    return sync_playwright


def open_page(sync_playwright, path, screenshot):
    """Load the page from disk with the network cut off; returns (visible text, images' natural widths, title)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 1400})
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(("file:", "data:"))
                       else route.abort())  # the page must stand alone
            page.goto(path.as_uri())
            page.wait_for_load_state("load")
            page.screenshot(path=str(screenshot), full_page=True)
            return (page.inner_text("body"),
                    page.evaluate("Array.from(document.images).map(image => [image.alt, image.naturalWidth])"),
                    page.title())
        finally:
            browser.close()


def test_the_portfolio_page_opens_in_chromium_with_its_photo_and_without_what_the_family_may_not_see(
        engine, now, tmp_path):
    sync_playwright = browser_or_skip()
    demo = seed_term(engine, now)
    url = engine.url.render_as_string(hide_password=False)
    with engine.begin() as db:
        email = db.execute(text("SELECT email FROM person WHERE id = :id"), {"id": demo.person_id}).scalar()
        for section in ("plan", "evidence"):
            db.execute(text("INSERT INTO portfolioshare (person_id, section, shared_at) VALUES (:id, :s, :at)"),
                       {"id": demo.person_id, "s": section, "at": now})
    for args in ((), ("--for", "conference")):
        result = CliRunner().invoke(main, ["--database-url", url, "portfolio", email, "--out", str(tmp_path), *args])
        assert result.exit_code == 0, result.output
    (mine,) = [path for path in tmp_path.glob("*.html") if not path.stem.endswith("conference")]
    (family,) = tmp_path.glob("*-conference.html")

    text_mine, images, title = open_page(sync_playwright, mine, tmp_path / "mine.png")
    for part in ("Learning portfolio: Maya", "About me", PRIVATE_NEED, "Competencies and mastery", "Argument writing",
                 "Report-card reflection: Quarter 1", PRIVATE_MESSAGE, "This term's goals", "my robot arm",
                 HOSTILE):  # the student's <script> and {{ }} are on the page as she typed them
        assert part in text_mine, part
    assert title.startswith("Learning portfolio") and "pwned" not in title  # her script did not run
    assert dict(images)["my robot arm"] > 0  # the photo, from inside the page, loaded
    assert dict(images)["A bar chart of goals set and done each week"] > 0

    text_family, family_images, _ = open_page(sync_playwright, family, tmp_path / "family.png")
    assert "For my student-led conference" in text_family and "my robot arm" in text_family
    assert [width > 0 for _, width in family_images] == [True]  # the photo; no chart: goals are not shared
    for kept in (PRIVATE_NEED, PRIVATE_MESSAGE, "About me", "This term's goals", "finish 3 math worksheets"):
        assert kept not in text_family, kept

    for name in ("mine.png", "family.png"):
        shot = Image.open(tmp_path / name).convert("RGB")
        assert shot.width == 1000 and shot.height > 1000
        colours = shot.getcolors(1 << 20)
        assert colours is None or len(colours) > 20, name  # not a blank page
        assert shot.getextrema() != ((255, 255), (255, 255), (255, 255)), name
