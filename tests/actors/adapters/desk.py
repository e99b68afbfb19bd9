"""A small desk around the adapters agent, and the order-safety checks every fault test makes.

The desk is the training command's order flow (:class:`actors.adapters.train.OrderFlow`): the real
execution agent books what the adapters agent reports, so an illegal order update or a repeated
fill is caught where the cycle would catch it. Afterwards the simulated venues themselves are asked
what they hold: an order placed twice, or a fill the desk never booked, shows up as a difference
between the venues and the desk.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from actors.adapters.learning.logs import LogRecord, read_logs
from actors.adapters.paper import PaperVenueState
from actors.adapters.pool import BrokerPool
from actors.adapters.train import OrderFlow
from cycle.config import FluxtradeConfig
from tests.conftest import make_config

FAST_RETRIES = {"max_retries": 3, "base_delay_s": 0.001, "max_delay_s": 0.004, "max_elapsed_s": 0.5}


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def desk_config(
    tmp_path: Path,
    primary: dict[str, Any] | None = None,
    *,
    backup: dict[str, Any] | None = None,
    routing: dict[str, Any] | None = None,
    **overrides: Any,
) -> FluxtradeConfig:
    """Two brokers: ``primary`` (preferred, where faults are injected) and a healthy ``backup``,
    unless ``brokers`` are given."""
    brokers = overrides.pop("brokers", None) or [
        {"name": "primary", "pool_size": 2, "priority": 0, **(primary or {})},
        {"name": "backup", "pool_size": 2, "priority": 1, **(backup or {})},
    ]
    return make_config(
        tmp_path,
        brokers=brokers,
        routing={"retry": FAST_RETRIES, "call_timeout_s": 1.0, **(routing or {})},
        **overrides,
    )


class Desk(OrderFlow):
    """The order flow with a health clock the test moves, and a view of the venues and logs."""

    def __init__(
        self, config: FluxtradeConfig, pool: BrokerPool, clock: FakeClock | None = None
    ) -> None:
        self.clock = clock or FakeClock()
        super().__init__(config, pool, self.clock)

    def venues(self) -> dict[str, PaperVenueState]:
        assert self.agent.pool is not None
        pool = self.agent.pool
        members = [m for ms in pool.members.values() for m in ms]
        states = {m: self.agent.loop.run_until_complete(pool.venue_state(m)) for m in members}
        return {m: s for m, s in states.items() if s is not None}

    def journal(self, broker: str) -> list[LogRecord]:
        return list(read_logs(self.config.report.resolved() / "brokers", broker))


def max_in_window(times: list[float], window: float) -> int:
    """Most requests that arrived within any span of ``window`` seconds."""
    times = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= window:
            start += 1
        most = max(most, end - start + 1)
    return most


def assert_no_order_lost_or_doubled(desk: OrderFlow, venues: dict[str, PaperVenueState]) -> None:
    """Every order terminal, placed at most once, and filled exactly as the venues say."""
    assert desk.execution.open == {}, f"left open: {list(desk.execution.open.values())[:3]}"
    assert desk.execution.illegal_updates == 0
    assert set(desk.terminal) == set(desk.created)
    holders = Counter(cid for state in venues.values() for cid in state.statuses)
    doubled = [cid for cid, count in holders.items() if count > 1]
    assert not doubled, f"placed twice: {doubled}"
    venue_filled = {cid: q for state in venues.values() for cid, q in state.filled.items()}
    for cid, order in desk.created.items():
        booked = sum(f.quantity for f in desk.fills.get(cid, {}).values())
        assert booked == pytest.approx(venue_filled.get(cid, 0.0), abs=1e-12), cid
        assert booked <= order.request.quantity * (1 + 1e-9), cid
        assert desk.terminal[cid].filled_quantity == pytest.approx(booked, abs=1e-12), cid
