"""The personal learning plan: a school's competencies (CSV import, bad files refused with line and
column), teachers' mastery levels (`companion mastery set|import`), grades mapped to levels, and
`/plan`, `/focus`, `/share` as dialog tables in English and Spanish, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import date

import pytest
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st
from sqlalchemy import text

from bot.cli import main
from core.domain import records
from core.domain.store import Store
from core.engine.pipeline import Engine
from core.features import REGISTRY
from core.features.plan import MAX_FOCUS_LENGTH, MAX_FOCUSES, focus_list
from core.school import competencies as comp
from tests.helpers import Chat, enrol, play
from tests.test_dialogs import WORDS
from tests.test_portfolio_demo import FIXTURES, seed_term

LOCALES = ("en", "es")


@pytest.fixture
def conversation(engine, now):
    return Engine(Store(engine), REGISTRY, clock=lambda: now)


def companion(engine, *args: str):
    return CliRunner().invoke(main, ["--database-url", engine.url.render_as_string(hide_password=False), *args])


def scalar(engine, statement: str, **params):
    with engine.connect() as db:
        return db.execute(text(statement), params).scalar()


def onboarded(conversation, engine, now, locale: str) -> tuple[Chat, int]:
    """A demo student with a term behind her whose chat account is linked, her consent given, in `locale`
    (linking and onboarding have their own dialog tests in test_dialogs.py)."""
    demo = seed_term(engine, now, locale=locale)
    user = f"student-{demo.person_id}"
    with Store(engine).transaction() as tx:
        identity = tx.add_identity("console", user, user, now)
        tx.execute("UPDATE chatidentity SET person_id = ? WHERE id = ?", (demo.person_id, identity))
        tx.execute("UPDATE person SET consent_at = ?, timezone = 'America/New_York' WHERE id = ?",
                   (tx.ts(now), demo.person_id))
        records.save_profile(tx, demo.person_id, now, aim=WORDS[locale]["aim"])
        tx.create_conversation(demo.person_id, now)
    return Chat(conversation, user), demo.person_id


# -- competencies ------------------------------------------------------------------------------------


def test_a_competencies_csv_is_imported_and_again_changes_nothing(engine, now):
    enrol(engine, now)
    first = companion(engine, "competencies", "import", str(FIXTURES / "good.csv"))
    assert first.exit_code == 0, first.output
    assert "4 competencies added, 0 updated, 0 unchanged" in first.output
    again = companion(engine, "competencies", "import", str(FIXTURES / "good.csv"))
    assert "0 competencies added, 0 updated, 4 unchanged" in again.output
    with engine.connect() as db:
        rows = {row.code: row for row in db.execute(text("SELECT * FROM competency"))}
    assert rows["MATH.7.1"].grades == "6,7,8" and rows["ELA.7.2"].grades == "7,8"
    assert rows["MATH.7.1"].description == "Solve real-world problems with ratios, rates and percents"
    assert json.loads(rows["SCI.7.3"].grade_levels)["B"] == "meets" and rows["SCI.7.3"].grades is None
    shown = companion(engine, "competencies", "show")
    assert "HS.ALG.1  Linear equations (Math) [grades 9,10,11,12]" in shown.output


def test_a_semicolon_export_with_accents_is_read(engine, now):
    enrol(engine, now)
    result = companion(engine, "competencies", "import", str(FIXTURES / "semicolons.csv"))
    assert result.exit_code == 0, result.output
    assert scalar(engine, "SELECT description FROM competency WHERE code = 'MÚS.2'") == "Leer ritmos; tocar a tiempo"


def test_a_windows_1252_file_is_read(engine, now, tmp_path):
    enrol(engine, now)
    path = tmp_path / "cp1252.csv"
    path.write_bytes("code,title,subject,description\nESP.1,Ortografía,Español,Acentos y eñes\n".encode("cp1252"))
    assert companion(engine, "competencies", "import", str(path)).exit_code == 0
    assert scalar(engine, "SELECT title FROM competency") == "Ortografía"


@pytest.mark.parametrize("name, message", [
    ("missing_code.csv", "missing_code.csv: line 3, column 1 (code): a competency needs a code"),
    ("missing_column.csv", "missing_column.csv: line 1, column subject: the column is missing"),
    ("bad_grades.csv", "bad_grades.csv: line 3, column 5 (grade_levels): 'seventh' is neither grades"),
    ("duplicate.csv", "duplicate.csv: line 3, column 1 (code): math.7.1 is already on line 2"),
])
def test_a_bad_competencies_file_is_refused_with_line_and_column(engine, now, name, message):
    enrol(engine, now)
    result = companion(engine, "competencies", "import", str(FIXTURES / name))
    assert result.exit_code == 1
    assert message in result.output and "nothing was imported" in result.output
    assert scalar(engine, "SELECT COUNT(*) FROM competency") == 0


def test_headers_as_exports_name_them_are_understood():
    competencies = list(comp.read_rows(b"Standard Code,Standard,Course,Grade Levels\nM.1,Fractions,Math,5\n",
                                       comp.REQUIRED_COMPETENCY_COLUMNS, comp.COMPETENCY_ALIASES))
    assert competencies[0].values == {"code": "M.1", "title": "Fractions", "subject": "Math", "grade_levels": "5"}
    levels = list(comp.read_rows(b"Student Email,Competency,Score,Date Assessed\na@b.c,M.1,3,2026-11-02\n",
                                 comp.MASTERY_COLUMNS, comp.MASTERY_ALIASES))
    assert levels[0].values == {"student": "a@b.c", "code": "M.1", "level": "3", "date": "2026-11-02"}


@pytest.mark.parametrize("content, message", [
    (b"code,title,subject,description\nA.1,Fine,Math,ok\nA.2,Bad\x07bell,Math,ok\n",
     "line 3, column 2 (title): a control character"),
    (b"code,title,subject,description\nA.1,Fine,Math\n", "line 2: 3 values for 4 columns"),
    (b"", "line 1: the file is empty"),
    (b"code,id,title,subject\n", "line 1, columns 1 and 2: both are code"),
    (b"code,title,subject,description\nA.1,ok,Math,ok\nA.2,\"never closed,Math,ok\n", "line 3: unexpected end of data"),
])
def test_broken_csv_text_is_refused_with_its_line(content, message):
    with pytest.raises(comp.CompetencyError, match=message.replace("(", r"\(").replace(")", r"\)")):
        list(comp.read_rows(content, comp.REQUIRED_COMPETENCY_COLUMNS, comp.COMPETENCY_ALIASES))


# -- levels ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("grade, level", [
    ("B+", 3), ("I got a B", 3), ("an A-", 4), ("A", 4), ("C-", 2), ("D", 1), ("F", 1), ("87%", 3), ("92", 4),
    ("meets", 3), ("Proficient", 3), ("exceeds", 4), ("developing", 2), ("Approaching", 2), ("beginning", 1),
    ("sobresaliente", 4), ("en desarrollo", 2), ("Logrado", 3), ("3", 3), ("no idea", None), ("", None),
])
def test_grades_map_to_the_four_levels(grade, level):
    assert comp.grade_level(grade, comp.DEFAULT_GRADES) == level


def test_a_schools_own_mapping_wins(engine, now):
    enrol(engine, now)
    result = companion(engine, "school", "set", "grade_levels", "B+=exceeds, B=meets, 4=exceeds, 1=beginning")
    assert result.exit_code == 0, result.output
    bad = companion(engine, "school", "set", "grade_levels", "A=excellent")
    assert bad.exit_code != 0 and "'excellent' is not" in bad.output
    with Store(engine).transaction() as tx:
        grades = REGISTRY.settings.for_school(tx, 1)["grade_levels"]
    assert comp.grade_level("B+", grades) == 4 and comp.grade_level("b", grades) == 3


@pytest.mark.parametrize("answer, subject, same", [
    ("Math", "Math", True), ("math 7", "Math", True), ("Mathematics", "Math", True), ("Matemáticas", "matematicas", True),
    ("English Language Arts", "English", True), ("Art", "Math", False), ("Science", "", False),
])
def test_a_reflections_subject_is_the_competencys(answer, subject, same):
    from core.features.plan import same_subject

    assert same_subject(answer, subject) is same


@pytest.mark.parametrize("words, named", [
    ("finish 3 math worksheets", True), ("MATH.7.1 practice", True), ("aftermath of the storm", False),
    ("read 20 pages", False), (None, False),
])
def test_a_goal_names_a_competency_by_code_or_subject(words, named):
    from core.features.plan import mentions

    assert mentions(words, {"code": "MATH.7.1", "subject": "Math"}) is named


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_any_text_a_student_writes_is_a_level_or_none(words):
    assert comp.grade_level(words, comp.DEFAULT_GRADES) in (None, 1, 2, 3, 4)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_focus_areas_are_few_short_and_never_blank(words):
    areas = focus_list(words)
    assert len(areas) <= MAX_FOCUSES
    assert all(area.strip() and len(area) <= MAX_FOCUS_LENGTH for area in areas)


# -- mastery -----------------------------------------------------------------------------------------


def test_mastery_set_changes_the_plan(conversation, engine, now):
    chat, person_id = onboarded(conversation, engine, now, "en")
    email = scalar(engine, "SELECT email FROM person WHERE id = :id", id=person_id)
    (_, before, _), = chat.say("/plan")
    assert "MATH.7.1 Ratios and proportional relationships: Meets (your own)" in before
    result = companion(engine, "mastery", "set", email, "math.7.1", "exceeds", "--by", "rivera@school.test")
    assert result.exit_code == 0, result.output
    assert "MATH.7.1 exceeds (by rivera@school.test)" in result.output
    (_, after, _), = chat.say("/plan")
    assert "MATH.7.1 Ratios and proportional relationships: Exceeds (teacher), Meets (your own)" in after
    assert companion(engine, "mastery", "set", email, "MATH.7.1", "B+").exit_code == 0  # a grade, mapped
    (_, mapped, _), = chat.say("/plan")
    assert "MATH.7.1 Ratios and proportional relationships: Meets (teacher)" in mapped
    refused = companion(engine, "mastery", "set", email, "NOPE.1", "meets")
    assert refused.exit_code == 1 and "no competency 'NOPE.1'" in refused.output
    assert "is not a level" in companion(engine, "mastery", "set", email, "MATH.7.1", "superb").output


def test_mastery_import_changes_the_plan_and_a_bad_row_changes_nothing(conversation, engine, now, tmp_path):
    chat, person_id = onboarded(conversation, engine, now, "es")
    sourced = scalar(engine, "SELECT sourced_id FROM person WHERE id = :id", id=person_id)
    bad = tmp_path / "bad.csv"
    bad.write_text(f"student,code,level,date,teacher\n{sourced},SCI.7.3,B,2026-11-20,lee@school.test\n"
                   f"{sourced},MATH.7.1,meets,20/20/2026,lee@school.test\n")
    result = companion(engine, "mastery", "import", str(bad))
    assert result.exit_code == 1 and "line 3, column 4 (date): '20/20/2026' is not a date" in result.output
    assert scalar(engine, "SELECT COUNT(*) FROM mastery WHERE person_id = :id", id=person_id) == 1  # the demo's
    good = tmp_path / "good.csv"
    good.write_text(f"Student;Code;Level;Date;Teacher\n{sourced};SCI.7.3;E;11/20/2026;lee@school.test\n"
                    f"{sourced};ELA.7.2;4;;\n")
    result = companion(engine, "mastery", "import", str(good))
    assert result.exit_code == 0, result.output
    assert "2 mastery levels saved for 1 students, 0 already there" in result.output
    assert "0 mastery levels saved for 0 students, 2 already there" in companion(engine, "mastery", "import",
                                                                                 str(good)).output
    (_, plan, _), = chat.say("/plan")
    # SCI.7.3 maps its own grades (E=beginning); ELA.7.2's newest level is the import's (the demo's was older)
    assert "SCI.7.3 Engineering design: Inicial (docente), Destacado (tú)" in plan
    assert "ELA.7.2 Argument writing: Destacado (docente)" in plan
    with engine.connect() as db:
        on = db.execute(text("SELECT assessed_on FROM mastery m JOIN competency c ON c.id = m.competency_id "
                             "WHERE c.code = 'SCI.7.3'")).scalar()
    assert str(on) == "2026-11-20"


@pytest.mark.parametrize("row, message", [
    ("nobody@school.test,MATH.7.1,meets", "line 2, column 1 (student): no student 'nobody@school.test'"),
    ("{sourced},MATH.9.9,meets", "line 2, column 2 (code): no competency 'MATH.9.9'"),
    ("{sourced},MATH.7.1,great", "line 2, column 3 (level): 'great' is not a level"),
])
def test_a_bad_mastery_file_is_refused_with_line_and_column(engine, now, tmp_path, row, message):
    demo = seed_term(engine, now)
    sourced = scalar(engine, "SELECT sourced_id FROM person WHERE id = :id", id=demo.person_id)
    path = tmp_path / "mastery.csv"
    path.write_text("student,code,level\n" + row.format(sourced=sourced) + "\n")
    result = companion(engine, "mastery", "import", str(path))
    assert result.exit_code == 1 and message in result.output and "nothing was imported" in result.output


# -- /plan, /focus, /share ---------------------------------------------------------------------------


EXPECTED_PLAN = {
    "en": ["Your learning plan — Fall 2026", "Aiming for: " + WORDS["en"]["aim"],
           "Your goal for this term: Raise my English grade to a B", "Content knowledge: 3 of 6 goals done",
           "ELA.7.2 Argument writing: Developing (teacher), Developing (your own)",
           "MATH.7.1 Ratios and proportional relationships: Meets (your own) · 1 evidence",
           "SCI.7.3 Engineering design: Exceeds (your own)", "Newest evidence:", "a link: javascript:alert(1)",
           "a photo: my robot arm (for \"finish 1 math worksheets\")", "This week:", "read 60 pages"],
    "es": ["Tu plan de aprendizaje — Fall 2026", "Tu meta a futuro: " + WORDS["es"]["aim"],
           "Tu meta para este periodo: Raise my English grade to a B",
           "Conocimientos de las materias: 3 de 6 metas cumplidas",
           "ELA.7.2 Argument writing: En desarrollo (docente), En desarrollo (tú)",
           "MATH.7.1 Ratios and proportional relationships: Logrado (tú) · 1 evidencias",
           "Evidencias más nuevas:", "una foto: my robot arm (para «finish 1 math worksheets»)", "Esta semana:"],
}


@pytest.mark.parametrize("locale", LOCALES)
def test_plan_shows_aims_term_goal_competencies_and_evidence(conversation, engine, now, locale):
    chat, person_id = onboarded(conversation, engine, now, locale)
    transcript = play(chat, [("/plan", ["plan/show"])])
    shown = transcript[0][0][1]
    for line in EXPECTED_PLAN[locale]:
        assert line in shown, (line, shown)
    assert "HS.ALG.1" not in shown  # a grade 9–12 competency is not on a 7th grader's plan
    assert [payload for _, payload in transcript[0][0][2]] == ["/focus", "/portfolio"]


@pytest.mark.parametrize("locale", LOCALES)
def test_focus_areas_are_set_in_the_students_words(conversation, engine, now, locale):
    chat, person_id = onboarded(conversation, engine, now, locale)
    words = {"en": "fractions, speaking up in class and finishing my robot",
             "es": "fracciones, participar en clase y terminar mi robot"}[locale]
    transcript = play(chat, [({"en": "/focus", "es": "/enfoque"}[locale], ["plan/ask_focus"]),
                             (words, ["plan/focus_saved"]), ("/plan", ["plan/show"])])
    areas = focus_list(words)
    assert len(areas) == 3 and ", ".join(areas) in transcript[2][0][1]
    with engine.connect() as db:
        stored = [row[0] for row in db.execute(text("SELECT title FROM planfocus WHERE person_id = :id ORDER BY id"),
                                               {"id": person_id})]
    assert stored == areas
    play(chat, [("/focus", ["plan/ask_focus"]), ("robots", ["plan/focus_saved"])])  # a new list replaces the old
    assert scalar(engine, "SELECT COUNT(*) FROM planfocus WHERE person_id = :id", id=person_id) == 1


@pytest.mark.parametrize("locale", LOCALES)
def test_the_student_chooses_what_their_family_sees(conversation, engine, now, locale):
    chat, person_id = onboarded(conversation, engine, now, locale)
    transcript = play(chat, [("/share", ["plan/ask_share"]), ("@plan", ["plan/ask_share"]),
                             ("@evidence", ["plan/ask_share"]), ("@plan", ["plan/ask_share"]),
                             ("@done", ["plan/share_saved"])])
    assert [payload for _, payload in transcript[0][0][2]] == ["profile", "plan", "goals", "evidence", "done"]
    with engine.connect() as db:
        shared = {row[0] for row in db.execute(text("SELECT section FROM portfolioshare WHERE person_id = :id"),
                                               {"id": person_id})}
    assert shared == {"evidence"}
    assert {"en": "My evidence", "es": "Mis evidencias"}[locale] in transcript[-1][0][1]


@pytest.mark.parametrize("locale", LOCALES)
def test_portfolio_in_chat_is_a_page_sent_as_a_document(conversation, engine, now, locale):
    chat, person_id = onboarded(conversation, engine, now, locale)
    conference = {"en": "/portfolio conference", "es": "/portafolio conferencia"}[locale]
    play(chat, [("/portfolio", ["plan/portfolio_sent"]), (conference, ["plan/portfolio_sent"])])
    with engine.connect() as db:
        documents = [json.loads(row[0])["document"]["file"] for row in db.execute(text(
            "SELECT parts FROM outbox WHERE person_id = :id AND template = 'plan/portfolio_sent' ORDER BY id"),
            {"id": person_id})]
        pages = [db.execute(text("SELECT data FROM storedfile WHERE key = :k"), {"k": doc["key"]}).scalar()
                 for doc in documents]
    assert [doc["mime"] for doc in documents] == ["text/html", "text/html"]
    assert documents[1]["name"].endswith("-conference.html")
    mine, family = (bytes(page).decode() for page in pages)
    assert WORDS[locale]["aim"] in mine and WORDS[locale]["aim"] not in family  # nothing shared yet
    assert "data:image/png;base64," in mine and "data:image/png;base64," not in family


def test_plan_reads_the_term_from_the_calendar_or_the_last_weeks(engine, now):
    from core.features.plan import term_of

    person_id, _ = enrol(engine, now)
    with Store(engine).transaction() as tx:
        fallback = term_of(tx, 1, now.date())
        tx.execute("INSERT INTO calendarevent (school_id, source, uid, kind, title, starts_on, ends_on, updated_at) "
                   "VALUES (1, 'fall.ics', 'x', 'term', 'Calendar term', ?, ?, ?)",
                   (tx.day(date(2026, 9, 1)), tx.day(date(2027, 1, 20)), tx.ts(now)))
        tx.execute("INSERT INTO calendarevent (school_id, source, uid, kind, title, starts_on, ends_on, updated_at) "
                   "VALUES (1, 'roster', 'y', 'term', 'Semester 1', ?, ?, ?)",
                   (tx.day(date(2026, 8, 24)), tx.day(date(2026, 12, 18)), tx.ts(now)))
        found = term_of(tx, 1, now.date())
    assert fallback["title"] is None and (now.date() - fallback["start"]).days == 18 * 7
    assert found == {"title": "Semester 1", "start": date(2026, 8, 24), "end": date(2026, 12, 18)}
