"""`companion chat` in a Spanish terminal (LANG=es_MX.UTF-8), typed the way a student types, from the
first line to a saved goal with its date: no line the bot prints holds the fixed text of an English
template, the greeting before the invite code included."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

from sqlalchemy import text

from core.domain.db import make_engine
from prompts import __file__ as prompts_init

PROMPTS = Path(prompts_init).parent
TAG = re.compile(r"{{.*?}}|{%.*?%}|{#.*?#}", re.DOTALL)
MIN_WORDS = 3  # a fragment this long is a sentence of the template, not a shared word like "OK"

LINES = ["hola", None, "sí", "acepto", "ciudad de méxico", "sí", "dibujar", "los ensayos", "robots", "ingeniera",
         "5 de la tarde", "1", "no sé", "leer 20 páginas de mi novela", "para el jueves", "sí", "hábitos",
         "disfrutar la historia", "cuando me distraigo con el celular", "voy a dejarlo en otro cuarto", "4", "no"]


def fixed_fragments(locale: str) -> set[str]:
    """The words of every template of `locale` that no variable fills, piece by piece."""
    found = set()
    for path in (PROMPTS / locale).rglob("*.j2"):
        for piece in TAG.split(path.read_text("utf-8")):
            for line in piece.splitlines():
                fragment = line.strip(" •✓-—:.,!?¡¿\"'()")
                if len(fragment.split()) >= MIN_WORDS:
                    found.add(fragment)
    return found


def test_a_spanish_terminal_from_the_first_line_to_a_saved_goal_prints_no_english(tmp_path):
    env = {**os.environ, "COMPANION_DATABASE_URL": f"sqlite:///{tmp_path / 'school.db'}",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "LANG": "es_MX.UTF-8"}
    env.pop("LC_ALL", None)
    demo = subprocess.run([sys.executable, "-m", "bot.cli", "demo"], env=env, text=True, capture_output=True,
                          check=True)
    code = re.search(r"^\s+([A-Z0-9]{4}-[A-Z0-9]{4})\s+Mateo", demo.stdout, re.MULTILINE).group(1)
    typed = "".join(f"{line if line is not None else code.lower().replace('-', ' ')}\n" for line in LINES)
    chat = subprocess.run([sys.executable, "-m", "bot.cli", "chat", "--user", "mateo"], env=env, text=True,
                          input=typed, capture_output=True, timeout=120)
    assert chat.returncode == 0, chat.stderr
    printed = [line for line in chat.stdout.splitlines() if line.strip()]
    english = fixed_fragments("en") - fixed_fragments("es")
    assert len(english) > 100  # the check has teeth: every English sentence of every template
    leaked = [(line, fragment) for line in printed for fragment in english if fragment in line]
    assert not leaked, leaked[:5]
    assert printed[0].startswith("¡Hola!")  # the greeting before the invite code, in Spanish
    engine = make_engine(env["COMPANION_DATABASE_URL"])
    with engine.connect() as db:
        goal = db.execute(text("SELECT text, due_on, plan, confidence FROM goal")).one()
        person = db.execute(text("SELECT locale, timezone FROM person WHERE given_name = 'Mateo'")).one()
    engine.dispose()
    assert tuple(person) == ("es", "America/Mexico_City")
    assert goal.text == "leer 20 páginas de mi novela para el jueves" and goal.confidence == 4
    assert goal.plan == "Si me distraigo con el celular, entonces voy a dejarlo en otro cuarto"
    due = goal.due_on if isinstance(goal.due_on, date) else date.fromisoformat(goal.due_on)
    assert due.weekday() == 3  # a Thursday
