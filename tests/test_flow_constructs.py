"""The flow constructs, each in a toy flow: a step repeated for each item of a list, a sub-flow that
returns to its parent, and one person's action resuming another's flow — also while that person
is in another flow, as the stack's rule says (queued, offered with a button once idle).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from core.domain.store import Store
from core.engine.diagram import mermaid
from core.engine.flow import NEXT, Answers, Each, Flow, Step, SubFlow, Text, Turn, WaitFor
from core.engine.pipeline import Engine
from core.engine.registry import ADULTS, Command, Feature
from core.features import REGISTRY
from tests.helpers import Chat, enrol, play

TEMPLATES = {"ask_grade": "Your grade in {{ subject }}?", "done": "Thanks: {{ grades }}", "ask_aim": "Your aim?",
             "ask_when": "By when?", "confirm": "So: {{ aim }} by {{ when }}?", "ask_question": "Your question?",
             "waiting": "I've sent it to your adviser.", "thanks": "Your adviser said: {{ verdict }}",
             "approved": "Approved."}
LABELS = '"flow.pitch" = "My pitch"\n"flow.grades" = "Grades"\n"flow.aims" = "Aims"\n"flow.when" = "When"\n'


@dataclass
class Grades(Answers):
    grades: dict = field(default_factory=dict)


def keep_grade(turn: Turn, grade: str) -> None:
    """Each answer is kept under the item it answers."""
    turn.answers.grades[turn.item] = grade


@dataclass
class Aim(Answers):
    aim: str | None = None
    details: dict | None = None


@dataclass
class When(Answers):
    when: str | None = None


@dataclass
class Pitch(Answers):
    question: str | None = None
    verdict: str | None = None


def approve(engine: Engine, turn: Turn, args: str) -> None:
    """An adviser approves the pitch of the student whose person id follows the command."""
    engine.act_on(turn, int(args), "pitch", "approved")
    turn.say("toyflows/approved")


GRADES = Flow("grades", answers=Grades, steps=(
    Each("subjects", over=lambda turn: ["math", "art"], then="done", steps=(
        Step("grade", ask="toyflows/ask_grade", context=lambda turn: {"subject": turn.item}, expect=Text(),
             effect=keep_grade, then=NEXT),
    )),
    Step("done", ask="toyflows/done", context=lambda turn: {"grades": turn.answers.grades}, expect=Text()),
))
AIMS = Flow("aims", answers=Aim, steps=(
    Step("aim", ask="toyflows/ask_aim", expect=Text(), save="aim", then="details"),
    SubFlow("details", flow="when", save="details", then="confirm"),
    Step("confirm", ask="toyflows/confirm", context=lambda turn: {"aim": turn.answers.aim,
                                                                   "when": turn.answers.details["when"]},
         expect=Text()),
))
WHEN = Flow("when", answers=When, steps=(Step("when", ask="toyflows/ask_when", expect=Text(), save="when"),))
PITCH = Flow("pitch", answers=Pitch, steps=(
    Step("question", ask="toyflows/ask_question", expect=Text(), save="question", then="approval"),
    WaitFor("approval", say="toyflows/waiting", save="verdict", then="thanks"),
    Step("thanks", ask="toyflows/thanks", context=lambda turn: {"verdict": turn.answers.verdict}, expect=Text()),
))


@pytest.fixture
def toy(tmp_path):
    for locale in ("en", "es"):
        folder = tmp_path / locale / "toyflows"
        folder.mkdir(parents=True)
        for name, text in TEMPLATES.items():
            (folder / f"{name}.j2").write_text(text)
        (folder / "labels.toml").write_text(LABELS)
    return REGISTRY.extended(Feature(
        "toyflows", flows=(GRADES, AIMS, WHEN, PITCH), prompts=tmp_path,
        commands=(Command("grades", flow="grades"), Command("aims", flow="aims"), Command("pitch", flow="pitch"),
                  Command("approve", run=approve, roles=ADULTS))))


@pytest.fixture
def conversation(toy, engine, now):
    return Engine(Store(engine), toy, clock=lambda: now)


def student(conversation, engine, now, adviser_id=None) -> tuple[Chat, int]:
    person_id, code = enrol(engine, now, adviser_id=adviser_id)
    chat = Chat(conversation, f"s{person_id}")
    for says in (code, "@agree", "@en", "@keep", "art", "math", "music", "teacher", "4pm"):
        chat.say(says)
    return chat, person_id


def test_a_step_repeated_for_each_item(conversation, engine, now):
    chat, _ = student(conversation, engine, now)
    transcript = play(chat, [("/grades", ["toyflows/ask_grade"]), ("B+", ["toyflows/ask_grade"]),
                             ("A", ["toyflows/done"])])
    assert [replies[0][1] for replies in transcript] == ["Your grade in math?", "Your grade in art?",
                                                        "Thanks: {'math': 'B+', 'art': 'A'}"]


def test_a_sub_flow_returns_to_its_parent_with_its_answers(conversation, engine, now):
    chat, _ = student(conversation, engine, now)
    transcript = play(chat, [("/aims", ["toyflows/ask_aim"]),
                             ("learn to code", ["toyflows/ask_when"]),  # the sub-flow asks
                             ("June", ["toyflows/confirm"])])  # and returns: no "where were we"
    assert transcript[-1][0][1] == "So: learn to code by June?"


def test_another_persons_action_resumes_a_flow_at_once_when_the_person_is_idle(conversation, engine, now):
    adviser_id, adviser_code = enrol(engine, now, given_name="Ms Rivera", role="adviser")
    adviser = Chat(conversation, "adviser")
    adviser.say(adviser_code)
    chat, person_id = student(conversation, engine, now, adviser_id)
    play(chat, [("/pitch", ["toyflows/ask_question"]), ("Why do bees dance?", ["toyflows/waiting"]),
                ("hello", ["commands/menu"])])  # waiting leaves the student free
    play(adviser, [(f"/approve {person_id}", ["toyflows/approved"])])
    (template, text, _), = chat.deliver()
    assert template == "toyflows/thanks" and text == "Your adviser said: approved"


def test_another_persons_action_while_the_person_is_in_another_flow_is_queued(conversation, engine, now):
    adviser_id, adviser_code = enrol(engine, now, given_name="Ms Rivera", role="adviser")
    adviser = Chat(conversation, "adviser")
    adviser.say(adviser_code)
    chat, person_id = student(conversation, engine, now, adviser_id)
    play(chat, [("/pitch", ["toyflows/ask_question"]), ("Why do bees dance?", ["toyflows/waiting"]),
                ("/profile", ["profile/show"])])
    play(adviser, [(f"/approve {person_id}", ["toyflows/approved"])])
    assert chat.deliver() == []  # the open question is not interrupted
    (_, _, buttons), = [reply for reply in chat.say("@done") if reply[0] == "commands/queued"]
    assert buttons == (("My pitch", "/open pitch"),)
    (template, text, _), = chat.say("@/open pitch")
    assert template == "toyflows/thanks" and text == "Your adviser said: approved"


def test_an_action_for_a_flow_that_is_not_waiting_changes_nothing(conversation, engine, now):
    adviser_id, adviser_code = enrol(engine, now, given_name="Ms Rivera", role="adviser")
    adviser = Chat(conversation, "adviser")
    adviser.say(adviser_code)
    chat, person_id = student(conversation, engine, now, adviser_id)
    play(adviser, [(f"/approve {person_id}", ["toyflows/approved"])])
    assert chat.deliver() == []


def test_the_diagram_labels_every_construct():
    drawn = "\n".join(mermaid(flow) for flow in (GRADES, AIMS, PITCH))
    assert "subjects --> grade: for each item" in drawn
    assert "grade --> subjects: Text; next item" not in drawn  # the loop goes back to its first step
    assert "grade --> grade: Text; next item" in drawn and "grade --> done: Text; after the last" in drawn
    assert "details --> confirm: flow when finished" in drawn
    assert "approval --> thanks: another person's action" in drawn
