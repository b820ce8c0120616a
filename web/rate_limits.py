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
        """Before a login is checked: every attempt counts against its address; a username whose
        wrong passwords passed the limit refuses only the addresses those failures came from, so
        somebody guessing cannot lock the real user out (OWASP authentication cheat sheet: no
        indefinite lock-out; a short one, with Retry-After, for the guessers only)."""
        self._hit(per_minute * 5, "this address", "login-addr", address)
        user = RateLimitItemPerMinute(per_minute)
        if not self._limiter.test(user, "login-fail-user", username):
            pair = RateLimitItemPerMinute(per_minute)
            if (
                self._limiter.get_window_stats(pair, "login-fail-pair", username, address).remaining
                < per_minute
            ):
                reset = self._limiter.get_window_stats(user, "login-fail-user", username).reset_time
                raise RateLimited("this username", max(1, int(reset - time.time()) + 1))

    def login_failed(self, username: str, address: str, per_minute: int) -> None:
        """Count a wrong password: per username, and per username and address."""
        self._limiter.hit(RateLimitItemPerMinute(per_minute), "login-fail-user", username)
        self._limiter.hit(RateLimitItemPerMinute(per_minute), "login-fail-pair", username, address)


def limiter_of(app: Any) -> Limiter:
    lim: Limiter | None = getattr(app.state, "limiter", None)
    if lim is None:
        lim = Limiter()
        app.state.limiter = lim
    return lim
