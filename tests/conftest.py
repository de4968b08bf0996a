"""Shared fixtures: databases built through the migrations, a fixed clock, and no network."""

from __future__ import annotations

import os
import secrets
import socket
from datetime import datetime, timezone

import pytest
from sqlalchemy import make_url, text

from core.domain.db import make_engine, upgrade
from tests.helpers import Clock

POSTGRES_URL_VARIABLE = "COMPANION_TEST_POSTGRES_URL"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "", None}


@pytest.fixture(params=[
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.skipif(
        not os.environ.get(POSTGRES_URL_VARIABLE), reason=f"set {POSTGRES_URL_VARIABLE} to test PostgreSQL")),
])
def database_url(request, tmp_path):
    """An empty database: a SQLite file, or a fresh schema in the PostgreSQL test database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'companion.db'}"
        return
    base_url = os.environ[POSTGRES_URL_VARIABLE]
    schema = f"t_{secrets.token_hex(6)}"
    admin = make_engine(base_url)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    # Every connection of the test sees only its own schema.
    url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture
def engine(database_url):
    """An engine on a database built by the Alembic migrations, as in production."""
    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()  # before the schema is dropped: open connections would block DROP SCHEMA


@pytest.fixture
def now() -> datetime:
    """A fixed moment: Monday 23 November 2026, 14:00 UTC."""
    return datetime(2026, 11, 23, 14, 0, tzinfo=timezone.utc)


@pytest.fixture
def clock(now):
    """A clock at `now` that the test moves by hand."""
    return Clock(now)


def _is_local_host(host) -> bool:
    """The loopback interface (or no host at all) is this machine; anything else is the internet."""
    if isinstance(host, bytes):
        host = host.decode()
    return host in LOCAL_HOSTS or host.startswith("127.")


def _is_local(address) -> bool:
    """Unix sockets (a path) and loopback addresses are local."""
    return isinstance(address, (str, bytes)) or _is_local_host(address[0])


@pytest.fixture(autouse=True, scope="session")
def no_network():
    """Tests never reach the internet: connecting anywhere but this machine raises."""
    connect, connect_ex, getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def guarded_connect(sock, address):
        if not _is_local(address):
            raise RuntimeError(f"tests must not reach the network (connect to {address!r})")
        return connect(sock, address)

    def guarded_connect_ex(sock, address):
        if not _is_local(address):
            raise RuntimeError(f"tests must not reach the network (connect to {address!r})")
        return connect_ex(sock, address)

    def guarded_getaddrinfo(host, *args, **kwargs):
        if not _is_local_host(host):
            raise RuntimeError(f"tests must not reach the network (look up {host!r})")
        return getaddrinfo(host, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", guarded_connect)
        patch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
        patch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
        yield
