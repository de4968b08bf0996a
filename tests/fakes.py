"""Loopback fakes of the Telegram Bot API and the Slack Web API, for tests and benchmarks.

Each fake is a real HTTP server on 127.0.0.1 (port 0), in its own thread, that records every call.
Both can be told to fail the next calls of a method (429 with retry-after, 500, 403, an error)
and to enforce the platform's pace (per chat and per bot), answering 429 beyond it. The Slack
fake can also stall: every call waits until it is let go, as a slow Web API would. Both serve
files a test gives them (`add_file`) for download, and keep the files the bot sends (`shared`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict, deque
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from aiohttp import web
from sqlalchemy import Engine, text

from bot.serve import Service
from core.domain.store import Store


@dataclass
class Call:
    """One request the fake received."""

    method: str
    params: dict
    at: float


@dataclass
class Failure:
    """A canned failure for the next call of a method."""

    status: int
    retry_after: float | None = None
    description: str = ""


@dataclass
class Bucket:
    """A token bucket: `rate` per second, bursts of up to `burst`."""

    rate: float
    burst: float
    tokens: float = 0.0
    at: float = 0.0

    def take(self, now: float) -> bool:
        """Spend a token if one has refilled by `now`."""
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate) if self.at else self.burst
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass
class PaceLimit:
    """The pace a platform enforces: per chat and per bot, with the tolerance of a token bucket."""

    per_chat: float
    per_bot: float
    bot_burst: float = 30.0
    bot: Bucket | None = None
    chats: dict[str, Bucket] = field(default_factory=dict)

    def allows(self, chat_id: str, now: float) -> bool:
        """Both buckets must have a token; a refused message spends none."""
        self.bot = self.bot or Bucket(self.per_bot, self.bot_burst)
        chat = self.chats.setdefault(chat_id, Bucket(self.per_chat, 1.0))
        chat_before, bot_before = (chat.tokens, chat.at), (self.bot.tokens, self.bot.at)
        if chat.take(now) and self.bot.take(now):
            return True
        chat.tokens, chat.at = chat_before
        self.bot.tokens, self.bot.at = bot_before
        return False


class FakeServer:
    """An aiohttp application served from a background thread; subclasses add the routes."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.failures: dict[str, deque[Failure]] = defaultdict(deque)
        self.pace: PaceLimit | None = None
        self.delay = 0.0  # seconds before answering a message, to keep sends in flight
        self.refused = 0  # messages answered 429 because the pace was exceeded
        self.accepted_at: list[float] = []  # when each message was accepted (time.monotonic)
        self.closing = False
        self.lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.url = ""
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> "FakeServer":
        """Serve in a background thread; returns once the URL is known."""
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True, name=type(self).__name__)
        self._thread.start()
        ready.wait(10)
        return self

    def _serve(self, ready: threading.Event) -> None:
        """Run the server on a fresh event loop until stop()."""
        self.loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(self.application(), access_log=None, shutdown_timeout=0.1)  # long polls end now
        self.loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        ready.set()
        self.loop.run_forever()
        self.loop.close()

    def stop(self) -> None:
        """Answer the requests still open, close the server, end the thread."""
        if self.loop and self._thread:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)

    async def _shutdown(self) -> None:
        """Release long polls, then close the server."""
        self.closing = True
        await self.release()
        await self._runner.cleanup()

    async def release(self) -> None:
        """Let requests that wait (long polls) answer now."""

    def __enter__(self) -> "FakeServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def application(self) -> web.Application:
        """The aiohttp application with the fake's routes."""
        raise NotImplementedError

    # -- test controls -----------------------------------------------------------------------------

    def fail(self, method: str, status: int, retry_after: float | None = None, description: str = "",
             times: int = 1) -> None:
        """Answer the next `times` calls of `method` with this failure."""
        with self.lock:
            self.failures[method].extend(Failure(status, retry_after, description) for _ in range(times))

    def enforce(self, per_chat: float, per_bot: float, bot_burst: float = 30.0) -> None:
        """Answer 429 to messages beyond the platform's pace, as the real service does."""
        self.pace = PaceLimit(per_chat, per_bot, bot_burst)

    def called(self, method: str) -> list[dict]:
        """The parameters of every call of `method`, oldest first."""
        with self.lock:
            return [call.params for call in self.calls if call.method == method]

    def _record(self, method: str, params: dict) -> Failure | None:
        """Keep the call; return the failure to answer with, if one is due."""
        with self.lock:
            self.calls.append(Call(method, params, time.monotonic()))
            queue = self.failures.get(method)
            return queue.popleft() if queue else None

    def _over_pace(self, chat_id: str) -> bool:
        """Whether a message to `chat_id` now exceeds the enforced pace (and count it)."""
        with self.lock:
            if self.pace is None or self.pace.allows(chat_id, time.monotonic()):
                return False
            self.refused += 1
            return True


