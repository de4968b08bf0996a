"""Every flow the engine can run, by name."""

from core.flow import Flow
from core.flows.goals import GOALS, REVIEW
from core.flows.profile import LANGUAGE, ONBOARDING, PAUSE, PROFILE

FLOWS: dict[str, Flow] = {flow.name: flow for flow in (ONBOARDING, PROFILE, LANGUAGE, PAUSE, GOALS, REVIEW)}
