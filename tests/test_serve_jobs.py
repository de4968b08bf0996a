"""`serve` wakes the school's own jobs beside the nudge sweeps: safety escalations every minute,
calendar feeds hourly, retention daily — and each job runs against the database without help."""

from __future__ import annotations

from datetime import timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import text

from bot.serve import Service
from core.config import Settings
from tests.helpers import Chat, enrol


def test_serve_schedules_escalation_calendars_and_retention_and_each_runs(engine, now):
    settings = Settings(SLACK_BOT_TOKEN="xoxb-test", SLACK_SIGNING_SECRET="secret", SLACK_API_URL="http://127.0.0.1:9/api")
    service = Service(settings, engine)
    service.conversation.clock = lambda: now
    principal_id, principal_code = enrol(engine, now, given_name="Dr Chen", role="admin")
    principal = Chat(service.conversation, "principal")
    principal.say(principal_code)
    principal.deliver()
    _, code = enrol(engine, now, given_name="Eli")
    student = Chat(service.conversation, "eli")
    for says in (code, "@agree", "I want to kill myself"):  # no adviser: escalated at once
        student.say(says)
    scheduler = BackgroundScheduler()
    service.wake_school_jobs(scheduler)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"safety.escalate", "calendar.reimport", "privacy.retention"}
    assert jobs["safety.escalate"].trigger.interval == timedelta(seconds=60)
    assert jobs["privacy.retention"].trigger.interval == timedelta(hours=24)
    for job in jobs.values():
        job.func()
    assert [template for template, _, _ in principal.deliver()] == ["safety/alert"]
    with engine.connect() as db:
        assert db.execute(text("SELECT COUNT(*) FROM jobrun")).scalar() >= 1  # the retention run was recorded
