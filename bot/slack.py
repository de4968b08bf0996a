"""Slack (slack-bolt): direct messages, buttons, `/companion` and App Home in; the outbox out.

Bolt verifies every request's signature and refuses timestamps older than five minutes (401).
A student's App Home has an "Edit my profile" button that opens the learner profile as a modal;
its submission is checked (a check-in time must be a time) before the acknowledgement.
Every request is acknowledged at once (Slack retries what waits over 3 s, and anything answered
404). A message, a tapped button, `/companion` and a saved profile form are first written to the
inbox (core/delivery/inbox.py: one INSERT, after bolt checked the signature and before the
acknowledgement), and handled from there, each person's in the order they arrived: what takes the
Web API (`users.info` for the e-mail, `conversations.open` for a command's DM, a file's download)
happens then, so a process killed in that wait loses nothing Slack was told was received. A
request that cannot be stored is answered 500, and Slack sends it again. A retried event
(`X-Slack-Retry-Num`) reaches the engine with the same event id and workspace and changes
nothing. Bolt authorizes requests with the identity auth.test gave at start-up, so no request
waits for the Web API. Events the app does not act on are acknowledged and dropped; an uninstall
or a revoked bot token stops sending. Linking is by the roster e-mail Slack vouches for
(`users.info`, asked only while the account is not linked), or by an invite code sent as a
message. A file a person shares is downloaded (`url_private_download`, with the bot token: scope
files:read) into the file store before the engine hears of it, the message's text as its caption;
if that fails, the message still goes on with Slack's file reference. A message's image and
document go out by the external upload (`files.getUploadURLExternal`, the upload,
`files.completeUploadExternal`: scope files:write), before its text.
"""

from __future__ import annotations

import asyncio
import functools
import html
import logging
import re
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Awaitable, Callable
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.channel import MAX_DOWNLOAD, Channel, Endpoint, StartupError, with_fallbacks
from core.config import Settings
from core.delivery.worker import Blocked, Limits, RateLimited, Refused, Unavailable
from core.engine.pipeline import Engine
from core.domain.files import platform_key
from core.domain.messages import Attachment, FormData, Inbound, Rendered, RenderedFile
from core.features.advisers import DAYS, OFF, SETTINGS_FORM
from core.render.templates import LOCALES, Catalog

PLATFORM = "slack"
METADATA_TYPE = "companion_outbox"  # carried by every message we post, so a crash can be reconciled
LINK = re.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")
BLOCKED = {"channel_not_found", "account_inactive", "user_disabled", "user_not_found", "cannot_dm_bot",
           "is_archived", "not_in_channel"}
TEMPORARY = {"internal_error", "fatal_error", "service_unavailable", "request_timeout", "team_added_to_org"}
SEARCH_BACK = timedelta(minutes=1)  # how far before a claim the channel history is searched
DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=60)
PROFILE_FORM = "profile"  # the engine's form (core/features/profile.py) behind the modal
PROFILE_MODAL = "profile_modal"  # the App Home button's action id and the modal's callback id
PROFILE_TEXT_FIELDS = ("strengths", "needs", "interests", "aim")
SUMMARY_MODAL = "student_summary"  # an App Home button's action id prefix: a student's summary in a modal
SUMMARY_PAYLOAD = "/student "  # the dashboard's buttons that open a summary (the engine's /student command)
SETTINGS_MODAL = "digest_settings_modal"  # an adviser's App Home button and modal: the digest's day, time, language
SETTINGS_PAYLOAD = "/settings"  # the dashboard's button that opens it (in a chat, the /settings flow)
BLOCK_TEXT, BLOCK_BUTTONS, VIEW_BLOCKS = 3000, 25, 100  # Slack's limits: a section's text, an actions block, a view
FILE_FIELDS = ("id", "name", "title", "mimetype", "size", "url_private", "url_private_download")  # kept to download
log = logging.getLogger(__name__)


