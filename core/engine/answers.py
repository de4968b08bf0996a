"""The one answer interpreter: what a student typed at a step with buttons, read as one of them.

A step's options are known by their labels (every locale's) and by the lexicons' synonyms
(`[answers]` in any prompt folder's `lexicon.toml`, keyed by the label key). A typed answer
matches an option when, folded (any case, no accents, no punctuation, stretched letters as
"siii" shortened), it is

  1. one of the option's words, with or without filler around it ("ok yes", "creo que sí");
  2. a number: the option's position, or on a scale its value, in digits or words ("four",
     "cuatro"), or as "4/5", "4 of 5", "8/10"; or a scale word ("high", "kinda", "bastante");
  3. a misspelling of one of the option's longer words (rapidfuzz).

It matches nothing (the step asks again with a hint naming the options) when it says it does
not know ("idk", "not sure", "no sé"), names two options ("yes and no", "4 or 5"), negates the
option it names ("not really sure"), or holds a duration or a quantity ("5 minutes"). Short words
are never guessed from a misspelling: "now" is not "no".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Iterable, Sequence

from rapidfuzz import fuzz, process

from core.domain.dates import AMOUNT, fold, numbers_as_digits

if TYPE_CHECKING:
    from core.render.templates import Catalog

FUZZY_CUTOFF = 84  # a misspelling of a word of at least FUZZY_MIN letters ("englsh", "agre")
FUZZY_MIN = 5
FUZZY_MARGIN = 6  # the best option must beat the next one by this much
MAX_WORDS = 7  # a longer message is a sentence, not a tap typed out
STRETCHED = re.compile(r"(\w)\1{2,}")  # "yesss", "siii", "nooo"
FRACTION = re.compile(r"^(\d+)\s*(?:/|of|out of|de|sobre)\s*(\d+)$")
NUMBER = re.compile(r"\d+(?:[.,]\d+)?")


@dataclass(frozen=True)
class Words:
    """The locale-wide listening words of the interpreter (`[understand]` in the lexicons)."""

    unsure: tuple[str, ...]
    negations: tuple[str, ...]
    filler: tuple[str, ...]
    scale: dict[int, tuple[str, ...]]  # 1 to 5 → the words for it


def squeeze(text: str) -> str:
    return STRETCHED.sub(r"\1", text)


def _contains(text: str, phrase: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text) is not None


@lru_cache(maxsize=4)
def words_of(catalog: "Catalog") -> Words:
    """Every locale's `[understand]` words together: a student may answer in either language."""
    unsure, negations, filler, scale = set(), set(), set(), {}
    for lexicon in catalog.lexicons.values():
        table = lexicon.tables.get("understand", {})
        unsure |= {fold(w) for w in table.get("unsure", [])}
        negations |= {fold(w) for w in table.get("negations", [])}
        filler |= {fold(w) for w in table.get("filler", [])}
        for value, items in lexicon.tables.get("scale", {}).items():
            scale.setdefault(int(value), set()).update(fold(w) for w in items)
    by_length = lambda items: tuple(sorted(items, key=len, reverse=True))  # noqa: E731 - the longest phrase first
    return Words(by_length(unsure), by_length(negations), by_length(filler),
                 {value: by_length(items) for value, items in scale.items()})


@lru_cache(maxsize=512)
def option_words(catalog: "Catalog", label: str, option: str) -> tuple[str, ...]:
    """Every way to say `option`: its label in each locale, its name, and the lexicons' synonyms."""
    found = {fold(option.replace("_", " "))}
    for locale, lexicon in catalog.lexicons.items():
        try:
            found.add(fold(catalog.label(label, locale)))
        except Exception:  # a label that needs context ("Keep {{ zone }}") is known by its synonyms
            pass
        found |= {fold(word) for word in lexicon.tables.get("answers", {}).get(label, [])}
    return tuple(sorted((word for word in found if word), key=len, reverse=True))


