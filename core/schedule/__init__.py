"""Nudges at the right moment: the policy, planned and claimed from the database."""
