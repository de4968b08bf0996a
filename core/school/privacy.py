"""A student's data under their control (SPEC §6): export, forget, retention, and `companion status`.

Which tables hold a person's data is said in one place: `SHARED_TABLES` (the domain's own tables,
the scheduler's, and the engine's) plus every feature's `person_tables` in the registry. An entry
is a table name (its `person_id` column, else its `student_id` column, holds the person) or
`table.column`. A feature that comes later declares its tables and is exported and forgotten too;
a table that refers to a person and is declared nowhere stops `forget` with its name (and
`tests/test_privacy.py` checks every table the models describe).

- `export` gathers every row about a person, as plain JSON: what `/mydata` sends and
  `companion export` writes.
- `forget` hard-deletes, in one transaction, every row about a person: the declared tables, the
  chat accounts they used (also those a re-issued code unlinked), the outbox rows to them, the
  messages to adults that carry their name or words (a safety alert queued for an adviser), their
  files in the file store; then the person, leaving a tombstone (a hash of the roster id) and an
  audit entry that holds the tombstone and counts, never content. The audit log's earlier entries
  (that an alert was raised, that an account was linked) stay, hold no content, and no longer
  carry the person's id (SQLite may give it to someone new).
- `retention_sweep` forgets students whose `left_on` is more than the school's `retention_days`
  ago, and prunes processed event ids and sent outbox rows older than 30 days; `serve` runs it daily.
- `status` is what `companion status` prints: the outbox, open safety alerts, delete requests
  waiting, the last run of each job.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Iterable

from sqlalchemy import Engine, TypeDecorator
from sqlalchemy.schema import sort_tables
from sqlmodel import SQLModel

from core.domain.files import DEFAULT_MIME, FileMissing, FolderFiles
from core.domain.messages import FileRef
from core.domain.models import Role
from core.domain.settings import Key, Number
from core.domain.store import Store, Tx, as_moment

if TYPE_CHECKING:
    from core.engine.registry import Registry

log = logging.getLogger(__name__)

FORMAT = "learning-companion/export-1"
EXPORT_PREFIX = "mydata-"  # the file-store keys of exports: pruned with their outbox rows, forgotten with the student
PRUNE_AFTER = timedelta(days=30)
RETENTION = Key("retention_days", Number(1, 3650), 365,
                "a student's data is deleted this many days after they leave the roster")

# The tables every installation has, whatever features are installed (features add theirs).
SHARED_TABLES = (
    "person.id", "chatidentity", "conversation", "learnerprofile", "planfocus", "goal", "goalreview", "reflection",
    "artifact", "storedfile", "helprequest", "safetyalert", "invitecode", "advisorymember", "deleterequest",
    "nudge", "flag", "chosentime", "outbox", "personschool", "enrollment",
)
# Exported (they are records about the person) but kept by forget: they hold no content.
AUDIT_TABLES = ("auditlog",)
# Tables that know a chat account, not a person: (table, platform column, account column). Forget
# deletes the rows of every account the person used (events still in the inbox, their words
# included); they are not exported (an event in flight is handled within moments).
ACCOUNT_TABLES = (("inbox", "platform", "sender"),)
PERSON_COLUMNS = ("person_id", "student_id")
OWNER_KEYS = ("person_id", "student_id")
MIN_TEXT = 8  # shorter strings of a student's rows (a status, a category) say nothing about them


class PrivacyError(Exception):
    """A person's data cannot be exported or forgotten as declared (a table refers to them undeclared)."""


@dataclass(frozen=True)
class Holder:
    """A table holding a person's data, and the column that names the person."""

    table: str
    column: str


@dataclass
class Forgotten:
    """What `forget` deleted: rows per table and files; no content."""

    person_id: int
    rows: dict[str, int] = field(default_factory=dict)
    files: int = 0
    requested: bool = False
    accounts: list[tuple[str, str]] = field(default_factory=list, repr=False)  # (platform, external id), not reported


