"""Patterns over concepts, so one line covers many word forms and word orders.

A pattern is a line of slots. A slot is a CONCEPT (upper case, defined per locale in the safety
lexicon) or a literal word (lower case, matched against a word or its lemma); `A|b|C` is any of
them. Between slots `..N` lets up to N other words in between (none by default). A line starting
with `~N` is unordered: every slot within a span of N words, in any order.

    SELF ..2 WANT ..3 DIE          "i really want to die", "i just wanna dieee"
    ~6 SELF BURDEN                 "im just a burden to everyone", "soy una carga"
    better off ..2 without ..1 SELF_OBJ

A literal `=word` matches that form only (not its lemma). A mask is a pattern too: the words from
its first match to its last lose their concepts before the categories' patterns run ("dying of
laughter", "this homework is killing me"); a pattern starting with `!` still sees them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.render.safety.normalise import fold

GAP = re.compile(r"^\.\.(\d+)$")
WINDOW = re.compile(r"^~(\d+)$")


@dataclass(frozen=True)
class Pattern:
    category: str
    source: str
    slots: tuple[frozenset[str], ...]
    gaps: tuple[int, ...]     # gaps[i]: how many words may come between slot i-1 and slot i
    window: int | None        # unordered: the largest span
    strong: bool = False      # sees the words masks cover

    @classmethod
    def parse(cls, category: str, source: str) -> "Pattern":
        parts = source.split()
        strong = bool(parts) and parts[0] == "!"
        parts = parts[1:] if strong else parts
        window = None
        if parts and WINDOW.match(parts[0]):
            window = int(WINDOW.match(parts[0]).group(1))
            parts = parts[1:]
        slots: list[frozenset[str]] = []
        gaps: list[int] = []
        gap = 0
        for part in parts:
            if GAP.match(part):
                if window is not None or not slots:
                    raise ValueError(f"{category}: {source!r}: a gap belongs between two slots of an ordered pattern")
                gap = int(GAP.match(part).group(1))
                continue
            slots.append(frozenset(symbol if symbol.isupper() else fold(symbol) for symbol in part.split("|")))
            gaps.append(gap)
            gap = 0
        if not slots:
            raise ValueError(f"{category}: {source!r} has no slot")
        return cls(category, source, tuple(slots), tuple(gaps), window, strong)

    def symbols(self) -> set[str]:
        return {symbol for slot in self.slots for symbol in slot}

    def possible(self, present: set[str]) -> bool:
        """A cheap test: every slot has something to match in the message."""
        return all(not slot.isdisjoint(present) for slot in self.slots)

    def match(self, words: list[frozenset[str]]) -> tuple[int, ...] | None:
        """The positions of the words matched, or None."""
        if self.window is not None:
            return self._match_window(words)
        first = self.slots[0]
        for start, word in enumerate(words):
            if not first.isdisjoint(word):
                found = self._extend(words, 1, (start,))
                if found:
                    return found
        return None

    def _extend(self, words: list[frozenset[str]], index: int, taken: tuple[int, ...]) -> tuple[int, ...] | None:
        if index == len(self.slots):
            return taken
        slot, last = self.slots[index], taken[-1]
        for position in range(last + 1, min(len(words), last + 2 + self.gaps[index])):
            if not slot.isdisjoint(words[position]):
                found = self._extend(words, index + 1, (*taken, position))
                if found:
                    return found
        return None

    def _match_window(self, words: list[frozenset[str]]) -> tuple[int, ...] | None:
        """Every slot at a distinct position inside one span of `window` words (any order)."""
        where = [[p for p, word in enumerate(words) if not slot.isdisjoint(word)] for slot in self.slots]
        if not all(where):
            return None
        for start in sorted({p for positions in where for p in positions}):
            taken: list[int] = []
            for positions in where:
                inside = [p for p in positions if start <= p < start + self.window and p not in taken]
                if not inside:
                    break
                taken.append(inside[0])
            else:
                return tuple(taken)
        return None
