"""The portfolio: `companion portfolio STUDENT [--out DIR] [--for conference]` writes Markdown and one
self-contained HTML page, in the student's language; the conference one holds only what the student
shares with family; a student's text is shown as text; the chart is a real PNG of their own record."""

from __future__ import annotations

import io
import re
from html import unescape
from datetime import timedelta

import pytest
from click.testing import CliRunner
from PIL import Image, ImageChops
from sqlalchemy import text

from bot.cli import main
from core.domain.store import Store
from core.features import REGISTRY
from core.features.plan import build_portfolio
from core.render import charts
from core.render.portfolio import markdown_text
from tests.test_portfolio_demo import HOSTILE, PHOTO_SIZE, PRIVATE_MESSAGE, PRIVATE_NEED, seed_term


def companion(engine, *args: str):
    return CliRunner().invoke(main, ["--database-url", engine.url.render_as_string(hide_password=False), *args])


def share(engine, person_id: int, *sections: str) -> None:
    with engine.begin() as db:
        for section in sections:
            db.execute(text("INSERT INTO portfolioshare (person_id, section, shared_at) VALUES (:id, :s, :at)"),
                       {"id": person_id, "s": section, "at": "2026-11-23 14:00:00"})


def written(out, pattern: str) -> str:
    (path,) = out.glob(pattern)
    return path.read_text(encoding="utf-8")


def test_companion_portfolio_writes_markdown_and_html_with_everything(engine, now, tmp_path):
    demo = seed_term(engine, now)
    email = _email(engine, demo.person_id)
    result = companion(engine, "portfolio", email, "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    html, markdown = written(tmp_path, "portfolio-maya-*[0-9].html"), written(tmp_path, "portfolio-maya-*[0-9].md")
    for page in (unescape(html), markdown):
        for part in ("About me", "drawing and building", PRIVATE_NEED, "My learning plan", "Fall 2026",
                     "My goal for this term", "Raise my English grade to a B", "Competencies and mastery",
                     "Argument writing", "rivera@school.test", "Report-card reflection", "Quarter 1",
                     PRIVATE_MESSAGE, "This term's goals", "finish 1 math worksheets",
                     "practising before dinner helped",
                     "week 1: I work best early", "Evidence", "my robot arm", "video of the robot"):
            assert part in page, part
    # The HTML stands alone: the photo and the chart inside it, nothing fetched from elsewhere.
    images = re.findall(r'<img[^>]+src="([^"]+)"', html)
    assert len(images) == 2 and all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r'(src|href)="(?!data:|https://example\.org/)', html)
    assert 'href="https://example.org/maya/robot-video"' in html
    assert 'href="javascript:' not in html and "javascript:alert(1)" in html  # a link that is not one is text
    # The Markdown's chart and photo are files in its folder.
    (folder,) = [path for path in tmp_path.iterdir() if path.is_dir()]
    (photo,) = folder.glob("*-robot.png")
    assert {path.name for path in folder.iterdir()} == {"chart.png", photo.name}
    assert f"]({folder.name}/chart.png)" in markdown and f"]({folder.name}/{photo.name})" in markdown
    assert Image.open(photo).size == PHOTO_SIZE
    with engine.connect() as db:
        audit = db.execute(text("SELECT detail FROM auditlog WHERE action = 'portfolio_written'")).scalar()
    assert audit == '{"audience": "mine"}'


def test_a_students_script_and_braces_are_shown_as_text(engine, now, tmp_path):
    demo = seed_term(engine, now)
    assert companion(engine, "portfolio", _email(engine, demo.person_id), "--out", str(tmp_path)).exit_code == 0
    html, markdown = written(tmp_path, "*.html"), written(tmp_path, "*.md")
    assert "<script>" not in html and "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in html
    assert "{{ 7*7 }}" in html and "49" not in re.sub(r"data:[^\"]+", "", html)
    assert markdown_text(HOSTILE) in markdown and "<script>" not in markdown


def test_the_conference_portfolio_holds_only_what_the_student_shares_with_family(engine, now, tmp_path):
    demo = seed_term(engine, now)
    email = _email(engine, demo.person_id)
    nothing = companion(engine, "portfolio", email, "--for", "conference", "--out", str(tmp_path / "none"))
    assert nothing.exit_code == 0, nothing.output
    bare = unescape(written(tmp_path / "none", "*-conference.html"))
    assert "Math" in bare and "B+" in bare  # the report-card answer she gave her family
    for kept in (PRIVATE_NEED, "drawing and building", "finish 1 math worksheets", "my robot arm", "Argument writing"):
        assert kept not in bare, kept
    share(engine, demo.person_id, "plan", "goals", "evidence")
    result = companion(engine, "portfolio", email, "--for", "conference", "--out", str(tmp_path / "family"))
    assert result.exit_code == 0, result.output
    for page in (unescape(written(tmp_path / "family", "*-conference.html")),
                 written(tmp_path / "family", "*-conference.md")):
        assert "For my student-led conference" in page
        for part in ("Argument writing", "finish 1 math worksheets", "my robot arm", "Quarter 1"):
            assert part in page, part
        # Kept from the family: the profile (not shared), the closing answers and English and Science grades
        # she kept to herself or her adviser, and her term goal, which is one of those answers.
        for kept in (PRIVATE_NEED, "drawing and building", PRIVATE_MESSAGE, "English | C", "Science",
                     "Raise my English grade to a B", "an A"):
            assert kept not in page, kept