def tombstone_key(sourced_id: str) -> str:
    """What is kept of a forgotten person's roster id: a hash, to recognise the id if it comes back."""
    return hashlib.sha256(f"learning-companion:tombstone:{sourced_id}".encode()).hexdigest()


# -- which tables -----------------------------------------------------------------------------------


def holders(tx: Tx, registry: "Registry") -> list[Holder]:
    """Every table that holds rows about a person (shared, then each feature's), each once."""
    found: dict[str, Holder] = {}
    for entry in (*SHARED_TABLES, *registry.person_tables()):
        table, _, column = entry.partition(".")
        if table in found:
            continue
        columns = _columns(tx, table)
        column = column or next((name for name in PERSON_COLUMNS if name in columns), "")
        if column not in columns:
            raise PrivacyError(f"table {table} is declared to hold a person's data but has no "
                               f"{' or '.join(PERSON_COLUMNS)} column (declare it as table.column)")
        found[table] = Holder(table, column)
    return list(found.values())


def _columns(tx: Tx, table: str) -> list[str]:
    known = SQLModel.metadata.tables.get(table)
    if known is not None:
        return [column.name for column in known.columns]
    cursor = tx.execute(f"SELECT * FROM {_name(table)} WHERE 1 = 0")
    cursor.fetchall()
    return [column[0] for column in cursor.description]


