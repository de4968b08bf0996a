"""Every user-facing sentence is a Jinja2 template in a prompt folder: `<root>/<locale>/<group>/`.

A group is a feature's folder (`goals`, `review`, …) or one the engine owns (`errors`, `safety`,
`link`, …). Each holds its templates, its button labels (`labels.toml`) and the words it listens
for (`lexicon.toml`). A template is named `<group>/<name>`; a label key is global and must be
defined once per locale. The catalog takes the folders it is given, wherever they lie, so a
feature living outside this repository brings its own.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Iterable

import jinja2
from babel.dates import format_date

import prompts
from core.domain.messages import Button, Outbound, Rendered
from core.domain.models import DEFAULT_LOCALE
from core.render.lexicon import Lexicon
from core.render.safety import SafetyWatch

PROMPTS_DIR = Path(prompts.__file__).parent
LOCALES = ("en", "es")
# The groups the engine itself speaks from (features bring the rest).
ENGINE_GROUPS = ("common", "errors", "link", "safety", "artifacts", "nudges")


@dataclass(frozen=True)
class PromptFolder:
    """One group of prompts: `<root>/<locale>/<group>/` for every locale."""

    group: str
    root: Path = PROMPTS_DIR

    def path(self, locale: str) -> Path:
        return self.root / locale / self.group


def engine_folders() -> tuple[PromptFolder, ...]:
    return tuple(PromptFolder(group) for group in ENGINE_GROUPS)


def format_day(value: date | str, locale: str) -> str:
    """A day as people say it in `locale`: "Thursday, Nov 26" / "jueves, 26 nov"."""
    day = date.fromisoformat(value) if isinstance(value, str) else value
    return format_date(day, "EEEE, d MMM" if locale == "es" else "EEEE, MMM d", locale=locale)


def _merge_toml(paths: Iterable[Path]) -> dict:
    """Several TOML files as one: tables merge, a key defined twice is an error."""
    merged: dict = {}
    for path in paths:
        if not path.exists():
            continue
        for key, value in tomllib.loads(path.read_text("utf-8")).items():
            if isinstance(value, dict):
                table = merged.setdefault(key, {})
                for inner, item in value.items():
                    if inner in table:
                        raise ValueError(f"{path}: [{key}] {inner} is already defined in another prompt folder")
                    table[inner] = item
            elif key in merged:
                raise ValueError(f"{path}: {key} is already defined in another prompt folder")
            else:
                merged[key] = value
    return merged


class Catalog:
    """The templates, button labels and listening words of every locale, loaded once."""

    def __init__(self, folders: Iterable[PromptFolder] | None = None):
        self.folders = tuple(folders) if folders is not None else engine_folders()
        self._labels = {locale: self._load_labels(locale) for locale in LOCALES}
        words = {locale: _merge_toml(f.path(locale) / "lexicon.toml" for f in self.folders) for locale in LOCALES}
        self.lexicons = {locale: Lexicon.load(words[locale]) for locale in LOCALES}
        # A command may be typed in any locale's words: /metas works whatever the chosen language.
        self.aliases = {alias.casefold(): name for lexicon in self.lexicons.values()
                        for name, aliases in lexicon.commands.items() for alias in aliases}
        self._envs = {locale: self._environment(locale) for locale in LOCALES}

    @cached_property
    def safety(self) -> SafetyWatch:
        """The safety check, in every locale's words (prompts/<locale>/safety/lexicon.toml): it reads every
        message, and is built at the first one (a process that only renders — a digest builder — never
        loads its rules and net)."""
        return SafetyWatch({locale: lexicon.safety for locale, lexicon in self.lexicons.items()})

    def _load_labels(self, locale: str) -> dict[str, jinja2.Template]:
        env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
        data = _merge_toml(f.path(locale) / "labels.toml" for f in self.folders)
        return {key: env.from_string(value) for key, value in data.items()}

    def _environment(self, locale: str) -> jinja2.Environment:
        env = jinja2.Environment(
            loader=jinja2.PrefixLoader({f.group: jinja2.FileSystemLoader(f.path(locale)) for f in self.folders}),
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # plain chat text; a variable's value is never evaluated as a template
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters["day"] = lambda value: format_day(value, locale)
        env.globals["label"] = lambda key, **context: self.label(key, locale, context)
        env.globals["aliases"] = {name: aliases[0] for name, aliases in self.lexicon(locale).commands.items()
                                  if aliases}
        return env

    def lexicon(self, locale: str) -> Lexicon:
        return self.lexicons.get(locale) or self.lexicons[DEFAULT_LOCALE]

    def env(self, locale: str) -> jinja2.Environment:
        """The Jinja2 environment of `locale`, falling back to English."""
        return self._envs.get(locale) or self._envs[DEFAULT_LOCALE]

    def text(self, template: str, locale: str, context: dict) -> str:
        """Render the template `<group>/<name>` of `locale`."""
        return self.env(locale).get_template(template + ".j2").render(context).strip()

    def label(self, key: str, locale: str, context: dict | None = None) -> str:
        """Render a button label from the prompt folders' `labels.toml`."""
        labels = self._labels.get(locale) or self._labels[DEFAULT_LOCALE]
        return labels[key].render(context or {})

    def render(self, message: Outbound, locale: str) -> Rendered:
        """Turn a neutral outbound message into text and labelled buttons."""
        return Rendered(
            text=self.text(message.template, locale, message.context),
            buttons=tuple(self._button(button, locale) for button in message.buttons),
        )

    def _button(self, button: Button, locale: str) -> tuple[str, str]:
        return self.label(button.label, locale, button.context), button.payload

    def template_names(self, locale: str) -> list[str]:
        """Every template of `locale`, as `<group>/<name>`."""
        return sorted(f"{f.group}/{p.relative_to(f.path(locale)).with_suffix('')}"
                      for f in self.folders for p in f.path(locale).rglob("*.j2"))

    def label_keys(self, locale: str) -> list[str]:
        return sorted(self._labels[locale])
