"""The live-map protocol on ``WS /api/v1/live``: what a client may send, what it gets, close codes.

The handshake is refused (HTTP 403, ``{"detail": …}``, before any WebSocket exists) when it
carries an ``Origin`` that is neither the page's own (its netloc equals the ``Host`` header) nor
one of ``YOUHU_CORS_ORIGINS``; a client that sends no ``Origin`` (not a browser) is let in.

Client → hub (JSON text frames):
- ``{"type":"auth","token":…}`` first, within ``YOUHU_HUB_AUTH_TIMEOUT_S`` (else 4401); sent again
  later with a newer access token of the same session (after an HTTP refresh), it renews the
  socket → ``{"type":"authed","expires_in":<s>}``, or an ``error`` (the old token still holds);
- ``{"type":"subscribe","filters":{areas, statuses, categories, sources, positions}}`` → a snapshot,
  then live messages;
- ``{"type":"resume","since":<seq>,"hub":<id>,"filters":{…}}`` after a reconnect → everything after
  ``since`` (no gap, no duplicate), or ``resync`` + a fresh snapshot when the hub no longer has it;
- ``{"type":"pong"}`` in answer to each ``ping`` (any message counts as a sign of life).

Hub → client: one message object per frame, or a JSON array of several, in order: ``welcome``
(with ``expires_in``: seconds left of the token), ``snapshot``, ``delta``, ``leave``, ``position``,
``resumed``, ``resync``, ``authed``, ``ping``, ``error``.

No socket outlives its session: every ``YOUHU_HUB_SESSION_CHECK_S`` the hub checks the sessions
of all its sockets in one query and closes, with 4401 and `SESSION_ENDED`, those whose session
was logged out or revoked or whose account was disabled; a socket whose token expired gets no
frame past the token's ``exp`` and is closed with 4401 and `TOKEN_EXPIRED`. A ``subscribe`` or
``resume`` re-reads the session (and the account's current scope) first, so a revoked socket
cannot subscribe again.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from dispatch.lifecycle import Status
from web.hub.filters import Filters


class Close(IntEnum):
    """WebSocket close codes (4000–4999 are the application's)."""

    going_away = 1001  # the hub shuts down: reconnect (elsewhere) and resume
    protocol = 4400  # malformed or unexpected message
    unauthenticated = 4401  # no, bad or expired token, or the session ended: refresh or log in again
    forbidden = 4403  # the account may not read cases
    heartbeat = 4408  # no answer to pings: presumed dead
    too_slow = 4409  # the client fell too far behind: reconnect and resume (or resync)


# Close reasons a person may read (the page shows why the feed stopped).
SESSION_ENDED = "会话已结束，请重新登录"
TOKEN_EXPIRED = "登录已过期，请重新登录"


class FiltersIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    areas: list[Annotated[str, Field(min_length=1, max_length=32)]] = Field(
        default_factory=list, max_length=500, description="area code prefixes (district, street, …)"
    )
    statuses: list[Status] = Field(default_factory=list, description="empty: open cases")
    categories: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=500, description="unified categories or category groups"
    )
    sources: list[Annotated[str, Field(min_length=1, max_length=32)]] = Field(
        default_factory=list, max_length=20, description="source systems"
    )
    positions: bool = Field(True, description="inspectors' positions too")

    def to_filters(self) -> Filters:
        return Filters(
            areas=tuple(sorted(set(self.areas))),
            statuses=frozenset(s.value for s in self.statuses),
            categories=frozenset(self.categories),
            sources=frozenset(self.sources),
            positions=self.positions,
        )


class AuthIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["auth"]
    token: str = Field(min_length=1, max_length=4096)


class SubscribeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["subscribe"]
    filters: FiltersIn = Field(default_factory=FiltersIn)


class ResumeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["resume"]
    since: int = Field(ge=0, description="the last seq the client applied")
    hub: str | None = Field(None, max_length=64, description="the hub that numbered it (welcome.hub)")
    filters: FiltersIn = Field(default_factory=FiltersIn)


class PongIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["pong"]


class PingIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["ping"]


ClientMessage = Annotated[SubscribeIn | ResumeIn | PongIn | PingIn | AuthIn, Field(discriminator="type")]
client_message: TypeAdapter[SubscribeIn | ResumeIn | PongIn | PingIn | AuthIn] = TypeAdapter(ClientMessage)