async def _params(request: web.Request) -> dict:
    """Parameters from a JSON body, a form, or the query string; JSON-looking values decoded."""
    if request.content_type == "application/json":
        params = await request.json()
    else:
        params = dict(await request.post()) if request.can_read_body else {}
        params.update(request.query)
    decoded = {}
    for key, value in params.items():
        if isinstance(value, web.FileField):  # an uploaded file (multipart): what it is called, and its bytes
            value = {"filename": value.filename, "content_type": value.content_type, "data": value.file.read()}
        if isinstance(value, str) and value[:1] in "[{":
            try:
                value = json.loads(value)
            except ValueError:
                pass
        decoded[key] = value
    return decoded


# -- Telegram ----------------------------------------------------------------------------------------


class FakeTelegram(FakeServer):
    """The Bot API at `{url}/bot{token}/{method}`: getMe, getUpdates (long poll), sendMessage, …"""

    def __init__(self, token: str = "123456789:AAFakeTokenForLoopbackTests_0123") -> None:
        super().__init__()
        self.token = token
        self.updates: list[dict] = []
        self.update_ids = itertools.count(1000)
        self.message_ids = itertools.count(1)
        self.messages: dict[str, list[dict]] = defaultdict(list)  # chat id → messages the bot sent
        self.files: dict[str, dict] = {}  # file id → {"file_path", "data", "file_unique_id"}, for getFile
        self.shared: dict[str, list[dict]] = defaultdict(list)  # chat id → photos and documents the bot sent
        self.file_ids = itertools.count(1)
        self.offsets: list[int] = []  # the offset of every getUpdates call: an update below one is confirmed
        self.stalled: dict[str, float] = {}  # method → time.monotonic() before which no call of it is answered
        self._new_update: asyncio.Condition | None = None

    def application(self) -> web.Application:
        """Every method at /bot<token>/<method>, by GET or POST, as the Bot API takes them; files at
        /file/bot<token>/<file_path>."""
        self._new_update = asyncio.Condition()
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._dispatch)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        return app

    def add_file(self, data: bytes, file_path: str = "photos/file_0.jpg") -> dict:
        """A file a student sent, as the Bot API will serve it; returns its file_id, file_unique_id and size."""
        n = next(self.file_ids)
        file = {"file_id": f"AgAC{n:04d}", "file_unique_id": f"AQAD{n:04d}", "file_size": len(data)}
        with self.lock:
            self.files[file["file_id"]] = {**file, "file_path": file_path, "data": data}
        return file

    def photo(self, data: bytes) -> list[dict]:
        """A message's `photo`: a thumbnail that cannot be downloaded, then the full size (a test's bytes)."""
        return [{"file_id": "thumbnail", "file_unique_id": "thumb", "width": 90, "height": 90},
                {**self.add_file(data), "width": 900, "height": 900}]

    async def _download(self, request: web.Request) -> web.Response:
        """GET /file/bot<token>/<file_path>: the bytes of a file getFile described."""
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        path = request.match_info["path"]
        failure = self._record("download", {"file_path": path})
        if failure is not None:
            return web.Response(status=failure.status)
        with self.lock:
            found = next((file["data"] for file in self.files.values() if file["file_path"] == path), None)
        return web.Response(status=404) if found is None else web.Response(body=found)

    async def _dispatch(self, request: web.Request) -> web.Response:
        """Check the token, record the call, answer it or fail it as told."""
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        method = request.match_info["method"]
        params = await _params(request)
        if method == "getUpdates":  # polling is not a call worth recording
            return _ok(await self._get_updates(params))
        while time.monotonic() < self.stalled.get(method, 0.0) and not self.closing:
            await asyncio.sleep(0.01)
        failure = self._record(method, params)
        if method == "sendMessage" and self.delay:
            await asyncio.sleep(self.delay)
        if failure is None and method == "sendMessage" and self._over_pace(str(params.get("chat_id"))):
            failure = Failure(429, 1, "Too Many Requests: retry after 1")
        if failure is not None:
            return _telegram_error(failure)
        handler = getattr(self, f"_api_{method}", None)
        result = handler(params) if handler else True
        return _telegram_error(result) if isinstance(result, Failure) else _ok(result)

    def _api_getMe(self, params: dict) -> dict:
        """The bot's own user."""
        return {"id": int(self.token.split(":")[0]), "is_bot": True, "first_name": "Companion",
                "username": "companion_test_bot", "can_join_groups": False,
                "can_read_all_group_messages": False, "supports_inline_queries": False}

    def _api_sendMessage(self, params: dict) -> dict:
        """Keep the message, keyboard included, and answer it as a Message."""
        chat_id = str(params["chat_id"])
        message = {"message_id": next(self.message_ids), "date": int(time.time()),
                   "chat": {"id": int(chat_id), "type": "private"}, "text": params.get("text", "")}
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        with self.lock:
            self.messages[chat_id].append(message)
            self.accepted_at.append(time.monotonic())
        return message

    def _api_getFile(self, params: dict) -> dict | Failure:
        """A file's path for download, as the Bot API describes it."""
        with self.lock:
            file = self.files.get(str(params.get("file_id")))
        if file is None:
            return Failure(400, description="Bad Request: invalid file_id")
        return {key: file[key] for key in ("file_id", "file_unique_id", "file_size", "file_path")}

    def _api_sendPhoto(self, params: dict) -> dict:
        return self._keep_shared(params, "photo")

    def _api_sendDocument(self, params: dict) -> dict:
        return self._keep_shared(params, "document")

    def _keep_shared(self, params: dict, kind: str) -> dict:
        """Keep the photo or document the bot uploaded (name, bytes, caption); answer it as a Message."""
        chat_id = str(params["chat_id"])
        upload = params[kind]
        n = next(self.message_ids)
        sent = {"file_id": f"sent{n}", "file_unique_id": f"sent{n}"}
        message = {"message_id": n, "date": int(time.time()), "chat": {"id": int(chat_id), "type": "private"},
                   kind: [{**sent, "width": 1, "height": 1}] if kind == "photo" else sent}
        if params.get("caption"):
            message["caption"] = params["caption"]
        with self.lock:
            self.shared[chat_id].append({"kind": kind, "filename": upload["filename"], "data": upload["data"],
                                         "caption": params.get("caption"), "message_id": n})
            self.accepted_at.append(time.monotonic())
        return message

    def _api_editMessageReplyMarkup(self, params: dict) -> dict:
        """Replace (or remove) the keyboard of a message sent before."""
        chat_id = str(params["chat_id"])
        with self.lock:
            for message in self.messages[chat_id]:
                if message["message_id"] == int(params["message_id"]):
                    message.pop("reply_markup", None)
                    if params.get("reply_markup"):
                        message["reply_markup"] = params["reply_markup"]
                    return message
        return True

    def stall(self, *methods: str, seconds: float = 30.0) -> None:
        """Answer no call of `methods` for `seconds` (or until unstall()), as a Bot API that hangs on them."""
        for method in methods:
            self.stalled[method] = time.monotonic() + seconds

    def unstall(self) -> None:
        """Answer the stalled calls that wait, and the next ones, at once."""
        self.stalled.clear()

    def confirmed(self, update_id: int) -> bool:
        """Whether a getUpdates call confirmed the update (Telegram then forgets it for good)."""
        with self.lock:
            return any(offset > update_id for offset in self.offsets)

    async def _get_updates(self, params: dict) -> list[dict]:
        """Long polling: updates from `offset` on, waiting up to `timeout` seconds for one. As Telegram,
        an update below the offset is confirmed: it is forgotten and never handed out again."""
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        with self.lock:
            self.offsets.append(offset)
            if offset:
                self.updates = [update for update in self.updates if update["update_id"] >= offset]

        def fresh() -> list[dict]:
            """The updates at or after the offset."""
            with self.lock:
                return [update for update in self.updates if update["update_id"] >= offset]

        async with self._new_update:
            try:
                await asyncio.wait_for(self._new_update.wait_for(lambda: self.closing or fresh()), timeout)
            except asyncio.TimeoutError:
                pass
        return fresh()

    # -- what a student does -----------------------------------------------------------------------

    def push(self, update: dict) -> dict:
        """Queue an update for getUpdates (polling); returns it with its update_id."""
        update = {"update_id": next(self.update_ids), **update}
        with self.lock:
            self.updates.append(update)
        asyncio.run_coroutine_threadsafe(self.release(), self.loop).result(5)
        return update

    async def release(self) -> None:
        """Wake the long polls, to hand out new updates or to end."""
        async with self._new_update:
            self._new_update.notify_all()

    def text_update(self, user_id: int, text: str | None, **message: Any) -> dict:
        """An update for a private message from `user_id` (not queued: see push)."""
        return {"update_id": next(self.update_ids), "message": {
            "message_id": next(self.message_ids), "date": int(time.time()),
            "from": {"id": user_id, "is_bot": False, "first_name": "Student", "language_code": "en"},
            "chat": {"id": user_id, "type": "private"}, **({"text": text} if text is not None else {}), **message}}

    def tap_update(self, user_id: int, payload: str) -> dict:
        """An update for a tap on the button with `payload` under the last keyboard sent to `user_id`."""
        message = self.last_keyboard(user_id)
        return {"update_id": next(self.update_ids), "callback_query": {
            "id": str(next(self.message_ids)), "chat_instance": "1", "data": payload,
            "from": {"id": user_id, "is_bot": False, "first_name": "Student"}, "message": message}}

    def last_keyboard(self, user_id: int) -> dict:
        """The newest message to `user_id` that still has an inline keyboard."""
        with self.lock:
            for message in reversed(self.messages[str(user_id)]):
                if message.get("reply_markup"):
                    return message
        raise AssertionError(f"no keyboard on screen for {user_id}")

    def texts(self, user_id: int) -> list[str]:
        """The texts sent to `user_id`, oldest first."""
        with self.lock:
            return [message["text"] for message in self.messages[str(user_id)]]


