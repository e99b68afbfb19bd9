"""The learning layer: tracker, retry, patterns, intelligence, health, API monitor, router, logs."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from loguru import logger

from actors.adapters.broker import Broker
from actors.adapters.learning import (
    APIMonitor,
    AvoidWindow,
    BrokerEvent,
    BrokerIntelligence,
    BrokerLogger,
    BrokerRouter,
    HealthChecker,
    HealthParams,
    HealthState,
    PatternAnalyzer,
    PerformanceTracker,
    ResponseShape,
    RetryHandler,
    RetryParams,
    RouterConfig,
    RoutingStrategy,
    adapt_retry_params,
    read_logs,
    train_from_logs,
)
from actors.adapters.learning.patterns import binomial_sf, holm_reject, mann_kendall
from actors.adapters.learning.performance import BrokerMetrics
from actors.adapters.mock_exchange import MockExchange, MockFailures, MockMarket
from cycle.errors import (
    BrokerTimeoutError,
    BrokerUnavailableError,
    FluxtradeError,
    InvalidOrderError,
    NetworkError,
    RateLimitError,
    TemporaryError,
)
from cycle.messages import Bar, BrokerReport, Order, OrderRequest, OrderStatus, utc_now
from tests.actors.adapters.conftest import API_KEY, API_SECRET, START_BALANCES, BrokerFactory
from tests.actors.adapters.error_contract import market_buy

MONDAY = datetime(2024, 1, 1, tzinfo=UTC)
SUNDAY = 6


# ---------------------------------------------------------------- helpers


class FakeTime:
    """A clock that only moves when the code under test sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class HalfRandom(random.Random):
    """Every draw is 0.5, so jittered delays are exactly three quarters of the raw delay."""

    def random(self) -> float:
        return 0.5


class Scripted:
    """An async operation that returns or raises the given outcomes in turn; counts its calls."""

    def __init__(self, *outcomes: Any) -> None:
        self._outcomes = list(outcomes)
        self.calls = 0

    async def __call__(self) -> Any:
        self.calls += 1
        outcome = self._outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def synthetic_calls(
    seed: int, *, weeks: int = 8, per_hour: int = 20, planted: bool
) -> list[tuple[datetime, bool, float, str | None]]:
    """Calls spread over ``weeks`` from a Monday; ``planted`` slows Sunday 20-24h down 5x and
    raises its failure rate from 3% to 15% (mostly timeouts)."""
    rng = np.random.default_rng(seed)
    calls = []
    kinds = ["BrokerTimeoutError", "RateLimitError", "BrokerUnavailableError"]
    for hour_index in range(weeks * 168):
        start = MONDAY + timedelta(hours=hour_index)
        sunday_night = planted and start.weekday() == SUNDAY and start.hour >= 20
        offsets = np.sort(rng.uniform(0, 3600, per_hour))
        latencies = rng.lognormal(np.log(100), 0.3, per_hour) * (5 if sunday_night else 1)
        failed = rng.random(per_hour) < (0.15 if sunday_night else 0.03)
        for offset, latency, fail in zip(offsets, latencies, failed, strict=True):
            kind = None
            if fail:
                kind = "BrokerTimeoutError" if sunday_night else kinds[int(rng.integers(3))]
            calls.append((start + timedelta(seconds=float(offset)), not fail, float(latency), kind))
    return calls


def analyzer_from(calls: list[tuple[datetime, bool, float, str | None]]) -> PatternAnalyzer:
    analyzer = PatternAnalyzer()
    for stamp, ok, latency, kind in calls:
        context = {"timestamp": stamp, "latency_ms": latency}
        if ok:
            analyzer.log_success("venue", context)
        else:
            analyzer.log_failure("venue", kind or "unknown", context)
    return analyzer


