"""API tokens: roles, hashed storage, and the principal behind a request; the auth tables."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from flask import Request
from sqlalchemy import Column, Engine, MetaData, String, Table, Text, insert, select, update

from kcc_shared.config import Config
from kcc_shared.db import UtcDateTime, make_engine, write
from kcc_shared.migrations import require_current

__all__ = [
    "ROLES",
    "TOKEN_PREFIX",
    "Principal",
    "TokenError",
    "TokenInfo",
    "TokenStore",
    "bearer_token",
    "hash_token",
    "open_token_store",
    "sessions_table",
    "token_store_for",
    "tokens_table",
]

ROLES: Final = ("agent", "staff", "ops", "admin")
TOKEN_PREFIX: Final = "kcc_"  # noqa: S105 - a prefix, not a secret
_USER_ID = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
_DEPARTMENT = re.compile(r"^[a-z0-9-]{1,64}$")
_CACHE_MAX = 10_000


class TokenError(ValueError):
    """A token cannot be created as asked (bad role, user id or department)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: resolved from a bearer token or a web session."""

    user_id: str
    role: str
    team: str | None = None
    departments: frozenset[str] = frozenset()
    token_id: str | None = None

    @property
    def is_operator(self) -> bool:
        return self.role in ("ops", "admin")


@dataclass(frozen=True)
class TokenInfo:
    id: str
    prefix: str
    principal: Principal
    label: str | None
    created_at: datetime
    revoked_at: datetime | None


def tokens_table(metadata: MetaData) -> Table:
    return Table(
        "api_tokens",
        metadata,
        Column("id", String(36), primary_key=True),
        # SHA-256 of a 256-bit random token: no salt or slow hash is needed for a secret that
        # cannot be guessed, and lookup by hash stays one indexed query.
        Column("token_hash", String(64), nullable=False, unique=True),
        Column("prefix", String(12), nullable=False),
        Column("role", String(16), nullable=False),
        Column("user_id", String(64), nullable=False),
        Column("team", String(64), nullable=True),
        Column("departments", Text, nullable=False, default="[]"),
        Column("label", String(200), nullable=True),
        Column("created_at", UtcDateTime, nullable=False),
        Column("revoked_at", UtcDateTime, nullable=True),
    )


def sessions_table(metadata: MetaData) -> Table:
    """Web logins (kcc_shared.web.SessionStore), kept beside the tokens they were made with."""
    return Table(
        "web_sessions",
        metadata,
        Column("id", String(64), primary_key=True),  # SHA-256 of the cookie's session id
        Column("service", String(32), nullable=False),
        Column("user_id", String(64), nullable=False),
        Column("token_id", String(36), nullable=True),
        Column("created_at", UtcDateTime, nullable=False),
        Column("expires_at", UtcDateTime, nullable=False, index=True),
        Column("ended_at", UtcDateTime, nullable=True),
    )


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Creates, checks and revokes tokens; the plaintext exists only in `create`'s return."""

    def __init__(self, engine: Engine, table: Table, *, cache_seconds: float = 0.0) -> None:
        self._engine = engine
        self._table = table
        # Every API call authenticates; a short cache saves a database round trip per call.
        # The price: a token revoked by another process keeps working up to cache_seconds.
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._cache_lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        """The token database (web sessions are kept beside the tokens)."""
        return self._engine

    def create(
        self,
        *,
        role: str,
        user_id: str,
        team: str | None = None,
        departments: Iterable[str] = (),
        label: str | None = None,
        known_departments: Sequence[str] | None = None,
    ) -> tuple[str, TokenInfo]:
        depts = sorted(set(departments))
        problems = []
        if role not in ROLES:
            problems.append(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        if not _USER_ID.fullmatch(user_id):
            problems.append("user id must be 1-64 letters, digits or . _ @ -")
        if team is not None and not _USER_ID.fullmatch(team):
            problems.append("team must be 1-64 letters, digits or . _ @ -")
        if role == "staff" and not depts:
            problems.append("a staff token needs at least one --department")
        if role != "staff" and depts:
            problems.append("only staff tokens are bound to departments")
        for d in depts:
            if not _DEPARTMENT.fullmatch(d):
                problems.append(f"department {d!r} is not a department id")
            elif known_departments is not None and d not in known_departments:
                problems.append(f"unknown department {d!r}")
        if problems:
            raise TokenError("; ".join(problems))
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        info = TokenInfo(
            id=str(uuid.uuid4()),
            prefix=token[:10],
            principal=Principal(user_id, role, team, frozenset(depts)),
            label=label,
            created_at=datetime.now(UTC),
            revoked_at=None,
        )
        with write(self._engine) as connection:
            connection.execute(
                insert(self._table).values(
                    id=info.id,
                    token_hash=hash_token(token),
                    prefix=info.prefix,
                    role=role,
                    user_id=user_id,
                    team=team,
                    departments=json.dumps(depts),
                    label=label,
                    created_at=info.created_at,
                )
            )
        return token, info

    def authenticate(self, token: str) -> Principal | None:
        if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
            return None
        digest = hash_token(token)
        if self._cache_seconds > 0:
            with self._cache_lock:
                cached = self._cache.get(digest)
            if cached is not None and cached[1] > time.monotonic():
                return cached[0]
        t = self._table
        with self._engine.connect() as connection:
            row = connection.execute(
                select(t).where(t.c.token_hash == digest, t.c.revoked_at.is_(None))
            ).first()
        if row is None or not hmac.compare_digest(row.token_hash, digest):
            return None
        principal = Principal(
            user_id=row.user_id,
            role=row.role,
            team=row.team,
            departments=frozenset(json.loads(row.departments)),
            token_id=row.id,
        )
        if self._cache_seconds > 0:
            with self._cache_lock:
                if len(self._cache) >= _CACHE_MAX:
                    self._cache.clear()
                self._cache[digest] = (principal, time.monotonic() + self._cache_seconds)
        return principal

    def principal_by_id(self, token_id: str) -> Principal | None:
        """The principal of a token that is still active (web sessions re-check revocation)."""
        t = self._table
        with self._engine.connect() as connection:
            row = connection.execute(
                select(t).where(t.c.id == token_id, t.c.revoked_at.is_(None))
            ).first()
        if row is None:
            return None
        return Principal(
            user_id=row.user_id,
            role=row.role,
            team=row.team,
            departments=frozenset(json.loads(row.departments)),
            token_id=row.id,
        )

    def revoke(self, token_id: str) -> bool:
        with self._cache_lock:
            self._cache.clear()
        t = self._table
        with write(self._engine) as connection:
            result = connection.execute(
                update(t)
                .where(t.c.id == token_id, t.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
        return bool(result.rowcount)

    def list(self) -> list[TokenInfo]:
        t = self._table
        with self._engine.connect() as connection:
            rows = connection.execute(select(t).order_by(t.c.created_at)).all()
        return [
            TokenInfo(
                id=r.id,
                prefix=r.prefix,
                principal=Principal(
                    r.user_id, r.role, r.team, frozenset(json.loads(r.departments))
                ),
                label=r.label,
                created_at=r.created_at,
                revoked_at=r.revoked_at,
            )
            for r in rows
        ]


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def token_store_for(config: Config, engine: Engine) -> TokenStore:
    """The token store a service uses: its own database unless KCC_AUTH_DATABASE_URL says
    otherwise (one store shared by every service)."""
    auth_engine = engine if config.auth_url == config.database_url else make_engine(config.auth_url)
    return open_token_store(auth_engine, cache_seconds=config.auth_cache_seconds)


def open_token_store(engine: Engine, *, cache_seconds: float = 0.0) -> TokenStore:
    """The token store in `engine`'s database, whose auth tables must be at the auth history's
    head: SchemaBehind / SchemaAhead otherwise (a database without them gets them at head)."""
    from kcc_shared.auth_migrations import HISTORY

    require_current(engine, HISTORY)
    return TokenStore(engine, tokens_table(MetaData()), cache_seconds=cache_seconds)
