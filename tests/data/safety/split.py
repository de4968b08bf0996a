"""Split the labelled safety corpus into its tuning part and its held-out fifth, deterministically.

    python tests/data/safety/split.py            # check all.jsonl, write corpus.jsonl and heldout.jsonl
    python tests/data/safety/split.py --check    # check all.jsonl and that both parts on disk are what it would write
    python tests/data/safety/split.py --counts   # print the counts (category x language x part) as Markdown

`added.jsonl` holds the families written after the held-out part was fixed and tuning had begun
(same format): they join the tuning part only and never change the held-out pick, which is made on
`all.jsonl` alone. An added family must be a new concept (not a variant or translation of one in
`all.jsonl`), so nothing of the held-out part is tuned on in another wording.

Once the parts are written, a family never moves between them (the script refuses; --reshuffle
overrides, and is only for before anything has been tuned on the corpus).

`all.jsonl` is the one source: one JSON object a line, {"family", "category", "kind", "lang", "text"},
the variants of one message (a paraphrase family) on adjacent lines. A family's id ends in its
language (-en, -es); the versions of one message in both languages share the rest of the id (its
concept) and always go to the same part. The held-out part is one fifth of the concepts of each
category (benign: of each kind, ordinary and look-alike), taken in the order of a seeded hash of the
concept's name and spread over the category's kinds: the same input always gives the same parts. A
family, or a concept, is never split between the parts. The held-out part is for measuring only:
never tune anything on it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE, TUNING, HELDOUT = HERE / "all.jsonl", HERE / "corpus.jsonl", HERE / "heldout.jsonl"
ADDED = HERE / "added.jsonl"  # written after the held-out fifth was fixed: tuning only
SEED = "learning-companion/issue-9/safety-heldout"
FRACTION = 5  # one concept in five is held out
KEYS = {"family", "category", "kind", "lang", "text"}
LANGS = ("en", "es", "mix")
KINDS = {
    "suicidal_ideation": ("direct", "indirect"),
    "self_harm": ("present", "past"),
    "plan_means": ("plan", "means", "rehearsal"),
    "abuse_neglect": ("physical", "sexual", "emotional", "neglect", "indirect"),
    "violence_threats": ("to_others", "weapon_at_school"),
    "bullying": ("in_person", "online", "cannot_bear"),
    "basic_needs": ("food", "housing", "medicine", "heat_power", "unsafe_home"),
    "benign": ("ordinary", "lookalike"),
}


def load(*paths: Path) -> list[dict]:
    """Every row of `paths` (default all.jsonl), checked together: the label scheme, 3–6 variants a
    family, families contiguous, no text twice."""
    rows, problems = [], []
    for path in paths or (SOURCE,):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                problems.append(f"{path.name} line {number}: not JSON ({error})")
                continue
            if set(row) != KEYS:
                problems.append(f"{path.name} line {number}: keys {sorted(row)} (want {sorted(KEYS)})")
            elif row["category"] not in KINDS or row["kind"] not in KINDS[row["category"]]:
                problems.append(f"{path.name} line {number}: unknown category/kind {row['category']}/{row['kind']}")
            elif row["lang"] not in LANGS:
                problems.append(f"{path.name} line {number}: unknown lang {row['lang']!r}")
            elif not isinstance(row["text"], str) or not row["text"].strip():
                problems.append(f"{path.name} line {number}: empty text")
            rows.append(row)
    families: dict[str, list[dict]] = defaultdict(list)
    order: list[str] = []
    for row in rows:
        name = row.get("family")
        if order and order[-1] != name and name in families:
            problems.append(f"family {name}: its variants are not on adjacent lines")
        if name not in families:
            order.append(name)
        families[name].append(row)
    for name, members in families.items():
        if not str(name).endswith(("-en", "-es")):
            problems.append(f"family {name}: its id does not end in its main language (-en or -es)")
        if not 3 <= len(members) <= 6:
            problems.append(f"family {name}: {len(members)} variants (want 3-6)")
        if len({(m.get("category"), m.get("kind")) for m in members}) != 1:
            problems.append(f"family {name}: variants with different category/kind")
    labels: dict[str, set] = defaultdict(set)
    for name, members in families.items():
        labels[concept(name)].add((members[0].get("category"), members[0].get("kind")))
    problems += [f"concept {name}: its language versions have different category/kind"
                 for name, found in labels.items() if len(found) > 1]
    seen: dict[str, str] = {}
    for row in rows:
        key = " ".join(str(row.get("text", "")).casefold().split())
        if key in seen:
            problems.append(f"duplicate text in {seen[key]} and {row.get('family')}: {row.get('text')!r}")
        seen[key] = row.get("family")
    if problems:
        sys.exit("the corpus is not valid:\n  " + "\n  ".join(problems))
    return rows


def added_rows(source: list[dict]) -> list[dict]:
    """added.jsonl's rows (tuning only), each family a concept all.jsonl does not have."""
    if not ADDED.exists():
        return []
    added = load(ADDED)
    known = {concept(row["family"]) for row in source}
    reused = sorted({row["family"] for row in added if concept(row["family"]) in known})
    if reused:
        sys.exit("added.jsonl reuses concepts of all.jsonl (give them new concept names): " + ", ".join(reused))
    # a text all.jsonl already has: named by its line here only, so no held-out message is shown
    texts = {" ".join(row["text"].casefold().split()) for row in source}
    twice = [str(number) for number, row in enumerate(added, 1) if " ".join(row["text"].casefold().split()) in texts]
    if twice:
        sys.exit("added.jsonl repeats messages of all.jsonl (reword them), its lines: " + ", ".join(twice))
    return added