class ScriptedBroker(Broker):
    """A broker whose submit outcomes are scripted; ``held`` is what a lookup finds."""

    def __init__(self, name: str, *outcomes: BrokerReport | FluxtradeError) -> None:
        self.name = name
        self._outcomes = list(outcomes)
        self.held: dict[str, Order] = {}
        self.submitted: list[str] = []

    async def submit(self, request: OrderRequest) -> BrokerReport:
        self.submitted.append(request.client_order_id)
        outcome = self._outcomes.pop(0)
        if isinstance(outcome, FluxtradeError):
            raise outcome
        return outcome

    async def sync(self, bars: dict[str, Bar]) -> BrokerReport:
        return BrokerReport()

    async def fetch_order(self, client_order_id: str, symbol: str) -> Order | None:
        return self.held.get(client_order_id)

    async def cancel(self, client_order_id: str, symbol: str) -> BrokerReport:
        return BrokerReport()

    async def open_orders(self) -> list[Order]:
        return []

    async def balances(self) -> dict[str, float]:
        return {}

    async def ping(self) -> float:
        return 1.0


def accepted(request: OrderRequest, broker: str) -> BrokerReport:
    order = Order(request=request, broker=broker, updated_at=utc_now())
    return BrokerReport(orders=(order.transition(OrderStatus.ACCEPTED),))


# ---------------------------------------------------------------- PerformanceTracker


def test_tracker_summarises_a_bounded_rolling_window() -> None:
    tracker = PerformanceTracker(window=100)
    for i in range(150):
        tracker.record_response("a", latency_ms=float(i), success=i % 4 != 0, fee=0.5)

    metrics = tracker.metrics("a")

    assert metrics.count == 100
    assert metrics.p50_latency_ms == pytest.approx(99.5)
    assert metrics.p95_latency_ms == pytest.approx(144.05)
    assert metrics.success_rate == pytest.approx(0.75)
    assert metrics.mean_fee == pytest.approx(0.5)
    assert tracker.metrics("never-seen").count == 0


# ---------------------------------------------------------------- RetryHandler


def test_retry_backs_off_exponentially_with_jitter_and_a_cap() -> None:
    fake = FakeTime()
    params = RetryParams(max_retries=5, base_delay_s=0.1, max_delay_s=0.3, jitter=0.5)
    handler = RetryHandler(params, sleep=fake.sleep, clock=fake.clock, rng=HalfRandom())
    operation = Scripted(RateLimitError("a"), NetworkError("b"), RateLimitError("c"), 7)

    result = asyncio.run(handler.run("venue", operation))

    assert result == 7
    assert operation.calls == 4
    assert fake.sleeps == pytest.approx([0.075, 0.15, 0.225])


def test_retry_gives_up_after_max_retries_and_never_retries_operational_errors() -> None:
    fake = FakeTime()
    handler = RetryHandler(RetryParams(max_retries=2), sleep=fake.sleep, clock=fake.clock)
    always_down = Scripted(*[BrokerUnavailableError("down")] * 5)
    rejected = Scripted(InvalidOrderError("bad size"), 1)

    with pytest.raises(BrokerUnavailableError):
        asyncio.run(handler.run("venue", always_down))
    with pytest.raises(InvalidOrderError):
        asyncio.run(handler.run("venue", rejected))

    assert always_down.calls == 3
    assert rejected.calls == 1


def test_retry_stops_when_the_next_delay_would_pass_the_elapsed_budget() -> None:
    fake = FakeTime()
    params = RetryParams(max_retries=10, base_delay_s=0.1, jitter=0.0, max_elapsed_s=0.35)
    handler = RetryHandler(params, sleep=fake.sleep, clock=fake.clock)

    with pytest.raises(NetworkError):
        asyncio.run(handler.run("venue", Scripted(*[NetworkError("x")] * 10)))

    assert fake.sleeps == pytest.approx([0.1, 0.2])


@pytest.mark.parametrize(
    ("first_error", "found", "sends", "lookups", "result"),
    [
        (RateLimitError("429"), None, 2, 0, "sent"),
        (BrokerTimeoutError("timeout"), "held", 1, 1, "held"),
        (BrokerTimeoutError("timeout"), None, 2, 1, "sent"),
        (BrokerUnavailableError("503"), "held", 1, 1, "held"),
    ],
)
def test_place_looks_up_before_resending_unless_the_venue_refused(
    first_error: TemporaryError, found: str | None, sends: int, lookups: int, result: str
) -> None:
    fake = FakeTime()
    handler = RetryHandler(RetryParams(jitter=0.0), sleep=fake.sleep, clock=fake.clock)
    send = Scripted(first_error, "sent")
    lookup = Scripted(found)

    outcome = asyncio.run(handler.place("venue", send, lookup))

    assert outcome == result
    assert send.calls == sends
    assert lookup.calls == lookups


