"""The safety check: what a student's message touches, in every locale (SPEC §2, issue 9).

`SafetyWatch.concerns(text)` returns the sorted categories a message raises — suicidal_ideation,
self_harm, plan_means, abuse_neglect, violence_threats, bullying, basic_needs — or [] for an
ordinary message. It works in three steps, each costlier and rarer than the one before:

1. Pre-filter (every message, a few µs): fold the text (case, accents, apostrophes), split it into
   words and look each one up (memoised) — a message none of whose words belongs to a loud concept
   (every concept a lexicon does not list as `quiet`) is cleared here, before any pattern or model
   runs: the conversation benchmark's messages take 2–5 µs.
2. Patterns (`patterns.py`): the words are respelled and tagged with concepts (`normalise.py`),
   idioms are masked ("dying of laughter", "this test is killing me"), and each category's
   patterns — combinations of concepts in a window or in order, so one pattern covers many word
   forms and word orders — run over them.
3. The n-gram net (`ngram.py`): a small character n-gram model, trained by `bench/train_safety.py`
   on the tuning corpus and shipped as JSON, adds the categories it is confident of. It catches
   paraphrases the patterns miss; it reads the words the masks leave, and only messages of four words
   or more holding a loud word that is not everyday `context` ("my mom", "lunch money"), and escalates from a crisis
   probability chosen on out-of-fold predictions to keep its own false alarms near 1 %.

The words and patterns are data, per locale, in each prompt folder's `lexicon.toml` [safety] table
(prompts/<locale>/safety/lexicon.toml): translators and schools edit words, not code, and a
message is checked against every locale at once (students mix Spanish and English). What is
derived from them is shipped beside this module: `forms.json` (each listed word's forms, from
simplemma's tables, so no dictionary is loaded at run time) and `ngram.json` (the net).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Mapping

from core.render.safety import ngram
from core.render.safety.normalise import BOUNDARY, TOKEN, Normaliser, fold
from core.render.safety.patterns import Pattern

CATEGORIES = ("suicidal_ideation", "self_harm", "plan_means", "abuse_neglect", "violence_threats", "bullying",
              "basic_needs")
MASK = "mask"
FORMS = Path(__file__).with_name("forms.json")
NOT_TYPOS = "not_typos"  # forms.json's list of real words the near-miss step leaves alone
NET_MIN_WORDS = 4  # shorter messages are the patterns' alone


@lru_cache(maxsize=1)
def shipped_forms() -> dict[str, dict[str, list[str]]]:
    """locale → word form → the listed words it is a form of, and under NOT_TYPOS the real words that
    are no misspelling of a key word (written by bench/train_safety.py)."""
    return json.loads(FORMS.read_text("utf-8")) if FORMS.exists() else {}


@dataclass(frozen=True)
class Rules:
    """Every locale's safety words and patterns, compiled once."""

    normaliser: Normaliser
    phrases: dict[str, list[tuple[tuple[str, ...], tuple[str, ...]]]]  # first word → (words, replacement)
    loud: frozenset[str]            # the concepts that wake the check
    loud_heads: frozenset[str]      # first words of phrases that stand for a loud word
    net_loud: frozenset[str]        # the concepts that wake the n-gram net (loud, not everyday context)
    patterns: tuple[Pattern, ...]
    masks: tuple[Pattern, ...]
    pattern_index: dict[str, tuple[int, ...]]  # a symbol → the patterns whose rarest slot holds it
    mask_index: dict[str, tuple[int, ...]]


def _index(patterns: tuple[Pattern, ...], sizes: dict[str, int]) -> dict[str, tuple[int, ...]]:
    """Each pattern filed under the symbols of its rarest slot: a message only tries the patterns
    one of whose keys it holds (a slot must match, so nothing is lost)."""
    index: dict[str, list[int]] = {}
    for number, pattern in enumerate(patterns):
        rarest = min(pattern.slots, key=lambda slot: sum(sizes.get(symbol, 1) for symbol in slot))
        for symbol in rarest:
            index.setdefault(symbol, []).append(number)
    return {symbol: tuple(numbers) for symbol, numbers in index.items()}


def _as_words(value: str) -> tuple[str, ...]:
    return tuple(TOKEN.findall(fold(value)))


