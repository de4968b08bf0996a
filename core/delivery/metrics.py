"""What an operator scrapes from `/metrics` (the Prometheus text format, prometheus-client).

Counters, kept by this process since it started (Prometheus sums them over the processes):

    companion_inbound_events_total{platform}      events stored in the inbox (before the platform's ack)
    companion_inbound_handled_total{platform}     inbox events the engine handled
    companion_messages_sent_total{platform}       messages the platform accepted
    companion_rate_limited_total{platform}        429s answered by the platform (every process then pauses)
    companion_send_retries_total{platform}        sends tried again after a 5xx or a network error
    companion_send_failures_total{platform}       messages given up (blocked, refused, too many attempts)

Gauges read from the database at each scrape (the same for every process):

    companion_outbox_depth{platform}              messages waiting to be sent (pending or sending)
    companion_outbox_oldest_seconds{platform}     age of the oldest of them
    companion_inbox_depth{platform}               events stored and not handled yet
    companion_inbox_failed{platform}              events left as 'failed' for an operator
    companion_nudge_sweep_lag_seconds             how far the sweeps are behind: the oldest nudge due and not sent
    companion_alerts_open                         safety alerts nobody has closed
    companion_database_up                         1 when the database answered the scrape in time

One `Metrics` per process, on its own registry (no global state: tests run several side by side).
"""

from __future__ import annotations

from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from core.domain.store import Store, as_moment


class Metrics:
    """The counters a process keeps and the gauges it reads from the database when scraped."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()

        def counter(name: str, what: str) -> Counter:
            return Counter(name, what, ["platform"], registry=self.registry)

        def gauge(name: str, what: str, labels: tuple[str, ...] = ("platform",)) -> Gauge:
            return Gauge(name, what, labels, registry=self.registry)

        self.inbound = counter("companion_inbound_events", "Events stored in the inbox")
        self.handled = counter("companion_inbound_handled", "Inbox events the engine handled")
        self.sent = counter("companion_messages_sent", "Messages the platform accepted")
        self.rate_limited = counter("companion_rate_limited", "429 answers from the platform")
        self.retried = counter("companion_send_retries", "Sends tried again after a 5xx or a network error")
        self.failed = counter("companion_send_failures", "Messages given up: blocked, refused or out of attempts")
        self.outbox_depth = gauge("companion_outbox_depth", "Messages waiting to be sent")
        self.outbox_oldest = gauge("companion_outbox_oldest_seconds", "Age of the oldest message waiting")
        self.inbox_depth = gauge("companion_inbox_depth", "Events stored and not handled yet")
        self.inbox_failed = gauge("companion_inbox_failed", "Events left as failed")
        self.sweep_lag = gauge("companion_nudge_sweep_lag_seconds", "Age of the oldest nudge due and not sent", ())
        self.alerts_open = gauge("companion_alerts_open", "Safety alerts not closed", ())
        self.database_up = gauge("companion_database_up", "1 when the database answered the scrape in time", ())

    def read_database(self, store: Store, now: datetime) -> None:
        """Set the gauges from the database (blocking: call it in a thread, with a deadline)."""
        with store.transaction() as tx:
            outbox = tx.all("SELECT platform, COUNT(*), MIN(created_at) FROM outbox "
                            "WHERE status IN ('pending', 'sending') GROUP BY platform")
            inbox = tx.all("SELECT platform, status, COUNT(*) FROM inbox GROUP BY platform, status")
            oldest_due = tx.one("SELECT MIN(due_at) FROM nudge WHERE status = 'planned' AND due_at <= ?",
                                (tx.ts(now),))[0]
            alerts = tx.one("SELECT COUNT(*) FROM safetyalert WHERE closed_at IS NULL")[0]
        for gauge in (self.outbox_depth, self.outbox_oldest, self.inbox_depth, self.inbox_failed):
            gauge.clear()  # a platform with nothing waiting any more shows no stale figure
        for platform, depth, oldest in outbox:
            self.outbox_depth.labels(platform).set(depth)
            self.outbox_oldest.labels(platform).set(max(0.0, (now - as_moment(oldest)).total_seconds()))
        for platform, status, count in inbox:
            (self.inbox_depth if status == "pending" else self.inbox_failed).labels(platform).set(count)
        self.sweep_lag.set(max(0.0, (now - as_moment(oldest_due)).total_seconds()) if oldest_due else 0.0)
        self.alerts_open.set(alerts)
        self.database_up.set(1)

    def text(self) -> bytes:
        """Everything, in the Prometheus text exposition format."""
        return generate_latest(self.registry)
