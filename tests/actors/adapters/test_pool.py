"""Pools without Ray: the shared limiter, the in-flight cap, and the member's guards."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from actors.adapters.limiter import SlidingWindowLimiter
from actors.adapters.member import MemberCore
from actors.adapters.paper import PaperBroker
from actors.adapters.pool import LocalPool
from cycle.config import BrokerConfig
from cycle.errors import BrokerTimeoutError
from tests.actors.adapters.desk import FakeClock, desk_config, max_in_window
from tests.actors.adapters.test_paper_failures import bars, request


def test_limiter_grants_no_more_than_the_limit_in_any_window() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(3, 1.0, clock=clock)
    granted = []

    for _ in range(10):
        while (wait := limiter.try_acquire()) > 0:
            clock.advance(wait)
        granted.append(clock())

    assert granted[:3] == [1000.0] * 3
    assert granted[3] > 1001.0
    assert max_in_window(granted, 1.0) == 3


def test_members_of_one_pool_share_the_rate_limit(tmp_path: Path) -> None:
    """Four members, each able to send 8 a window on its own, send 8 a window together."""
    config = desk_config(
        tmp_path,
        {"pool_size": 4, "rate_limit": {"requests": 8, "window_s": 0.05}},
    )
    pool = LocalPool(config)
    members = pool.members["primary"]

    async def burst() -> None:
        await asyncio.gather(
            *(pool.call(members[i % 4], "ping", (), timeout_s=5.0) for i in range(48))
        )

    started = time.perf_counter()
    asyncio.run(burst())
    elapsed = time.perf_counter() - started
    calls = [t for m in members for t in pool.cores[m].venue_state().calls]

    assert len(calls) == 48
    assert max_in_window(calls, 0.05) <= 8
    assert elapsed >= 5 * 0.05


def test_pool_keeps_each_member_within_its_in_flight_cap(tmp_path: Path) -> None:
    """Eight calls, two members, two in flight each: two waves of 40 ms, spread evenly."""
    config = desk_config(
        tmp_path,
        {"pool_size": 2, "max_in_flight": 2, "latency_ms": 40.0, "realtime_latency": True},
    )
    pool = LocalPool(config)

    async def call() -> None:
        await pool.call(pool.choose("primary"), "ping", (), timeout_s=5.0)

    async def burst() -> None:
        await asyncio.gather(*(call() for _ in range(8)))

    started = time.perf_counter()
    asyncio.run(burst())
    elapsed = time.perf_counter() - started
    arrivals = {m: pool.cores[m].venue_state().calls for m in pool.members["primary"]}

    assert [len(times) for times in arrivals.values()] == [4, 4]
    assert all(max_in_window(list(times), 0.03) == 2 for times in arrivals.values())
    assert 2 * 0.04 <= elapsed < 4 * 0.04 + 0.5
    assert all(pool.in_flight(m) == 0 for m in arrivals)


def test_a_timed_out_call_keeps_its_slot_until_the_member_finishes(tmp_path: Path) -> None:
    config = desk_config(
        tmp_path,
        {"pool_size": 1, "max_in_flight": 1, "latency_ms": 60.0, "realtime_latency": True},
    )
    pool = LocalPool(config)

    async def scenario() -> tuple[str, float]:
        first = await pool.call("broker:primary:0", "ping", (), timeout_s=0.01)
        started = time.perf_counter()
        await pool.call("broker:primary:0", "ping", (), timeout_s=1.0)
        return type(first.error).__name__, time.perf_counter() - started

    error, waited = asyncio.run(scenario())

    assert error == "BrokerTimeoutError"
    assert waited >= 0.1


def test_lookup_waits_for_the_submit_it_asks_about() -> None:
    """A desk that stopped waiting for a submit must not hear "never seen" while it is running."""
    spec = BrokerConfig(name="paper", latency_ms=50.0, latency_jitter_ms=0.0, realtime_latency=True)
    core = MemberCore(PaperBroker(spec), "broker:paper:0")

    async def scenario() -> tuple[str, str]:
        submit = asyncio.ensure_future(core.call("submit", (request(),)))
        await asyncio.sleep(0.01)
        looked_up = await core.call("fetch_order", ("ft-000001", "ETH/BTC"))
        await submit
        return looked_up.value.status.value, (await submit).value.orders[0].status.value

    assert asyncio.run(scenario()) == ("accepted", "accepted")


def test_member_outbox_redelivers_fills_until_acknowledged() -> None:
    core = MemberCore(PaperBroker(BrokerConfig(name="paper", max_participation=0.5)), "m")

    async def scenario() -> list[tuple[tuple[int, ...], int]]:
        await core.call("sync", (bars(0),))
        await core.call("submit", (request(),))
        first = await core.call("sync", (bars(5),))
        lost_answer = await core.call("sync", (bars(10),))
        acked = await core.call("sync", (bars(15),), lost_answer.seqs)
        return [(a.seqs, len(a.value.fills)) for a in (first, lost_answer, acked)]

    assert asyncio.run(scenario()) == [((1,), 1), ((1,), 1), ((), 0)]


def test_a_broker_bug_comes_back_as_an_operational_error_without_its_message() -> None:
    class Buggy(PaperBroker):
        async def ping(self) -> float:
            raise KeyError("secret-looking detail")

    core = MemberCore(Buggy(BrokerConfig(name="paper")), "broker:paper:0")
    answer = asyncio.run(core.call("ping", ()))

    assert type(answer.error).__name__ == "OperationalError"
    assert "secret-looking" not in str(answer.error)
    assert isinstance(answer.error.__cause__, KeyError)


def test_unknown_method_is_refused_without_reaching_the_broker() -> None:
    core = MemberCore(PaperBroker(BrokerConfig(name="paper")), "broker:paper:0")
    answer = asyncio.run(core.call("shutdown", ()))
    assert "no broker call 'shutdown'" in str(answer.error)
    assert core.venue_state() is not None and core.venue_state().calls == ()


def test_timeout_answer_from_the_pool_says_the_outcome_is_unknown(tmp_path: Path) -> None:
    config = desk_config(tmp_path, {"pool_size": 1, "latency_ms": 200.0, "realtime_latency": True})
    pool = LocalPool(config)
    order = request()

    async def scenario() -> BrokerTimeoutError | None:
        answer = await pool.call("broker:primary:0", "submit", (order,), timeout_s=0.02)
        await asyncio.sleep(0.3)
        return answer.error  # type: ignore[return-value]

    error = asyncio.run(scenario())
    assert isinstance(error, BrokerTimeoutError)
    assert pool.cores["broker:primary:0"].venue_state().statuses == {
        order.client_order_id: "accepted"
    }


@pytest.mark.parametrize("size", [1, 3])
def test_choose_spreads_new_orders_over_the_members(tmp_path: Path, size: int) -> None:
    pool = LocalPool(desk_config(tmp_path, {"pool_size": size}))
    assert pool.choose("primary") == "broker:primary:0"
    pool._busy["broker:primary:0"] += 1
    assert pool.choose("primary") == ("broker:primary:0" if size == 1 else "broker:primary:1")