def compile_rules(tables: Mapping[str, dict]) -> Rules:
    """`tables`: locale → that locale's merged [safety] table."""
    spelling: dict[str, tuple[str, ...]] = {}
    phrases: dict[str, list[tuple[tuple[str, ...], tuple[str, ...]]]] = {}
    concepts: dict[str, set[str]] = {}
    prefixes: dict[str, set[str]] = {}
    quiet: set[str] = set()
    context: set[str] = set()
    fuzzy: set[str] = set()
    patterns: list[Pattern] = []
    masks: list[Pattern] = []
    forms: dict[str, set[str]] = {}
    sound_alike: set[str] = set()
    shipped = shipped_forms()
    for locale, table in tables.items():
        own: set[str] = set()  # this locale's words
        quiet.update(table.get("quiet", ()))
        context.update(table.get("context", ()))
        fuzzy.update(fold(word) for word in table.get("fuzzy", ()))
        for key, value in table.get("spelling", {}).items():
            words, replacement = _as_words(key), _as_words(value)
            own.update(replacement)
            if len(words) == 1:
                spelling[words[0]] = replacement
            elif words:
                phrases.setdefault(words[0], []).append((words, replacement))
        for concept, items in table.get("concepts", {}).items():
            for item in items:
                word = fold(item.lstrip("="))
                if word.endswith("*"):
                    prefixes.setdefault(word[:-1], set()).add(concept)
                else:
                    concepts.setdefault(word, set()).add(concept)
                    own.add(word)
        for category, lines in table.get("patterns", {}).items():
            if category != MASK and category not in CATEGORIES:
                raise ValueError(f"safety patterns of {locale}: unknown category {category}")
            for line in lines:
                pattern = Pattern.parse(category, line)
                (masks if category == MASK else patterns).append(pattern)
                own.update(s for s in pattern.symbols() if s.isalpha() and s.islower())
        for form, lemmas in shipped.get(locale, {}).items():
            forms.setdefault(form, set()).update(lemmas)
        if table.get("sound_alike"):  # misspelt by sound: "suisidarme", "noxe", "biene"
            sound_alike.update(own)
            sound_alike.update(shipped.get(locale, {}))
    for options in phrases.values():
        options.sort(key=lambda option: -len(option[0]))
    known_concepts = {concept for names in (*concepts.values(), *prefixes.values()) for concept in names}
    for pattern in (*patterns, *masks):
        unknown = {s for s in pattern.symbols() if s.isupper() and s not in known_concepts}
        if unknown:
            raise ValueError(f"safety pattern {pattern.source!r} names unknown concepts {sorted(unknown)}")
    normaliser = Normaliser(spelling, {form: tuple(sorted(lemmas)) for form, lemmas in forms.items()},
                            {word: frozenset(names) for word, names in concepts.items()},
                            {stem: frozenset(names) for stem, names in prefixes.items()}, fuzzy, sound_alike,
                            shipped.get(NOT_TYPOS, ()))
    loud = frozenset(known_concepts - quiet)
    heads = frozenset(head for head, options in phrases.items()
                      if any(not loud.isdisjoint(normaliser.symbols(word)) for _, replacement in options
                             for word in replacement))
    sizes: dict[str, int] = {}
    for names in concepts.values():
        for name in names:
            sizes[name] = sizes.get(name, 0) + 1
    for form, lemmas in forms.items():  # a concept's word forms count too
        for lemma in lemmas:
            for name in concepts.get(lemma, ()):
                sizes[name] = sizes.get(name, 0) + 1
    for names in prefixes.values():
        for name in names:
            sizes[name] = sizes.get(name, 0) + 20
    unique_patterns, unique_masks = tuple(dict.fromkeys(patterns)), tuple(dict.fromkeys(masks))  # locales share some
    return Rules(normaliser, phrases, loud, heads, loud - context, unique_patterns, unique_masks,
                 _index(unique_patterns, sizes), _index(unique_masks, sizes))


@dataclass
class Reading:
    """How a message was read: for tests, reports and the training script."""

    words: list[str]
    cleared: bool                      # the pre-filter cleared it
    patterns: list[Pattern]            # the patterns that matched
    net: set[str]                      # the categories the n-gram net raised

    @property
    def concerns(self) -> list[str]:
        return sorted({pattern.category for pattern in self.patterns} | self.net)