def test_place_leaves_the_outcome_unknown_when_the_lookup_keeps_failing() -> None:
    fake = FakeTime()
    handler = RetryHandler(RetryParams(max_retries=2), sleep=fake.sleep, clock=fake.clock)
    send = Scripted(BrokerTimeoutError("timeout"), "sent")
    lookup = Scripted(*[BrokerUnavailableError("down")] * 3)

    with pytest.raises(BrokerUnavailableError):
        asyncio.run(handler.place("venue", send, lookup))

    assert send.calls == 1


def test_adjust_retry_params_follows_success_rate_and_recovery_time() -> None:
    handler = RetryHandler(RetryParams(base_delay_s=0.2, multiplier=2.0, jitter=0.5))

    reliable = adapt_retry_params(RetryParams(base_delay_s=0.2), success_rate=0.95)
    struggling = adapt_retry_params(RetryParams(base_delay_s=0.2), success_rate=0.3)
    patient = handler.adjust_retry_params("venue", success_rate=0.6, recovery_s=5.0)

    assert reliable.base_delay_s == pytest.approx(0.1)
    assert struggling.base_delay_s == pytest.approx(0.4)
    # shortest jittered delays 0.1, 0.2, 0.4, 0.8, 1.6, 3.2: six retries wait 6.3 s >= 5 s
    assert patient.max_retries == 6
    assert handler.params("venue") == patient
    assert handler.params("other") == RetryParams(base_delay_s=0.2, multiplier=2.0, jitter=0.5)


# ---------------------------------------------------------------- PatternAnalyzer


def test_statistics_helpers_match_known_values() -> None:
    assert binomial_sf(8, 10, 0.5) == pytest.approx(56 / 1024)
    assert binomial_sf(2, 10, 0.5) == pytest.approx(1 - 11 / 1024)
    assert binomial_sf(0, 10, 0.3) == 1.0 and binomial_sf(11, 10, 0.3) == 0.0
    assert holm_reject([0.001, 0.04, 0.03, 0.5], 0.05) == [True, False, False, False]
    assert holm_reject([0.001, 0.012, 0.02], 0.05) == [True, True, True]
    assert mann_kendall(list(range(20))) < 1e-6
    assert mann_kendall([1.0, 1.0, 1.0]) == 1.0


def test_analyzer_finds_the_planted_sunday_night_slowdown_and_nothing_else() -> None:
    calls = synthetic_calls(seed=11, planted=True)

    report = analyzer_from(calls).analyze_patterns("venue")

    slow = {(p.weekday, p.hour) for p in report.patterns if p.kind == "latency"}
    failing = {(p.weekday, p.hour) for p in report.patterns if p.kind == "failure_rate"}
    assert slow == {(SUNDAY, 20), (SUNDAY, 21), (SUNDAY, 22), (SUNDAY, 23)}
    assert failing and failing <= slow
    assert {p.scope for p in report.patterns} == {"hour_of_week"}
    assert all(p.observed > 5 * p.expected for p in report.patterns if p.kind == "latency")
    descriptions = [p.describe() for p in report.patterns]
    assert any(d.startswith("slow calls Sunday 21:00-21:59: ") for d in descriptions)
    assert report.count == len(calls)
    assert report.failures == sum(not ok for _, ok, _, _ in calls)
    assert sum(report.error_counts.values()) == report.failures
    assert max(report.by_weekday, key=lambda c: c.mean_latency_ms or 0).weekday == SUNDAY
    assert report.by_hour[21].failure_rate > report.by_hour[9].failure_rate
    assert not report.trend.significant


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_analyzer_reports_no_pattern_in_uniform_random_logs(seed: int) -> None:
    report = analyzer_from(synthetic_calls(seed=seed, planted=False)).analyze_patterns("venue")

    assert report.patterns == ()
    assert not report.trend.significant
    assert report.failure_rate == pytest.approx(0.03, abs=0.005)


