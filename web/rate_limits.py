"""Abuse limits per user, API key and login (``limits``: moving windows in process memory).

Per process: with several web processes behind a balancer the effective limit is multiplied by
their number; ``limits`` can move the counters to Redis or Memcached when a deployment needs one
shared count.
"""

from __future__ import annotations

import time
from typing import Any

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from dispatch.access import Principal


class RateLimited(Exception):
    def __init__(self, what: str, retry_after: int) -> None:
        super().__init__(f"too many requests for {what}; retry in {retry_after} s")
        self.retry_after = retry_after


class Limiter:
    def __init__(self) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def _hit(self, per_minute: int, what: str, *keys: str) -> None:
        item = RateLimitItemPerMinute(per_minute)
        if not self._limiter.hit(item, *keys):
            reset = self._limiter.get_window_stats(item, *keys).reset_time
            raise RateLimited(what, max(1, int(reset - time.time()) + 1))

    def hit_user(self, p: Principal, per_minute: int) -> None:
        self._hit(per_minute, "this account", "user", str(p.account_id))

    def hit_login(self, username: str, address: str, per_minute: int) -> None:
        # Both: one address guessing many users, and many addresses guessing one user.
        self._hit(per_minute, "this username", "login-user", username)
        self._hit(per_minute * 5, "this address", "login-addr", address)


def limiter_of(app: Any) -> Limiter:
    lim: Limiter | None = getattr(app.state, "limiter", None)
    if lim is None:
        lim = Limiter()
        app.state.limiter = lim
    return lim