def _strip_filler(text: str, words: Words) -> str:
    for phrase in words.filler:
        text = re.sub(rf"(?<!\w){re.escape(phrase)}(?!\w)", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def _unsure(text: str, words: Words) -> bool:
    return any(_contains(text, phrase) for phrase in words.unsure)


def _named(text: str, options: dict[str, tuple[str, ...]], words: Words) -> set[str] | None:
    """The options whose words appear in `text` (longest phrases first, no overlaps); None when one is negated."""
    spans: list[tuple[int, int, str]] = []
    phrases = sorted(((phrase, option) for option, items in options.items() for phrase in items),
                     key=lambda pair: len(pair[0]), reverse=True)
    for phrase, option in phrases:
        for match in re.finditer(rf"(?<!\w){re.escape(phrase)}(?!\w)", text):
            start, end = match.span()
            if any(start < other_end and other_start < end for other_start, other_end, _ in spans):
                continue
            before = text[:start].split()
            if before and before[-1] in words.negations and not any(n in phrase.split() for n in words.negations):
                return None  # "not sure", "no quiero": the option is negated
            spans.append((start, end, option))
    return {option for _, _, option in spans}


def choose(catalog: "Catalog", typed: str, options: dict[str, tuple[str, ...]], *, loose: bool = True) -> str | None:
    """The option `typed` names, or None. `options`: option → its words (`option_words`).

    `loose` allows words inside a sentence and misspellings; a step that also takes free text
    (a goal, "or keep it") matches only a whole answer, so the student's own words stay theirs.
    """
    words = words_of(catalog)
    text = squeeze(fold(typed))
    if not text:
        return None
    for candidate in dict.fromkeys((fold(typed), text, _strip_filler(text, words))):
        exact = {option for option, items in options.items() if candidate in items}
        if len(exact) == 1:
            return exact.pop()  # a label or synonym as a whole ("Ninguna todavía" is a button, not "ninguna")
        if exact:
            return None
    if _unsure(text, words):
        return None
    if not loose or len(text.split()) > MAX_WORDS or AMOUNT.search(text):
        return None
    named = _named(text, options, words)
    if named is None or len(named) > 1:
        return None
    if named:
        return named.pop()
    return _misspelled(_strip_filler(text, words) or text, options)


def _misspelled(text: str, options: dict[str, tuple[str, ...]]) -> str | None:
    if len(text) < FUZZY_MIN:
        return None
    choices = [(phrase, option) for option, items in options.items() for phrase in items if len(phrase) >= FUZZY_MIN]
    if not choices:
        return None
    scored = process.extract(text, [phrase for phrase, _ in choices], scorer=fuzz.ratio, limit=None,
                             score_cutoff=FUZZY_CUTOFF - FUZZY_MARGIN)
    by_option: dict[str, float] = {}
    for _, score, index in scored:
        option = choices[index][1]
        by_option[option] = max(score, by_option.get(option, 0.0))
    ranked = sorted(by_option.items(), key=lambda pair: pair[1], reverse=True)
    if not ranked or ranked[0][1] < FUZZY_CUTOFF:
        return None
    if len(ranked) > 1 and ranked[0][1] - ranked[1][1] < FUZZY_MARGIN:
        return None
    return ranked[0][0]


def number(catalog: "Catalog", typed: str, locale: str, low: int, high: int) -> int | None:
    """A whole number from `low` to `high` in the student's words: "4", "four", "cuatro", "4/5",
    "8/10", and on a 1–5 scale its words ("high", "kinda"); None when none, two, or out of range."""
    words = words_of(catalog)
    text = squeeze(fold(typed))
    if not text:
        return None
    text = _strip_filler(numbers_as_digits(text, locale), words) or text
    if AMOUNT.search(text):
        return None
    if match := FRACTION.match(text):
        value, scale = int(match.group(1)), int(match.group(2))
        if scale == high and low <= value <= high:
            return value
        if scale in (10, 100) and 0 <= value <= scale:
            return max(low, min(high, round(value * high / scale)))
        return None
    if text.endswith("%") and text[:-1].strip().isdigit():
        return max(low, min(high, round(int(text[:-1]) * high / 100)))
    found = NUMBER.findall(text)
    if len(found) == 1 and len(text.split()) <= 4:
        value = float(found[0].replace(",", "."))
        return int(value) if value.is_integer() and low <= value <= high else None
    if found:
        return None
    if (low, high) == (1, 5) and not _unsure(text, words):
        named = {value for value, items in words.scale.items() for phrase in items if _contains(text, phrase)}
        exact = {value for value, items in words.scale.items() if text in items}
        if len(exact) == 1:
            return exact.pop()
        if len(named) == 1 and len(text.split()) <= 4:
            return named.pop()
    return None


def choice_words(catalog: "Catalog", options: Sequence[str], labels: dict[str, str]) -> dict[str, tuple[str, ...]]:
    """Each option's words, for `choose`."""
    return {option: option_words(catalog, labels.get(option, option), option) for option in options}


def hint_labels(catalog: "Catalog", labels: Iterable[str], locale: str) -> list[str]:
    """The options' labels as the student sees them, for the hint that names what is expected."""
    shown = []
    for label in labels:
        try:
            shown.append(catalog.label(label, locale))
        except Exception:  # a label that needs its button's context is left out of the hint
            continue
    return shown