def _ok(result: Any) -> web.Response:
    """A Bot API success."""
    return web.json_response({"ok": True, "result": result})


def _telegram_error(failure: Failure) -> web.Response:
    """A Bot API error as Telegram words it, with retry_after for a 429."""
    body: dict = {"ok": False, "error_code": failure.status,
                  "description": failure.description or {403: "Forbidden: bot was blocked by the user",
                                                         429: "Too Many Requests",
                                                         500: "Internal Server Error"}.get(failure.status, "Error")}
    if failure.retry_after is not None:
        body["parameters"] = {"retry_after": failure.retry_after}
    return web.json_response(body, status=failure.status)


# -- Slack -------------------------------------------------------------------------------------------


class FakeSlack(FakeServer):
    """The Web API at `{url}/api/{method}`: auth.test, chat.postMessage, users.info, views.publish, views.open, …"""

    def __init__(self, token: str = "xoxb-test") -> None:
        super().__init__()
        self.token = token
        self.emails: dict[str, str] = {}  # user id → e-mail, for users.info
        self.messages: dict[str, list[dict]] = defaultdict(list)  # channel → messages the bot posted
        self.views: list[dict] = []  # modals opened by views.open, with the id and hash Slack gave them
        self.files: dict[str, dict] = {}  # file id → a file a person shared, with its bytes, for download
        self.uploads: dict[str, dict] = {}  # file id → a file the bot is uploading (getUploadURLExternal, upload)
        self.shared: dict[str, list[dict]] = defaultdict(list)  # channel → files the bot shared there
        self.file_ids = itertools.count(1)
        self.last_ts = 0.0
        self.stalled_until = 0.0  # time.monotonic() before which no call is answered

    def stall(self, seconds: float = 30.0) -> None:
        """Answer no call for `seconds` (or until unstall()), as a Web API that hangs."""
        self.stalled_until = time.monotonic() + seconds

    def unstall(self) -> None:
        """Answer the calls that wait, and the next ones, at once."""
        self.stalled_until = 0.0

    def application(self) -> web.Application:
        """Every method at /api/<method>, by GET or POST, as the Web API takes them."""
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._dispatch)
        app.router.add_get("/files-pri/{file_id}/{name}", self._download)
        app.router.add_post("/upload/v1/{file_id}", self._upload)
        return app

    def add_file(self, data: bytes, name: str, mimetype: str) -> dict:
        """A file a person shared, as a message event carries it (its private URL served by this fake)."""
        file_id = f"F{next(self.file_ids):04d}"
        shared = {"id": file_id, "name": name, "title": name, "mimetype": mimetype, "size": len(data),
                  "url_private": f"{self.url}/files-pri/{file_id}/{name}",
                  "url_private_download": f"{self.url}/files-pri/{file_id}/{name}",
                  "permalink": f"https://school.slack.test/files/U1/{file_id}/{name}"}
        with self.lock:
            self.files[file_id] = {**shared, "data": data}
        return shared

    async def _download(self, request: web.Request) -> web.Response:
        """GET a private file: the bytes, with the bot token only (else Slack's sign-in page)."""
        file_id = request.match_info["file_id"]
        failure = self._record("download", {"file_id": file_id,
                                            "authorization": request.headers.get("Authorization")})
        if failure is not None:
            return web.Response(status=failure.status)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.Response(text="<html>Sign in to Slack</html>", content_type="text/html")
        with self.lock:
            file = self.files.get(file_id)
        return web.Response(status=404) if file is None else web.Response(body=file["data"],
                                                                          content_type=file["mimetype"])

    def _api_files_getUploadURLExternal(self, params: dict) -> dict:
        """Step one of an upload: a file id and the URL its bytes go to."""
        file_id = f"F{next(self.file_ids):04d}"
        with self.lock:
            self.uploads[file_id] = {"id": file_id, "name": params.get("filename"), "length": int(params["length"])}
        return {"file_id": file_id, "upload_url": f"{self.url}/upload/v1/{file_id}"}

    async def _upload(self, request: web.Request) -> web.Response:
        """Step two: the bytes, posted to the upload URL (no token: the URL is the secret)."""
        file_id = request.match_info["file_id"]
        data = await request.read()
        failure = self._record("upload", {"file_id": file_id, "length": len(data)})
        with self.lock:
            upload = self.uploads.get(file_id)
            if failure is None and upload is not None:
                upload["data"] = data
        if failure is not None or upload is None:
            return web.Response(status=failure.status if failure else 404)
        return web.Response(text=f"OK - {len(data)}")

    def _api_files_completeUploadExternal(self, params: dict) -> dict:
        """Step three: the uploaded files get their titles and are shared into `channel_id`."""
        completed = []
        with self.lock:
            for item in params["files"]:
                upload = self.uploads.pop(item["id"])
                file = {**upload, "title": item.get("title") or upload["name"]}
                completed.append({"id": file["id"], "name": file["name"], "title": file["title"]})
                if params.get("channel_id"):
                    self.shared[str(params["channel_id"])].append(file)
        return {"files": completed}

    async def _dispatch(self, request: web.Request) -> web.Response:
        """Check the bearer token, record the call, answer it (or fail it as told, or 429 beyond the pace)."""
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        method = request.match_info["method"]
        params = await _params(request)
        while time.monotonic() < self.stalled_until and not self.closing:
            await asyncio.sleep(0.01)
        failure = self._record(method, params)
        if method == "chat.postMessage" and self.delay:
            await asyncio.sleep(self.delay)
        if failure is None and method == "chat.postMessage" and self._over_pace(str(params.get("channel"))):
            failure = Failure(429, 1)
        if failure is not None:
            return _slack_error(failure)
        handler = getattr(self, "_api_" + method.replace(".", "_"), None)
        return web.json_response({"ok": True, **(handler(params) if handler else {})})

    def _api_auth_test(self, params: dict) -> dict:
        """The bot user and workspace the token belongs to."""
        return {"url": "https://school.slack.test/", "team": "School", "user": "companion", "team_id": "T1",
                "user_id": "UBOT", "bot_id": "BBOT"}

    def _api_chat_postMessage(self, params: dict) -> dict:
        """Keep the message, blocks and metadata included."""
        channel = str(params["channel"])
        message = {"type": "message", "ts": self._timestamp(), "text": params.get("text"),
                   "blocks": params.get("blocks") or [], "bot_id": "BBOT"}
        if params.get("metadata"):
            message["metadata"] = params["metadata"]
        with self.lock:
            self.messages[channel].append(message)
            self.accepted_at.append(time.monotonic())
        return {"channel": channel, "ts": message["ts"], "message": message}

    def _timestamp(self) -> str:
        """A message ts as Slack makes them: the time, unique within the channel."""
        with self.lock:
            self.last_ts = max(time.time(), self.last_ts + 0.000001)
            return f"{self.last_ts:.6f}"

    def _api_chat_update(self, params: dict) -> dict:
        """Replace the blocks of a message posted before."""
        channel = str(params["channel"])
        with self.lock:
            for message in self.messages[channel]:
                if message["ts"] == params["ts"]:
                    message["blocks"] = params.get("blocks") or []
        return {"channel": channel, "ts": params["ts"]}

    def _api_conversations_history(self, params: dict) -> dict:
        """The bot's own messages in a channel since `oldest`, newest first, as Slack answers."""
        oldest = float(params.get("oldest") or 0)
        with self.lock:
            messages = [m for m in self.messages[str(params["channel"])] if float(m["ts"]) >= oldest]
        return {"messages": list(reversed(messages)), "has_more": False}

    def _api_views_open(self, params: dict) -> dict:
        """Open a modal: keep it with a fresh view id and hash, as Slack answers."""
        with self.lock:
            view = {**params["view"], "id": f"V{len(self.views) + 1}", "hash": f"{time.time():.6f}"}
            self.views.append(view)
        return {"view": view}

    def _api_conversations_open(self, params: dict) -> dict:
        """The direct-message channel with a user: D + the user id without its U."""
        return {"channel": {"id": "D" + str(params["users"]).removeprefix("U")}}

    def _api_users_info(self, params: dict) -> dict:
        """A user, with the e-mail the test gave them (if any)."""
        user = str(params["user"])
        return {"user": {"id": user, "name": user.lower(), "profile": {"email": self.emails.get(user)}}}

    def blocks(self, channel: str) -> list[list[dict]]:
        """The blocks of every message posted to `channel`, oldest first."""
        with self.lock:
            return [message["blocks"] for message in self.messages[channel]]

    def texts(self, channel: str) -> list[str]:
        """The texts posted to `channel`, oldest first."""
        with self.lock:
            return [message["text"] for message in self.messages[channel]]

    def last_buttons(self, channel: str) -> tuple[dict, dict]:
        """The newest message in `channel` that still shows buttons, and its actions block."""
        with self.lock:
            for message in reversed(self.messages[channel]):
                for block in message["blocks"]:
                    if block["type"] == "actions":
                        return message, block
        raise AssertionError(f"no buttons on screen in {channel}")