def _name(identifier: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", identifier):
        raise PrivacyError(f"not a table or column name: {identifier!r}")
    return identifier


def _deletion_order(tables: Iterable[str]) -> list[str]:
    """Tables that refer to others first (foreign keys), those the models do not describe before all."""
    tables = list(tables)
    described = [SQLModel.metadata.tables[name] for name in tables if name in SQLModel.metadata.tables]
    ordered = [table.name for table in reversed(sort_tables(described))]
    return [name for name in tables if name not in SQLModel.metadata.tables] + ordered


# -- reading a person's rows -----------------------------------------------------------------------


@dataclass
class _Person:
    id: int
    sourced_id: str
    given_name: str
    family_name: str
    email: str | None
    role: str
    school_id: int | None


def _person(tx: Tx, person_id: int) -> _Person:
    row = tx.one("SELECT id, sourced_id, given_name, family_name, email, role, school_id FROM person WHERE id = ?",
                 (person_id,))
    if row is None:
        raise LookupError(f"no person {person_id}")
    return _Person(*row)


def _accounts(tx: Tx, person_id: int) -> list[int]:
    """The chat accounts the person uses, and those they used (unlinked by a re-issued code) still unclaimed."""
    ids = {row[0] for row in tx.all("SELECT id FROM chatidentity WHERE person_id = ?", (person_id,))}
    ids |= {row[0] for row in tx.all("SELECT used_by FROM invitecode WHERE person_id = ? AND used_by IS NOT NULL",
                                     (person_id,))}
    for (detail,) in tx.all("SELECT detail FROM auditlog WHERE person_id = ? AND action IN ('linked', 'unlinked')",
                            (person_id,)):
        identity = json.loads(detail or "{}").get("identity")
        if isinstance(identity, int):
            ids.add(identity)
    if not ids:
        return []
    marks = ", ".join("?" * len(ids))
    return [row[0] for row in tx.all(f"SELECT id FROM chatidentity WHERE id IN ({marks}) "
                                     "AND (person_id IS NULL OR person_id = ?) ORDER BY id", (*sorted(ids), person_id))]


def _where(holder: Holder, person_id: int, accounts: list[int]) -> tuple[str, tuple]:
    """The condition that picks a table's rows about the person."""
    condition, params = f"{_name(holder.column)} = ?", (person_id,)
    marks = ", ".join("?" * len(accounts))
    if holder.table == "chatidentity" and accounts:
        return f"({condition} OR id IN ({marks}))", (*params, *accounts)
    if holder.table == "outbox" and accounts:  # also what reached their accounts before they were linked
        return (f"({condition} OR (person_id IS NULL AND EXISTS (SELECT 1 FROM chatidentity i WHERE i.id IN ({marks}) "
                "AND i.platform = outbox.platform AND i.chat_id = outbox.chat_id)))", (*params, *accounts))
    if holder.table == "storedfile":  # the files behind their artifacts, whoever the store says owns them
        return (f"({condition} OR key IN (SELECT file_key FROM artifact WHERE person_id = ? AND file_key IS NOT NULL))",
                (*params, person_id))
    return condition, params


def _plain(value: Any, python_type: type | None) -> Any:
    """A stored value as JSON: moments and days as ISO text, booleans as booleans."""
    if value is None:
        return None
    if python_type is datetime or isinstance(value, datetime):
        return as_moment(value).astimezone(timezone.utc).isoformat()
    if python_type is date or isinstance(value, date):
        return Tx.as_date(value).isoformat()
    if python_type is bool:
        return bool(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return None
    return value


def _types(table: str) -> dict[str, type | None]:
    described = SQLModel.metadata.tables.get(table)
    found: dict[str, type | None] = {}
    for column in described.columns if described is not None else ():
        kind = column.type.impl if isinstance(column.type, TypeDecorator) else column.type  # UTCDateTime: a DateTime
        try:
            found[column.name] = kind.python_type
        except NotImplementedError:
            found[column.name] = None
    return found


def _rows(tx: Tx, table: str, where: str, params: tuple) -> list[dict]:
    types = _types(table)
    order = " ORDER BY 1"
    cursor = tx.execute(f"SELECT * FROM {_name(table)} WHERE {where}{order}", params)
    names = [column[0] for column in cursor.description]
    rows = []
    for row in cursor.fetchall():
        rows.append({name: _plain(value, types.get(name)) for name, value in zip(names, row)
                     if not isinstance(value, (bytes, bytearray, memoryview))})
    return rows


def export(tx: Tx, registry: "Registry", person_id: int, now: datetime, files_location: str = "") -> dict:
    """Every row about the person, table by table (the file store's bytes stay out: their names and sizes are in)."""
    _person(tx, person_id)
    accounts = _accounts(tx, person_id)
    tables: dict[str, list[dict]] = {}
    for holder in holders(tx, registry):
        tables[holder.table] = _rows(tx, holder.table, *_where(holder, person_id, accounts))
    for table in AUDIT_TABLES:
        tables[table] = _rows(tx, table, "person_id = ?", (person_id,))
    files = [{name: row[name] for name in ("key", "name", "mime", "size")} for row in tables.get("storedfile", [])]
    if files_location:
        store = FolderFiles(files_location)
        for artifact in tables.get("artifact", []):
            if artifact.get("file_key"):
                try:
                    files.append(store.ref(artifact["file_key"]).as_json())
                except FileMissing:
                    pass
    return {"format": FORMAT, "exported_at": now.isoformat(), "person_id": person_id, "tables": tables,
            "files": files}


def export_bytes(data: dict) -> bytes:
    return json.dumps(data, ensure_ascii=False, indent=2, sort_keys=False).encode()


def export_name(now: datetime) -> str:
    return f"my-data-{now:%Y-%m-%d}.json"


def keep_export(tx: Tx, files_location: str, person_id: int, data: bytes, name: str, now: datetime,
                mime: str = "application/json") -> FileRef:
    """Keep an export (the JSON, or the portfolio page) in the file store inside the caller's transaction
    (the database kind), or the folder."""
    ref = FileRef(f"{EXPORT_PREFIX}{uuid.uuid4().hex}", name, mime, len(data))
    if files_location:
        FolderFiles(files_location).put(data, name, ref.mime, key=ref.key, person_id=person_id)
    else:
        tx.execute("INSERT INTO storedfile (key, person_id, name, mime, size, data, created_at) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (ref.key, person_id, ref.name, ref.mime or DEFAULT_MIME, ref.size, data, tx.ts(now)))
    return ref


# -- forgetting ---------------------------------------------------------------------------------------


def request_delete(tx: Tx, person_id: int, platform: str, now: datetime) -> bool:
    """Record a student's /delete for an administrator to confirm; False when one is already waiting."""
    if tx.one("SELECT 1 FROM deleterequest WHERE person_id = ?", (person_id,)):
        return False
    tx.execute("INSERT INTO deleterequest (person_id, platform, requested_at) VALUES (?, ?, ?)",
               (person_id, platform, tx.ts(now)))
    tx.audit(platform, "delete_requested", person_id, {}, now)
    return True


def _strings(tables: dict[str, list[dict]]) -> set[str]:
    """The person's own words: every longer text of several words in their rows (not the outbox, not the audit log).

    One-word values (a status, a category such as "suicidal_ideation", a moment, a key) are left
    out: a message about someone else may hold the same.
    """
    found: set[str] = set()
    for table, rows in tables.items():
        if table in ("outbox", *AUDIT_TABLES):
            continue
        for row in rows:
            for value in row.values():
                if isinstance(value, str) and len(value.strip()) >= MIN_TEXT and len(value.split()) > 1 \
                        and not value.lstrip().startswith(("{", "[")):
                    found.add(value.strip().casefold())
    return found


def _about(context: Any, person: _Person, texts: set[str]) -> tuple[bool, bool]:
    """(strongly, weakly) whether a message's context is about the person.

    Strongly: their full name or e-mail, one of their texts beside their given name, or a person
    entry with their id. Weakly: their given name alone (a namesake's message would match too).
    Parts of the context that say they are about someone else (a `person_id`, `student_id`, or a
    person entry with another id) are not read.
    """
    given = person.given_name.casefold()
    full = f"{person.given_name} {person.family_name}".strip().casefold()
    email = (person.email or "").casefold()
    named = re.compile(rf"(?<!\w){re.escape(given)}(?!\w)") if given else None
    strong = weak = False
    found_texts = False

    def owner(node: dict) -> Any:
        for key in OWNER_KEYS:
            if isinstance(node.get(key), int):
                return node[key]
        if isinstance(node.get("id"), int) and any(key in node for key in ("given_name", "family_name")):
            return node["id"]
        return None

    def walk(node: Any) -> None:
        nonlocal strong, weak, found_texts
        if isinstance(node, dict):
            who = owner(node)
            if who is not None and who != person.id:
                return
            if who == person.id:
                strong = True
            for value in node.values():
                walk(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value)
        elif isinstance(node, str):
            text = node.casefold()
            if (full and full in text) or (email and email in text):
                strong = True
            if named is not None and named.search(text):
                weak = True
            if any(mine in text for mine in texts):
                found_texts = True

    walk(context)
    return strong or (weak and found_texts), weak


def _messages_to_others(tx: Tx, person: _Person, texts: set[str]) -> list[int]:
    """Outbox rows to other people that carry the person's name or words (an alert queued for an adviser).

    A row that only names them by given name goes if it has been sent (a namesake's unsent alert stays).
    """
    needles = [needle for needle in {person.given_name, person.email or ""} if needle]
    if not needles:
        return []
    # The outbox keeps its context as JSON, non-ASCII letters escaped ("Sof\\u00eda"): look for both spellings.
    spellings = {form for needle in needles for form in (needle, json.dumps(needle)[1:-1])}
    patterns = [f"%{_like(spelling)}%" for spelling in sorted(spellings)]
    ors = " OR ".join("context LIKE ? ESCAPE '!'" for _ in patterns)
    rows = tx.all(f"SELECT id, status, context FROM outbox WHERE (person_id IS NULL OR person_id <> ?) AND ({ors})",
                  (person.id, *patterns))
    found = []
    for outbox_id, status, context in rows:
        strongly, weakly = _about(json.loads(context or "{}"), person, texts)
        if strongly or (weakly and status != "pending"):
            found.append(outbox_id)
    return found


def _like(text: str) -> str:
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")


def _file_keys(tx: Tx, person_id: int, outbox_ids: list[int]) -> set[str]:
    """The person's files: behind their artifacts, owned by them in the store, and the exports sent to them."""
    keys = {row[0] for row in tx.all("SELECT file_key FROM artifact WHERE person_id = ? AND file_key IS NOT NULL",
                                     (person_id,))}
    keys |= {row[0] for row in tx.all("SELECT key FROM storedfile WHERE person_id = ?", (person_id,))}
    for start in range(0, len(outbox_ids), 500):
        chunk = outbox_ids[start:start + 500]
        marks = ", ".join("?" * len(chunk))
        for (parts,) in tx.all(f"SELECT parts FROM outbox WHERE parts IS NOT NULL AND id IN ({marks})", chunk):
            for part in json.loads(parts).values():
                key = (part.get("file") or {}).get("key", "")
                if key.startswith(EXPORT_PREFIX):
                    keys.add(key)
    return keys


def forget(engine: Engine, registry: "Registry", person_id: int, now: datetime, files_location: str = "",
           actor: str = "cli", reason: str = "admin") -> Forgotten:
    """Hard-delete every row about the person in one transaction, then their files.

    A tombstone and an audit entry (counts, no content) stay.
    """
    with Store(engine).transaction() as tx:
        result, keys = _forget(tx, registry, person_id, now, actor, reason)
    if files_location:  # after the commit: a failed transaction leaves the files with their rows
        store = FolderFiles(files_location)
        for key in sorted(keys):
            try:
                result.files += bool(store.delete(key))
            except (OSError, ValueError) as error:
                log.warning("forget: a file of person %s could not be deleted: %s", person_id, type(error).__name__)
    return result


def _forget(tx: Tx, registry: "Registry", person_id: int, now: datetime, actor: str,
            reason: str) -> tuple[Forgotten, set[str]]:
    if tx.postgres:  # no event of theirs can add a row while they are forgotten (a new row would need this lock)
        tx.execute("SELECT id FROM person WHERE id = ? FOR UPDATE", (person_id,))
    person = _person(tx, person_id)
    accounts = _accounts(tx, person_id)
    declared = holders(tx, registry)
    mine = {holder.table: _rows(tx, holder.table, *_where(holder, person_id, accounts)) for holder in declared}
    texts = _strings(mine)
    to_others = _messages_to_others(tx, person, texts)
    own_outbox = [row["id"] for row in mine.get("outbox", [])]
    keys = _file_keys(tx, person_id, own_outbox + to_others)
    result = Forgotten(person_id, requested=bool(mine.get("deleterequest")),
                       accounts=[(row["platform"], row["external_id"]) for row in mine.get("chatidentity", [])])
    by_table = {holder.table: holder for holder in declared}
    # References from rows that are not the person's (an adult who acknowledged an alert, a code's account) are cleared.
    _clear_references(tx, person_id, "person", exclude={(h.table, h.column) for h in declared})
    if accounts:
        _clear_references(tx, accounts, "chatidentity", exclude={("invitecode", "person_id")})
    for table in _deletion_order(by_table):
        if table == "person":
            continue
        where, params = _where(by_table[table], person_id, accounts)
        if table == "outbox" and to_others:
            where, params = f"({where} OR id IN ({', '.join('?' * len(to_others))}))", (*params, *to_others)
        if table == "storedfile" and keys:
            where, params = f"({where} OR key IN ({', '.join('?' * len(keys))}))", (*params, *sorted(keys))
        count = tx.execute(f"DELETE FROM {_name(table)} WHERE {where}", params).rowcount
        if table == "storedfile":
            result.files += max(count, 0)
        if count:
            result.rows[table] = count
    _forget_accounts(tx, accounts, result)
    _check_nothing_left(tx, person_id)
    tx.execute("DELETE FROM person WHERE id = ?", (person_id,))
    result.rows["person"] = 1
    tombstone = tombstone_key(person.sourced_id)
    tx.execute("INSERT INTO tombstone (key, forgotten_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
               (tombstone, tx.ts(now)))
    # The audit log keeps what happened (an alert was raised, an account linked) but no longer whose it was:
    # SQLite may give the forgotten person's id to someone new. The tombstone names whom this entry is about.
    tx.execute("UPDATE auditlog SET person_id = NULL WHERE person_id = ?", (person_id,))
    tx.audit(actor, "forgotten", None, {"tombstone": tombstone, "reason": reason, "requested": result.requested,
                                        "rows": result.rows, "files": len(keys)}, now)
    return result, keys


def _forget_accounts(tx: Tx, accounts: list[int], result: Forgotten) -> None:
    """Delete what tables keyed by chat account hold from the person's accounts (read before those rows go)."""
    if not accounts:
        return
    # The accounts' rows are gone by now: their platform and id were read with the person's rows.
    for table, platform_column, account_column in ACCOUNT_TABLES:
        if not _exists(tx, table):
            continue
        count = 0
        for platform, external_id in result.accounts:
            count += tx.execute(f"DELETE FROM {_name(table)} WHERE {_name(platform_column)} = ? "
                                f"AND {_name(account_column)} = ?", (platform, external_id)).rowcount
        if count:
            result.rows[table] = count


def _exists(tx: Tx, table: str) -> bool:
    if tx.postgres:
        return bool(tx.one("SELECT to_regclass(?) IS NOT NULL", (table,))[0])
    return tx.one("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)) is not None


def _references(target: str) -> list[tuple[str, str, bool]]:
    """(table, column, nullable) of every column the models describe that refers to `target`.id."""
    found = []
    for table in SQLModel.metadata.tables.values():
        for column in table.columns:
            if any(key.column.table.name == target and key.column.name == "id" for key in column.foreign_keys):
                found.append((table.name, column.name, bool(column.nullable)))
    return found


def _clear_references(tx: Tx, ids: int | list[int], target: str, exclude: set[tuple[str, str]]) -> None:
    """Set to NULL the nullable references to these rows from other tables' rows (actors, not subjects)."""
    ids = [ids] if isinstance(ids, int) else list(ids)
    marks = ", ".join("?" * len(ids))
    for table, column, nullable in _references(target):
        if (table, column) in exclude or not nullable or column in PERSON_COLUMNS or table == target:
            continue
        tx.execute(f"UPDATE {_name(table)} SET {_name(column)} = NULL WHERE {_name(column)} IN ({marks})", ids)


def _check_nothing_left(tx: Tx, person_id: int) -> None:
    """A table that still names the person was declared nowhere: stop (the transaction rolls back)."""
    for table, column, _ in _references("person"):
        if table == "person":
            continue
        if tx.one(f"SELECT 1 FROM {_name(table)} WHERE {_name(column)} = ? LIMIT 1", (person_id,)):
            raise PrivacyError(f"table {table} ({column}) still holds rows about person {person_id}: declare it in "
                               "a feature's person_tables or in core.school.privacy.SHARED_TABLES")


# -- finding people ---------------------------------------------------------------------------------


def find_people(engine: Engine | Store, who: str, roles: Iterable[str] | None = None) -> list[tuple[int, str, str]]:
    """People whose id, sourced id or e-mail is `who`, else whose name holds it (accents and case aside).

    Returns [(id, full name, sourced id)].
    """
    store = engine if isinstance(engine, Store) else Store(engine)
    roles = sorted({Role(role).value for role in roles}) if roles else [role.value for role in Role]
    among = f"role IN ({', '.join('?' * len(roles))})"
    with store.transaction() as tx:
        exact = tx.all(f"SELECT id, given_name || ' ' || family_name, sourced_id FROM person WHERE {among} AND "
                       "(sourced_id = ? OR lower(email) = lower(?) OR CAST(id AS TEXT) = ?) ORDER BY id",
                       (*roles, who, who, who.removeprefix("#")))
        if exact:
            return exact
        everyone = tx.all(f"SELECT id, given_name || ' ' || family_name, sourced_id FROM person WHERE {among} "
                          "ORDER BY id", roles)
    wanted = _folded(who)
    return [row for row in everyone if wanted and wanted in _folded(row[1])]


def _folded(text: str) -> str:
    """Text without case or accents ("Sofía" → "sofia"), for finding a name as an administrator types it."""
    return "".join(ch for ch in unicodedata.normalize("NFKD", text.strip().casefold())
                   if not unicodedata.combining(ch))


# -- retention --------------------------------------------------------------------------------------


def retention_sweep(engine: Engine, registry: "Registry", now: datetime, files_location: str = "") -> dict:
    """The daily retention run: forget students past their school's `retention_days`, prune old ids and messages.

    Each student is forgotten in their own transaction; one that fails is logged (no content)
    and the others go on. The run is recorded for `companion status` (the `jobrun` table and the
    audit log, counts only).
    """
    started = now
    today = now.date()
    with Store(engine).transaction() as tx:
        schools = registry.settings.load(tx)
        leavers = tx.all("SELECT id, school_id, left_on FROM person WHERE role = ? AND left_on IS NOT NULL",
                         (Role.student.value,))
    due = []
    for person_id, school_id, left_on in leavers:
        values = schools.get(school_id)
        days = values[RETENTION.name] if values is not None and RETENTION.name in registry.settings.keys \
            else RETENTION.default
        if (today - Tx.as_date(left_on)).days > days:
            due.append(person_id)
    forgotten, failed = 0, 0
    for person_id in due:
        try:
            forget(engine, registry, person_id, now, files_location, actor="retention", reason="retention")
            forgotten += 1
        except Exception as error:  # noqa: BLE001 - one student's failure must not stop the sweep
            failed += 1
            log.error("retention: person %s could not be forgotten: %s", person_id, type(error).__name__)
    pruned = prune(engine, now, files_location)
    detail = {"forgotten": forgotten, "failed": failed, **pruned}
    with Store(engine).transaction() as tx:
        record_run(tx, "retention", started, now, failed == 0, detail)
        tx.audit("retention", "retention_run", None, detail, now)
    return detail


def prune(engine: Engine, now: datetime, files_location: str = "", after: timedelta = PRUNE_AFTER) -> dict:
    """Delete event ids handled and outbox rows sent more than `after` ago (and the exports those rows carried)."""
    cutoff = now - after
    with Store(engine).transaction() as tx:
        events = tx.execute("DELETE FROM inboundevent WHERE received_at < ?", (tx.ts(cutoff),)).rowcount
        keys = set()
        for (parts,) in tx.all("SELECT parts FROM outbox WHERE status = 'sent' AND sent_at < ? AND parts IS NOT NULL",
                               (tx.ts(cutoff),)):
            for part in json.loads(parts).values():
                key = (part.get("file") or {}).get("key", "")
                if key.startswith(EXPORT_PREFIX):
                    keys.add(key)
        messages = tx.execute("DELETE FROM outbox WHERE status = 'sent' AND sent_at < ?", (tx.ts(cutoff),)).rowcount
        if keys and not files_location:
            tx.execute(f"DELETE FROM storedfile WHERE key IN ({', '.join('?' * len(keys))})", sorted(keys))
    if files_location:
        store = FolderFiles(files_location)
        for key in keys:
            store.delete(key)
    return {"events_pruned": max(events, 0), "messages_pruned": max(messages, 0), "exports_pruned": len(keys)}


def record_run(tx: Tx, name: str, started: datetime, finished: datetime | None, ok: bool, detail: dict) -> None:
    """Remember the last run of a background job (counts only), for `companion status`."""
    tx.execute("INSERT INTO jobrun (name, started_at, finished_at, ok, detail) VALUES (?, ?, ?, ?, ?) "
               "ON CONFLICT (name) DO UPDATE SET started_at = excluded.started_at, finished_at = excluded.finished_at, "
               "ok = excluded.ok, detail = excluded.detail",
               (name, tx.ts(started), tx.ts(finished) if finished else None, ok, json.dumps(detail, default=str)))


# -- status -----------------------------------------------------------------------------------------


def status(engine: Engine, now: datetime) -> list[str]:
    """What `companion status` prints: the outbox, safety alerts, delete requests, leavers, the last runs."""
    lines = []
    with Store(engine).transaction() as tx:
        pending = tx.all("SELECT platform, COUNT(*), MIN(created_at) FROM outbox WHERE status = 'pending' "
                         "GROUP BY platform ORDER BY platform")
        total = sum(count for _, count, _ in pending)
        oldest = min((as_moment(first) for _, _, first in pending), default=None)
        age = f", the oldest queued {_ago(now, oldest)}" if oldest else ""
        per = ", ".join(f"{platform} {count}" for platform, count, _ in pending)
        lines.append(f"Outbox: {total} waiting to be sent{age}{f' ({per})' if per else ''}")
        failed = tx.one("SELECT COUNT(*) FROM outbox WHERE status = 'failed' AND created_at >= ?",
                        (tx.ts(now - timedelta(days=1)),))[0]
        lines.append(f"  failed in the last 24 hours: {failed}")
        if _exists(tx, "inbox"):
            waiting, stuck = tx.one("SELECT COUNT(*), COALESCE(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0) "
                                    "FROM inbox")
            lines.append(f"Inbox: {waiting} events not handled yet, {stuck} of them failed")
        if "closed_at" in _columns(tx, "safetyalert"):
            open_alerts = tx.one("SELECT COUNT(*), MIN(created_at) FROM safetyalert WHERE closed_at IS NULL")
            lines.append(f"Safety alerts open (not closed by an adult): {open_alerts[0]}"
                         + (f", the oldest raised {_ago(now, as_moment(open_alerts[1]))}" if open_alerts[0] else ""))
        else:
            week = tx.one("SELECT COUNT(*) FROM safetyalert WHERE created_at >= ?", (tx.ts(now - timedelta(days=7)),))
            lines.append(f"Safety alerts raised in the last 7 days: {week[0]}")
        unsent = tx.one("SELECT COUNT(*) FROM outbox WHERE template = 'safety/alert' AND status <> 'sent'")[0]
        lines.append(f"  alert messages to adults not delivered yet: {unsent}")
        requests = tx.all("SELECT p.sourced_id, r.requested_at FROM deleterequest r "
                          "JOIN person p ON p.id = r.person_id ORDER BY r.requested_at")
        lines.append(f"Delete requests waiting for `companion forget`: {len(requests)}"
                     + (f" ({', '.join(sourced for sourced, _ in requests)})" if requests else ""))
        left = tx.one("SELECT COUNT(*), MIN(left_on) FROM person WHERE role = 'student' AND left_on IS NOT NULL")
        lines.append(f"Students who left the roster, kept until their retention period ends: {left[0]}"
                     + (f" (the earliest left {Tx.as_date(left[1]).isoformat()})" if left[0] else ""))
        nudged = tx.one("SELECT MAX(claimed_at), MAX(sent_at), MAX(created_at) FROM nudge")
        lines.append("Nudges: last planned " + _when(now, nudged[2]) + ", last claimed " + _when(now, nudged[0])
                     + ", last sent " + _when(now, nudged[1]))
        sent = tx.one("SELECT MAX(sent_at) FROM outbox")[0]
        lines.append(f"Delivery: last message sent {_when(now, sent)}")
        runs = tx.all("SELECT name, started_at, finished_at, ok, detail FROM jobrun ORDER BY name")
        if not any(name == "retention" for name, *_ in runs):
            lines.append("Retention: never run yet")
        for name, started, finished, ok, detail in runs:
            outcome = "ok" if ok else "FAILED"
            counts = ", ".join(f"{key} {value}" for key, value in json.loads(detail or "{}").items())
            lines.append(f"Last {name} run: {_when(now, finished or started)}, {outcome}"
                         + (f" ({counts})" if counts else ""))
    return lines


def _when(now: datetime, value: Any) -> str:
    moment = as_moment(value)
    return "never" if moment is None else f"{moment:%Y-%m-%d %H:%M} UTC ({_ago(now, moment)})"


def _ago(now: datetime, moment: datetime) -> str:
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min ago"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"
