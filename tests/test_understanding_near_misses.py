"""Near-misses (tests/data/understanding/near_misses.toml): answers that look like a button's words
but are not that answer. Each must be asked again with a hint, never guessed.

The corpus was written and committed before the answer interpreter was tuned (issue 13).
"""

from __future__ import annotations

import tomllib
from datetime import datetime, timezone
from pathlib import Path

import pytest

from core.domain.messages import Inbound
from core.domain.store import Sender
from core.engine.flow import Invalid, Turn
from core.features import REGISTRY

CASES = tomllib.loads((Path(__file__).parent / "data" / "understanding" / "near_misses.toml")
                      .read_text("utf-8"))["case"]
NOW = datetime(2026, 11, 23, 14, 0, tzinfo=timezone.utc)  # a Monday, as in conftest


def turn_at(flow: str, step: str, locale: str) -> Turn:
    """A student waiting at `flow`'s `step`, in `locale` (parsing an answer reads no rows)."""
    sender = Sender(identity_id=1, person_id=1, chat_id="near-miss", locale=locale, flow=flow, state=step,
                    school_timezone="America/New_York", answers={})
    return Turn(None, sender, REGISTRY.catalog, NOW, flows=REGISTRY.flows)


def test_the_corpus_is_large_enough_and_in_both_languages():
    assert len(CASES) >= 30
    assert {case["locale"] for case in CASES} == {"en", "es"}


@pytest.mark.parametrize("case", CASES, ids=[f"{c['locale']}-{c['step']}-{c['says']}" for c in CASES])
def test_a_near_miss_is_asked_again_not_guessed(case):
    turn = turn_at(case["flow"], case["step"], case["locale"])
    step = REGISTRY.flows[case["flow"]].step(case["step"])
    with pytest.raises(Invalid) as refused:
        value = step.expect.parse(turn, Inbound("console", "e", "s", "s", text=case["says"]))
        pytest.fail(f"{case['says']!r} was read as {value!r} ({case['why']})")
    hint = {key: value for key, value in refused.value.context.items() if key != "buttons"}
    assert REGISTRY.catalog.text(refused.value.template, case["locale"], hint)  # a hint in the student's language
    assert turn.replies == []  # refusing stores and sends nothing by itself: the engine asks again
