"""Text as a student types it, made comparable: case, accents, apostrophes, repeated letters, chat
spellings and abbreviations, Spanish clitics, sound-alike and near-miss spellings, word forms.

Two levels, so the usual message costs almost nothing:

- `fold` (code only): casefold, no apostrophes ("don't" → "dont", "I’m" → "im"), no accents
  ("aquí" → "aqui"), laughing emoji as "jaja"; `tokens` splits it into `[a-z0-9]+` words.
- `Normaliser.words(token)` (memoised per token): the words a token stands for, after the locales'
  chat spellings ("kms" → "kill myself", "xq" → "porque"), letters repeated three times or more
  ("dieee", "moriiir"), a dropped g ("killin"), a Spanish clitic split off ("matarme" → matar
  myself), a sound-alike Spanish spelling ("suisidarme", "noxe", "biene"), or a near miss of a key
  word (rapidfuzz, one edit, two in long words: "myslef" → "myself"; never a real word: "hunting"
  stays).
  `Normaliser.symbols(word)` is what a pattern sees: the word, its lemma (word forms expanded from
  simplemma's tables by the build script) and the concepts it belongs to.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Iterable

from rapidfuzz import process
from rapidfuzz.distance import OSA

APOSTROPHES = str.maketrans("", "", "'\u2019\u2018\u02bc`\u00b4")
LAUGHING = str.maketrans({"\U0001F602": " jaja ", "\U0001F923": " jaja ", "\U0001F480": " jaja ",
                          "\U0001F606": " jaja ", "\U0001F605": " jaja "})
TOKEN = re.compile(r"[a-z0-9]+|[.!?;]+")
BOUNDARY = "."  # a sentence end, kept as a token: patterns never match it, it counts as a gap
REPEATED3 = re.compile(r"(.)\1\1+")
REPEATED2 = re.compile(r"(.)\1+")
CLITIC = re.compile(r"^(.+?(?:ar|er|ir|ando|iendo|yendo))(me|te|se|nos|lo|la|los|las|le|les)$")
# A clitic after an infinitive or gerund names who it is done to: "matarme" → matar myself,
# "lastimarlos" → lastimar them (so the English patterns read Spanish word order too).
CLITIC_AS = {"me": "myself", "te": "you", "se": "oneself", "nos": "us", "lo": "him", "la": "her", "los": "them",
             "las": "them", "le": "him", "les": "them"}
CACHE_LIMIT = 50_000


def fold(text: str) -> str:
    """Lowercase, no apostrophes, no accents: "Don’t" → "dont", "Aquí" → "aqui"."""
    folded = text.casefold().translate(APOSTROPHES)
    if not folded.isascii():
        folded = unicodedata.normalize("NFKD", folded.translate(LAUGHING))
        folded = "".join(char for char in folded if not unicodedata.combining(char))
    return folded


def tokens(text: str) -> list[str]:
    """The words (and sentence ends) of `text`, folded."""
    return [BOUNDARY if not token[0].isalnum() else token for token in TOKEN.findall(fold(text))]


def sound(word: str) -> str:
    """A Spanish-style sound-alike key: "suisidarme" and "suicidarme", "noxe" and "noche" agree."""
    key = word.replace("ch", "x").replace("qu", "k").replace("ll", "y")
    return re.sub(r"c(?=[ei])", "s", key).replace("c", "k").replace("z", "s").replace("v", "b").replace("h", "")


class Normaliser:
    """A token → the words it stands for → the symbols a pattern can match."""

    def __init__(self, spelling: dict[str, tuple[str, ...]], forms: dict[str, tuple[str, ...]],
                 concepts: dict[str, frozenset[str]], prefixes: dict[str, frozenset[str]],
                 fuzzy: Iterable[str], sound_alike: Iterable[str] = (), not_typos: Iterable[str] = ()):
        self.spelling = spelling          # a token → the words it stands for ("kms" → kill, myself)
        self.forms = forms                # a word form → its lemmas ("killed" → kill)
        self.concepts = concepts          # a word or lemma → its concepts ("kill" → {KILL})
        self.prefixes = prefixes          # a stem → concepts, for "suicid*"
        self.known = set(spelling) | set(forms) | set(concepts)
        self.known.update(word for words in spelling.values() for word in words)
        self.fuzzy = sorted(set(fuzzy))
        self.not_typos = frozenset(not_typos)  # real words near a key word ("hunting", "pulls"): never respelt
        self.known.update(self.fuzzy)
        self.by_sound: dict[str, str] = {}  # only the words of locales spelled by sound (Spanish)
        sound_alike = set(sound_alike)
        self.known.update(sound_alike)
        for word in sorted(sound_alike):
            if word.isalpha() and len(word) >= 3:
                self.by_sound.setdefault(sound(word), word)
        self._words: dict[str, tuple[str, ...]] = {}
        self._symbols: dict[str, frozenset[str]] = {}

    def words(self, token: str) -> tuple[str, ...]:
        """The words `token` stands for (memoised)."""
        found = self._words.get(token)
        if found is None:
            if len(self._words) > CACHE_LIMIT:
                self._words.clear()
            found = self._words[token] = self._resolve(token)
        return found

    def _resolve(self, token: str) -> tuple[str, ...]:
        if token in self.spelling:
            return self.spelling[token]
        clitic = CLITIC.match(token)
        if clitic and clitic.group(1) in self.known:
            return (*self.words(clitic.group(1)), CLITIC_AS[clitic.group(2)])
        if token in self.known or not token.isalpha():
            return (token,)
        for candidate in dict.fromkeys((REPEATED3.sub(r"\1\1", token), REPEATED2.sub(r"\1", token))):
            if candidate in self.spelling:
                return self.spelling[candidate]
            if candidate in self.known:
                return (candidate,)
        if token.endswith("in") and token + "g" in self.known:  # a dropped g: "killin", "nothin"
            return self.words(token + "g")
        token = REPEATED3.sub(r"\1\1", token)
        clitic = CLITIC.match(token)
        if clitic and len(clitic.group(1)) >= 5:  # an unknown verb's clitic; "fuerte", "parte" are no verbs
            return (*self.words(clitic.group(1)), CLITIC_AS[clitic.group(2)])
        if len(token) >= 3 and sound(token) in self.by_sound:
            return self.words(self.by_sound[sound(token)])
        if len(token) >= 5 and token not in self.not_typos:
            limit = 1 if len(token) < 8 else 2
            near = process.extractOne(token, self.fuzzy, scorer=OSA.distance, score_cutoff=limit)
            if near and near[0][0] == token[0]:
                return self.words(near[0])
        return (token,)

    def symbols(self, word: str) -> frozenset[str]:
        """What a pattern can match in `word`: the word, its lemmas and their concepts (memoised)."""
        found = self._symbols.get(word)
        if found is None:
            if len(self._symbols) > CACHE_LIMIT:
                self._symbols.clear()
            names = {word, *self.forms.get(word, ())}
            found = set(names) | {"=" + word}
            for name in names:
                found.update(self.concepts.get(name, ()))
                for end in range(3, len(name) + 1):
                    found.update(self.prefixes.get(name[:end], ()))
            found = self._symbols[word] = frozenset(found)
        return found