def test_analyzer_detects_a_rising_daily_failure_rate() -> None:
    rng = np.random.default_rng(3)
    analyzer = PatternAnalyzer()
    for day in range(30):
        rate = 0.02 + 0.18 * day / 29
        for minute in range(0, 1440, 6):
            stamp = MONDAY + timedelta(days=day, minutes=minute)
            context = {"timestamp": stamp, "latency_ms": 100.0}
            if rng.random() < rate:
                analyzer.log_failure("venue", "BrokerUnavailableError", context)
            else:
                analyzer.log_success("venue", context)

    trend = analyzer.analyze_patterns("venue").trend

    assert trend.significant and trend.days == 30
    assert trend.slope_per_day == pytest.approx(0.18 / 29, rel=0.3)


def test_analyzer_refuses_naive_timestamps() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        PatternAnalyzer().log_success("venue", {"timestamp": datetime(2024, 1, 1)})


# ---------------------------------------------------------------- BrokerIntelligence


def test_intelligence_scores_avoids_significant_windows_and_recommends_retries() -> None:
    report = analyzer_from(synthetic_calls(seed=11, planted=True)).analyze_patterns("venue")
    intelligence = BrokerIntelligence(clock=lambda: MONDAY)
    metrics = BrokerMetrics(
        broker="venue",
        count=100,
        success_rate=1.0,
        p95_latency_ms=500.0,
        p50_latency_ms=100.0,
        mean_fee=0.001,
    )
    other = metrics.model_copy(update={"broker": "other", "success_rate": 0.9})

    venue = intelligence.update_recommendations("venue", metrics, report)
    intelligence.update_recommendations("other", other)
    sunday_night = MONDAY + timedelta(days=6, hours=21)
    struggling = intelligence.update_recommendations(
        "weak", metrics.model_copy(update={"broker": "weak", "success_rate": 0.3})
    )

    assert venue.score == pytest.approx(0.6 + 0.25 * 0.5 + 0.15 * 0.5)
    assert AvoidWindow(weekday=SUNDAY, start_hour=20, end_hour=24, reason="slow") in venue.avoid
    assert all(window.weekday == SUNDAY for window in venue.avoid)
    assert intelligence.score("venue", sunday_night) == pytest.approx(venue.score * 0.1)
    assert intelligence.ranked(["venue", "other"], MONDAY) == ["venue", "other"]
    assert intelligence.ranked(["venue", "other"], sunday_night) == ["other", "venue"]
    assert venue.retry.base_delay_s == pytest.approx(0.1)
    assert struggling.retry.base_delay_s == pytest.approx(0.4)


# ---------------------------------------------------------------- HealthChecker


def test_health_goes_down_after_consecutive_failures_and_recovers_within_the_window() -> None:
    fake = FakeTime()
    health = HealthChecker(HealthParams(window_s=30, down_after_failures=3), clock=fake.clock)
    for _ in range(10):
        health.record("venue", success=True, latency_ms=20)
        fake.now += 1

    states = []
    for _ in range(3):
        states.append(health.record("venue", success=False, latency_ms=1000))
        fake.now += 1
    recovering = health.record("venue", success=True, latency_ms=20)
    while health.record("venue", success=True, latency_ms=20) is not HealthState.HEALTHY:
        fake.now += 1

    assert states == [HealthState.DEGRADED, HealthState.DEGRADED, HealthState.DOWN]
    assert recovering is HealthState.DEGRADED
    assert fake.now - 13 <= 30


def test_health_flags_hold_a_broker_degraded_until_cleared() -> None:
    health = HealthChecker()
    health.flag("venue", "API changed")

    flagged = health.status("venue")
    health.clear("venue")

    assert flagged is HealthState.DEGRADED
    assert health.status("venue") is HealthState.HEALTHY
    assert health.status("never-seen") is HealthState.HEALTHY


def test_ping_all_judges_every_broker_from_one_round_of_pings() -> None:
    class Unreachable(ScriptedBroker):
        async def ping(self) -> float:
            raise BrokerUnavailableError("refused")

    health = HealthChecker(HealthParams(down_after_failures=2))
    brokers: dict[str, Broker] = {"up": ScriptedBroker("up"), "off": Unreachable("off")}

    first = asyncio.run(health.ping_all(brokers))
    second = asyncio.run(health.ping_all(brokers))

    assert first == {"up": HealthState.HEALTHY, "off": HealthState.DEGRADED}
    assert second == {"up": HealthState.HEALTHY, "off": HealthState.DOWN}
    assert health.error_rate("off") == 1.0


