"""One file store for every file the companion keeps: what students send, and what it sends them.

Two kinds behind one interface, chosen by COMPANION_FILE_STORE:

- empty (the default): in the database, the `storedfile` table (bytes and all), so a backup of
  the database is a backup of the files, and every process that reaches the database reaches them;
- a folder path: files under that folder, which every process must share (a network or shared
  volume). A file is written under a temporary name and renamed into place, so a reader never
  sees half a file; its name and type lie beside it in `<key>.json`.

A file is known by its key. `put` without a key uses the SHA-256 of the bytes (the same content is
kept once); an adapter storing what a student sent passes `platform_key(platform, file id)`, so a
platform's re-delivered event stores the same file again under the same key, and two students
never share a file. The outbox and the artifact table hold only the key (a `FileRef`), so a
portfolio, an export and a forget reach the bytes through this store.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import os
import re
import uuid
from abc import ABC, abstractmethod
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import Engine

from core.domain.messages import FileRef
from core.domain.store import Store

DEFAULT_MIME = "application/octet-stream"
KEY = re.compile(r"^[A-Za-z0-9_-]{8,128}$")  # a key is never a path: nothing can climb out of the folder


class FileMissing(LookupError):
    """No file is stored under this key (never stored, or forgotten)."""


def content_key(data: bytes) -> str:
    """The key of a file named by its content."""
    return hashlib.sha256(data).hexdigest()


def platform_key(platform: str, file_id: str) -> str:
    """The key of a file a chat platform knows by `file_id` (Telegram's file_unique_id, Slack's file id)."""
    return hashlib.sha256(f"{platform}:{file_id}".encode()).hexdigest()


def guess_mime(name: str) -> str:
    return mimetypes.guess_type(name)[0] or DEFAULT_MIME


def _check(key: str) -> str:
    if not KEY.match(key):
        raise ValueError(f"not a file key: {key!r}")
    return key


class FileStore(ABC):
    """Where files live; blocking calls (an adapter runs them in a thread)."""

    def put(self, data: bytes, name: str, mime: str | None = None, *, key: str | None = None,
            person_id: int | None = None) -> FileRef:
        """Keep `data` (once: a key already stored keeps its first bytes); returns its reference."""
        ref = FileRef(_check(key or content_key(data)), name or "file", mime or guess_mime(name or ""), len(data))
        self._write(ref, bytes(data), person_id)
        return ref

    @abstractmethod
    def _write(self, ref: FileRef, data: bytes, person_id: int | None) -> None: ...

    @abstractmethod
    def read(self, key: str) -> bytes:
        """The bytes stored under `key`; FileMissing if there are none."""

    @abstractmethod
    def ref(self, key: str) -> FileRef:
        """The reference (name, type, size) of the file under `key`; FileMissing if there is none."""

    @abstractmethod
    def delete(self, key: str) -> bool:
        """Remove the file under `key`; whether there was one."""

    def exists(self, key: str) -> bool:
        try:
            self.ref(key)
        except FileMissing:
            return False
        return True


class DatabaseFiles(FileStore):
    """Files as rows of `storedfile`, in the companion's own database."""

    def __init__(self, engine: Engine):
        self.store = Store(engine)

    def _write(self, ref: FileRef, data: bytes, person_id: int | None) -> None:
        with self.store.transaction() as tx:
            tx.execute("INSERT INTO storedfile (key, person_id, name, mime, size, data, created_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                       (ref.key, person_id, ref.name, ref.mime, ref.size, data, tx.ts(datetime.now(timezone.utc))))

    def read(self, key: str) -> bytes:
        with self.store.transaction() as tx:
            row = tx.one("SELECT data FROM storedfile WHERE key = ?", (_check(key),))
        if row is None:
            raise FileMissing(key)
        return bytes(row[0])

    def ref(self, key: str) -> FileRef:
        with self.store.transaction() as tx:
            row = tx.one("SELECT key, name, mime, size FROM storedfile WHERE key = ?", (_check(key),))
        if row is None:
            raise FileMissing(key)
        return FileRef(*row)

    def delete(self, key: str) -> bool:
        with self.store.transaction() as tx:
            return tx.execute("DELETE FROM storedfile WHERE key = ?", (_check(key),)).rowcount == 1


class FolderFiles(FileStore):
    """Files in a folder several processes share: `<folder>/<key[:2]>/<key>`, with `<key>.json` beside it."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def _path(self, key: str) -> Path:
        return self.folder / _check(key)[:2] / key

    def _write(self, ref: FileRef, data: bytes, person_id: int | None) -> None:
        path = self._path(ref.key)
        if path.with_name(path.name + ".json").exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = json.dumps({**ref.as_json(), "person_id": person_id}).encode()
        # The bytes first, then the description: a file is there once its `.json` is.
        for target, content in ((path, data), (path.with_name(path.name + ".json"), meta)):
            temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
            with open(temporary, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)

    def read(self, key: str) -> bytes:
        self.ref(key)
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise FileMissing(key) from None

    def ref(self, key: str) -> FileRef:
        path = self._path(key)
        try:
            return FileRef.from_json(json.loads(path.with_name(path.name + ".json").read_bytes()))
        except FileNotFoundError:
            raise FileMissing(key) from None

    def delete(self, key: str) -> bool:
        path = self._path(key)
        found = False
        for target in (path.with_name(path.name + ".json"), path):  # the description first: then it is gone
            try:
                target.unlink()
                found = True
            except FileNotFoundError:
                pass
        return found


def file_store(location: str | None, engine: Engine) -> FileStore:
    """The store COMPANION_FILE_STORE names: empty for the database behind `engine`, else a folder."""
    return FolderFiles(location) if location else DatabaseFiles(engine)
