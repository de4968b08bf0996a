"""Every flow the engine can run, by name."""

from core.engine.flow import Flow
from core.features.goals import GOALS, REVIEW
from core.features.profile import LANGUAGE, ONBOARDING, PAUSE, PROFILE

FLOWS: dict[str, Flow] = {flow.name: flow for flow in (ONBOARDING, PROFILE, LANGUAGE, PAUSE, GOALS, REVIEW)}
