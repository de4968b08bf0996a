"""Build what the safety check ships beside its code (core/render/safety/): word forms and the n-gram net.

    python bench/train_safety.py            # both steps
    python bench/train_safety.py forms      # forms.json: every listed word's forms (simplemma's tables), and
                                            # the real words near a key word the near-miss step must not respell
    python bench/train_safety.py net        # ngram.json: the n-gram net, trained on the tuning corpus
    python bench/train_safety.py report     # what the net adds, measured out of fold on the tuning corpus

Reads only tests/data/safety/corpus.jsonl, the TUNING part of the labelled corpus (added.jsonl's
families included). The held-out part (heldout.jsonl, and all.jsonl which contains it) is never
read here: only tests/test_safety_detector.py measures it. Deterministic: the same inputs write the same files.

The net: multinomial logistic regression (one class per category, plus benign) over the distinct
character 3–5-grams of a message's normalised words, scaled by 1/sqrt(their number), trained by
stochastic gradient descent with AdaGrad steps and an L2 penalty, in pure Python (about two
minutes). It reads the words the masks leave (look-alike idioms are not its to judge). When it
escalates comes from 5-fold out-of-fold predictions, the folds grouped by concept (a family and its
translation never share a fold, as in the held-out split): its crisis probability (1 − benign) must
reach the lowest value that keeps its own false alarms on out-of-fold benign messages within
FALSE_ALARM_BUDGET; it then raises its likeliest category and any other at least ALSO likely.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, Python puts bench/ first on the path: the repository root takes its place, so
# `core` imports from this checkout.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.render.safety import CATEGORIES, FORMS, NOT_TYPOS, SafetyWatch, shipped_forms  # noqa: E402
from core.render.safety import ngram  # noqa: E402
from core.render.safety.normalise import fold  # noqa: E402
from core.render.templates import LOCALES, Catalog  # noqa: E402

TUNING = ROOT / "tests" / "data" / "safety" / "corpus.jsonl"
CLASSES = ("benign", *CATEGORIES)
EPOCHS = 30
L2 = 1e-4
RATE = 0.5
MIN_DF = 2
FOLDS = 5
FALSE_ALARM_BUDGET = 0.01  # of out-of-fold benign messages the net alone may raise
FLOOR = 0.95  # never under: the net is the second net, the patterns the first
ALSO = 0.25


def tables() -> dict[str, dict]:
    catalog = Catalog()
    return {locale: catalog.lexicons[locale].safety for locale in LOCALES}


# -- word forms ----------------------------------------------------------------------------------
def build_forms() -> dict[str, dict[str, list[str]]]:
    """locale → form → listed words: each plain word of a concept, in every form simplemma knows."""
    from simplemma.strategies.dictionaries import DefaultDictionaryFactory

    factory = DefaultDictionaryFactory()
    dictionaries = {locale: factory.get_dictionary(locale) for locale in LOCALES}
    # Each language's words and their lemmas: a form of another language's different word is not
    # taken ("come" is English, not only comer's; "dice" is Spanish, not only die's), while "hits",
    # which simplemma's Spanish table also knows as a form of "hit", stays a form of "hit".
    lemma_of: dict[str, dict[str, str]] = {}
    for locale, d in dictionaries.items():
        table = {fold(value): fold(value) for value in d.values()}
        table.update({fold(key): fold(value) for key, value in d.items()})
        lemma_of[locale] = table
    listed_anywhere: set[str] = set()
    listed: dict[str, set[str]] = {}
    for locale, table in tables().items():
        words = {fold(item) for items in table.get("concepts", {}).values() for item in items
                 if not item.startswith("=") and not item.endswith("*")}
        # the literal words of patterns too ("wrote" is a form of "write")
        words |= {fold(symbol) for lines in table.get("patterns", {}).values() for line in lines
                  for part in line.split() for symbol in part.split("|")
                  if symbol.isalpha() and symbol.islower()}
        listed[locale] = words
        listed_anywhere |= words
    out: dict[str, dict[str, list[str]]] = {}
    for locale, dictionary in dictionaries.items():
        others = [lemma_of[other] for other in LOCALES if other != locale]
        forms: dict[str, set[str]] = defaultdict(set)
        for form, lemma in dictionary.items():
            form, lemma = fold(form), fold(lemma)
            if lemma not in listed[locale] or form == lemma or not form.isalpha() or len(form) < 3:
                continue
            if form not in listed[locale] and any(form in other and other[form] != lemma for other in others):
                continue  # a word of another language
            forms[form].add(lemma)
        out[locale] = {form: sorted(lemmas) for form, lemmas in sorted(forms.items())}
    out[NOT_TYPOS] = not_typos(tables(), dictionaries)
    return out


def not_typos(tables_by_locale: dict[str, dict], dictionaries: dict) -> list[str]:
    """Real words of either language the near-miss step would otherwise respell as a key word
    ("hunting" is not a slip for "hurting", nor "pulls" for "pills"): the normaliser keeps them."""
    from rapidfuzz import process
    from rapidfuzz.distance import OSA

    keys = sorted({fold(word) for table in tables_by_locale.values() for word in table.get("fuzzy", ())})
    words = sorted({fold(w) for d in dictionaries.values() for pair in d.items() for w in pair
                    if w.isalpha() and len(w) >= 5} - set(keys))
    found: set[str] = set()
    for key in keys:
        for word, distance, _ in process.extract(key, words, scorer=OSA.distance, score_cutoff=2, limit=None):
            if word[0] == key[0] and distance <= (1 if len(word) < 8 else 2):
                found.add(word)
    return sorted(found)


def write_forms() -> None:
    forms = build_forms()
    FORMS.write_text(json.dumps(forms, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n", "utf-8")
    shipped_forms.cache_clear()
    counts = ", ".join(f"{locale} {len(f)} forms" for locale, f in forms.items() if locale != NOT_TYPOS)
    print(f"{FORMS.relative_to(ROOT)}: {counts}, {len(forms[NOT_TYPOS])} real words kept")


# -- the corpus ----------------------------------------------------------------------------------
def tuning() -> list[dict]:
    return [json.loads(line) for line in TUNING.read_text("utf-8").splitlines() if line.strip()]


def concept(family: str) -> str:
    """A family without its language: a message and its translation share it."""
    return family.rsplit("-", 1)[0]


def fold_of(name: str) -> int:
    return int(hashlib.sha256(f"safety-folds:{name}".encode()).hexdigest(), 16) % FOLDS


# -- the net -------------------------------------------------------------------------------------
def featurise(messages: list[list[str]]) -> list[tuple[list[str], float]]:
    """Each message's n-grams and their scale, as `ngram.NgramNet.probabilities` reads them."""
    out = []
    for words in messages:
        every = ngram.grams(words)
        out.append((sorted(every), 1.0 / math.sqrt(len(every)) if every else 0.0))
    return out


