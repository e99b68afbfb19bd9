"""Retries with exponential backoff and jitter, and order placement that never doubles an order.

Reads are retried on any :class:`TemporaryError`. An order is different: after a timeout or a server
error the venue may have executed it, so re-sending blindly can buy twice.
:meth:`RetryHandler.place` therefore looks the order up by its client order id before every re-send
and re-sends only when the venue never saw it. Only a :class:`RateLimitError` proves the venue
refused the order unseen.

Sleep, clock and randomness are injected so the schedule is tested exactly and without waiting.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from loguru import logger
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveFloat

from cycle.errors import RateLimitError, TemporaryError

T = TypeVar("T")
L = TypeVar("L")

MAX_RETRIES_CAP = 10
MIN_BASE_DELAY_S = 0.01


class RetryParams(BaseModel):
    """Backoff schedule of one broker: delay ``min(max_delay, base * multiplier**attempt)``.

    Attributes:
        max_retries: Retries after the first try.
        base_delay_s: Delay before the first retry.
        max_delay_s: Cap of any single delay.
        multiplier: Growth of the delay per attempt.
        jitter: Share of each delay that is random (0 = none, 1 = anywhere in [0, delay]); spreads
            out clients that failed together so they do not retry in lock-step.
        max_elapsed_s: Give up when the next delay would end past this budget.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_retries: NonNegativeInt = Field(default=3, le=MAX_RETRIES_CAP)
    base_delay_s: PositiveFloat = 0.2
    max_delay_s: PositiveFloat = 10.0
    multiplier: float = Field(default=2.0, ge=1.0)
    jitter: float = Field(default=0.5, ge=0.0, le=1.0)
    max_elapsed_s: PositiveFloat | None = None


def backoff_delay(params: RetryParams, attempt: int, draw: float) -> float:
    """Delay before retry number ``attempt`` (0-based) for a uniform ``draw`` in [0, 1)."""
    capped = min(params.max_delay_s, params.base_delay_s * params.multiplier**attempt)
    return capped * (1.0 - params.jitter * draw)


def adapt_retry_params(
    params: RetryParams, success_rate: float, recovery_s: float | None = None
) -> RetryParams:
    """Tune a schedule to what a broker has shown.

    Above 80% success a failure is usually a blip, so the base delay halves (to a floor); below 50%
    retrying fast only adds load, so it doubles (to the cap). Given the time a broker typically
    takes to recover, the retry count becomes the smallest that waits that long even with the
    shortest jittered delays, so the desk rides out an outage it knows will pass.

    Args:
        params: The current schedule.
        success_rate: Recent share of successful calls, in [0, 1].
        recovery_s: Typical outage length of this broker, if known.

    Returns:
        The adapted schedule (a new object; ``params`` is unchanged).
    """
    if not 0.0 <= success_rate <= 1.0:
        raise ValueError(f"success_rate: {success_rate} is not in [0, 1]")
    base = params.base_delay_s
    if success_rate > 0.8:
        base = max(MIN_BASE_DELAY_S, base / 2)
    elif success_rate < 0.5:
        base = min(params.max_delay_s, base * 2)
    adapted = params.model_copy(update={"base_delay_s": base})
    if recovery_s is None:
        return adapted
    waited, retries = 0.0, 0
    while waited < recovery_s and retries < MAX_RETRIES_CAP:
        waited += backoff_delay(adapted, retries, 1.0)
        retries += 1
    return adapted.model_copy(update={"max_retries": max(retries, 1)})


class RetryHandler:
    """Runs broker calls with per-broker backoff; see the module docstring for the order rule."""

    def __init__(
        self,
        default: RetryParams | None = None,
        per_broker: Mapping[str, RetryParams] | None = None,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._default = default or RetryParams()
        self._params = dict(per_broker or {})
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()

    def params(self, broker: str) -> RetryParams:
        return self._params.get(broker, self._default)

    def set_params(self, broker: str, params: RetryParams) -> None:
        self._params[broker] = params

    def snapshot(self) -> dict[str, Any]:
        """Per-broker schedules, JSON-able."""
        return {b: p.model_dump(mode="json") for b, p in self._params.items()}

    def restore(self, state: dict[str, Any]) -> None:
        self._params = {b: RetryParams.model_validate(p) for b, p in state.items()}

    def adjust_retry_params(
        self, broker: str, success_rate: float, recovery_s: float | None = None
    ) -> RetryParams:
        """Adapt and keep a broker's schedule (see :func:`adapt_retry_params`)."""
        adapted = adapt_retry_params(self.params(broker), success_rate, recovery_s)
        self._params[broker] = adapted
        logger.bind(broker=broker).info(
            "retry params: base {:.3f}s, {} retries (success rate {:.0%})",
            adapted.base_delay_s,
            adapted.max_retries,
            success_rate,
        )
        return adapted

    async def run(self, broker: str, operation: Callable[[], Awaitable[T]]) -> T:
        """Run a read, retrying TemporaryErrors; an OperationalError is raised at once."""
        started = self._clock()
        attempt = 0
        while True:
            try:
                return await operation()
            except TemporaryError as error:
                await self._back_off(broker, attempt, started, error)
                attempt += 1

    async def place(
        self,
        broker: str,
        send: Callable[[], Awaitable[T]],
        lookup: Callable[[], Awaitable[L | None]],
    ) -> T | L:
        """Place an order at most once.

        Args:
            broker: Broker name (selects the schedule).
            send: Sends the order with its fixed client order id.
            lookup: Finds the order at the venue by client order id; ``None`` if never seen.

        Returns:
            What ``send`` returned, or what ``lookup`` found when an earlier send did land.

        Raises:
            TemporaryError: Retries ran out; the order's outcome is UNKNOWN and the desk must
                reconcile it before sending it again.
            OperationalError: The venue rejected the order (or the lookup) for good.
        """
        started = self._clock()
        attempt = 0
        while True:
            try:
                return await send()
            except TemporaryError as error:
                await self._back_off(broker, attempt, started, error)
                attempt += 1
                if isinstance(error, RateLimitError):
                    continue
                found = await self.run(broker, lookup)
                if found is not None:
                    logger.bind(broker=broker).warning(
                        "order landed despite {}; not re-sending", type(error).__name__
                    )
                    return found
                logger.bind(broker=broker).info(
                    "venue never saw the order after {}; re-sending", type(error).__name__
                )

    async def _back_off(
        self, broker: str, attempt: int, started: float, error: TemporaryError
    ) -> None:
        """Sleep before the next attempt, or re-raise ``error`` when the budget is spent."""
        params = self.params(broker)
        delay = backoff_delay(params, attempt, self._rng.random())
        over_budget = (
            params.max_elapsed_s is not None
            and self._clock() - started + delay > params.max_elapsed_s
        )
        if attempt >= params.max_retries or over_budget:
            raise error
        logger.bind(broker=broker).info(
            "{} on attempt {}; retrying in {:.3f}s", type(error).__name__, attempt + 1, delay
        )
        await self._sleep(delay)
