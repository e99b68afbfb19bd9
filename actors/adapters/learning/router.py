"""Choose the broker for each order, and fail over when a broker cannot take it.

The order of candidates comes from the configured strategy; a broker the :class:`HealthChecker`
calls DOWN is never tried, and DEGRADED brokers are tried only after healthy ones. Failing over is
safe only when the first broker certainly did not take the order: a refusal (rate limit, outage,
connection failure) moves on at once, but after a timeout the router first looks the order up at
that broker and moves on only if the broker never saw it. Rejections that are the order's own fault
(invalid, insufficient funds, auth) are raised, not failed over: another venue would not make a bad
order good. A KYC restriction is the exception: it says nothing about the order, only that this
account may not trade the symbol at that venue, so the router remembers it, passes over that
broker for the symbol from then on, and tries the next.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from loguru import logger
from pydantic import BaseModel, ConfigDict, Field

from actors.adapters.broker import Broker
from actors.adapters.learning.health import HealthChecker, HealthState
from actors.adapters.learning.intelligence import (
    BrokerIntelligence,
    ScoringWeights,
    priority_score,
)
from actors.adapters.learning.performance import PerformanceTracker
from cycle.errors import (
    BrokerTimeoutError,
    BrokerUnavailableError,
    FluxtradeError,
    RestrictedSymbolError,
    TemporaryError,
)
from cycle.messages import BrokerReport, OrderRequest


class RoutingStrategy(StrEnum):
    PRIORITY = "priority"
    BEST_SCORE = "best_score"
    CHEAPEST = "cheapest"
    FASTEST = "fastest"
    ROUND_ROBIN = "round_robin"


class RouterConfig(BaseModel):
    """Routing policy; ``fees`` are taker fee rates per broker, used by CHEAPEST, and
    ``priorities`` rank brokers for PRIORITY (lowest first; ties keep the brokers' order)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy: RoutingStrategy = RoutingStrategy.BEST_SCORE
    fees: dict[str, float] = Field(default_factory=dict)
    priorities: dict[str, int] = Field(default_factory=dict)


class RoutedOrder(BaseModel):
    """Where an order went, what the broker reported, and which brokers were passed over why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    broker: str
    report: BrokerReport
    passed_over: tuple[str, ...] = ()


class BrokerRouter:
    """Routes orders over a set of brokers; records every outcome in health and performance.

    With ``record_outcomes=False`` the router leaves the recording to its brokers, for brokers
    that record each request themselves (with the venue's own latency, retries included).
    """

    def __init__(
        self,
        brokers: Mapping[str, Broker],
        config: RouterConfig,
        health: HealthChecker,
        tracker: PerformanceTracker,
        intelligence: BrokerIntelligence | None = None,
        *,
        record_outcomes: bool = True,
    ) -> None:
        if not brokers:
            raise ValueError("brokers: the router needs at least one broker")
        self._brokers = dict(brokers)
        self.config = config
        self._health = health
        self._tracker = tracker
        self._intelligence = intelligence
        self._record_outcomes = record_outcomes
        self._turn = 0
        self.restricted: dict[str, set[str]] = {}

    def candidates(self, symbol: str | None = None) -> list[str]:
        """Brokers to try, in order: by strategy, healthy before degraded, never down, and never
        one known to refuse ``symbol`` for this account."""
        names = [n for n in self._brokers if symbol not in self.restricted.get(n, ())]
        strategy = self.config.strategy
        if strategy is RoutingStrategy.ROUND_ROBIN and names:
            shift = self._turn % len(names)
            self._turn += 1
            names = names[shift:] + names[:shift]
        elif strategy is RoutingStrategy.PRIORITY:
            names.sort(key=lambda name: self.config.priorities.get(name, 0))
        elif strategy is RoutingStrategy.CHEAPEST:
            names.sort(key=lambda name: self.config.fees.get(name, float("inf")))
        elif strategy is RoutingStrategy.FASTEST:
            names.sort(key=self._speed)
        else:
            names.sort(key=lambda name: -self._score(name))
        states = {name: self._health.status(name) for name in names}
        return [n for n in names if states[n] is HealthState.HEALTHY] + [
            n for n in names if states[n] is HealthState.DEGRADED
        ]

    async def submit(self, request: OrderRequest) -> RoutedOrder:
        """Send an order to the first broker that takes it.

        Raises:
            BrokerUnavailableError: No broker could take it (all down or all refused).
            BrokerTimeoutError: A broker timed out and the lookup could not tell whether it took
                the order; failing over could double it, so the outcome is left UNKNOWN.
            RestrictedSymbolError: Every broker that is up refuses the symbol for this account.
            OperationalError: The order itself was rejected.
        """
        passed_over: list[str] = []
        last_error: FluxtradeError | None = None
        candidates = self.candidates(request.symbol)
        for name in candidates:
            broker = self._brokers[name]
            started = time.perf_counter()
            try:
                report = await broker.submit(request)
            except BrokerTimeoutError as error:
                self._record(name, started, success=False)
                found = await self._look_up(name, broker, request)
                if found is not None:
                    return RoutedOrder(broker=name, report=found, passed_over=tuple(passed_over))
                last_error = error
            except RestrictedSymbolError as error:
                self._record(name, started, success=True)
                self.restricted.setdefault(name, set()).add(request.symbol)
                last_error = error
            except TemporaryError as error:
                self._record(name, started, success=False)
                last_error = error
            else:
                fee = sum(fill.fee for fill in report.fills)
                self._record(name, started, success=True, fee=fee)
                return RoutedOrder(broker=name, report=report, passed_over=tuple(passed_over))
            passed_over.append(f"{name}: {type(last_error).__name__}")
            logger.bind(broker=name).warning(
                "order {} failed over: {}", request.client_order_id, type(last_error).__name__
            )
        if all(request.symbol in self.restricted.get(n, ()) for n in self._brokers):
            raise RestrictedSymbolError(
                f"no broker may trade {request.symbol} for this account; "
                f"order {request.client_order_id} not placed"
            ) from last_error
        reason = "; ".join(passed_over) or "every broker is down"
        raise BrokerUnavailableError(
            f"no broker took order {request.client_order_id}: {reason}"
        ) from last_error

    async def _look_up(
        self, name: str, broker: Broker, request: OrderRequest
    ) -> BrokerReport | None:
        """After a timeout: the order as the broker holds it, or None if it never saw it."""
        try:
            order = await broker.fetch_order(request.client_order_id, request.symbol)
        except TemporaryError as lookup_error:
            raise BrokerTimeoutError(
                f"{name}: order {request.client_order_id} timed out and the lookup failed "
                f"({type(lookup_error).__name__}); its outcome is unknown"
            ) from lookup_error
        return None if order is None else BrokerReport(orders=(order,))

    def snapshot(self) -> dict[str, Any]:
        """The round-robin turn and the restrictions learnt, JSON-able."""
        return {
            "turn": self._turn,
            "restricted": {b: sorted(s) for b, s in self.restricted.items()},
        }

    def restore(self, state: dict[str, Any]) -> None:
        self._turn = int(state["turn"])
        self.restricted = {b: set(symbols) for b, symbols in state["restricted"].items()}

    def _record(self, name: str, started: float, *, success: bool, fee: float = 0.0) -> None:
        if not self._record_outcomes:
            return
        latency_ms = (time.perf_counter() - started) * 1000
        self._health.record(name, success=success, latency_ms=latency_ms)
        self._tracker.record_response(name, latency_ms, success, fee)

    def _score(self, name: str) -> float:
        if self._intelligence is not None:
            return self._intelligence.score(name)
        return priority_score(self._tracker.metrics(name), ScoringWeights())

    def _speed(self, name: str) -> tuple[bool, float]:
        metrics = self._tracker.metrics(name)
        return metrics.count == 0, metrics.p50_latency_ms
