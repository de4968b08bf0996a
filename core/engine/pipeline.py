"""The conversation engine: one inbound event in, one transaction, replies queued in the outbox.

Every way in — a chat message, a button, a form, a nudge — passes the same stages:

    dedupe ──seen before?──► nothing
      │
    safety ──crisis words?──► support + urgent alert to the adults; flows set aside
      │
    identify ──not linked?──► invite code / roster e-mail ─► onboarding
      │
    middleware ──stopped?──► only /start · evidence (photo, file, link) ─► a portfolio artifact
      │
    dispatch ──► a form is saved · a nudge opens its flow (or is queued) · a command runs ·
                 an answer moves the open flow on · anything else gets the menu

The state the event leaves (the flow stack), the rows it wrote and the replies are committed
together. Features reach the engine only through the registry (core/engine/registry.py).
"""

from __future__ import annotations

import re
from datetime import datetime
from time import perf_counter
from typing import Callable, Sequence

from core.config import Settings
from core.domain import identity
from core.domain.messages import Attachment, FormData, Inbound, Outbound, Rendered
from core.domain.models import PersonStatus, Role, utcnow as utc_now
from core.domain.store import ConcurrentUpdate, Sender, Store, Tx
from core.engine import safety, stack
from core.engine.flow import END, Clock, Each, Flow, Invalid, SubFlow, Turn, WaitFor, plain_answers, supported_locale
from core.engine.registry import Registry
from core.domain.messages import Button

COMMAND = re.compile(r"^/([a-zA-Z_]+)(?:@\S+)?\s*(.*)$", re.DOTALL)
# The same button again this soon, with nothing said between, is one tap (a double tap lands within a few hundred
# ms; reading the next question and tapping the same answer to it takes longer): one place for the trade-off.
DOUBLE_TAP_SECONDS = 1.5
STAGES = ("dedupe", "safety", "identify", "middleware", "dispatch")  # in order; `write` ends every event


