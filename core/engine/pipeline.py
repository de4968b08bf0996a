"""The conversation engine: one inbound event in, one transaction, replies queued in the outbox.

    Inbound ─► seen before? ─yes─► nothing
                 │no
                 ▼
             linked? ─no─► invite code / roster e-mail ─► onboarding
                 │yes
                 ▼
             safety words? ─yes─► support + urgent alert (the question waits)
                 │no
                 ▼
             command? ─yes─► run it (flows are suspended, not lost)
                 │no
                 ▼
             in a flow? ─yes─► parse the answer, store it, ask the next question
                 │no
                 ▼
               menu
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Sequence

from core.domain import dates
from core.domain import records
from core.config import Settings
from core.engine.flow import END, Flow, Invalid, Turn
from core.features import FLOWS
from core.domain.messages import Attachment, Button, Inbound, Outbound, Rendered
from core.domain.models import PersonStatus, Role, utcnow as utc_now
from core.domain.store import ConcurrentUpdate, Sender, Store, Tx, as_moment
from core.render.templates import Catalog, catalog as default_catalog

Clock = Callable[[], datetime]
COMMAND = re.compile(r"^/([a-zA-Z_]+)(?:@\S+)?\s*(.*)$", re.DOTALL)
INVITE_CODE = re.compile(r"^[A-Za-z0-9-]{6,32}$")

# Spanish speakers may type the command in their own words.
ALIASES = {"ayuda": "help", "metas": "goals", "repaso": "review", "perfil": "profile", "pausa": "pause",
           "idioma": "language", "parar": "stop", "cancelar": "cancel", "seguir": "resume", "inicio": "start",
           "estudiantes": "students", "menu": "help"}
MENU = (Button("menu.goals", "/goals"), Button("menu.review", "/review"), Button("menu.plan", "/plan"),
        Button("menu.profile", "/profile"), Button("menu.help", "/help"))
ADVISER_MENU = (Button("menu.students", "/students"), Button("menu.help", "/help"))


@dataclass(frozen=True)
class Command:
    """A command: `flow` starts (or resumes) a flow; `run` answers at once and the flow goes on."""

    flow: str | None = None
    run: Callable[["Engine", Turn, str], None] | None = None


class Engine:
    """Handles inbound events; any process may handle any event, the database holds all state."""

    def __init__(self, store: Store, settings: Settings | None = None, catalog: Catalog | None = None,
                 clock: Clock = utc_now, flows: dict[str, Flow] | None = None,
                 commands: dict[str, "Command"] | None = None):
        self.store = store
        self.settings = settings or Settings()
        self.catalog = catalog or default_catalog()
        self.clock = clock
        self.flows = flows or FLOWS
        self.student_commands = commands or STUDENT_COMMANDS

    def handle(self, inbound: Inbound, priority: int = 0) -> list[int]:
        """Handle one event exactly once; returns the ids of the outbox rows it queued.

        `priority` orders delivery: 0 for replies to the student, 1 for nudges the scheduler opens.
        """
        for _ in range(5):
            try:
                with self.store.transaction() as tx:
                    return self._handle(tx, inbound, priority)
            except ConcurrentUpdate:
                continue  # another worker answered this student first: start over on fresh state
        raise RuntimeError(f"conversation kept changing under event {inbound.event_id}")

    def handle_many(self, events: Sequence[Inbound]) -> list[int]:
        """Handle a batch with one commit (group commit); every event runs in its own savepoint.

        Nothing is acknowledged before the commit, so each event is as durable as with `handle`,
        at a fraction of the cost per event. An event that fails inside the batch is rolled back
        alone and handled again by itself afterwards.
        """
        queued: list[int] = []
        again: list[Inbound] = []
        with self.store.transaction() as tx:
            tx.begin()
            for inbound in events:
                tx.execute("SAVEPOINT event")
                try:
                    queued.extend(self._handle(tx, inbound))
                except Exception:
                    tx.execute("ROLLBACK TO SAVEPOINT event")
                    again.append(inbound)
                tx.execute("RELEASE SAVEPOINT event")
        for inbound in again:
            queued.extend(self.handle(inbound))
        return queued

    def overview(self, platform: str, external_id: str) -> list[Rendered]:
        """What a dashboard (Slack's App Home) shows this chat account: a student's plan, an adviser's students."""
        with self.store.transaction() as tx:
            sender = tx.sender(platform, external_id)
            if sender is None or sender.person_id is None:
                return [self.catalog.render(Outbound("link/need_code"), self.settings.default_locale)]
            turn = Turn(tx, sender, self.catalog, self.clock())
            (show_plan if sender.role == Role.student else list_students)(self, turn, "")
            return [self.catalog.render(reply, turn.locale) for reply in turn.replies]

    def profile_form(self, platform: str, external_id: str) -> tuple[str, dict] | None:
        """A linked student's language and learner profile, for a form (Slack's modal); None for anyone else."""
        with self.store.transaction() as tx:
            sender = tx.sender(platform, external_id)
            if sender is None or sender.person_id is None or sender.role != Role.student:
                return None
            return Turn(tx, sender, self.catalog, self.clock()).locale, records.profile(tx, sender.person_id)

    @staticmethod
    def profile_form_errors(values: dict) -> dict[str, str]:
        """What a profile form cannot accept, as field → error template (a form checks before it closes)."""
        checkin = (values.get("checkin_time") or "").strip()
        return {"checkin_time": "errors/need_time"} if checkin and dates.parse_time(checkin) is None else {}

    def update_profile(self, platform: str, external_id: str, event_id: str, values: dict) -> list[int]:
        """Save a profile form exactly once, with an audit row, and queue its confirmation; returns outbox ids.

        `values` maps profile fields to what the student typed; a blank clears the field. A form with
        `profile_form_errors` raises ValueError: the form refuses it before it gets here.
        """
        if errors := self.profile_form_errors(values):
            raise ValueError(f"profile form refused: {errors}")
        changes = {field: (value or "").strip() or None for field, value in values.items()}
        if changes.get("checkin_time"):
            changes["checkin_time"] = dates.parse_time(changes["checkin_time"]).strftime("%H:%M")
        with self.store.transaction() as tx:
            now = self.clock()
            if not tx.record_event(platform, event_id, now):
                return []
            sender = tx.sender(platform, external_id)
            if sender is None or sender.person_id is None:
                raise LookupError(f"{platform} account {external_id} is not linked to a person")
            turn = Turn(tx, sender, self.catalog, now)
            records.save_profile(tx, turn.person_id, now, **changes)
            tx.audit(platform, "profile_saved", turn.person_id, {"fields": sorted(changes)}, now)
            turn.say("profile/saved", profile=records.profile(tx, turn.person_id))
            return [tx.enqueue(turn.person_id, platform, sender.chat_id, turn.locale, reply, now)
                    for reply in turn.replies]

    # -- one event, inside one transaction ---------------------------------------------------------

    def _handle(self, tx: Tx, inbound: Inbound, priority: int = 0) -> list[int]:
        now = self.clock()
        if not tx.record_event(inbound.platform, inbound.event_id, now):
            return []
        sender = tx.sender(inbound.platform, inbound.sender)
        if sender is None:
            identity = tx.add_identity(inbound.platform, inbound.sender, inbound.chat_id, now)
            sender = Sender(identity_id=identity, person_id=None, chat_id=inbound.chat_id)
        turn = Turn(tx, sender, self.catalog, now)
        if sender.person_id is None:
            self._link(turn, inbound)  # on success, turn.sender becomes the linked person
        else:
            self._respond(turn, inbound)
            tx.save_conversation(sender, now)
        sender = turn.sender
        locale = turn.locale if sender.person_id else self.settings.default_locale
        return [tx.enqueue(sender.person_id, inbound.platform, sender.chat_id, locale, reply, now, priority)
                for reply in turn.replies]

    def _respond(self, turn: Turn, inbound: Inbound) -> None:
        sender = turn.sender
        self._drop_unknown_states(sender)
        if inbound.text and (concerns := self.catalog.safety.concerns(inbound.text)):
            self._escalate(turn, inbound.text, concerns)
            return
        if inbound.attachment and sender.status != PersonStatus.stopped:
            self._keep_evidence(turn, inbound.attachment)
            if not inbound.text:
                if sender.flow:
                    self.ask_again(turn)
                else:
                    self.menu(turn)
                return
        name, args = self._command(inbound)
        if sender.status == PersonStatus.stopped and name != "start":
            turn.say("commands/stopped", buttons=(Button("menu.start", "/start"),))
            return
        if name is not None:
            self._run_command(turn, name, args)
        elif sender.flow:
            self._answer(turn, inbound)
        else:
            self.menu(turn)

    @staticmethod
    def _keep_evidence(turn: Turn, attachment: Attachment) -> None:
        """A photo, file or link becomes a portfolio artifact, tied to the goal under review if there is one."""
        reviewing = turn.answers.get("review") if turn.sender.flow == "review" else None
        goal_id = reviewing[0]["id"] if reviewing else None
        turn.tx.execute("INSERT INTO artifact (person_id, goal_id, kind, ref, caption, created_at) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (turn.person_id, goal_id, attachment.kind, attachment.ref, attachment.caption,
                         turn.tx.ts(turn.now)))
        turn.say("artifacts/saved", kind=attachment.kind, goal=reviewing[0]["text"] if reviewing else None)

    def _drop_unknown_states(self, sender: Sender) -> None:
        """A flow or step renamed by an upgrade cannot be resumed: start clean rather than fail every message."""
        if sender.flow and sender.state not in getattr(self.flows.get(sender.flow), "by_name", {}):
            sender.flow = sender.state = None
            sender.answers = {}
        suspended = sender.suspended
        if suspended and suspended.get("state") not in getattr(self.flows.get(suspended.get("flow")), "by_name", {}):
            sender.suspended = None

    @staticmethod
    def _command(inbound: Inbound) -> tuple[str | None, str]:
        """A "/command args" typed or tapped; Spanish names map to the English ones."""
        match = COMMAND.match(inbound.payload or inbound.text or "")
        if not match:
            return None, ""
        name = match.group(1).lower()
        return ALIASES.get(name, name), match.group(2).strip()

    def _run_command(self, turn: Turn, name: str, args: str) -> None:
        commands = self.student_commands if turn.sender.role == Role.student else ADVISER_COMMANDS
        command = commands.get(name)
        if command is None:
            turn.say("commands/unknown", command=name)
            self.menu(turn)
        elif command.flow:
            self.start_flow(turn, command.flow, args)
        else:
            where = (turn.sender.flow, turn.sender.state)
            command.run(self, turn, args)
            if (turn.sender.flow, turn.sender.state) == where:
                self.ask_again(turn)  # the open question stands: ask it again after the answer

    def start_flow(self, turn: Turn, name: str, args: str = "") -> None:
        """Start `name`; a flow in progress is kept to resume, and `/goals` mid-goals resumes it."""
        sender = turn.sender
        if sender.flow == name:
            self.ask_again(turn)
            return
        if sender.flow:
            sender.suspended = {"flow": sender.flow, "state": sender.state, "answers": sender.answers}
        sender.flow, sender.state, sender.answers = name, None, {}
        flow = self.flows[name]
        self._advance(turn, flow, flow.start(turn))
        if args and sender.flow == name:
            self._answer(turn, Inbound(platform="", event_id="", sender="", chat_id="", text=args))

    def _answer(self, turn: Turn, inbound: Inbound) -> None:
        """Parse the answer to the current question, store it, and move on."""
        flow = self.flows[turn.sender.flow]
        step = flow.step(turn.sender.state)
        try:
            value = step.expect.parse(turn, inbound)
            if step.save:
                turn.answers[step.save] = value
            if step.effect:
                step.effect(turn, value)
        except Invalid as refusal:
            turn.say(refusal.template, **refusal.context)
            turn.replies.append(step.prompt(turn))
            return
        self._advance(turn, flow, step.next_state(turn))

    def _advance(self, turn: Turn, flow: Flow, state: str) -> None:
        """Ask the next question that still needs an answer, or finish the flow."""
        sender = turn.sender
        for _ in range(len(flow.steps) + 1):
            if state == END:
                break
            step = flow.step(state)
            if step.skip is None or not step.skip(turn):
                sender.state = state
                turn.replies.append(step.prompt(turn))
                return
            state = step.next_state(turn)
        if flow.finish:
            flow.finish(turn)
        sender.flow = sender.state = None
        sender.answers = {}
        if sender.suspended:
            self.resume(turn)
            self.ask_again(turn)

    def resume(self, turn: Turn) -> None:
        """Restore the flow that was left, answers and all; the caller asks its question again."""
        sender = turn.sender
        suspended, sender.suspended = sender.suspended, None
        sender.flow, sender.state, sender.answers = suspended["flow"], suspended["state"], suspended["answers"]
        turn.say("commands/resuming")

    def ask_again(self, turn: Turn) -> None:
        """Repeat the open question, so a command never leaves the student at a dead end."""
        if turn.sender.flow:
            turn.replies.append(self.flows[turn.sender.flow].step(turn.sender.state).prompt(turn))

    def menu(self, turn: Turn) -> None:
        """What the student (or adviser) can do now, as buttons."""
        if turn.sender.role == Role.student:
            turn.say("commands/menu", name=turn.sender.given_name, suspended=bool(turn.sender.suspended),
                     buttons=MENU + ((Button("menu.resume", "/resume"),) if turn.sender.suspended else ()))
        else:
            turn.say("adviser/menu", name=turn.sender.given_name, buttons=ADVISER_MENU)

    # -- safety ------------------------------------------------------------------------------------

    def _escalate(self, turn: Turn, text: str, concerns: list[str]) -> None:
        """Support the student at once and alert their advisers and counselors: never wait for a digest."""
        tx, person_id = turn.tx, turn.person_id
        for concern in concerns:
            tx.execute("INSERT INTO safetyalert (person_id, category, text, created_at) VALUES (?, ?, ?, ?)",
                       (person_id, concern, text, tx.ts(turn.now)))
        turn.say("safety/support", concerns=concerns, resources=self.settings.safety_resources, alerted=True)
        for adult_id, platform, chat_id, locale in tx.all(
                "SELECT DISTINCT p.id, i.platform, i.chat_id, COALESCE(p.locale, s.locale) FROM person p "
                "JOIN chatidentity i ON i.person_id = p.id LEFT JOIN school s ON s.id = p.school_id "
                "WHERE p.id IN (SELECT a.person_id FROM advisorymember a JOIN advisorymember m "
                "ON m.group_id = a.group_id WHERE m.person_id = ? AND a.role = 'adviser') "
                "OR (p.role = 'counselor' AND p.school_id = (SELECT school_id FROM person WHERE id = ?))",
                (person_id, person_id)):
            tx.enqueue(adult_id, platform, chat_id, locale or "en",
                       Outbound("safety/alert", {"student": turn.sender.given_name, "concerns": concerns,
                                                 "text": text}), turn.now)
        tx.audit("engine", "safety_alert", person_id, {"concerns": concerns}, turn.now)

    # -- linking a chat account to the roster -------------------------------------------------------

    def _link(self, turn: Turn, inbound: Inbound) -> None:
        """Redeem an invite code (or match the roster e-mail on Slack), then start onboarding."""
        tx, sender = turn.tx, turn.sender
        if inbound.text and (concerns := self.catalog.safety.concerns(inbound.text)):
            # Nobody to alert yet, but the words still get support and the resources at once.
            turn.say("safety/support", concerns=concerns, resources=self.settings.safety_resources, alerted=False)
            tx.audit(inbound.platform, "safety_unlinked", None, {"concerns": concerns,
                                                                  "identity": sender.identity_id}, turn.now)
            return
        person_id = self._person_by_email(tx, inbound) if inbound.email else None
        if person_id is None:
            code = self._invite_code(inbound)
            if code is None:
                turn.say("link/need_code")
                return
            if self._too_many_attempts(tx, sender, turn.now):
                turn.say("link/too_many")
                return
            person_id = self._redeem(tx, code, sender, turn.now)
            if person_id is None:
                tx.execute("UPDATE chatidentity SET failed_attempts = failed_attempts + 1 WHERE id = ?",
                           (sender.identity_id,))
                turn.say("link/bad_code")
                return
        tx.execute("UPDATE chatidentity SET person_id = ?, failed_attempts = 0 WHERE id = ?",
                   (person_id, sender.identity_id))
        tx.create_conversation(person_id, turn.now)
        tx.audit(inbound.platform, "linked", person_id, {"identity": sender.identity_id}, turn.now)
        linked = tx.sender(inbound.platform, inbound.sender)
        turn.sender = linked
        if linked.role == Role.student:
            turn.say("link/welcome", name=linked.given_name)
            self.start_flow(turn, "onboarding")
        else:
            self.menu(turn)
        tx.save_conversation(linked, turn.now)

    @staticmethod
    def _invite_code(inbound: Inbound) -> str | None:
        words = (inbound.text or "").split()
        if words and words[0].lower().startswith("/start"):
            words = words[1:]
        if len(words) == 1 and INVITE_CODE.match(words[0]):
            return words[0].upper()
        return None

    def _too_many_attempts(self, tx: Tx, sender: Sender, now: datetime) -> bool:
        """At most a few wrong codes an hour per chat account: codes cannot be guessed."""
        failed, started = tx.one("SELECT failed_attempts, window_started_at FROM chatidentity WHERE id = ?",
                                 (sender.identity_id,))
        started = as_moment(started)
        if started is None or now - started > timedelta(hours=1):
            tx.execute("UPDATE chatidentity SET failed_attempts = 0, window_started_at = ? WHERE id = ?",
                       (tx.ts(now), sender.identity_id))
            return False
        return failed >= self.settings.invite_attempts_per_hour

    @staticmethod
    def _redeem(tx: Tx, code: str, sender: Sender, now: datetime) -> int | None:
        """Use a code once, before it expires; returns the person it belongs to."""
        cursor = tx.execute(
            "UPDATE invitecode SET used_at = ?, used_by = ? WHERE code = ? AND used_at IS NULL AND expires_at > ?",
            (tx.ts(now), sender.identity_id, code, tx.ts(now)))
        if cursor.rowcount != 1:
            return None
        return tx.one("SELECT person_id FROM invitecode WHERE code = ?", (code,))[0]

    @staticmethod
    def _person_by_email(tx: Tx, inbound: Inbound) -> int | None:
        """On Slack the workspace vouches for the e-mail: the roster e-mail links without a code."""
        row = tx.one(
            "SELECT p.id FROM person p WHERE lower(p.email) = lower(?) AND NOT EXISTS "
            "(SELECT 1 FROM chatidentity i WHERE i.person_id = p.id AND i.platform = ?)",
            (inbound.email, inbound.platform))
        return row[0] if row else None