@pytest.mark.parametrize("locale, words", [
    ("en", ("Learning portfolio", "Progress across the four areas", "Developing", "Goals set and done per week")),
    ("es", ("Portafolio de aprendizaje", "Progreso en las cuatro áreas", "En desarrollo", "Metas puestas y cumplidas")),
])
def test_the_portfolio_speaks_the_students_language(engine, now, locale, words):
    demo = seed_term(engine, now, locale=locale)
    with Store(engine).transaction() as tx:
        portfolio = build_portfolio(tx, REGISTRY, demo.person_id, now, "mine", "")
    for page in (unescape(portfolio.html), portfolio.markdown):
        for word in words:
            assert word in page, word
    assert f'<html lang="{locale}">' in portfolio.html


def test_photos_in_a_folder_file_store_are_embedded_too(engine, now, tmp_path):
    from core.domain.files import FolderFiles

    demo = seed_term(engine, now)
    with engine.begin() as db:
        key, data = db.execute(text("SELECT key, data FROM storedfile WHERE person_id = :id"),
                               {"id": demo.person_id}).one()
        db.execute(text("DELETE FROM storedfile WHERE key = :k"), {"k": key})
    FolderFiles(tmp_path / "files").put(bytes(data), "robot.png", "image/png", key=key, person_id=demo.person_id)
    with Store(engine).transaction() as tx:
        portfolio = build_portfolio(tx, REGISTRY, demo.person_id, now, "mine", str(tmp_path / "files"))
        missing = build_portfolio(tx, REGISTRY, demo.person_id, now, "mine", str(tmp_path / "elsewhere"))
    assert portfolio.html.count("data:image/png;base64,") == 2
    assert missing.html.count("data:image/png;base64,") == 1 and "my robot arm" in missing.html  # named, not shown


def test_an_unknown_student_is_refused(engine, now, tmp_path):
    seed_term(engine, now)
    result = companion(engine, "portfolio", "nobody-at-all", "--out", str(tmp_path / "out"))
    assert result.exit_code == 1 and "nobody matches 'nobody-at-all'" in result.output
    assert not (tmp_path / "out").exists()


# -- the chart ---------------------------------------------------------------------------------------


def chart_of(engine, now, person_id: int) -> Image.Image:
    with Store(engine).transaction() as tx:
        portfolio = build_portfolio(tx, REGISTRY, person_id, now, "mine", "")
    return Image.open(io.BytesIO(portfolio.files["chart.png"]))


def test_the_chart_is_a_png_of_the_students_own_record(engine, now):
    busy = seed_term(engine, now, given_name="Maya", weeks=8, done_every=1)
    quiet = seed_term(engine, now, given_name="Leo", weeks=2, done_every=3)
    first, second = chart_of(engine, now, busy.person_id), chart_of(engine, now, quiet.person_id)
    assert first.format == "PNG" and first.size == charts.SIZE == second.size
    assert first.convert("RGB").getcolors(1 << 16) and len(first.convert("RGB").getcolors(1 << 16)) > 2
    difference = ImageChops.difference(first.convert("RGB"), second.convert("RGB"))
    assert difference.getbbox() is not None  # different records, different pixels
    again = chart_of(engine, now + timedelta(seconds=1), busy.person_id)
    assert ImageChops.difference(first.convert("RGB"), again.convert("RGB")).getbbox() is None  # the same, drawn again


def test_the_chart_module_draws_any_series_at_any_size():
    data = charts.weekly_bars(["w1", "w2", "w3"], {"set": [1, 2, 3]}, size=(400, 200))
    image = Image.open(io.BytesIO(data))
    assert image.size == (400, 200)
    empty = Image.open(io.BytesIO(charts.weekly_bars([], {})))
    assert empty.size == charts.SIZE


def _email(engine, person_id: int) -> str:
    with engine.connect() as db:
        return db.execute(text("SELECT email FROM person WHERE id = :id"), {"id": person_id}).scalar()