def train(features: list[tuple[list[str], float]], labels: list[int], vocabulary: set[str]) -> dict:
    k = len(CLASSES)
    weights: dict[str, list[float]] = {gram: [0.0] * k for gram in vocabulary}
    squares: dict[str, list[float]] = {gram: [1e-8] * k for gram in vocabulary}
    bias, bias_squares = [0.0] * k, [1e-8] * k
    docs = [([g for g in grams if g in vocabulary], scale) for grams, scale in features]
    order = list(range(len(docs)))
    shuffle = random.Random(9)
    for _ in range(EPOCHS):
        shuffle.shuffle(order)
        for index in order:
            grams, scale = docs[index]
            scores = list(bias)
            for gram in grams:
                row = weights[gram]
                for c in range(k):
                    scores[c] += row[c] * scale
            top = max(scores)
            exps = [math.exp(s - top) for s in scores]
            total = sum(exps)
            error = [exps[c] / total - (1.0 if c == labels[index] else 0.0) for c in range(k)]
            for c in range(k):
                bias_squares[c] += error[c] ** 2
                bias[c] -= RATE * error[c] / math.sqrt(bias_squares[c])
            for gram in grams:
                row, sq = weights[gram], squares[gram]
                for c in range(k):
                    g = error[c] * scale + L2 * row[c]
                    sq[c] += g * g
                    row[c] -= RATE * g / math.sqrt(sq[c])
    return {"classes": list(CLASSES), "bias": bias, "weights": weights}


def vocabulary_of(features: list[tuple[list[str], float]]) -> set[str]:
    df = Counter(gram for grams, _ in features for gram in grams)
    return {gram for gram, count in df.items() if count >= MIN_DF}