# -- commands that answer at once ------------------------------------------------------------------


def show_help(engine: Engine, turn: Turn, _args: str) -> None:
    """List what the student (or adviser) can say at any time."""
    turn.say("commands/help" if turn.sender.role == Role.student else "adviser/help")


def show_plan(engine: Engine, turn: Turn, _args: str) -> None:
    """Progress across the four categories, with this week's goals."""
    turn.say("commands/plan", progress=records.progress_by_category(turn.tx, turn.person_id),
             goals=records.of_week(turn.tx, turn.person_id, turn.week_start),
             profile=records.profile(turn.tx, turn.person_id))


def stop(engine: Engine, turn: Turn, _args: str) -> None:
    """No more messages until the student says /start."""
    records.set_person(turn.tx, turn.person_id, status=PersonStatus.stopped)
    turn.sender.status = PersonStatus.stopped
    turn.say("commands/stopped_now")


def start(engine: Engine, turn: Turn, _args: str) -> None:
    """Come back after /stop, or see where things stand."""
    sender = turn.sender
    if sender.status == PersonStatus.stopped:
        records.set_person(turn.tx, turn.person_id, status=PersonStatus.active)
        sender.status = PersonStatus.active
        if not sender.consented:
            engine.start_flow(turn, "onboarding")
            return
        turn.say("commands/welcome_back")
    if not sender.flow:
        engine.menu(turn)


