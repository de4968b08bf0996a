"""Delivery: the outbox sent through each channel, within its limits, each row once."""