def test_health_sees_a_real_outage_and_recovery_through_pings(
    mock: MockExchange, make_broker: BrokerFactory
) -> None:
    fake = FakeTime()
    health = HealthChecker(HealthParams(window_s=20, down_after_failures=3), clock=fake.clock)

    async def ping_until(broker: Broker, wanted: HealthState) -> int:
        for pings in range(1, 60):
            fake.now += 1.0
            if await health.ping("venue", broker) is wanted:
                return pings
        raise AssertionError(f"never {wanted}")

    async def scenario() -> tuple[int, HealthState, int]:
        broker = make_broker(timeout_ms=500)
        try:
            await ping_until(broker, HealthState.HEALTHY)
            mock.engine.set_failures(MockFailures(unavailable_next=10_000))
            to_down = await ping_until(broker, HealthState.DOWN)
            mock.engine.set_failures(MockFailures())
            fake.now += 1.0
            first_after = await health.ping("venue", broker)
            to_healthy = await ping_until(broker, HealthState.HEALTHY)
            return to_down, first_after, to_healthy
        finally:
            await broker.close()

    to_down, first_after, to_healthy = asyncio.run(scenario())

    assert to_down == 3
    assert first_after is HealthState.DEGRADED
    assert to_healthy <= 20


# ---------------------------------------------------------------- APIMonitor


def test_api_monitor_names_renames_bad_values_and_versions_and_flags_once() -> None:
    health = HealthChecker()
    shape = ResponseShape(
        kind="order",
        required=frozenset({"orderId", "executedQty", "status"}),
        known=frozenset({"price"}),
        enums={"status": frozenset({"NEW", "FILLED"})},
        version_field="v",
        versions=frozenset({"3"}),
    )
    monitor = APIMonitor({"order": shape}, health)
    warnings: list[str] = []
    sink = logger.add(lambda message: warnings.append(str(message)), level="WARNING")
    changed = {"orderId": 1, "qtyExecuted": "1", "status": "DONE", "v": "4", "price": "1"}

    try:
        diff = monitor.check("venue", "order", changed)
        monitor.check("venue", "order", changed)
        fine = monitor.check(
            "venue",
            "order",
            {"orderId": 1, "executedQty": "1", "status": "NEW", "v": "3", "extra": 1},
        )
    finally:
        logger.remove(sink)

    assert diff.breaking
    assert diff.describe() == (
        "order: unexpected version '4'; missing executedQty; unexpected values status='DONE'; "
        "new qtyExecuted"
    )
    assert not fine.breaking and fine.new == ("extra",)
    assert health.status("venue") is HealthState.DEGRADED
    assert len(monitor.changes("venue")) == 2
    assert sum("API changed" in line for line in warnings) == 1
    assert monitor.check("venue", "unregistered", {}).breaking is False


# ---------------------------------------------------------------- BrokerRouter


def make_router(
    strategy: RoutingStrategy,
    brokers: dict[str, Broker],
    *,
    health: HealthChecker | None = None,
    tracker: PerformanceTracker | None = None,
    intelligence: BrokerIntelligence | None = None,
    fees: dict[str, float] | None = None,
) -> BrokerRouter:
    return BrokerRouter(
        brokers,
        RouterConfig(strategy=strategy, fees=fees or {}),
        health or HealthChecker(),
        tracker or PerformanceTracker(),
        intelligence,
    )