def leave(engine: Engine, turn: Turn, _args: str) -> None:
    """Leave the current flow; it waits, answers kept, for /resume."""
    sender = turn.sender
    if sender.flow:
        sender.suspended = {"flow": sender.flow, "state": sender.state, "answers": sender.answers}
        sender.flow = sender.state = None
        sender.answers = {}
        turn.say("commands/left")
    else:
        engine.menu(turn)


def resume(engine: Engine, turn: Turn, _args: str) -> None:
    """Pick up a flow that was left."""
    if turn.sender.suspended and not turn.sender.flow:
        engine.resume(turn)
        engine.ask_again(turn)
    elif not turn.sender.flow:
        engine.menu(turn)


def list_students(engine: Engine, turn: Turn, _args: str) -> None:
    """An adviser's advisees, with this week's goals and how sure they feel."""
    tx = turn.tx
    students: dict[int, dict] = {}
    for row in tx.rows(
            "SELECT DISTINCT p.id, p.given_name, p.family_name, g.text, g.confidence, g.status, "
            "EXISTS (SELECT 1 FROM chatidentity i WHERE i.person_id = p.id AND i.unreachable) AS unreachable "
            "FROM person p JOIN advisorymember m ON m.person_id = p.id AND m.role = 'student' "
            "JOIN advisorymember a ON a.group_id = m.group_id AND a.role = 'adviser' "
            "LEFT JOIN goal g ON g.person_id = p.id AND g.week_start = ? AND g.status != 'dropped' "
            "WHERE a.person_id = ? ORDER BY p.family_name, p.given_name, p.id",
            (tx.day(turn.week_start), turn.person_id)):
        student = students.setdefault(row["id"], {"given_name": row["given_name"], "family_name": row["family_name"],
                                                  "unreachable": bool(row["unreachable"]), "goals": []})
        if row["text"] is not None:
            student["goals"].append({"text": row["text"], "confidence": row["confidence"], "status": row["status"]})
    turn.say("adviser/students", students=list(students.values()))


BOTH = {"help": Command(run=show_help), "start": Command(run=start), "stop": Command(run=stop),
        "language": Command(flow="language"), "cancel": Command(run=leave), "resume": Command(run=resume)}
STUDENT_COMMANDS = {**BOTH, "goals": Command(flow="goals"), "review": Command(flow="review"),
                    "profile": Command(flow="profile"), "plan": Command(run=show_plan),
                    "pause": Command(flow="pause")}
ADVISER_COMMANDS = {**BOTH, "students": Command(run=list_students)}