def _slack_error(failure: Failure) -> web.Response:
    """A Web API error: HTTP 200 with ok=false, or an HTTP error with Retry-After for a 429."""
    if failure.status == 200:  # Slack's way: HTTP 200 with ok=false and an error code
        return web.json_response({"ok": False, "error": failure.description})
    headers = {"Retry-After": str(int(failure.retry_after))} if failure.retry_after is not None else {}
    error = {429: "ratelimited"}.get(failure.status, failure.description or "fatal_error")
    return web.json_response({"ok": False, "error": error}, status=failure.status, headers=headers)


# -- harness: a service running in the test's event loop -------------------------------------------


@asynccontextmanager
async def serving(service: Service) -> AsyncIterator[Service]:
    """Run `service` until the block ends, then stop it as SIGTERM would."""
    stopping = asyncio.Event()
    task = asyncio.create_task(service.run(stopping))
    while service.port is None:
        if task.done():
            task.result()  # start-up failed: raise its error here
        await asyncio.sleep(0.01)
    try:
        yield service
    finally:
        stopping.set()
        await asyncio.wait_for(task, 20)


def _state(engine: Engine, platform: str, event_id: str) -> tuple[bool, int]:
    """Whether the event was handled, and how many rows still wait to be sent."""
    with Store(engine).transaction() as tx:
        seen = tx.one("SELECT 1 FROM inboundevent WHERE platform = ? AND event_id = ?", (platform, event_id))
        unsent = tx.one("SELECT COUNT(*) FROM outbox WHERE platform = ? AND status IN ('pending', 'sending')",
                        (platform,))[0]
    return seen is not None, unsent