def test_router_orders_candidates_by_each_strategy() -> None:
    brokers: dict[str, Broker] = {n: ScriptedBroker(n) for n in ("a", "b", "c")}
    tracker = PerformanceTracker()
    for name, latency in (("a", 90.0), ("b", 10.0), ("c", 50.0)):
        tracker.record_response(name, latency, True)
    intelligence = BrokerIntelligence()
    for name, rate in (("a", 0.7), ("b", 0.8), ("c", 0.99)):
        intelligence.update_recommendations(
            name, tracker.metrics(name).model_copy(update={"success_rate": rate})
        )

    cheapest = make_router(RoutingStrategy.CHEAPEST, brokers, fees={"a": 0.001, "b": 0.002})
    fastest = make_router(RoutingStrategy.FASTEST, brokers, tracker=tracker)
    best = make_router(RoutingStrategy.BEST_SCORE, brokers, intelligence=intelligence)
    rotating = make_router(RoutingStrategy.ROUND_ROBIN, brokers)

    assert cheapest.candidates() == ["a", "b", "c"]
    assert fastest.candidates() == ["b", "c", "a"]
    assert best.candidates() == ["c", "b", "a"]
    assert [rotating.candidates()[0] for _ in range(4)] == ["a", "b", "c", "a"]


@pytest.mark.parametrize(
    "refusal", [BrokerUnavailableError("503"), RateLimitError("429"), NetworkError("refused")]
)
def test_router_fails_over_on_broker_side_errors_and_never_routes_to_a_down_broker(
    refusal: TemporaryError,
) -> None:
    request = market_buy()
    health = HealthChecker(HealthParams(down_after_failures=1))
    a = ScriptedBroker("a", refusal)
    b = ScriptedBroker("b", accepted(request, "b"), accepted(request, "b"))
    router = make_router(
        RoutingStrategy.CHEAPEST, {"a": a, "b": b}, health=health, fees={"a": 0.0, "b": 0.01}
    )

    first = asyncio.run(router.submit(request))
    candidates_after = router.candidates()
    second = asyncio.run(router.submit(request))

    assert (first.broker, first.passed_over) == ("b", (f"a: {type(refusal).__name__}",))
    assert health.status("a") is HealthState.DOWN
    assert candidates_after == ["b"]
    assert (second.broker, second.passed_over) == ("b", ())
    assert len(a.submitted) == 1 and len(b.submitted) == 2


def test_router_after_a_timeout_looks_up_before_failing_over() -> None:
    request = market_buy()
    landed = ScriptedBroker("a", BrokerTimeoutError("slow"))
    landed.held[request.client_order_id] = accepted(request, "a").orders[0]
    lost = ScriptedBroker("a", BrokerTimeoutError("slow"))
    spare = ScriptedBroker("b", accepted(request, "b"))

    found = asyncio.run(
        make_router(RoutingStrategy.ROUND_ROBIN, {"a": landed, "b": spare}).submit(request)
    )
    moved = asyncio.run(
        make_router(RoutingStrategy.ROUND_ROBIN, {"a": lost, "b": spare}).submit(request)
    )

    assert found.broker == "a" and found.report.orders[0].status is OrderStatus.ACCEPTED
    assert moved.broker == "b" and moved.passed_over == ("a: BrokerTimeoutError",)
    assert len(spare.submitted) == 1


def test_router_raises_rejections_and_gives_up_when_no_broker_can_take_the_order() -> None:
    request = market_buy()
    rejecting = ScriptedBroker("a", InvalidOrderError("lot size"))
    spare = ScriptedBroker("b", accepted(request, "b"))
    down = HealthChecker(HealthParams(down_after_failures=1))
    down.record("a", success=False, latency_ms=1)
    down.record("b", success=False, latency_ms=1)

    with pytest.raises(InvalidOrderError):
        asyncio.run(
            make_router(RoutingStrategy.ROUND_ROBIN, {"a": rejecting, "b": spare}).submit(request)
        )
    with pytest.raises(BrokerUnavailableError, match="every broker is down"):
        asyncio.run(
            make_router(
                RoutingStrategy.ROUND_ROBIN, {"a": rejecting, "b": spare}, health=down
            ).submit(request)
        )

    assert spare.submitted == []


