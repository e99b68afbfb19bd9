"""The fault matrix, without Ray: every failure a paper venue can inject, against the whole
adapters path (router, pooled retries, health, pool, members, venues).

For each kind the preferred broker ``primary`` misbehaves while ``backup`` is healthy, a desk sends
two orders a bar, and then the same four things are checked: every order reached a terminal state,
none was placed or filled twice (the venues are asked), the venue's rate limit was kept where one
is configured, and orders went around a broker that was down or unusable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from actors.adapters.learning import BrokerEvent, HealthState
from actors.adapters.pool import LocalPool
from tests.actors.adapters.desk import (
    Desk,
    FakeClock,
    assert_no_order_lost_or_doubled,
    desk_config,
    max_in_window,
)

WINDOW = {"start": 4, "end": 12}
PATIENT = {"health": {"degraded_error_rate": 0.9, "down_after_failures": 10}}
"""Keeps a broker that times out now and then in use, so the timeouts meet many orders."""


def primary_calls(desk: Desk) -> list[float]:
    return [t for m, s in desk.venues().items() if ":primary:" in m for t in s.calls]


def submits_at_primary(desk: Desk, cycles: range) -> set[str]:
    """Orders sent in ``cycles`` that were tried at primary (from its broker log)."""
    tried = {
        r.client_order_id
        for r in desk.journal("primary")
        if r.operation == "submit" and r.client_order_id is not None
    }
    return {cid for cid in tried if desk.sent_at[cid] in cycles}


def errors_at_primary(desk: Desk, error_type: str) -> int:
    return sum(
        r.event is BrokerEvent.ERROR and r.error_type == error_type for r in desk.journal("primary")
    )


def check_paced(desk: Desk) -> None:
    assert len(primary_calls(desk)) > 40
    assert max_in_window(primary_calls(desk), 0.05) <= 5
    assert errors_at_primary(desk, "RateLimitError") == 0


def check_unpaced(desk: Desk) -> None:
    assert errors_at_primary(desk, "RateLimitError") > 0
    assert sum(desk.where(c) == "primary" for c in desk.created) > 0


def check_routed_around_downtime(desk: Desk) -> None:
    window = range(WINDOW["start"], WINDOW["end"])
    in_window = [c for c, at in desk.sent_at.items() if at in window]
    assert all(desk.where(c) == "backup" for c in in_window)
    assert len(submits_at_primary(desk, window)) <= 2
    health = desk.agent.venue_health
    assert health.status("primary") is HealthState.DEGRADED
    desk.clock.advance(desk.config.routing.health.window_s + 1)
    assert health.status("primary") is HealthState.HEALTHY
    desk.run(1)
    desk.drain()
    latest = [c for c, at in desk.sent_at.items() if at == max(desk.sent_at.values())]
    assert latest and all(desk.where(c) == "primary" for c in latest)


def check_slow_routed_around(desk: Desk) -> None:
    assert desk.agent.venue_health.status("primary") is HealthState.DEGRADED
    late = [c for c, at in desk.sent_at.items() if at > 3]
    assert late and all(desk.where(c) == "backup" for c in late)


def check_timeouts_seen(desk: Desk) -> None:
    assert errors_at_primary(desk, "BrokerTimeoutError") >= 5


def check_hidden_fills_found(desk: Desk) -> None:
    timed_out = {
        r.client_order_id
        for r in desk.journal("primary")
        if r.operation == "submit" and r.error_type == "BrokerTimeoutError"
    }
    found_there = [c for c in timed_out if desk.where(c) == "primary"]
    assert len(found_there) >= 3
    assert all(desk.terminal[c].filled_quantity > 0 for c in found_there)


def check_rejected(phrase: str) -> Callable[[Desk], None]:
    def check(desk: Desk) -> None:
        rejected = [o for o in desk.terminal.values() if o.status.value == "rejected"]
        assert len(rejected) >= 5
        assert all(phrase in o.reason for o in rejected)
        assert all(desk.where(c) != "backup" for c in desk.created)

    return check


def check_kyc_routed_around(desk: Desk) -> None:
    eth = [c for c, o in desk.created.items() if o.request.symbol == "ETH/BTC"]
    ltc = [c for c, o in desk.created.items() if o.request.symbol == "LTC/BTC"]
    assert all(desk.where(c) == "backup" for c in eth)
    assert all(desk.where(c) == "primary" for c in ltc)
    assert errors_at_primary(desk, "RestrictedSymbolError") == 1
    assert desk.agent.router.restricted == {"primary": {"ETH/BTC"}}


def check_api_change(desk: Desk) -> None:
    health = desk.agent.venue_health
    assert health.status("primary") is HealthState.DEGRADED
    assert any("qtyExecuted" in flag for flag in health.flags("primary"))
    after = [c for c, at in desk.sent_at.items() if at >= WINDOW["end"]]
    assert after and all(desk.where(c) == "backup" for c in after)
    assert errors_at_primary(desk, "APIChangedError") > 0
    caught = [c for c, at in desk.sent_at.items() if at == WINDOW["start"] - 1]
    assert all(desk.where(c) == "primary" for c in caught)
    assert all(desk.terminal[c].status.value == "filled" for c in caught)


@dataclass(frozen=True)
class Fault:
    primary: dict[str, Any]
    check: Callable[[Desk], None]
    cycles: int = 20
    routing: dict[str, Any] = field(default_factory=dict)


FAULTS: dict[str, Fault] = {
    "rate_limit_shared_by_the_pool": Fault(
        {
            "failures": {"rate_limit": 5, "rate_limit_window_s": 0.05},
            "rate_limit": {"requests": 5, "window_s": 0.05},
        },
        check_paced,
        cycles=14,
    ),
    "rate_limit_refusals": Fault(
        {"failures": {"rate_limit": 2, "rate_limit_window_s": 0.01}}, check_unpaced
    ),
    "downtime": Fault({"failures": {"downtime": [WINDOW]}}, check_routed_around_downtime),
    "slow_responses": Fault(
        {"failures": {"slow_rate": 1.0, "slow_ms": 3000.0}}, check_slow_routed_around
    ),
    "timeouts_losing_orders": Fault(
        {"failures": {"timeout_rate": 0.3}}, check_timeouts_seen, cycles=25, routing=PATIENT
    ),
    "timeouts_hiding_fills": Fault(
        {"failures": {"timeout_rate": 0.3, "hidden_fill_rate": 1.0}},
        check_hidden_fills_found,
        cycles=25,
        routing=PATIENT,
    ),
    "insufficient_balance": Fault(
        {"failures": {"insufficient_balance_rate": 0.5}}, check_rejected("insufficient balance")
    ),
    "invalid_order": Fault({"failures": {"invalid_order_rate": 0.5}}, check_rejected("LOT_SIZE")),
    "venue_risk_rejection": Fault({"reject_rate": 0.5}, check_rejected("simulated rejection")),
    "kyc_restricted_symbol": Fault(
        {"failures": {"restricted_symbols": ["ETH/BTC"]}}, check_kyc_routed_around
    ),
    "api_version_change": Fault(
        {"failures": {"api_change": {"window": WINDOW, "renamed": {"executedQty": "qtyExecuted"}}}},
        check_api_change,
    ),
}


@pytest.mark.parametrize("kind", list(FAULTS))
def test_fault_matrix_keeps_every_order_terminal_single_and_routed(
    kind: str, tmp_path: Path
) -> None:
    fault = FAULTS[kind]
    config = desk_config(tmp_path, fault.primary, routing=fault.routing)
    desk = Desk(config, LocalPool(config), FakeClock())

    desk.run(fault.cycles)
    desk.drain()

    assert len(desk.created) == 2 * fault.cycles
    assert_no_order_lost_or_doubled(desk, desk.venues())
    fault.check(desk)
    assert_no_order_lost_or_doubled(desk, desk.venues())
