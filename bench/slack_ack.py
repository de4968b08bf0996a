"""Slack acknowledgement latency: signed events against `serve`'s /slack/events, 50 at a time.

`companion serve` runs in its own process, as in production, with slack-bolt against a loopback
Slack Web API in a third process; each round sends 50 concurrent, correctly signed `message.im`
events from 50 students and times each HTTP answer (the ack). The work after the ack
(users.info, the engine, the replies) runs in the serving process meanwhile, as in production.
Slack retries an event not acknowledged within 3 s; the target is a p99 of 100 ms.

    python bench/slack_ack.py [--rounds 20] [--concurrent 50]

Last line: key=value figures.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp
from slack_sdk.signature import SignatureVerifier

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.domain.db import make_engine, upgrade  # noqa: E402
from tests.fakes import FakeSlack, free_port, start_serve, wait_for  # noqa: E402

SECRET = "bench-signing-secret"


def signed(event_id: str, user: str) -> tuple[bytes, dict]:
    """A message.im event as Slack sends it, with its signature headers."""
    body = json.dumps({"type": "event_callback", "team_id": "T1", "api_app_id": "A1", "event_id": event_id,
                       "event_time": int(time.time()), "event": {
                           "type": "message", "channel_type": "im", "user": user, "channel": "D" + user,
                           "text": "hello", "ts": f"{time.time():.6f}"}})
    timestamp = str(int(time.time()))
    return body.encode(), {"Content-Type": "application/json", "X-Slack-Request-Timestamp": timestamp,
                           "X-Slack-Signature": SignatureVerifier(SECRET).generate_signature(timestamp=timestamp,
                                                                                           body=body)}


async def ack(session: aiohttp.ClientSession, url: str, event_id: str, user: str) -> float:
    """Milliseconds until the app answered one event; it must be a 200."""
    body, headers = signed(event_id, user)
    began = time.perf_counter()
    async with session.post(url, data=body, headers=headers) as response:
        await response.read()
        assert response.status == 200, response.status
    return (time.perf_counter() - began) * 1000


async def measure(port: int, rounds: int, concurrent: int) -> list[float]:
    """Latencies of `rounds` bursts of `concurrent` events, after one burst that warms the process up."""
    url = f"http://127.0.0.1:{port}/slack/events"
    gc.disable()  # the client's own collections would be timed as the server's latency
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrent)) as session:
        latencies: list[float] = []
        for n in range(-1, rounds):
            burst = await asyncio.gather(*(ack(session, url, f"Ev{n}-{k}", f"U{k}") for k in range(concurrent)))
            latencies += burst if n >= 0 else []
            await asyncio.sleep(0.2)  # Slack's events arrive in bursts, not in a closed loop
    gc.enable()
    return latencies


def fake_slack() -> tuple[subprocess.Popen, str]:
    """The loopback Slack Web API in a process of its own; returns it and its URL."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; from tests.fakes import FakeSlack; fake = FakeSlack().start(); "
                               "print(fake.url, flush=True); sys.stdin.read()"],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return process, process.stdout.readline().strip()


def healthy(port: int) -> bool:
    """Whether `serve` answers its health check yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def main() -> None:
    """Start the fake and serve, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--concurrent", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        database = make_engine(f"sqlite:///{Path(scratch) / 'bench.db'}")
        upgrade(database)
        fake, url = fake_slack()
        port = free_port()
        serve = start_serve(database, port, SLACK_BOT_TOKEN=FakeSlack().token, SLACK_SIGNING_SECRET=SECRET,
                            SLACK_API_URL=url + "/api")
        try:
            wait_for(lambda: healthy(port))
            latencies = asyncio.run(measure(port, args.rounds, args.concurrent))
        finally:
            serve.send_signal(signal.SIGTERM)
            serve.wait(30)
            fake.communicate()
        database.dispose()
    cuts = statistics.quantiles(latencies, n=100)
    p50, p99 = cuts[49], cuts[98]
    print(f"{len(latencies)} signed events, {args.concurrent} at a time: ack p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
          f"max {max(latencies):.1f} ms (Slack retries after 3000 ms)")
    print(f"events={len(latencies)} concurrent={args.concurrent} p50_ms={p50:.1f} p99_ms={p99:.1f} "
          f"max_ms={max(latencies):.1f}")


if __name__ == "__main__":
    main()