class SlackAdapter(Channel):
    """One Slack app: the bolt listeners, the HTTP endpoint, and delivery's `Sender`."""

    platform = PLATFORM
    limits = Limits(per_chat=1.0, per_bot=20.0)  # chat.postMessage: about one a second per channel
    needs = "SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET"

    def __init__(self, settings: Settings, conversation: Engine, queued: Callable[[], None]):
        super().__init__(settings, conversation, queued)
        base_url = (settings.slack_api_url or AsyncWebClient.BASE_URL).rstrip("/") + "/"
        self.client = AsyncWebClient(token=settings.slack_bot_token, base_url=base_url)
        self.identity: AuthorizeResult | None = None  # the bot, as auth.test described it at start-up
        self.unusable: str | None = None  # why the token no longer works (uninstalled, revoked)

        async def authorize() -> AuthorizeResult:  # not a method: bolt would try to fill in its `self`
            """Bolt's authorize: the identity learned at start-up, so no request waits for a lazy auth.test."""
            return self.identity or await self.learn_identity()  # only an adapter never started asks Slack here

        # Bolt gets its token from `authorize`, per request; its own client carries none (else it warns).
        self.app = AsyncApp(client=AsyncWebClient(base_url=base_url), authorize=authorize,
                            signing_secret=settings.slack_signing_secret, process_before_response=False)
        self.working: set[asyncio.Task] = set()  # listeners still running after their ack
        self.app.middleware(self.into_inbox)  # after bolt's own: the signature is checked first
        self.app.event("message")(self.on_message)
        self.app.event("app_home_opened")(self.tracked(self.on_home))
        self.app.event("app_uninstalled")(self.tracked(self.on_uninstalled))
        self.app.event("tokens_revoked")(self.tracked(self.on_tokens_revoked))
        self.app.event(re.compile(".*"))(self.on_other_event)  # app_mention and the rest: after the above
        self.app.action(PROFILE_MODAL)(self.tracked(self.on_profile_button))  # before the catch-all below
        self.app.action(re.compile(f"^{SUMMARY_MODAL}-"))(self.tracked(self.on_summary_button))
        self.app.action(SETTINGS_MODAL)(self.tracked(self.on_settings_button))
        self.app.view_submission(PROFILE_MODAL)(self.tracked(self.on_profile_submitted))
        self.app.view_submission(SETTINGS_MODAL)(self.tracked(self.on_settings_submitted))
        self.app.view_closed(re.compile(".*"))(self.on_modal_closed)
        self.app.action(re.compile(".*"))(self.tracked(self.on_button))
        self.app.command("/companion")(self.tracked(self.on_command))
        self.app.error(self.on_error)

    @classmethod
    def configured(cls, settings: Settings) -> bool:
        """A bot token turns Slack on."""
        return bool(settings.slack_bot_token)

    @classmethod
    def problems(cls, settings: Settings) -> list[str]:
        """A token that is not a bot's, or a token without the signing secret (or the other way round)."""
        found = []
        token = settings.slack_bot_token
        if token and not token.startswith("xoxb-"):
            found.append("SLACK_BOT_TOKEN must be a bot token (xoxb-…)")
        if bool(token) != bool(settings.slack_signing_secret):
            found.append("Slack needs both SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET")
        return found

    def tracked(self, listener: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        """`listener`, counted as work in hand until it returns, so a shutdown waits for it."""

        @functools.wraps(listener)  # bolt reads the listener's parameter names through the wrapper
        async def run(**kwargs) -> None:
            """Run the listener with bolt's arguments, registered as work in hand."""
            task = asyncio.current_task()
            self.working.add(task)
            try:
                await listener(**kwargs)
            except Exception:
                ack = kwargs.get("ack")  # absent for events: bolt acknowledged those before the listener
                if ack is not None and ack.response is None:
                    raise  # not acknowledged yet: bolt answers 500 and calls on_error
                # Bolt would drop the acknowledgement it has not sent yet and answer 404 after 3 s.
                log.exception("slack listener %s failed after its ack", listener.__name__)
            finally:
                self.working.discard(task)

        return run

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Check the token with auth.test, so a wrong one fails at start-up and not at the first event."""
        try:
            await self.learn_identity()
        except SlackApiError as error:
            raise StartupError(f"SLACK_BOT_TOKEN was refused by {self.client.base_url}: "
                               f"{error.response.get('error')}") from error
        except (SlackClientError, aiohttp.ClientError) as error:
            raise StartupError(f"cannot reach the Slack Web API at {self.client.base_url}: {error}") from error

    async def learn_identity(self) -> AuthorizeResult:
        """auth.test: which bot and workspace the token belongs to (bolt needs it to ignore the bot's own events)."""
        response = await self.client.auth_test()
        self.identity = AuthorizeResult.from_auth_test_response(
            auth_test_response=response, bot_token=self.client.token,
            bot_scopes=response.headers.get("x-oauth-scopes"))
        return self.identity

    async def stop(self) -> None:
        """Let the listeners that were acknowledged finish their work."""
        while self.working:
            await asyncio.gather(*self.working, return_exceptions=True)

    def routes(self) -> dict[str, Endpoint]:
        """One endpoint for everything, under each name a Slack app's settings may give it."""
        return {path: self.endpoint for path in ("/slack/events", "/slack/actions", "/slack/commands")}

    async def endpoint(self, request: web.Request) -> web.Response:
        """POST /slack/events (events, actions and slash commands alike): bolt verifies and acks."""
        return await to_aiohttp_response(await self.app.async_dispatch(await to_bolt_request(request)))

    # -- requests in: stored before the ack, then the listeners (each runs after its ack) -----------

    async def into_inbox(self, body: dict, next: Callable[[], Awaitable]) -> BoltResponse | None:
        """Bolt middleware: a message, tap, command or form is stored before any listener acknowledges it."""
        kept = inbound_of(body)
        if kept is not None:
            inbound, extra = kept
            try:
                await self.keep(inbound, self.team_of(body), extra)
            except Exception:
                log.exception("slack %s could not be stored; answered 500 so Slack sends it again", inbound.event_id)
                return BoltResponse(status=500, body="")
        return await next()

    def team_of(self, body: dict) -> str:
        """The workspace a request came from: event ids and trigger ids are de-duplicated per workspace."""
        team = body.get("team_id") or (body.get("team") or {}).get("id")
        return team or (self.identity.team_id if self.identity else None) or ""

    async def on_message(self) -> None:
        """A message: `into_inbox` stored it before the acknowledgement; the inbox worker handles it."""

    async def prepare(self, inbound: Inbound, extra: dict) -> Inbound:
        """Before the engine hears of an event from the inbox: the DM channel of a command
        (`conversations.open`), the roster e-mail of an account not linked yet (`users.info`), the
        shared file copied into the file store. A Web API that does not answer makes it wait and try again."""
        if extra.get("open_dm"):
            opened = await self.client.conversations_open(users=inbound.sender)
            inbound = replace(inbound, chat_id=opened["channel"]["id"])
        if extra.get("email") and not await asyncio.to_thread(self.linked, inbound.sender):
            email, locale = await self._email(inbound.sender)
            inbound = replace(inbound, email=email, locale=locale)
        if extra.get("file"):
            inbound = replace(inbound, attachment=await self.download(extra["file"], inbound.attachment,
                                                                      inbound.chat_id))
        return inbound

    def linked(self, user: str) -> bool:
        """Whether `user`'s account is linked already: then the engine needs no e-mail."""
        with self.conversation.store.transaction() as tx:
            return tx.linked(PLATFORM, user)

    async def download(self, shared: dict, attachment: Attachment | None, channel: str) -> Attachment | None:
        """The first shared file copied into the file store; a failure is logged and the attachment keeps
        Slack's reference only, so the person's message is never lost."""
        if attachment is None or attachment.kind == "link":
            return attachment
        url = shared.get("url_private_download") or shared.get("url_private")
        try:
            if not url:
                raise ValueError("the file has no download URL (hidden, or deleted)")
            if not self.trusts(url):
                raise ValueError(f"{url} is not a Slack file URL: the bot token is not sent there")
            if int(shared.get("size") or 0) > MAX_DOWNLOAD:
                raise ValueError(f"{shared['size']} bytes")
            data = await self.fetch(url)
            stored = await self.keep_file(data, shared.get("name") or shared.get("title") or "file",
                                          shared.get("mimetype"), platform_key(PLATFORM, shared["id"]))
        except Exception as error:  # Slack, the network or the store: the message goes on without the copy
            log.warning("could not keep the file %s from %s: %s", shared.get("id"), channel, error,
                        exc_info=not isinstance(error, (ValueError, aiohttp.ClientError, asyncio.TimeoutError)))
            return attachment
        return replace(attachment, file=stored)

    def trusts(self, url: str) -> bool:
        """Whether the bot token may go to `url`: the Web API's own host, or HTTPS on its domain
        (files.slack.com for slack.com)."""
        api = urlsplit(str(self.client.base_url))
        target = urlsplit(url)
        if (target.scheme, target.netloc) == (api.scheme, api.netloc):
            return True
        host = api.hostname or ""
        domain = ".".join(host.split(".")[-2:]) if re.search("[a-z]", host) else ""  # no domain for an IP
        return target.scheme == "https" and bool(domain) and (target.hostname or "").endswith("." + domain)

    async def fetch(self, url: str) -> bytes:
        """GET a private file with the bot token; at most MAX_DOWNLOAD bytes."""
        headers = {"Authorization": f"Bearer {self.client.token}"}
        async with aiohttp.ClientSession(timeout=DOWNLOAD_TIMEOUT) as session:
            async with session.get(url, headers=headers, allow_redirects=False) as response:
                if response.status != 200:
                    raise ValueError(f"HTTP {response.status}")
                if response.content_type == "text/html":  # Slack's sign-in page: the token lacks files:read
                    raise ValueError("Slack answered a web page, not the file (is the files:read scope granted?)")
                data = bytearray()
                async for chunk in response.content.iter_chunked(64 * 1024):
                    data += chunk
                    if len(data) > MAX_DOWNLOAD:
                        raise ValueError(f"over {MAX_DOWNLOAD} bytes")
        return bytes(data)

    async def on_button(self, ack: AsyncAck, body: dict) -> None:
        """A tapped button (stored by `into_inbox`, its value goes to the engine): the buttons leave the message."""
        await ack()
        channel = (body.get("channel") or {}).get("id")
        message = body.get("message")
        if message and channel:
            try:
                await self.client.chat_update(channel=channel, ts=message["ts"], text=message.get("text", ""),
                                              blocks=[b for b in message.get("blocks", []) if b["type"] != "actions"])
            except SlackApiError as error:  # the answer is stored; the old buttons just stay visible
                log.info("could not remove buttons: %s", error.response.get("error"))

    async def on_command(self, ack: AsyncAck) -> None:
        """`/companion …`: stored by `into_inbox` (the reply goes to the bot's DM, opened when it is handled)."""
        await ack()

    async def on_home(self, event: dict) -> None:
        """The App Home tab: the student's week (their plan) and a profile button; an adviser's live dashboard
        (the triage with its buttons, the class figures, a summary button per student); or how to link."""
        if event.get("tab") != "home":
            return
        pages = await asyncio.to_thread(self.conversation.overview, PLATFORM, event["user"])
        form = await asyncio.to_thread(self.conversation.form_values, PROFILE_FORM, PLATFORM, event["user"])
        home_blocks = dashboard_blocks(pages)
        if form is not None:
            locale, _ = form
            label = self.conversation.catalog.label("slack.profile_edit", locale)
            home_blocks.append({"type": "actions", "elements": [
                {"type": "button", "action_id": PROFILE_MODAL, "text": {"type": "plain_text", "text": label}}]})
        await self.client.views_publish(user_id=event["user"], view={"type": "home", "blocks": home_blocks[:VIEW_BLOCKS]})

    async def on_summary_button(self, ack: AsyncAck, body: dict) -> None:
        """A student's name on the App Home: their summary in a modal (only a student the adult may see)."""
        await ack()
        user, action = body["user"]["id"], body["actions"][0]
        pages = await asyncio.to_thread(self.conversation.overview, PLATFORM, user, "student",
                                        action.get("value", "").removeprefix(SUMMARY_PAYLOAD))
        catalog, locale = self.conversation.catalog, self.settings.default_locale
        locale = await asyncio.to_thread(self.locale_of, user) or locale
        await self.client.views_open(trigger_id=body["trigger_id"], view={
            "type": "modal", "callback_id": SUMMARY_MODAL,
            "title": {"type": "plain_text", "text": catalog.label("adviser.summary_title", locale)[:24]},
            "close": {"type": "plain_text", "text": catalog.label("adviser.close", locale)[:24]},
            "blocks": [block for page in pages for block in text_blocks(page.text)][:VIEW_BLOCKS]})

    def locale_of(self, user: str) -> str | None:
        """The language a linked account reads (for a modal's title), or None."""
        with self.conversation.store.transaction() as tx:
            sender = tx.sender(PLATFORM, user)
            return (sender.locale or sender.school_locale) if sender else None

    async def on_profile_button(self, ack: AsyncAck, body: dict) -> None:
        """"Edit my profile" on the App Home: open the profile as a modal, filled in as it stands."""
        await ack()
        form = await asyncio.to_thread(self.conversation.form_values, PROFILE_FORM, PLATFORM, body["user"]["id"])
        if form is None:  # unlinked since the App Home was drawn
            return
        locale, profile = form
        await self.client.views_open(trigger_id=body["trigger_id"],
                                     view=profile_modal(self.conversation.catalog, locale, profile))

    async def on_settings_button(self, ack: AsyncAck, body: dict) -> None:
        """"Digest settings" on an adviser's App Home: the day, time and language as a modal, filled in as they are."""
        await ack()
        form = await asyncio.to_thread(self.conversation.form_values, SETTINGS_FORM, PLATFORM, body["user"]["id"])
        if form is None:  # unlinked, or no longer an adult, since the App Home was drawn
            return
        locale, current = form
        await self.client.views_open(trigger_id=body["trigger_id"],
                                     view=settings_modal(self.conversation.catalog, locale, current))

    async def on_profile_submitted(self, ack: AsyncAck, body: dict, view: dict) -> None:
        """The profile modal's Save: a wrong check-in time, or an account no longer linked, is refused in the modal."""
        await self.save_modal(ack, body, view, PROFILE_FORM, functools.partial(
            self.conversation.form_values, PROFILE_FORM, PLATFORM))

    async def on_settings_submitted(self, ack: AsyncAck, body: dict, view: dict) -> None:
        """The digest settings modal's Save: a time that is not one, or an adult no longer linked, is refused there."""
        await self.save_modal(ack, body, view, SETTINGS_FORM, functools.partial(
            self.conversation.form_values, SETTINGS_FORM, PLATFORM))

    async def save_modal(self, ack: AsyncAck, body: dict, view: dict, form: str,
                          current: Callable[[str], tuple[str, dict] | None]) -> None:
        """A modal's Save: the form's errors (or an account that may no longer fill it in: `current` says None)
        shown under their fields in the person's language; else stored in the inbox, then acknowledged."""
        values = {field: entered.get("value", (entered.get("selected_option") or {}).get("value"))
                  for field, element in view["state"]["values"].items() for entered in element.values()}
        errors = self.conversation.registry.forms[form].errors(values)
        if not errors and await asyncio.to_thread(current, body["user"]["id"]) is None:
            errors = {view["blocks"][0]["block_id"]: "link/need_code"}  # shown under the form's first input, at its top
        if errors:
            catalog = self.conversation.catalog
            locale = view.get("private_metadata") or self.settings.default_locale
            await ack(response_action="errors",
                      errors={field: catalog.text(template, locale, {}) for field, template in errors.items()})
            return
        await self.keep(Inbound(PLATFORM, f"view:{view['id']}:{view['hash']}", body["user"]["id"], "",
                                form=FormData(form, values)), self.team_of(body))
        await ack()  # after it is stored: a failure above answers 500, and Slack lets the person save again

    async def on_uninstalled(self, event: dict) -> None:
        """The app was removed from the workspace: its token is dead, so nothing more is sent."""
        self.stop_sending("app was uninstalled from the workspace")

    async def on_tokens_revoked(self, event: dict) -> None:
        """Tokens were revoked: once the bot's is among them, nothing more can be sent."""
        tokens = event.get("tokens") or {}
        if tokens.get("oauth") and not tokens.get("bot"):
            log.warning("Slack revoked user tokens of %s; the bot token still works", tokens["oauth"])
            return
        self.stop_sending("bot token was revoked")

    async def on_other_event(self, body: dict) -> None:
        """An event the app does not act on (a mention in a channel, …): acknowledged, else Slack retries it."""
        log.debug("slack event %s ignored", body.get("event", {}).get("type"))

    async def on_modal_closed(self, ack: AsyncAck) -> None:
        """A modal closed without saving: nothing to do but acknowledge it."""
        await ack()

    def stop_sending(self, why: str) -> None:
        """Refuse every later send without calling Slack: the token will not work again."""
        log.warning("Slack %s: no more messages go to Slack; reinstall the app, set the new SLACK_BOT_TOKEN "
                    "and restart serve", why)
        self.unusable = why

    async def on_error(self, error: Exception, body: dict) -> None:
        """Log a failed listener; the event is acknowledged already, the database holds the state."""
        log.error("slack request failed: %s", body.get("type"), exc_info=error)

    async def _email(self, user: str) -> tuple[str | None, str | None]:
        """The e-mail the workspace holds for `user` (scope users:read.email), for roster linking, and the
        user's locale ("es-LA"), the first guess at their language; None when Slack says there is none.
        A Web API that does not answer raises: the event is tried again later."""
        try:
            found = (await self.client.users_info(user=user, include_locale=True))["user"]
            return found["profile"].get("email"), found.get("locale")
        except SlackApiError as error:
            if isinstance(translate(error), (RateLimited, Unavailable)):
                raise
            log.info("no e-mail for %s: %s", user, error.response.get("error"))
            return None, None
        except KeyError as error:
            log.info("no e-mail for %s: %s missing", user, error)
            return None, None

    # -- messages out (core.delivery.worker.Sender) --------------------------------------------------------

    async def send(self, chat_id: str, message: Rendered, outbox_id: int) -> str:
        """chat.postMessage with the outbox id as metadata; Slack's errors become delivery's."""
        if self.unusable:
            raise Refused(f"not sent: the Slack {self.unusable}")
        done = self.sent_parts.of(outbox_id) if message.files else {}
        try:
            files = [(kind, part) for kind, part in message.files if kind not in done]
            if files:
                done.update(await self._upload(chat_id, files))
            text = with_fallbacks(message.text, done)
            # Last, and alone in carrying the outbox id: find_sent finding it means the whole row arrived.
            response = await self.client.chat_postMessage(
                channel=chat_id, text=text, blocks=blocks(Rendered(text, message.buttons)),
                metadata={"event_type": METADATA_TYPE, "event_payload": {"outbox_id": outbox_id}})
        except SlackApiError as error:
            raise translate(error) from error
        except (SlackClientError, aiohttp.ClientError, asyncio.TimeoutError) as error:
            raise Unavailable(f"{type(error).__name__}: {error}") from error
        self.sent_parts.finish(outbox_id)
        return response["ts"]

    async def _upload(self, chat_id: str, files: list[tuple[str, RenderedFile]]) -> dict[str, str | None]:
        """The external upload of the files into the chat: for each file `files.getUploadURLExternal` and the
        upload, then one `files.completeUploadExternal` shares them all. Returns kind → None (shared) or the
        fallback sentence (gone from the store, or refused by Slack: too large, files:write not granted)."""
        result: dict[str, str | None] = {}
        uploads = []
        for kind, part in files:
            data = await self.read_file(part)
            if data is None:
                result[kind] = part.fallback
                continue
            upload = {"content": data, "filename": part.file.name, "title": part.caption or part.file.name}
            if kind == "image" and part.caption:
                upload["alt_txt"] = part.caption[:1000]
            uploads.append((kind, part, upload))
        if not uploads:
            return result
        try:
            await self.client.files_upload_v2(file_uploads=[upload for _, _, upload in uploads], channel=chat_id)
        except SlackApiError as error:
            failure = translate(error)
            if not isinstance(failure, Refused):
                raise
            log.warning("Slack refused the upload to %s (%s); the fallback captions go instead", chat_id,
                        error.response.get("error"))
            return result | {kind: part.fallback for kind, part, _ in uploads}
        return result | {kind: None for kind, _, _ in uploads}

    async def find_sent(self, chat_id: str, outbox_id: int, since: datetime) -> str | None:
        """Look for the message in the channel's history by its metadata: Slack can tell."""
        if self.unusable:
            raise Unavailable(f"cannot look: the Slack {self.unusable}")
        try:
            history = await self.client.conversations_history(
                channel=chat_id, oldest=f"{(since - SEARCH_BACK).timestamp():.6f}", include_all_metadata=True,
                limit=200)
        except SlackApiError as error:
            raise translate(error) from error
        except (SlackClientError, aiohttp.ClientError, asyncio.TimeoutError) as error:
            raise Unavailable(str(error)) from error
        for message in history["messages"]:
            metadata = message.get("metadata") or {}
            if (metadata.get("event_type") == METADATA_TYPE
                    and metadata.get("event_payload", {}).get("outbox_id") == outbox_id):
                return message["ts"]
        return None


def translate(error: SlackApiError) -> Exception:
    """A Slack API error as delivery sees it: wait, retry, stop sending to this chat, or give up."""
    response = error.response
    code = response.get("error", "")
    if response.status_code == 429 or code == "ratelimited":
        return RateLimited(float(response.headers.get("Retry-After") or response.headers.get("retry-after") or 1),
                           code)
    if response.status_code >= 500 or code in TEMPORARY:
        return Unavailable(code or str(response.status_code))
    if code in BLOCKED:
        return Blocked(code)
    return Refused(code)


def section(text: str) -> dict:
    """A block of text, escaped as Slack's mrkdwn requires."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return {"type": "section", "text": {"type": "mrkdwn", "text": escaped[:3000]}}


def text_blocks(text: str) -> list[dict]:
    """Long text as sections within Slack's limit, cut between paragraphs (or lines) where it can."""
    found, current = [], ""
    for paragraph in text.split("\n"):
        while len(paragraph) > BLOCK_TEXT:
            found.append(paragraph[:BLOCK_TEXT])
            paragraph = paragraph[BLOCK_TEXT:]
        if current and len(current) + 1 + len(paragraph) > BLOCK_TEXT - 100:  # escaping may lengthen it a little
            found.append(current)
            current = paragraph
        else:
            current = f"{current}\n{paragraph}" if current else paragraph
    return [section(part) for part in [*found, current] if part.strip()]


def dashboard_blocks(pages: list[Rendered]) -> list[dict]:
    """What the App Home shows: each page's text, then its buttons, 25 to an actions block; a button that opens a
    student's summary opens it in a modal, the others are taps like any (answered in the DM)."""
    result: list[dict] = []
    for page in pages:
        result += text_blocks(page.text) or [section(page.text)]
        elements = [{"type": "button", "text": {"type": "plain_text", "text": label[:75]}, "value": payload,
                     "action_id": home_action(n, payload)} for n, (label, payload) in enumerate(page.buttons)]
        result += [{"type": "actions", "elements": elements[start:start + BLOCK_BUTTONS]}
                   for start in range(0, len(elements), BLOCK_BUTTONS)]
    return result


def home_action(n: int, payload: str) -> str:
    """The action id of the App Home's `n`th button: a summary or the digest settings open a modal, the rest are
    taps like any."""
    if payload.startswith(SUMMARY_PAYLOAD):
        return f"{SUMMARY_MODAL}-{n}"
    return SETTINGS_MODAL if payload == SETTINGS_PAYLOAD else f"home-{n}"


def blocks(message: Rendered) -> list[dict]:
    """The text, then the choices as buttons whose value is the payload."""
    result = [section(message.text)]
    if message.buttons:
        result.append({"type": "actions", "elements": [
            {"type": "button", "action_id": f"choice-{n}", "value": payload,
             "text": {"type": "plain_text", "text": label[:75]}}
            for n, (label, payload) in enumerate(message.buttons)]})
    return result


def profile_modal(catalog: Catalog, locale: str, profile: dict) -> dict:
    """The learner profile as a modal of text inputs, prefilled; the language rides along for the errors."""
    return {
        "type": "modal", "callback_id": PROFILE_MODAL, "private_metadata": locale,
        "title": {"type": "plain_text", "text": catalog.label("slack.profile_title", locale)[:24]},
        "submit": {"type": "plain_text", "text": catalog.label("slack.profile_save", locale)[:24]},
        "close": {"type": "plain_text", "text": catalog.label("slack.profile_cancel", locale)[:24]},
        "blocks": [*(profile_input(catalog, locale, field, profile[field], multiline=True)
                     for field in PROFILE_TEXT_FIELDS),
                   profile_input(catalog, locale, "checkin_time", profile["checkin_time"], multiline=False,
                                 placeholder=catalog.label("slack.checkin_hint", locale))],
    }


def settings_modal(catalog: Catalog, locale: str, current: dict) -> dict:
    """The digest's day, time and language as a modal, each as it is now; the language rides along for the errors."""
    time_input = {"type": "plain_text_input", "action_id": "at", "initial_value": current["at"],
                  "placeholder": {"type": "plain_text", "text": catalog.label("adviser.form_time_hint", locale)}}
    return {
        "type": "modal", "callback_id": SETTINGS_MODAL, "private_metadata": locale,
        "title": {"type": "plain_text", "text": catalog.label("flow.adviser_settings", locale)[:24]},
        "submit": {"type": "plain_text", "text": catalog.label("adviser.form_save", locale)[:24]},
        "close": {"type": "plain_text", "text": catalog.label("adviser.form_cancel", locale)[:24]},
        "blocks": [pick_one(catalog, locale, "day", (*DAYS, OFF), current["day"]),
                   {"type": "input", "block_id": "at", "optional": True, "element": time_input,  # none when off
                    "label": {"type": "plain_text", "text": catalog.label("adviser.form_at", locale)}},
                   pick_one(catalog, locale, "language", LOCALES, current["language"])],
    }


def pick_one(catalog: Catalog, locale: str, field: str, values: tuple[str, ...], current: str) -> dict:
    """A required menu of the digest settings (`adviser.<field>_<value>` labels each option), `current` chosen."""
    options = [{"text": {"type": "plain_text", "text": catalog.label(f"adviser.{field}_{value}", locale)[:75]},
                "value": value} for value in values]
    return {"type": "input", "block_id": field,
            "label": {"type": "plain_text", "text": catalog.label(f"adviser.form_{field}", locale)},
            "element": {"type": "static_select", "action_id": field, "options": options,
                        "initial_option": options[values.index(current)]}}


def profile_input(catalog: Catalog, locale: str, field: str, current: str | None, multiline: bool,
                  placeholder: str | None = None) -> dict:
    """One optional text input for a profile field, keyed by the field as block and action id."""
    element = {"type": "plain_text_input", "action_id": field, "multiline": multiline, "max_length": 500}
    if current:
        element["initial_value"] = current
    if placeholder:
        element["placeholder"] = {"type": "plain_text", "text": placeholder}
    return {"type": "input", "block_id": field, "optional": True, "element": element,
            "label": {"type": "plain_text", "text": catalog.label(f"profile.{field}", locale)}}


def inbound_of(body: dict) -> tuple[Inbound, dict | None] | None:
    """A request the engine acts on (a direct message, a tapped button, `/companion`), translated without
    asking Slack anything, with what `SlackAdapter.prepare` fetches when it is handled; None for the rest
    (the App Home, modals, events the app does not act on)."""
    kind = body.get("type")
    if kind == "event_callback":
        event = body.get("event") or {}
        if (event.get("type") != "message" or event.get("channel_type") != "im" or event.get("bot_id")
                or event.get("subtype") not in (None, "file_share") or not event.get("user")):
            return None
        text = event.get("text") or ""
        attachment = attachment_of(event, text)
        extra: dict = {"email": True}
        shared = next(iter(event.get("files") or ()), None)
        if shared is not None and attachment is not None and attachment.kind != "link":
            extra["file"] = {key: shared[key] for key in FILE_FIELDS if shared.get(key) is not None}
        return Inbound(PLATFORM, body["event_id"], event["user"], event["channel"], text=plain(text) or None,
                       attachment=attachment), extra
    if kind == "block_actions":
        actions = body.get("actions") or []
        channel = (body.get("channel") or {}).get("id")
        action_id = actions[0].get("action_id", "") if actions else ""
        if not actions or action_id in (PROFILE_MODAL, SETTINGS_MODAL) or action_id.startswith(f"{SUMMARY_MODAL}-"):
            return None
        if not channel:  # a tap on the App Home ("Followed up", "I'm on it"): answered in the DM
            if (body.get("container") or {}).get("type") != "view" or not actions[0].get("value"):
                return None
            return Inbound(PLATFORM, "action:" + body["trigger_id"], body["user"]["id"], "",
                           payload=actions[0]["value"]), {"open_dm": True}
        return Inbound(PLATFORM, "action:" + body["trigger_id"], body["user"]["id"], channel,
                       payload=actions[0].get("value")), None
    if body.get("command") == "/companion":  # `/companion goals` is `/goals` said in the DM; alone, `/help`
        command = (body.get("text") or "").strip() or "help"
        return Inbound(PLATFORM, "command:" + body["trigger_id"], body["user_id"], "",
                       text="/" + command.removeprefix("/")), {"open_dm": True, "email": True}
    return None


def plain(text: str) -> str:
    """Slack's markup taken off: <url|label> becomes label, <url> the url, entities decoded."""
    return html.unescape(LINK.sub(lambda m: m.group(2) or m.group(1), text)).strip()


def attachment_of(event: dict, text: str) -> Attachment | None:
    """The first file shared (an image is a photo) with the message's text as its caption, or else the
    first link in the text."""
    for shared in event.get("files") or ():
        kind = "photo" if str(shared.get("mimetype", "")).startswith("image/") else "file"
        return Attachment(kind, shared.get("permalink") or shared["id"], plain(text) or shared.get("title"))
    for match in LINK.finditer(text):
        if match.group(1).startswith(("http://", "https://")):
            return Attachment("link", match.group(1), plain(text))
    return None
