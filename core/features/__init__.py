"""The installed features, one module each, and the registry the engine and the tools read.

A school may add its own: `COMPANION_FEATURES=module.path,other.module`, each module exposing
`FEATURE` (a `core.engine.registry.Feature`) with its prompt folder beside it.
"""

from __future__ import annotations

import importlib

from core.engine.registry import Feature, Registry
from core.features import advisers, checkin, genius, goals, mydata, onboarding, pause, plan, profile, reflection, review
from core.schedule.policy import SETTINGS as SCHEDULE_SETTINGS
from core.school.calendar import SETTINGS as CALENDAR_SETTINGS

# In the order the help lists their commands.
FEATURES: tuple[Feature, ...] = tuple(module.FEATURE for module in (onboarding, goals, plan, review, reflection, profile, pause, checkin, genius,
                                                                    advisers, mydata))
REGISTRY = Registry(FEATURES, settings_keys=(*SCHEDULE_SETTINGS, *CALENDAR_SETTINGS))


def registry(extra_modules: str = "") -> Registry:
    """The installed features, plus those of the comma-separated modules in `extra_modules`."""
    names = [name.strip() for name in extra_modules.split(",") if name.strip()]
    if not names:
        return REGISTRY
    return REGISTRY.extended(*(importlib.import_module(name).FEATURE for name in names))