async def settled(engine: Engine, platform: str, event_id: str, timeout: float = 15.0) -> None:
    """Wait until the event was handled and every reply it queued has been sent."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen, unsent = await asyncio.to_thread(_state, engine, platform, event_id)
        if seen and not unsent:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{platform} event {event_id} was not handled and answered in {timeout}s")


async def until(condition, timeout: float = 15.0) -> None:
    """Wait until `condition()` is true."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


# -- harness: `companion serve` in its own process ------------------------------------------------


def dead_worker() -> str:
    """The name a delivery worker of this host had, whose process has exited."""
    process = subprocess.Popen(["true"])
    process.wait()
    return f"{socket.gethostname()}:{process.pid}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_serve(engine: Engine, port: int, **variables: str) -> subprocess.Popen:
    """`serve` in a process of its own, configured by environment variables as an operator would."""
    env = {**os.environ, **variables, "COMPANION_DATABASE_URL": engine.url.render_as_string(hide_password=False),
           "COMPANION_HTTP_PORT": str(port), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    script = ("from bot.serve import serve; from core.config import Settings; from core.domain.db import make_engine; "
              "settings = Settings(); serve(settings, make_engine(settings.database_url))")
    return subprocess.Popen([sys.executable, "-c", script], env=env)


def outbox_statuses(engine: Engine) -> dict[str, int]:
    """How many outbox rows are in each status."""
    with engine.connect() as connection:
        return dict(connection.execute(text("SELECT status, COUNT(*) FROM outbox GROUP BY status")).all())


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll `condition` until it holds (for code outside an event loop)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def interrupt_and_resume(engine: Engine, sends: Callable[[], int], stop: signal.Signals, rows: int,
                         **variables: str) -> set[str]:
    """Start serve, stop it with `stop` once 20 sends went out, start it again until all `rows` are sent.

    Returns the chats whose row was 'sending' after the stop: the crash window.
    """
    port = free_port()
    process = start_serve(engine, port, **variables)
    try:
        wait_for(lambda: sends() >= 20)
        process.send_signal(stop)
        process.wait(20)
        assert stop == signal.SIGKILL or process.returncode == 0
        with engine.connect() as connection:
            in_flight = set(connection.execute(text("SELECT chat_id FROM outbox WHERE status = 'sending'")).scalars())
        process = start_serve(engine, port, **variables)
        wait_for(lambda: outbox_statuses(engine) == {"sent": rows})
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
    finally:
        process.kill()
    return in_flight
