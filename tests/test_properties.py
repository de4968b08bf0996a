"""Property-based: any text, commands and taps from many students, in any order.

Never a crash, never a conversation in an unknown state, never a message without an answer,
and every answer a step accepts is stored.
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings, strategies as st

from core.features import REGISTRY
from core.engine.pipeline import Engine
from core.domain.store import Store
from tests.helpers import Chat, enrol

# Every registered command, and a few with arguments or in another language.
COMMANDS = [f"/{name}" for name in REGISTRY.commands] + ["/nonsense", "/pause next friday", "/metas", "/resume 0",
                                                         "/open review"]
PAYLOADS = ["@agree", "@decline", "@en", "@es", "@keep", "@yes", "@no", "@carry", "@drop", "@done", "@partly",
            "@not_yet", "@content_knowledge", "@habits_of_success", "@3", "@1", "@friday", "@07:30", "@/goals",
            "@strengths", "@interests", "@" + "x" * 70]
TYPED = ["Thursday", "4pm", "read 20 pages by Friday", "Chicago", "2", "yes", "Sí", "", "@agree", "@en",
         "@keep"]
PROFILE_TEXT_STEPS = {"strengths", "needs", "interests", "aim"}
GOAL_TEXT_STEPS = {"outcome", "obstacle"}

ONBOARDED = ["@agree", "@en", "@keep", "art", "math", "music", "teacher", "4pm", "/goals", "read 20 pages by Friday",
             "@content_knowledge"]
message = st.one_of(st.sampled_from(COMMANDS + PAYLOADS + TYPED), st.text(max_size=80))
script = st.lists(st.tuples(st.integers(0, 2), message), min_size=1, max_size=40)
counter = itertools.count()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=script)
def test_any_sequence_of_messages_from_many_students(engine, now, script):
    conversation = Engine(Store(engine), REGISTRY, clock=lambda: now)
    run = next(counter)
    chats = []
    for n in range(3):
        _, code = enrol(engine, now, given_name=f"S{run}x{n}")
        chats.append(Chat(conversation, f"run{run}-student{n}"))
        chats[-1].say(code)
    for says in ONBOARDED:  # one student starts past onboarding, so the random messages reach the goals
        chats[0].say(says)
    for who, says in script:
        chat = chats[who]
        before = state_of(engine, chat)
        replies = chat.say(says)
        after = state_of(engine, chat)
        assert replies, f"no answer to {says!r}"
        assert_known_state(after)
        assert_answer_stored(engine, chat, before, after, says)


def state_of(engine, chat: Chat):
    with Store(engine).transaction() as tx:
        return tx.sender(chat.platform, chat.user)


def assert_known_state(sender) -> None:
    if sender.flow is None:
        assert sender.state is None
    else:
        assert REGISTRY.flows[sender.flow].knows(sender.state)
    for part in ("below", "aside"):
        for frame in (sender.stack or {}).get(part, []):
            assert REGISTRY.flows[frame["flow"]].knows(frame["state"])


def assert_answer_stored(engine, chat: Chat, before, after, says: str) -> None:
    """An answer that moved the conversation on is stored word for word: in the profile, or with the goal."""
    moved_on = (after.flow, after.state) != (before.flow, before.state) and not says.startswith(("/", "@"))
    if not moved_on:
        return
    if before.flow in ("onboarding", "profile") and before.state in PROFILE_TEXT_STEPS:
        with Store(engine).transaction() as tx:
            stored = tx.one(f"SELECT {before.state} FROM learnerprofile WHERE person_id = ?", (before.person_id,))
        assert stored[0] == says.strip()
    if before.flow == "goals" and before.state in GOAL_TEXT_STEPS and after.flow == "goals":
        assert after.answers[before.state] == says.strip()