class SafetyWatch:
    """The safety check of every locale, run on everything a student writes."""

    def __init__(self, tables: Mapping[str, dict], use_net: bool = True):
        """`tables`: locale → that locale's [safety] table (the Catalog's merged lexicon.toml)."""
        self.rules = _compiled(json.dumps(tables, sort_keys=True))
        self.net = ngram.load() if use_net else None
        self._loud: dict[str, bool] = {}

    # -- step 1: the pre-filter ---------------------------------------------------------------
    def _is_loud(self, word: str) -> bool:
        found = self._loud.get(word)
        if found is None:
            if len(self._loud) > 50_000:
                self._loud.clear()
            found = self._loud[word] = not self.rules.loud.isdisjoint(self.rules.normaliser.symbols(word))
        return found

    def words(self, text: str) -> list[str]:
        """The message's words after respelling (before phrases are joined)."""
        resolve = self.rules.normaliser.words
        return [word for token in TOKEN.findall(fold(text))
                for word in (resolve(token) if token[0].isalnum() else (BOUNDARY,))]

    def wakes(self, text: str) -> bool:
        """Whether the pre-filter lets `text` through to the patterns."""
        return self._wakes(self.words(text))

    def _wakes(self, words: list[str]) -> bool:
        heads = self.rules.loud_heads
        for index, word in enumerate(words):
            if self._is_loud(word):
                return True
            if word in heads and any(tuple(words[index:index + len(phrase)]) == phrase
                                     for phrase, _ in self.rules.phrases[word]):
                return True
        return False

    # -- step 2: patterns ----------------------------------------------------------------------
    def _joined(self, words: list[str]) -> list[str]:
        """Several words that act as one become one ("on purpose" → onpurpose)."""
        for _ in range(3):
            out: list[str] = []
            index, changed = 0, False
            while index < len(words):
                for phrase, replacement in self.rules.phrases.get(words[index], ()):
                    if tuple(words[index:index + len(phrase)]) == phrase:
                        out.extend(replacement)
                        index += len(phrase)
                        changed = True
                        break
                else:
                    out.append(words[index])
                    index += 1
            words = out
            if not changed:
                break
        return words

    def read(self, text: str) -> Reading:
        words = self.words(text)
        if not self._wakes(words):
            return Reading(words, True, [], set())
        return self._read(words)

    def _masked(self, words: list[str]) -> tuple[list[frozenset[str]], list[frozenset[str]], set[int]]:
        """Each word's symbols; the same with the masks applied; the positions the masks cover."""
        rules = self.rules
        symbols = [frozenset() if word == BOUNDARY else rules.normaliser.symbols(word) for word in words]
        present = set().union(*symbols) if symbols else set()
        masked, covered = list(symbols), set()
        for number in sorted({n for symbol in present for n in rules.mask_index.get(symbol, ())}):
            mask = rules.masks[number]
            if mask.possible(present):
                taken = mask.match(symbols)
                if taken:
                    for position in range(min(taken), max(taken) + 1):
                        masked[position] = frozenset()
                        covered.add(position)
        return symbols, masked, covered

    def net_reads(self, words: list[str]) -> bool:
        """The net reads a message of NET_MIN_WORDS words or more holding a loud word that is not everyday context
        ("my mom", "lunch"): a shorter one ("bye", "sense of purpose") gives it too few n-grams to judge."""
        if sum(1 for word in words if word != BOUNDARY) < NET_MIN_WORDS:
            return False
        loud, symbols = self.rules.net_loud, self.rules.normaliser.symbols
        return any(not loud.isdisjoint(symbols(word)) for word in words)

    def net_words(self, text: str) -> list[str]:
        """What the n-gram net reads: the message's words, joined, without those a mask covers."""
        words = self._joined(self.words(text))
        covered = self._masked(words)[2]
        return [word for position, word in enumerate(words) if position not in covered]

    def _read(self, words: list[str]) -> Reading:
        words = self._joined(words)
        symbols, masked, covered = self._masked(words)
        rules = self.rules
        present = set().union(*symbols) if symbols else set()
        masked_present = set().union(*masked) if masked else set()
        found = []
        for number in sorted({n for symbol in present for n in rules.pattern_index.get(symbol, ())}):
            pattern = rules.patterns[number]
            view, seen = (symbols, present) if pattern.strong else (masked, masked_present)
            if pattern.possible(seen) and pattern.match(view):
                found.append(pattern)
        net = set()
        if self.net:  # the idioms masks cover are look-alikes: the net does not read them either,
            # and it reads a message only if what is left still wakes the pre-filter
            left = [word for position, word in enumerate(words) if position not in covered]
            if self.net_reads(left):
                net = self.net.concerns(left)
        return Reading(words, False, found, net)

    def concerns(self, text: str) -> list[str]:
        """The categories `text` touches (sorted; [] for an ordinary message). Err toward escalating."""
        words = self.words(text)
        if not self._wakes(words):
            return []
        return self._read(words).concerns


@lru_cache(maxsize=8)
def _compiled(tables_json: str) -> Rules:
    return compile_rules(json.loads(tables_json))