class Engine:
    """Handles inbound events; any process may handle any event, the database holds all state."""

    def __init__(self, store: Store, registry: Registry, settings: Settings | None = None, clock: Clock = utc_now):
        self.store = store
        self.registry = registry
        self.settings = settings or Settings()
        self.catalog = registry.catalog
        self.flows: dict[str, Flow] = registry.flows
        self.clock = clock
        self._stages = (self._safety, self._identify, self._middleware, self._dispatch)  # after dedupe
        # Seconds spent in each stage (and in writing state and replies), summed, when a benchmark asks.
        self.timings: dict[str, float] | None = None

    # -- ways in -----------------------------------------------------------------------------------

    def handle(self, inbound: Inbound, priority: int = 0, bot: str = "") -> list[int]:
        """Handle one event exactly once; returns the ids of the outbox rows it queued.

        `priority` orders delivery: 0 for replies to the student, 1 for nudges the scheduler opens.
        `bot` is the bot (Telegram) or workspace (Slack) the event came through: event ids are its own.
        """
        for _ in range(5):
            try:
                with self.store.transaction() as tx:
                    tx.bot = bot
                    return self._handle(tx, inbound, priority)
            except ConcurrentUpdate:
                continue  # another worker answered this student first: start over on fresh state
        raise RuntimeError(f"conversation kept changing under event {inbound.event_id}")

    def handle_many(self, events: Sequence[Inbound], bots: Sequence[str] = (), priority: int = 0) -> list[int]:
        """Handle a batch with one commit (group commit); every event runs in its own savepoint.

        Nothing is acknowledged before the commit, so each event is as durable as with `handle`,
        at a fraction of the cost per event. An event that fails inside the batch is rolled back
        alone and handled again by itself afterwards. `bots` gives each event's bot, `priority` their replies'
        delivery order (see `handle`).
        """
        queued: list[int] = []
        again: list[tuple[Inbound, str]] = []
        with self.store.transaction() as tx:
            tx.begin()
            for inbound, bot in zip(events, [*bots, *[""] * (len(events) - len(bots))]):
                tx.execute("SAVEPOINT event")
                tx.bot = bot
                try:
                    queued.extend(self._handle(tx, inbound, priority))
                except Exception:
                    tx.execute("ROLLBACK TO SAVEPOINT event")
                    again.append((inbound, bot))
                tx.execute("RELEASE SAVEPOINT event")
        for inbound, bot in again:
            queued.extend(self.handle(inbound, priority, bot))
        return queued

    def submit_form(self, platform: str, external_id: str, event_id: str, form: str, values: dict) -> list[int]:
        """A form (Slack's modal) submitted: saved once, through the pipeline like any message."""
        errors = self.registry.forms[form].errors(values)
        if errors:
            raise ValueError(f"form {form} refused: {errors}")  # the channel shows these before it gets here
        return self.handle(Inbound(platform, event_id, external_id, "", form=FormData(form, dict(values))))

    def form_values(self, form: str, platform: str, external_id: str) -> tuple[str, dict] | None:
        """The locale of a linked person the form is for and the form's current values; None for anyone else."""
        with self.store.transaction() as tx:
            sender = tx.sender(platform, external_id)
            if sender is None or sender.person_id is None or sender.role not in self.registry.forms[form].roles:
                return None
            return Turn(tx, sender, self.catalog, self.clock(), flows=self.flows).locale, self.registry.forms[form].values(
                tx, sender.person_id)

    def command_menu(self, locale: str, role: str = Role.student) -> list[tuple[str, str]]:
        """What a chat app lists in its command menu (Telegram's): each command and its description in `locale`."""
        return [(name, self.catalog.label(f"command.{name}", locale)) for name in self.registry.listed(role)]

    def overview(self, platform: str, external_id: str, command: str | None = None, args: str = "") -> list[Rendered]:
        """What a dashboard (Slack's App Home) shows this chat account: the home command of its role, or the
        answering command `command` with `args` when its role may run it (a student's summary in a modal)."""
        with self.store.transaction() as tx:
            sender = tx.sender(platform, external_id)
            if sender is None or sender.person_id is None:
                return [self.catalog.render(Outbound("link/need_code"), self.settings.default_locale)]
            turn = Turn(tx, sender, self.catalog, self.clock(), flows=self.flows)
            home = (self.registry.home(sender.role) if command is None else
                    next((c for c in self.registry.commands_for(sender.role) if c.name == command and c.run), None))
            if home is not None:
                home.run(self, turn, args)
            return [self.catalog.render(reply, turn.locale) for reply in turn.replies]

    # -- one event, inside one transaction ---------------------------------------------------------

    def _handle(self, tx: Tx, inbound: Inbound, priority: int = 0) -> list[int]:
        now = self.clock()
        timings, started = self.timings, perf_counter() if self.timings is not None else 0.0
        if not tx.record_event(inbound.platform, inbound.event_id, now):
            return []
        sender = tx.sender(inbound.platform, inbound.sender)
        if sender is None:
            identity_id = tx.add_identity(inbound.platform, inbound.sender, inbound.chat_id, now)
            sender = Sender(identity_id=identity_id, person_id=None, chat_id=inbound.chat_id)
        turn = Turn(tx, sender, self.catalog, now, platform=inbound.platform, flows=self.flows, engine=self,
                    platform_locale=supported_locale(inbound.locale))
        if timings is None:
            for stage in self._stages:
                if stage(turn, inbound):
                    break
        else:
            timings["dedupe"] = timings.get("dedupe", 0.0) + perf_counter() - started
            for name, stage in zip(STAGES[1:], self._stages):
                started = perf_counter()
                done = stage(turn, inbound)
                timings[name] = timings.get(name, 0.0) + perf_counter() - started
                if done:
                    break
            started = perf_counter()
        sender = turn.sender
        if sender.person_id is not None:
            sender.answers = plain_answers(sender.answers)
            tx.save_conversation(sender, now)
        locale = turn.locale if sender.person_id else (turn.platform_locale or self.settings.default_locale)
        queued = [tx.enqueue(sender.person_id, inbound.platform, sender.chat_id, locale, reply, now, priority)
                  for reply in turn.replies]
        for person_id, platform, chat_id, their_locale, message in turn.others:  # after the sender's own replies
            tx.enqueue(person_id, platform, chat_id, their_locale, message, now)
        if timings is not None:
            timings["write"] = timings.get("write", 0.0) + perf_counter() - started
        return queued

    def _safety(self, turn: Turn, inbound: Inbound) -> bool:
        """Crisis words get support at once and an alert; a message stops here, a form is still saved."""
        found = safety.concerns(turn, inbound)
        if not found:
            return False
        school = turn.tx.one("SELECT school_id FROM person WHERE id = ?", (turn.person_id,)) if turn.person_id else None
        values = self.registry.settings.for_school(turn.tx, school[0] if school else None)
        if turn.sender.person_id is None:
            safety.support_unlinked(turn, found, values, inbound.platform)
            return True
        alert = safety.escalate(turn, found, safety.written(inbound), values, bool(self.settings.smtp_url))
        turn.others.extend(alert.messages)
        if inbound.form:
            return False
        stack.set_aside(turn.sender, turn.now)  # nothing is asked about the flows now
        return True

    def _identify(self, turn: Turn, inbound: Inbound) -> bool:
        """An account not linked yet: redeem an invite code or match the roster e-mail, then onboarding.

        Neither links a second account of the same platform to a person who has one there; a code an
        adult re-issued does, and the accounts it replaces are unlinked and told so.
        """
        if turn.sender.person_id is not None:
            stack.prune(turn.sender, turn.now, self.flows)
            return False
        tx, sender = turn.tx, turn.sender
        person_id = identity.person_by_email(tx, inbound.email, inbound.platform) if inbound.email else None
        replaced: list[tuple[int, str]] = []
        if person_id is None:
            code = identity.invite_code(inbound.text)
            if code is None:
                turn.say("link/need_code")
                return True
            if identity.too_many_attempts(tx, sender, turn.now, self.settings.invite_attempts_per_hour):
                turn.say("link/too_many")
                return True
            redeemed = identity.redeem(tx, code, sender, inbound.platform, turn.now)
            if redeemed is identity.Refused.taken:
                turn.say("link/already_linked")
                return True
            if redeemed is None:
                turn.say("link/bad_code")
                return True
            person_id = redeemed.person_id
            if redeemed.reissued:
                replaced = identity.accounts_on(tx, person_id, inbound.platform, sender.identity_id)
                identity.unlink(tx, [identity_id for identity_id, _ in replaced], person_id, inbound.platform,
                                turn.now)
        identity.link(tx, sender, person_id, inbound.platform, turn.now)
        turn.sender = tx.sender(inbound.platform, inbound.sender)
        for _, chat_id in replaced:  # the old account learns it no longer speaks for the person
            tx.enqueue(None, inbound.platform, chat_id, turn.locale, Outbound("link/unlinked"), turn.now)
        if turn.sender.role == Role.student:
            turn.say("link/welcome", name=turn.sender.given_name)
            self.start_flow(turn, "onboarding")
        else:
            self.menu(turn)
            for alert in safety.open_alerts_of(tx, turn.person_id):  # alerts about their students waited for them
                turn.replies.append(safety.alert_message(alert["given_name"], alert["family_name"],
                                                         alert["category"].split(","), alert["text"], alert["id"]))
        return True

    def _middleware(self, turn: Turn, inbound: Inbound) -> bool:
        """A stopped student hears only how to come back (their data is still theirs: /mydata, /delete); evidence becomes an artifact."""
        command = self.registry.commands.get(self._command(inbound)[0] or "")
        allowed = (command.when_stopped if command else
                   turn.sender.flow in self.registry.when_stopped_flows and not inbound.opens)
        if turn.sender.status == PersonStatus.stopped and not allowed:
            if not inbound.opens:  # a nudge for a stopped student is dropped without a word
                turn.say("commands/stopped", buttons=(Button("menu.start", "/start"),))
            return True
        if inbound.attachment:
            self._keep_evidence(turn, inbound.attachment)
            if not inbound.text:
                self.ask_again(turn) if turn.sender.flow else self.menu(turn)
                return True
        return False

    def _dispatch(self, turn: Turn, inbound: Inbound) -> bool:
        """A form, a nudge, a command, an answer to the open question, or the menu."""
        if inbound.form:
            form = self.registry.forms[inbound.form.name]
            if turn.sender.role in form.roles:  # a form saved by someone it is not for changes nothing
                form.save(self, turn, inbound.form.values)
        elif self._tapped_again(turn, inbound):
            turn.say("common/already_answered")  # a double tap: nothing changes, and nothing is asked twice
        elif inbound.opens:
            self.offer(turn, inbound.opens)
        elif (command := self._command(inbound))[0] is not None:
            self._run_command(turn, *command)
        elif turn.sender.flow:
            self._answer(turn, inbound)
        else:
            self.menu(turn)
        return True

    @staticmethod
    def _tapped_again(turn: Turn, inbound: Inbound) -> bool:
        """Is this the tap just handled, again? The same button within seconds, with no message handled
        since (the conversation's version is the one that tap's write gave it); a question asked twice
        in a row (each carried goal) may still get the same tap twice. Remembers this tap otherwise."""
        sender = turn.sender
        if inbound.payload is None or sender.person_id is None:
            return False
        if sender.stack is None:
            sender.stack = {}
        last = sender.stack.get("tap")
        if (last and last[:2] == [inbound.payload, sender.version]
                and (turn.now - datetime.fromisoformat(last[2])).total_seconds() < DOUBLE_TAP_SECONDS):
            return True
        # the version this event's write gives the conversation
        sender.stack["tap"] = [inbound.payload, sender.version + 1, turn.now.isoformat()]
        return False

    def _keep_evidence(self, turn: Turn, attachment: Attachment) -> None:
        """A photo, file or link becomes a portfolio artifact, tied to what the open flow is about.

        A photo or file the adapter copied into the file store is kept by its key (and, in the
        database kind of the store, becomes this person's), so a portfolio, an export and a forget
        reach the bytes; a failed download leaves only the platform's reference.
        """
        flow = self.flows.get(turn.sender.flow)
        goal = flow.evidence_for(turn) if flow and flow.evidence_for else None
        file_key = attachment.file.key if attachment.file else None
        turn.tx.execute("INSERT INTO artifact (person_id, goal_id, kind, ref, caption, file_key, created_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (turn.person_id, goal["id"] if goal else None, attachment.kind, attachment.ref,
                         attachment.caption, file_key, turn.tx.ts(turn.now)))
        if file_key:
            turn.tx.execute("UPDATE storedfile SET person_id = ? WHERE key = ? AND person_id IS NULL",
                            (turn.person_id, file_key))
        turn.say("artifacts/saved", kind=attachment.kind, goal=goal["text"] if goal else None)

    def _command(self, inbound: Inbound) -> tuple[str | None, str]:
        """A "/command args" typed or tapped; a word from any locale's lexicon names the same command."""
        match = COMMAND.match(inbound.payload or inbound.text or "")
        if not match:
            return None, ""
        name = match.group(1).lower()
        return self.catalog.aliases.get(name, name), match.group(2).strip()

    def _run_command(self, turn: Turn, name: str, args: str) -> None:
        command = self.registry.commands.get(name)
        if command is None or (turn.sender.role or Role.student) not in command.roles:
            turn.say("commands/unknown", command=name)
            self.menu(turn)
        elif command.flow:
            self.start_flow(turn, command.flow, args)
        else:
            where = (turn.sender.flow, turn.sender.state)
            command.run(self, turn, args)
            if (turn.sender.flow and (turn.sender.flow, turn.sender.state) == where
                    and turn.sender.status != PersonStatus.stopped):  # after /stop, nothing more is asked
                self.ask_again(turn)  # the open question stands: ask it again after the answer

    # -- flows ---------------------------------------------------------------------------------------

    def start_flow(self, turn: Turn, name: str, args: str = "") -> None:
        """Open `name` on top of the stack; the open flow waits below. Asking for the open one asks again."""
        sender = turn.sender
        if sender.flow == name:
            self.ask_again(turn)
            return
        if stack.unwind_to(sender, name, turn.now):
            turn.say("commands/resuming")
            self.ask_again(turn)
            return
        stack.push(sender, name)
        flow = self.flows[name]
        self._advance(turn, flow, flow.start(turn))
        if args and sender.flow == name:
            self._answer(turn, Inbound(platform="", event_id="", sender="", chat_id="", text=args))

    def offer(self, turn: Turn, name: str) -> None:
        """A nudge (or another person) opens `name`: at once when the person is idle, else queued for later."""
        if turn.sender.flow is None:
            self.start_flow(turn, name)
        elif turn.sender.flow != name and name not in stack.queued(turn.sender):
            stack.queued(turn.sender).append(name)

    def offer_queued(self, turn: Turn) -> None:
        """The person is idle again: offer what was queued meanwhile, one button each."""
        waiting = [name for name in stack.queued(turn.sender) if name in self.flows]
        if waiting:
            turn.say("commands/queued", count=len(waiting),
                     buttons=tuple(Button(f"flow.{name}", f"/open {name}") for name in waiting))

    def _answer(self, turn: Turn, inbound: Inbound) -> None:
        """Parse the answer to the open question, store it, and move on."""
        flow = self.flows[turn.sender.flow]
        step = flow.step(turn.sender.state)
        try:
            value = step.expect.parse(turn, inbound)
            if step.save:
                setattr(turn.answers, step.save, value)
            if step.effect:
                step.effect(turn, value)
        except Invalid as refusal:
            turn.say(refusal.template, **refusal.context)
            turn.replies.append(step.prompt(turn))
            return
        self._advance(turn, flow, flow.follow(turn, step, step.next_state(turn)))

    def _advance(self, turn: Turn, flow: Flow, state: str) -> None:
        """Ask the next question that still needs an answer, or finish the flow.

        On the way: a loop (`Each`) loads its items, a `SubFlow` opens its flow on top (this one
        goes on when it finishes), a `WaitFor` sets the flow to wait for another person's action.
        """
        sender = turn.sender
        for _ in range(4 * (len(flow.by_name) + len(flow.nodes)) + 4):
            if state == END:
                break
            node = flow.nodes.get(state)
            if isinstance(node, Each):
                state = flow.enter(turn, node)
                continue
            if isinstance(node, SubFlow):
                sender.state = state
                stack.push(sender, node.flow)
                called = self.flows[node.flow]
                self._advance(turn, called, called.start(turn))
                return
            if isinstance(node, WaitFor):
                sender.state = state
                if node.say:
                    turn.say(node.say)
                stack.wait(sender)
                self._after_top_left(turn)
                return
            step = flow.step(state)
            if step.skip is None or not step.skip(turn):
                sender.state = state
                turn.replies.append(step.prompt(turn))
                return
            state = flow.follow(turn, step, step.next_state(turn))
        if flow.finish:
            flow.finish(turn)
        result = plain_answers(sender.answers)
        if stack.pop(sender):
            caller = self.flows[sender.flow].nodes.get(sender.state)
            if isinstance(caller, SubFlow) and caller.flow == flow.name:  # a planned call returns
                if caller.save:
                    setattr(turn.answers, caller.save, result)
                self._advance(turn, self.flows[sender.flow], caller.then)
                return
            turn.say("commands/resuming")
            self.ask_again(turn)
        else:
            self.offer_queued(turn)

    def _after_top_left(self, turn: Turn) -> None:
        """The open flow left the stack without finishing (it waits): the one below asks again, or the queue is offered."""
        if stack.pop(turn.sender):
            turn.say("commands/resuming")
            self.ask_again(turn)
        else:
            self.offer_queued(turn)

    def act_on(self, actor: Turn, person_id: int, flow: str, value: object) -> bool:
        """Another person's action (an adviser approving a pitch) for the flow `person_id` waits in.

        Written in the actor's transaction: the flow goes on at once when the person is idle, or is
        queued and offered with a button once they are. False when no such flow waits.
        """
        tx = actor.tx
        sender = tx.sender_of_person(person_id)
        if sender is None:
            return False
        turn = Turn(tx, sender, self.catalog, actor.now, platform=actor.platform, flows=self.flows)
        frame = stack.take_waiting(sender, flow)
        if frame is None:
            return False
        node = self.flows[flow].nodes[frame["state"]]
        answers = self.flows[flow].load(frame["answers"])
        if node.save:
            setattr(answers, node.save, value)
        frame.update(state=node.then, answers=plain_answers(answers), ready=True)
        stack.waiting(sender).append(frame)
        if sender.flow is None:
            self._open_waiting(turn, flow)
        elif flow not in stack.queued(sender):
            stack.queued(sender).append(flow)
        sender.answers = plain_answers(sender.answers)
        tx.save_conversation(sender, actor.now)
        for reply in turn.replies:
            tx.enqueue(person_id, sender.platform, sender.chat_id, turn.locale, reply, actor.now)
        return True

    def _open_waiting(self, turn: Turn, flow: str) -> bool:
        """Go on with a flow whose awaited action came; False when none is ready."""
        frame = stack.take_waiting(turn.sender, flow, ready=True)
        if frame is None:
            return False
        stack.forget(turn.sender, flow)
        stack.open_frame(turn.sender, frame)
        self._advance(turn, self.flows[flow], frame["state"])
        return True

    def open_queued(self, turn: Turn, flow: str) -> None:
        """The person tapped a queued flow: a flow whose awaited action came goes on, any other starts."""
        if flow not in stack.queued(turn.sender) or turn.sender.flow:
            return
        if not self._open_waiting(turn, flow):
            self.start_flow(turn, flow)

    def ask_again(self, turn: Turn) -> None:
        """Repeat the open question, so a command never leaves the student at a dead end."""
        sender = turn.sender
        if not sender.flow:
            return
        flow = self.flows[sender.flow]
        if sender.state in flow.nodes:  # a call that was set aside: run it again
            self._advance(turn, flow, sender.state)
        else:
            turn.replies.append(flow.step(sender.state).prompt(turn))

    def menu(self, turn: Turn) -> None:
        """What this person can do now, as buttons (with "continue" when something was set aside)."""
        buttons = self.registry.menu(turn.sender.role)
        kept = bool(stack.aside(turn.sender))
        if kept:
            buttons += (Button("menu.resume", "/resume"),)
        if turn.sender.role in (None, Role.student):
            turn.say("commands/menu", name=turn.sender.given_name, suspended=kept, buttons=buttons)
        else:
            turn.say("commands/adult_menu", name=turn.sender.given_name, buttons=buttons)
        self.offer_queued(turn)
