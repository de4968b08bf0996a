"""The second net: a character n-gram model, scored in pure Python.

Multinomial logistic regression over the character 3- to 5-grams of a message's normalised words
(the same words the patterns see: "kms" is already "kill myself"). `bench/train_safety.py` trains
it on the tuning part of the labelled corpus only and writes `ngram.json` here: the classes, a
bias and, for each n-gram kept, one weight per class; and when it escalates: its crisis probability
(1 − benign) at least `crisis`, the lowest value that keeps its own out-of-fold false alarms within
a small budget (SPEC: err toward escalating, within the issue's 5 % false alarms); it then raises
its likeliest category and any other at least `also` likely.
Nothing is downloaded and no numerical library is needed at run time.
"""

from __future__ import annotations

import json
import math
from array import array
from functools import lru_cache
from pathlib import Path

MODEL = Path(__file__).with_name("ngram.json")
SIZES = (3, 4, 5)


def grams(words: list[str]) -> set[str]:
    """The distinct character n-grams of the words, with a space marking each word's edges."""
    text = " " + " ".join(word for word in words if word.isalnum()) + " "
    return {text[start:start + size] for size in SIZES for start in range(len(text) - size + 1)}


class NgramNet:
    def __init__(self, data: dict):
        self.classes: list[str] = data["classes"]
        self.bias: list[float] = data["bias"]
        self.thresholds: dict[str, float] = data["thresholds"]  # {"crisis": …, "also": …}
        # Every n-gram's weights side by side in one flat array, found by the n-gram's offset: a list of
        # Python floats per n-gram took 2.5 times the memory, in every process that reads messages.
        width = len(self.classes)
        self.offsets: dict[str, int] = {gram: row * width for row, gram in enumerate(data["weights"])}
        self.weights = array("d", (weight for row in data["weights"].values() for weight in row))

    def probabilities(self, words: list[str]) -> dict[str, float]:
        scores = list(self.bias)
        every = grams(words)
        found = [self.offsets[gram] for gram in every if gram in self.offsets]
        if found:
            scale = 1.0 / math.sqrt(len(every))
            weights, width = self.weights, len(scores)
            for offset in found:
                for index in range(width):
                    scores[index] += weights[offset + index] * scale
        top = max(scores)
        exps = [math.exp(score - top) for score in scores]
        total = sum(exps)
        return {name: value / total for name, value in zip(self.classes, exps)}

    def concerns(self, words: list[str]) -> set[str]:
        return raised(self.probabilities(words), self.thresholds)


def raised(probabilities: dict[str, float], thresholds: dict[str, float]) -> set[str]:
    """The categories the net raises from its probabilities (none unless it is confident of a crisis)."""
    if 1.0 - probabilities.get("benign", 1.0) < thresholds["crisis"]:
        return set()
    categories = {name: p for name, p in probabilities.items() if name != "benign"}
    top = max(categories, key=categories.get)
    return {top} | {name for name, p in categories.items() if p >= thresholds["also"]}


@lru_cache(maxsize=1)
def load() -> NgramNet | None:
    """The shipped net, or None before `bench/train_safety.py` has written it."""
    if not MODEL.exists():
        return None
    return NgramNet(json.loads(MODEL.read_text("utf-8")))