def rank(name: str) -> str:
    """A seeded pseudo-random order, stable across Python versions and machines."""
    return hashlib.sha256(f"{SEED}:{name}".encode()).hexdigest()


def concept(family: str) -> str:
    """The message a family says, in any language: its id without the language suffix.

    The English and Spanish versions of one message ("si-indirect-burden-en", "si-indirect-burden-es")
    are one concept and go to the same part, so a held-out message is not seen in translation either.
    """
    stem, _, suffix = family.rpartition("-")
    return stem if stem and suffix in LANGS else family


def heldout_families(rows: list[dict]) -> set[str]:
    """One fifth (rounded half up, at least one) of the concepts of every category — of every kind
    for benign, so look-alikes are held out too — and every family of a chosen concept.

    Concepts are taken in the order of a seeded hash, each pick going to the first concept of a
    kind with the fewest picks so far, so the held-out fifth spreads over the category's kinds.
    """
    kind_of: dict[str, str] = {}
    strata: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        name = concept(row["family"])
        kind_of[name] = row["kind"]
        strata[row["category"] + ("/" + row["kind"] if row["category"] == "benign" else "")].add(name)
    chosen: set[str] = set()
    for names in strata.values():
        ranked = sorted(names, key=rank)
        picks: Counter = Counter()
        for _ in range(max(1, (len(ranked) * 2 + FRACTION) // (2 * FRACTION))):
            pick = min(ranked, key=lambda name: picks[kind_of[name]])  # first in hash order wins ties
            ranked.remove(pick)
            picks[kind_of[pick]] += 1
            chosen.add(pick)
    return {row["family"] for row in rows if concept(row["family"]) in chosen}


def parts(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    held = heldout_families(rows)
    return [r for r in rows if r["family"] not in held], [r for r in rows if r["family"] in held]


def dump(rows: list[dict]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def counts(tuning: list[dict], heldout: list[dict]) -> str:
    """Markdown: messages per category x language x part, families per part; then kinds x language."""
    def tally(rows):
        return Counter((r["category"], r["lang"]) for r in rows)

    def fams(rows, category):
        return len({r["family"] for r in rows if r["category"] == category})

    t, h = tally(tuning), tally(heldout)
    head = ["category"] + [f"tuning {lang}" for lang in LANGS] + [f"held-out {lang}" for lang in LANGS] + \
        ["messages", "families tuning / held-out"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    totals = Counter()
    crisis = [c for c in KINDS if c != "benign"]
    for category in crisis + ["benign"]:
        cells = [t[(category, lang)] for lang in LANGS] + [h[(category, lang)] for lang in LANGS]
        for i, value in enumerate(cells):
            totals[i] += value
        lines.append(f"| {category} | " + " | ".join(map(str, cells)) +
                     f" | {sum(cells)} | {fams(tuning, category)} / {fams(heldout, category)} |")
        if category == crisis[-1]:
            sub = [sum(t[(c, lang)] for c in crisis) for lang in LANGS] + \
                [sum(h[(c, lang)] for c in crisis) for lang in LANGS]
            lines.append("| **all crisis** | " + " | ".join(map(str, sub)) + f" | {sum(sub)} | "
                         f"{sum(fams(tuning, c) for c in crisis)} / {sum(fams(heldout, c) for c in crisis)} |")
    cells = [totals[i] for i in range(2 * len(LANGS))]
    lines.append("| **total** | " + " | ".join(map(str, cells)) + f" | {sum(cells)} | "
                 f"{len({r['family'] for r in tuning})} / {len({r['family'] for r in heldout})} |")

    every = tuning + heldout
    held = {r["family"] for r in heldout}
    by_kind = Counter((r["category"], r["kind"], r["lang"]) for r in every)
    kind_fams: dict[tuple, set] = defaultdict(set)
    for r in every:
        kind_fams[(r["category"], r["kind"])].add(r["family"])
    lines += ["", "| category | kind | en | es | mix | families (held-out) |", "|---|---|---|---|---|---|"]
    for category, kinds in KINDS.items():
        for kind in kinds:
            names = kind_fams[(category, kind)]
            lines.append(f"| {category} | {kind} | " +
                         " | ".join(str(by_kind[(category, kind, lang)]) for lang in LANGS) +
                         f" | {len(names)} ({len(names & held)}) |")
    return "\n".join(lines)


def _families(path: Path) -> set[str]:
    if not path.exists():
        return set()
    return {json.loads(line)["family"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}


def moved(tuning: list[dict], heldout: list[dict]) -> list[str]:
    """Families this split would move between the parts already on disk: either way is a leak
    (held-out data would be tuned on, or data already tuned on would be measured as unseen)."""
    was_tuning, was_heldout = _families(TUNING), _families(HELDOUT)
    now_tuning, now_heldout = {r["family"] for r in tuning}, {r["family"] for r in heldout}
    return sorted(f"{name} (held-out -> tuning)" for name in was_heldout & now_tuning) + \
        sorted(f"{name} (tuning -> held-out)" for name in was_tuning & now_heldout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", action="store_true", help="print the counts table (Markdown)")
    parser.add_argument("--check", action="store_true", help="verify the written parts match all.jsonl")
    parser.add_argument("--reshuffle", action="store_true",
                        help="allow families to move between the parts already written (only before any tuning)")
    args = parser.parse_args()
    rows = load()
    added = added_rows(rows)
    tuning, heldout = parts(rows)
    tuning += added
    rows += added
    leak = moved(tuning, heldout)
    if leak and not args.reshuffle and not args.counts:
        sys.exit("this would move families between the parts: " + ", ".join(leak) +
                 "\n(the held-out part is never tuned on: keep family ids and concepts stable, add new"
                 " concepts rather than renaming; --reshuffle only before any tuning has happened)")
    if args.counts:
        print(counts(tuning, heldout))
        return
    if args.check:
        stale = [p.name for p, rs in ((TUNING, tuning), (HELDOUT, heldout))
                 if not p.exists() or p.read_text(encoding="utf-8") != dump(rs)]
        if stale:
            sys.exit(f"out of date: {', '.join(stale)} (run split.py)")
        print(f"ok: {len(rows)} messages; {len(tuning)} tuning, {len(heldout)} held-out")
        return
    TUNING.write_text(dump(tuning), encoding="utf-8")
    HELDOUT.write_text(dump(heldout), encoding="utf-8")
    print(f"{len(tuning)} messages -> {TUNING.name}, {len(heldout)} -> {HELDOUT.name}")


if __name__ == "__main__":
    main()