def out_of_fold(rows: list[dict], messages: list[list[str]], features, labels) -> list[dict[str, float]]:
    """Each message scored by a net trained without its concept's fold."""
    predicted: list[dict[str, float] | None] = [None] * len(rows)
    folds = [fold_of(concept(row["family"])) for row in rows]
    for fold_index in range(FOLDS):
        train_ids = [i for i in range(len(rows)) if folds[i] != fold_index]
        subset = [features[i] for i in train_ids]
        model = train(subset, [labels[i] for i in train_ids], vocabulary_of(subset))
        net = ngram.NgramNet({**model, "thresholds": {}})
        for i in range(len(rows)):
            if folds[i] == fold_index:
                predicted[i] = net.probabilities(messages[i])
        print(f"  fold {fold_index + 1}/{FOLDS} trained", file=sys.stderr)
    return predicted  # type: ignore[return-value]


def thresholds_for(rows: list[dict], predicted: list[dict[str, float]], woken: list[bool]) -> dict[str, float]:
    """When the net escalates: its crisis probability (1 − benign) at least `crisis` — the lowest
    value (never under FLOOR) at which it alone raises at most FALSE_ALARM_BUDGET of the out-of-fold
    benign messages the pre-filter lets through — and then it raises its likeliest category and any
    other at least ALSO likely (a message can touch several)."""
    benign = sorted((1.0 - p["benign"] for row, p, awake in zip(rows, predicted, woken)
                     if row["category"] == "benign" and awake), reverse=True)
    allowed = int(FALSE_ALARM_BUDGET * sum(1 for row in rows if row["category"] == "benign"))
    cut = benign[allowed] if allowed < len(benign) else 0.0
    return {"crisis": round(max(FLOOR, cut + 1e-4), 4), "also": ALSO}


def build_net(report_only: bool = False) -> None:
    rows = tuning()
    watch = SafetyWatch(tables(), use_net=False)
    messages = [watch.net_words(row["text"]) for row in rows]  # what the net reads of each
    features = featurise(messages)
    labels = [CLASSES.index(row["category"]) for row in rows]
    woken = [watch.wakes(row["text"]) and watch.net_reads(words)  # the messages the net is asked about
             for row, words in zip(rows, messages)]
    predicted = out_of_fold(rows, messages, features, labels)
    thresholds = thresholds_for(rows, predicted, woken)
    report(rows, watch, predicted, thresholds, woken)
    if report_only:
        return
    model = train(features, labels, vocabulary_of(features))
    model["weights"] = {gram: [round(w, 4) for w in row] for gram, row in sorted(model["weights"].items())
                        if max(abs(w) for w in row) >= 0.01}
    model["bias"] = [round(b, 4) for b in model["bias"]]
    model["thresholds"] = thresholds
    model["trained_on"] = f"{TUNING.relative_to(ROOT)} ({len(rows)} messages)"
    ngram.MODEL.write_text(json.dumps(model, sort_keys=True, separators=(",", ":")) + "\n", "utf-8")
    ngram.load.cache_clear()
    print(f"{ngram.MODEL.relative_to(ROOT)}: {len(model['weights'])} n-grams, thresholds {thresholds}")


def report(rows, watch, predicted, thresholds, woken) -> None:
    """Recall per category with patterns alone and with the (out-of-fold) net, and false alarms."""
    caught = {True: Counter(), False: Counter()}
    totals = Counter()
    false = {True: 0, False: 0}
    benign = 0
    for row, p, awake in zip(rows, predicted, woken):
        reading = watch.read(row["text"])
        by_patterns = {pattern.category for pattern in reading.patterns}
        by_net = ngram.raised(p, thresholds) if awake else set()
        for with_net in (False, True):
            raised = by_patterns | (by_net if with_net else set())
            if row["category"] == "benign":
                false[with_net] += bool(raised)
            elif row["category"] in raised:
                caught[with_net][row["category"]] += 1
        if row["category"] == "benign":
            benign += 1
        else:
            totals[row["category"]] += 1
    alone = Counter()
    for row, p, awake in zip(rows, predicted, woken):
        if row["category"] != "benign" and awake and row["category"] in ngram.raised(p, thresholds):
            alone[row["category"]] += 1
    print("out of fold on the tuning corpus: recall of the net alone | patterns alone → patterns + net")
    for category in CATEGORIES:
        n = totals[category]
        print(f"  {category:17} {alone[category] / n:.3f} | {caught[False][category] / n:.3f} → "
              f"{caught[True][category] / n:.3f}  ({n})")
    print(f"  false alarms      {false[False] / benign:.3f} → {false[True] / benign:.3f}  ({benign} benign)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", nargs="?", choices=("all", "forms", "net", "report"), default="all")
    step = parser.parse_args().step
    if step in ("all", "forms"):
        write_forms()
    if step in ("all", "net"):
        build_net()
    if step == "report":
        build_net(report_only=True)


if __name__ == "__main__":
    main()
