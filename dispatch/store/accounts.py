"""Accounts, login sessions and partner API keys in PostgreSQL.

- Passwords: argon2id (``argon2-cffi``, its default parameters), rehashed on login when the
  parameters change. An unknown user costs the same hash as a wrong password (no user probing).
- Sessions: one row per login. The refresh token is opaque (``<session>.<secret>``), stored as a
  SHA-256 hash and rotated on every refresh; presenting an old one again means it was stolen, so
  the whole session is revoked. Access tokens name their session and die with it (logout).
- API keys: ``yh_<prefix>_<secret>``, 256-bit secrets stored as SHA-256 (a slow hash adds nothing
  for random keys and would cost every partner request).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    any_,
    insert,
    literal,
    select,
    update,
)

from dispatch import clock
from dispatch.access import Permission, Principal, Role, Scope, permissions_from, scope_problems

_md = MetaData()
accounts = Table(
    "accounts",
    _md,
    Column("id", BigInteger, primary_key=True),
    Column("username", Text),
    Column("display_name", Text),
    Column("role", String(16)),
    Column("password_hash", Text),
    Column("district_wide", Boolean),
    Column("streets", ARRAY(String(32))),
    Column("grids", ARRAY(String(32))),
    Column("unit_code", String(64)),
    Column("source_system", String(32)),
    Column("permissions", ARRAY(String(32))),
    Column("active", Boolean),
    Column("created_at", DateTime(timezone=True)),
)
sessions = Table(
    "sessions",
    _md,
    Column("id", Text, primary_key=True),
    Column("account_id", BigInteger),
    Column("refresh_hash", Text),
    Column("refresh_generation", Integer),
    Column("created_at", DateTime(timezone=True)),
    Column("expires_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("revoked_reason", Text),
)
api_keys = Table(
    "api_keys",
    _md,
    Column("id", BigInteger, primary_key=True),
    Column("account_id", BigInteger),
    Column("prefix", String(16)),
    Column("key_hash", Text),
    Column("created_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
)

_hasher = PasswordHasher()
# Verified against when the user does not exist, so both paths cost one argon2 verification.
_DUMMY_HASH = _hasher.hash("youhu: no such user")


class AccountRejected(Exception):
    """An account that cannot be created as asked (reason for people)."""


class RefreshRejected(Exception):
    """A refresh token that is unknown, expired, revoked or re-used."""


@dataclass(frozen=True, slots=True)
class AccountInfo:
    id: int
    username: str
    display_name: str
    role: str
    district_wide: bool
    streets: list[str]
    grids: list[str]
    unit: str | None
    source: str | None
    permissions: list[str]
    active: bool


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _principal(row: object, session_id: str | None = None) -> Principal:
    r = row._mapping  # type: ignore[attr-defined]
    return Principal(
        account_id=r["id"],
        username=r["username"],
        role=Role(r["role"]),
        scope=Scope(
            district_wide=r["district_wide"],
            streets=frozenset(r["streets"] or ()),
            grids=frozenset(r["grids"] or ()),
            unit=r["unit_code"],
            source=r["source_system"],
        ),
        extra=frozenset(Permission(p) for p in r["permissions"] or ()),
        session_id=session_id,
    )


def _info(row: object) -> AccountInfo:
    r = row._mapping  # type: ignore[attr-defined]
    return AccountInfo(
        id=r["id"],
        username=r["username"],
        display_name=r["display_name"],
        role=r["role"],
        district_wide=r["district_wide"],
        streets=list(r["streets"] or ()),
        grids=list(r["grids"] or ()),
        unit=r["unit_code"],
        source=r["source_system"],
        permissions=list(r["permissions"] or ()),
        active=r["active"],
    )


def create_account(
    conn: Connection,
    *,
    username: str,
    role: Role | str,
    scope: Scope,
    password: str | None = None,
    display_name: str = "",
    permissions: Sequence[str] = (),
) -> int:
    """A new account; people need a password of 10+ characters, partners use API keys instead."""
    r = Role(role)
    problems = scope_problems(r, scope)
    if r is not Role.partner and (password is None or len(password) < 10):
        problems.append("a person's password needs at least 10 characters")
    if (
        not username
        or len(username) > 64
        or not username.replace(".", "").replace("-", "").replace("_", "").isalnum()
    ):
        problems.append("username: 1–64 letters, digits, '.', '-' or '_'")
    try:
        extra = permissions_from(permissions)
    except ValueError as exc:
        problems.append(str(exc))
        extra = frozenset()
    if conn.scalar(select(accounts.c.id).where(accounts.c.username == username)) is not None:
        problems.append(f"username {username!r} is taken")
    if problems:
        raise AccountRejected("; ".join(problems))
    new_id = conn.scalar(
        insert(accounts)
        .values(
            username=username,
            display_name=display_name or username,
            role=r.value,
            password_hash=_hasher.hash(password) if password else None,
            district_wide=scope.district_wide,
            streets=sorted(scope.streets),
            grids=sorted(scope.grids),
            unit_code=scope.unit,
            source_system=scope.source,
            permissions=sorted(p.value for p in extra),
        )
        .returning(accounts.c.id)
    )
    assert new_id is not None
    return int(new_id)


def authenticate(conn: Connection, username: str, password: str) -> Principal | None:
    """The active account with this username and password, else None (same cost either way)."""
    row = conn.execute(
        select(accounts).where(accounts.c.username == username, accounts.c.active.is_(True))
    ).first()
    stored = row._mapping["password_hash"] if row is not None else None
    try:
        _hasher.verify(stored or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None or stored is None:
        return None
    if _hasher.check_needs_rehash(stored):
        conn.execute(
            update(accounts)
            .where(accounts.c.id == row._mapping["id"])
            .values(password_hash=_hasher.hash(password))
        )
    return _principal(row)


def open_session(conn: Connection, account_id: int, ttl: timedelta) -> tuple[str, str]:
    """(session id, refresh token) for a fresh login."""
    sid = secrets.token_urlsafe(16)
    secret = secrets.token_urlsafe(32)
    conn.execute(
        insert(sessions).values(
            id=sid, account_id=account_id, refresh_hash=_sha256(secret), expires_at=clock.now() + ttl
        )
    )
    return sid, f"{sid}.{secret}"


def rotate_refresh(conn: Connection, refresh_token: str) -> tuple[Principal, str]:
    """Exchange a refresh token for the session's principal and a new refresh token.

    A token that was already exchanged revokes the session (someone else holds a copy).
    """
    sid, _, secret = refresh_token.partition(".")
    row = conn.execute(select(sessions).where(sessions.c.id == sid).with_for_update()).first()
    if row is None or not secret:
        raise RefreshRejected("unknown refresh token")
    s = row._mapping
    if s["revoked_at"] is not None:
        raise RefreshRejected("the session was ended; log in again")
    if s["expires_at"] <= clock.now():
        raise RefreshRejected("the session expired; log in again")
    if not hmac.compare_digest(s["refresh_hash"], _sha256(secret)):
        revoke_session(conn, sid, "refresh token re-used")
        raise RefreshRejected("refresh token already used: the session is revoked")
    principal = active_principal(conn, s["account_id"], sid)
    if principal is None:
        raise RefreshRejected("the account is disabled")
    new_secret = secrets.token_urlsafe(32)
    conn.execute(
        update(sessions)
        .where(sessions.c.id == sid)
        .values(refresh_hash=_sha256(new_secret), refresh_generation=s["refresh_generation"] + 1)
    )
    return principal, f"{sid}.{new_secret}"


def revoke_session(conn: Connection, sid: str, reason: str) -> None:
    conn.execute(
        update(sessions)
        .where(sessions.c.id == sid, sessions.c.revoked_at.is_(None))
        .values(revoked_at=clock.now(), revoked_reason=reason)
    )


def active_principal(conn: Connection, account_id: int, session_id: str | None) -> Principal | None:
    """The account behind a token, if it is active and (for a session token) the session lives."""
    q = select(accounts).where(accounts.c.id == account_id, accounts.c.active.is_(True))
    if session_id is not None:
        live = (
            select(sessions.c.id)
            .where(
                sessions.c.id == session_id,
                sessions.c.account_id == account_id,
                sessions.c.revoked_at.is_(None),
                sessions.c.expires_at > clock.now(),
            )
            .exists()
        )
        q = q.where(live)
    row = conn.execute(q).first()
    return _principal(row, session_id) if row is not None else None


def live_sessions(conn: Connection, held: Collection[tuple[str, int]]) -> set[tuple[str, int]]:
    """Which of these (session id, account id) pairs are still alive — session not revoked nor
    expired, account active — in one query, however many (the live hub asks for all its sockets)."""
    if not held:
        return set()
    rows = conn.execute(
        select(sessions.c.id, sessions.c.account_id)
        .join(accounts, accounts.c.id == sessions.c.account_id)
        .where(
            sessions.c.id == any_(literal(sorted({sid for sid, _ in held}), ARRAY(Text))),
            sessions.c.revoked_at.is_(None),
            sessions.c.expires_at > clock.now(),
            accounts.c.active.is_(True),
        )
    )
    alive = {(str(r.id), int(r.account_id)) for r in rows}
    return {pair for pair in held if pair in alive}


def set_active(conn: Connection, account_id: int, active: bool) -> bool:
    """Enable or disable an account; disabling ends its sessions and API keys at once."""
    n = conn.execute(update(accounts).where(accounts.c.id == account_id).values(active=active)).rowcount
    if not active:
        now = clock.now()
        conn.execute(
            update(sessions)
            .where(sessions.c.account_id == account_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason="account disabled")
        )
        conn.execute(
            update(api_keys)
            .where(api_keys.c.account_id == account_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
    return bool(n)


def issue_api_key(conn: Connection, account_id: int) -> str:
    """A new API key for a partner account; shown once, stored only as a hash."""
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    conn.execute(insert(api_keys).values(account_id=account_id, prefix=prefix, key_hash=_sha256(secret)))
    return f"yh_{prefix}_{secret}"


def principal_for_api_key(conn: Connection, key: str) -> Principal | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != "yh":
        return None
    row = conn.execute(
        select(api_keys.c.key_hash, api_keys.c.account_id).where(
            api_keys.c.prefix == parts[1], api_keys.c.revoked_at.is_(None)
        )
    ).first()
    if row is None or not hmac.compare_digest(row.key_hash, _sha256(parts[2])):
        return None
    return active_principal(conn, row.account_id, None)


def list_accounts(conn: Connection) -> list[AccountInfo]:
    return [_info(r) for r in conn.execute(select(accounts).order_by(accounts.c.id))]


def find_account(conn: Connection, username: str) -> AccountInfo | None:
    row = conn.execute(select(accounts).where(accounts.c.username == username)).first()
    return _info(row) if row is not None else None