def test_router_fails_over_between_two_real_venues(
    mock: MockExchange, market: MockMarket, make_broker: BrokerFactory
) -> None:
    request = market_buy(0.2)
    tracker = PerformanceTracker()

    async def scenario(backup: MockExchange) -> tuple[str, tuple[str, ...], int]:
        primary, secondary = (
            make_broker(name="primary"),
            make_broker(name="secondary", mock_exchange=backup),
        )
        router = make_router(
            RoutingStrategy.CHEAPEST,
            {"primary": primary, "secondary": secondary},
            tracker=tracker,
            fees={"primary": 0.0005, "secondary": 0.001},
        )
        try:
            mock.engine.set_failures(MockFailures(unavailable_next=100))
            routed = await router.submit(request)
            return routed.broker, routed.passed_over, len(routed.report.fills)
        finally:
            await primary.close()
            await secondary.close()

    with MockExchange([market], START_BALANCES, api_key=API_KEY, api_secret=API_SECRET) as backup:
        broker, passed_over, fills = asyncio.run(scenario(backup))
        backup_orders = backup.engine.orders_by_client_id(request.client_order_id)

    assert (broker, passed_over, fills) == ("secondary", ("primary: BrokerUnavailableError",), 1)
    assert len(backup_orders) == 1
    assert mock.engine.orders_by_client_id(request.client_order_id) == []
    assert tracker.metrics("primary").success_rate == 0.0
    assert tracker.metrics("secondary").success_rate == 1.0


# ---------------------------------------------------------------- BrokerLogger and training


def test_broker_logger_writes_one_json_lines_file_per_broker(
    mock: MockExchange, make_broker: BrokerFactory, tmp_path: Path
) -> None:
    async def scenario() -> None:
        broker = make_broker(journal=True)
        try:
            await broker.submit(market_buy(0.1))
            mock.engine.set_failures(MockFailures(unavailable_next=1))
            with pytest.raises(BrokerUnavailableError):
                await broker.balances()
        finally:
            await broker.close()

    asyncio.run(scenario())
    folder = tmp_path / "logs"
    with (folder / "binance.jsonl").open("a") as handle:
        handle.write('{"timestamp": "2024-01-01T00:0')

    records = list(read_logs(folder, "binance"))

    assert [p.name for p in folder.iterdir()] == ["binance.jsonl"]
    assert [(r.event, r.operation) for r in records] == [
        (BrokerEvent.RESPONSE, "load_markets"),
        (BrokerEvent.RESPONSE, "submit"),
        (BrokerEvent.ORDER, "order"),
        (BrokerEvent.FILL, "fill"),
        (BrokerEvent.ERROR, "balances"),
    ]
    assert records[1].fee == pytest.approx(records[3].fee) and records[1].fee > 0
    assert records[2].detail["status"] == "filled"
    assert records[4].error_type == "BrokerUnavailableError" and not records[4].success
    assert all(r.latency_ms is not None for r in records if r.event is not BrokerEvent.ORDER)


def test_train_from_logs_learns_windows_recovery_and_scores(tmp_path: Path) -> None:
    now = [MONDAY]
    journal = BrokerLogger(tmp_path, clock=lambda: now[0])
    for stamp, ok, latency, kind in synthetic_calls(seed=11, planted=True, weeks=6, per_hour=12):
        now[0] = stamp
        if ok:
            journal.response("slowsunday", "fetch_ticker", latency, fee=0.0002)
        else:
            journal.error("slowsunday", "fetch_ticker", latency, NetworkError(kind or "?"))
    for start, outage_s in ((0, 30), (600, 50), (1200, 40)):
        now[0] = MONDAY + timedelta(seconds=start)
        journal.error("flaky", "ping", 5.0, BrokerUnavailableError("503"))
        now[0] += timedelta(seconds=outage_s / 2)
        journal.error("flaky", "ping", 5.0, BrokerUnavailableError("503"))
        now[0] = MONDAY + timedelta(seconds=start + outage_s)
        journal.response("flaky", "ping", 5.0)

    trained = train_from_logs(tmp_path)

    slow = trained.recommendations["slowsunday"]
    flaky = trained.recommendations["flaky"]
    assert AvoidWindow(weekday=SUNDAY, start_hour=20, end_hour=24, reason="slow") in slow.avoid
    assert trained.recovery_s["flaky"] == pytest.approx(40.0)
    assert flaky.retry.max_retries > RetryParams().max_retries
    assert trained.tracker.metrics("flaky").success_rate == pytest.approx(1 / 3)
    assert slow.score > flaky.score
    assert trained.intelligence.recommendation("slowsunday") == slow
    handler = RetryHandler()
    handler.set_params("flaky", flaky.retry)
    assert handler.params("flaky") == flaky.retry
