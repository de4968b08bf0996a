"""Every sentence is a template, complete in every locale, and a student's words can never break one."""

from __future__ import annotations

import jinja2
import jinja2.meta
import pytest
from hypothesis import given, settings, strategies as st

from core.features import REGISTRY
from core.domain.messages import Outbound
from core.render.templates import LOCALES


def variables(locale: str, name: str) -> set[str]:
    env = REGISTRY.catalog.env(locale)
    source = env.loader.get_source(env, name + ".j2")[0]
    return jinja2.meta.find_undeclared_variables(env.parse(source))

def test_every_template_exists_in_every_locale_with_the_same_variables():
    names = {locale: REGISTRY.catalog.template_names(locale) for locale in LOCALES}
    assert names["en"] and all(names[locale] == names["en"] for locale in LOCALES)
    for name in names["en"]:
        assert len({frozenset(variables(locale, name)) for locale in LOCALES}) == 1, name

def test_every_label_exists_in_every_locale_with_the_same_variables():
    keys = {locale: REGISTRY.catalog.label_keys(locale) for locale in LOCALES}
    assert all(keys[locale] == keys["en"] for locale in LOCALES)

def test_every_step_asks_with_a_template_that_exists():
    known = set(REGISTRY.catalog.template_names("en"))
    for flow in REGISTRY.flows.values():
        for step in flow.by_name.values():  # every step, those inside a loop too
            assert step.ask in known, (flow.name, step.name)
        for node in flow.nodes.values():
            assert getattr(node, "say", None) in (None, *known), (flow.name, node.name)

@settings(max_examples=200, deadline=None)
@given(words=st.text(min_size=1, max_size=200))
def test_a_students_text_is_shown_verbatim_never_evaluated(words):
    hostile = f"{words} {{{{ 7*7 }}}} {{% for x in range(3) %}}x{{% endfor %}} {{{{ config }}}}"
    for locale in LOCALES:
        rendered = REGISTRY.catalog.render(Outbound("review/ask_status", {"goal": hostile, "status": None}), locale)
        assert hostile in rendered.text

@pytest.mark.parametrize("locale", LOCALES)
def test_a_missing_variable_fails_loudly_instead_of_sending_a_blank(locale):
    with pytest.raises(jinja2.UndefinedError):
        REGISTRY.catalog.text("review/ask_status", locale, {})
