"""One rate limit per venue, shared by every member of its pool.

A venue counts requests per account, not per connection: a pool of N members that each throttle
themselves to the venue's rate sends N times that rate and gets banned. So the members of one pool
take their send slots from one :class:`SlidingWindowLimiter`: in this process (the local pool)
directly, on Ray through a small named actor (``limiter:<broker>``, see ``actors/factory.py``)
that grants a slot or says how long to wait and never waits itself, so one slow member never
blocks the others. A slot is granted at the moment of sending, never booked ahead: a member that
woke late (a busy machine) asks again rather than send on a slot that has passed, so late
wake-ups cannot bunch requests together.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from loguru import logger

SAFETY_SHARE = 0.1
SAFETY_MIN_S = 0.025
"""Grants are counted over the window plus a margin (this share of it, at least
``SAFETY_MIN_S``): a request reaches the venue a little after its grant (the grant's trip back
from the limiter actor), and the venue counts arrivals."""


def limiter_id(broker: str) -> str:
    """Name of a broker's limiter actor in the run's namespace."""
    return f"limiter:{broker}"


class Limiter(Protocol):
    """What a broker awaits before each request to its venue."""

    async def acquire(self) -> None: ...


class SlidingWindowLimiter:
    """At most ``requests`` sends in any window of ``window_s`` seconds, for every caller."""

    def __init__(
        self,
        requests: int,
        window_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if requests < 1 or window_s <= 0:
            raise ValueError("requests and window_s must be positive")
        self.requests = requests
        self.window_s = window_s
        self._spacing = window_s + max(window_s * SAFETY_SHARE, SAFETY_MIN_S)
        self._clock = clock
        self._sleep = sleep
        self._granted: deque[float] = deque()

    def try_acquire(self) -> float:
        """Grant a send now (returns 0) if the window has room, else say how long until it may."""
        now = self._clock()
        while self._granted and self._granted[0] <= now - self._spacing:
            self._granted.popleft()
        if len(self._granted) < self.requests:
            self._granted.append(now)
            return 0.0
        return self._granted[0] + self._spacing - now

    async def acquire(self) -> None:
        while (wait := self.try_acquire()) > 0:
            await self._sleep(wait)


class LimiterService:
    """The shared limiter as a Ray actor: it only grants, the members do the waiting."""

    def __init__(self, requests: int, window_s: float) -> None:
        self.limiter = SlidingWindowLimiter(requests, window_s)

    def try_acquire(self) -> float:
        return self.limiter.try_acquire()


class RemoteLimiter:
    """A pool member's handle on its venue's limiter actor.

    Should the limiter actor be lost, the member falls back to its own share of the rate
    (``requests // pool_size`` per window, at least one), which keeps the pool near the limit
    rather than stopping it, and says so in the log.
    """

    def __init__(
        self, broker: str, namespace: str, requests: int, window_s: float, pool_size: int
    ) -> None:
        self.name = limiter_id(broker)
        self.namespace = namespace
        self._handle: Any = None
        self._fallback = SlidingWindowLimiter(max(1, requests // pool_size), window_s)
        self._lost = False

    async def acquire(self) -> None:
        import ray
        from ray.exceptions import RayActorError

        if self._lost:
            await self._fallback.acquire()
            return
        try:
            if self._handle is None:
                self._handle = ray.get_actor(self.name, namespace=self.namespace)
            while (wait := await self._handle.try_acquire.remote()) > 0:
                await asyncio.sleep(wait)
        except (RayActorError, ValueError) as error:
            self._lost = True
            logger.bind(agent_id=self.name).warning(
                "shared limiter unavailable ({}); limiting this member to its share",
                type(error).__name__,
            )
            await self._fallback.acquire()
