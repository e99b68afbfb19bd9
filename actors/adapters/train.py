"""Train the adapters agent: simulate order flow against failure-injected brokers, learn from it.

``python -m actors.adapters.train [--orders N] [--out runs/adapters] [--config FILE] [--mock]``

Bars of the bundled data are replayed through the adapters agent with the real execution agent
booking what it reports, two orders a bar, against brokers that misbehave as configured: by
default three paper venues (``steady``; ``flaky``, down one hour a day and timing out now and
then; ``kyc``, slow at times, refusing LTC/BTC for this account and changing its API for a while)
and, with ``--mock``, a ccxt broker against the mock Binance exchange with outages injected. The
broker logs are written with the replayed market time, so the learning sees market hours.

Then :func:`train_from_logs` trains the :class:`PatternAnalyzer` and :class:`BrokerIntelligence`
on those logs, the retry schedule of each broker is updated from how it failed and recovered, a
table per broker says what was learnt, and ``<out>/learned.json`` keeps it: point
``routing.learned`` at it and the adapters agent starts from it. The run also checks what it
simulated: every order terminal, none placed twice.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from loguru import logger

from actors.adapters.agent import AdaptersAgent
from actors.adapters.learning import (
    BrokerIntelligence,
    PerformanceTracker,
    RetryHandler,
    RetryParams,
    TrainingResult,
    train_from_logs,
)
from actors.adapters.learning.logs import save_learned
from actors.adapters.mock_exchange import MockExchange, MockFailures, MockMarket, load_ohlcv_csv
from actors.adapters.pool import BrokerPool, LocalPool
from actors.execution import ExecutionAgent
from cycle.config import PROJECT_ROOT, FluxtradeConfig, load_config
from cycle.errors import ConfigError
from cycle.messages import (
    ApplyInputs,
    Bar,
    BrokerReport,
    Fill,
    Order,
    OrderIntent,
    OrderType,
    PrepareInputs,
    Side,
)

DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "default.yaml"
SYMBOLS = ("ETH/BTC", "LTC/BTC")
ORDERS_PER_BAR = 2
MOCK_KEY_ENV = "FLUXTRADE_TRAIN_MOCK_KEY"
MOCK_SECRET_ENV = "FLUXTRADE_TRAIN_MOCK_SECRET"
MOCK_OUTAGE_EVERY_BARS = 97
MOCK_OUTAGE_REQUESTS = 12

SCENARIO: list[dict[str, Any]] = [
    {
        "name": "steady",
        "priority": 1,
        "latency_ms": 8.0,
        "latency_jitter_ms": 3.0,
        "reject_rate": 0.01,
        "failures": {"timeout_rate": 0.01, "hidden_fill_rate": 0.5},
    },
    {
        "name": "flaky",
        "priority": 0,
        "taker_fee": 0.0007,
        "latency_ms": 4.0,
        "latency_jitter_ms": 1.0,
        "failures": {
            "downtime": [{"start": 36, "end": 48, "every": 288}],
            "timeout_rate": 0.05,
            "hidden_fill_rate": 0.5,
        },
    },
    {
        "name": "kyc",
        "priority": 2,
        "latency_ms": 30.0,
        "latency_jitter_ms": 10.0,
        "failures": {
            "slow_rate": 0.2,
            "slow_ms": 2500.0,
            "restricted_symbols": ["LTC/BTC"],
            "api_change": {
                "window": {"start": 150, "end": 160},
                "renamed": {"executedQty": "qtyExecuted"},
            },
        },
    },
]
"""The default training brokers (fields of :class:`cycle.config.BrokerConfig`)."""

TRAINING_ROUTING: dict[str, Any] = {
    "policy": "round_robin",
    "retry": {"max_retries": 2, "base_delay_s": 0.001, "max_delay_s": 0.01, "max_elapsed_s": 0.5},
}
"""Round robin, so every broker meets orders whatever it did before (it is being measured), and
short waits, so the replay is quick; the schedules learnt start from the config's own."""
MAX_TRAINING_CALLS = 10_000_000
TABLE_WIDTH = 100


class OrderFlow:
    """The adapters agent and the execution agent, driven bar by bar over replayed bars.

    Health windows and the broker logs run on market time (the replayed bars), so a venue that is
    down an hour a day looks like that to the learning, however fast the replay goes; ``clock``
    replaces the health clock (tests move it by hand).
    """

    def __init__(
        self,
        config: FluxtradeConfig,
        pool: BrokerPool | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.config = config
        self.series = {s: load_ohlcv_csv(config.data.path_of(s), s) for s in SYMBOLS}
        self.cycle = 0
        self.agent = AdaptersAgent(
            config,
            pool=pool or LocalPool(config),
            clock=clock or self.market_seconds,
            journal_clock=self.market_time,
        )
        self.agent.initialize()
        self.execution = ExecutionAgent(config)
        self.execution.initialize()
        self.created: dict[str, Order] = {}
        self.sent_at: dict[str, int] = {}
        self.fills: dict[str, dict[str, Fill]] = {}
        self.terminal: dict[str, Order] = {}

    @property
    def bars_left(self) -> int:
        return min(len(s) for s in self.series.values()) - 1 - self.cycle

    def market_time(self) -> datetime:
        return self.series[SYMBOLS[0]][self.cycle].timestamp

    def market_seconds(self) -> float:
        return float(self.cycle * self.config.data.timeframe_seconds)

    def step(self, orders: int = ORDERS_PER_BAR, quantity: float = 0.5) -> None:
        """One bar: sync, then ``orders`` new market orders alternating symbols and sides."""
        self.cycle += 1
        bars = {s: series[self.cycle] for s, series in self.series.items()}
        self._book(self.agent.sync(bars), bars)
        intents = tuple(
            OrderIntent(
                symbol=SYMBOLS[i % len(SYMBOLS)],
                side=Side.BUY if (self.cycle + i) % 2 else Side.SELL,
                quantity=quantity,
                order_type=OrderType.MARKET,
                strategy="training",
                reason="simulated order flow",
            )
            for i in range(orders)
        )
        plan = self.execution.prepare(PrepareInputs(cycle=self.cycle, intents=intents))
        for order in plan.new_orders:
            self.created[order.client_order_id] = order
            self.sent_at[order.client_order_id] = self.cycle
        self._book(self.agent.execute(plan), bars)

    def _book(self, report: BrokerReport, bars: dict[str, Bar]) -> None:
        for fill in report.fills:
            self.fills.setdefault(fill.client_order_id, {})[fill.fill_id] = fill
        for order in report.orders:
            if order.status.terminal:
                self.terminal[order.client_order_id] = order
        stamp = bars[SYMBOLS[0]].timestamp
        marks = {s: b.close for s, b in bars.items()}
        self.execution.apply(
            ApplyInputs(cycle=self.cycle, timestamp=stamp, report=report, marks=marks)
        )

    def run(self, cycles: int, orders: int = ORDERS_PER_BAR) -> None:
        for _ in range(cycles):
            self.step(orders)

    def drain(self, limit: int = 40) -> None:
        """Bars without new orders until every order is terminal (stale ones get cancelled)."""
        for _ in range(limit):
            if not self.execution.open or self.bars_left <= 0:
                return
            self.step(0)

    def where(self, cid: str) -> str | None:
        """The broker that ended up with an order."""
        return self.terminal[cid].broker if cid in self.terminal else None

    def close(self) -> None:
        self.agent.shutdown()


def training_config(
    base: Path, out: Path, *, mock_url: str | None = None, keep_brokers: bool = False
) -> FluxtradeConfig:
    """The config trained on: the scenario's brokers (or the file's), logs under ``out``."""
    config = load_config(base)
    brokers = [b.model_dump(mode="json") for b in config.brokers] if keep_brokers else SCENARIO
    if mock_url is not None:
        brokers = [*brokers, mock_broker(mock_url)]
    return load_config(
        base,
        {
            "brokers": brokers,
            "routing": {**config.routing.model_dump(mode="json"), **TRAINING_ROUTING},
            "report": {"folder": str(out)},
            "ledger": {"path": str(out / "ledger.sqlite")},
        },
    )


def mock_broker(url: str) -> dict[str, Any]:
    return {
        "name": "mock",
        "kind": "ccxt",
        "pool_size": 2,
        "priority": 3,
        "ccxt": {
            "base_url": url,
            "api_key_env": MOCK_KEY_ENV,
            "api_secret_env": MOCK_SECRET_ENV,
            "timeout_ms": 1000,
            "enable_rate_limit": False,
        },
    }


@contextlib.contextmanager
def mock_venue(config_path: Path) -> Iterator[MockExchange]:
    """The mock Binance exchange on 127.0.0.1 with both symbols, demo credentials in the env."""
    config = load_config(config_path)
    markets = [
        MockMarket(
            symbol=s.replace("/", ""),
            base=s.split("/")[0],
            quote=s.split("/")[1],
            bars=load_ohlcv_csv(config.data.path_of(s), s.replace("/", "")),
        )
        for s in SYMBOLS
    ]
    os.environ.setdefault(MOCK_KEY_ENV, "train-demo-key")
    os.environ.setdefault(MOCK_SECRET_ENV, "train-demo-secret")
    balances = {"BTC": 100.0, "ETH": 1000.0, "LTC": 1000.0}
    with MockExchange(
        markets,
        balances,
        api_key=os.environ[MOCK_KEY_ENV],
        api_secret=os.environ[MOCK_SECRET_ENV],
        start_index=1,
    ) as mock:
        yield mock


def simulate(
    config: FluxtradeConfig, orders: int, mock: MockExchange | None = None
) -> dict[str, int]:
    """Replay enough bars for ``orders`` orders, then settle them; returns what became of them."""
    flow = OrderFlow(config)
    try:
        bars = min(-(-orders // ORDERS_PER_BAR), flow.bars_left - 40)
        for bar in range(bars):
            if mock is not None:
                mock.engine.advance()
                outage = bar % MOCK_OUTAGE_EVERY_BARS == MOCK_OUTAGE_EVERY_BARS - 1
                mock.engine.set_failures(
                    MockFailures(unavailable_next=MOCK_OUTAGE_REQUESTS)
                    if outage
                    else MockFailures()
                )
            flow.step(min(ORDERS_PER_BAR, orders - len(flow.created)))
        if mock is not None:
            mock.engine.set_failures(MockFailures())
        flow.drain()
        statuses = Counter(o.status.value for o in flow.terminal.values())
        venues = [
            flow.agent.loop.run_until_complete(flow.agent.pool.venue_state(m))
            for ms in flow.agent.pool.members.values()
            for m in ms
        ]
        holders = Counter(cid for v in venues if v is not None for cid in v.statuses)
        if mock is not None:
            holders.update(c for c in flow.created for _ in mock.engine.orders_by_client_id(c))
        return {
            "orders": len(flow.created),
            "filled": statuses["filled"],
            "cancelled": statuses["cancelled"],
            "rejected": statuses["rejected"],
            "open": len(flow.execution.open),
            "placed_twice": sum(count > 1 for count in holders.values()),
        }
    finally:
        flow.close()


def learn(
    config: FluxtradeConfig, out: Path, retry: RetryParams
) -> tuple[TrainingResult, RetryHandler]:
    """Train on the logs, adapt ``retry`` (the desk's own schedule) to each broker, keep it all in
    learned.json. Every logged call counts, not only a recent window."""
    result = train_from_logs(
        config.report.resolved() / "brokers",
        tracker=PerformanceTracker(window=MAX_TRAINING_CALLS),
        intelligence=BrokerIntelligence(default_retry=retry),
    )
    handler = RetryHandler(retry)
    for broker, recommendation in result.recommendations.items():
        handler.set_params(broker, recommendation.retry)
    save_learned(result, out / "learned.json")
    return result, handler


def print_tables(result: TrainingResult, handler: RetryHandler, stream: TextIO) -> None:
    """What was learnt, a table per broker."""
    for broker in sorted(result.recommendations):
        metrics = result.tracker.metrics(broker)
        report = result.reports[broker]
        recommendation = result.recommendations[broker]
        retry = handler.params(broker)
        recovery = result.recovery_s.get(broker)
        errors = ", ".join(f"{k} {v}" for k, v in sorted(report.error_counts.items())) or "none"
        rows = [
            ("calls", f"{report.count}"),
            ("success rate", f"{1 - report.failure_rate:.1%}"),
            (
                "latency p50 / p95",
                f"{metrics.p50_latency_ms:.1f} / {metrics.p95_latency_ms:.1f} ms",
            ),
            ("errors", errors),
            ("typical outage", "none seen" if recovery is None else f"{recovery:.0f} s"),
            (
                "retry schedule",
                f"{retry.max_retries} retries, base {retry.base_delay_s:.3f} s, "
                f"cap {retry.max_delay_s:g} s, budget {retry.max_elapsed_s} s",
            ),
            ("score", f"{recommendation.score:.3f}"),
            ("avoid", "; ".join(w.describe() for w in recommendation.avoid) or "nothing"),
        ]
        rows += [("pattern", p.describe()) for p in report.patterns]
        width = max(len(name) for name, _ in rows)
        print(f"\n{broker}", file=stream)
        print("-" * min(TABLE_WIDTH, width + 2 + max(len(v) for _, v in rows)), file=stream)
        for name, value in rows:
            print(f"{name:<{width}}  {value}", file=stream)


def main(argv: Sequence[str] | None = None, stream: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=2000, help="orders to simulate")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "runs" / "adapters")
    parser.add_argument(
        "--config",
        type=Path,
        help="train the brokers of this config (with their failures) instead of the scenario",
    )
    parser.add_argument(
        "--mock", action="store_true", help="add a ccxt broker against the mock exchange"
    )
    args = parser.parse_args(argv)
    if args.orders < 1:
        parser.error("--orders: must be at least 1")
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for old in (out / "brokers").glob("*.jsonl"):
        old.unlink()
    base = args.config or DEFAULT_CONFIG
    try:
        with contextlib.ExitStack() as stack:
            mock = stack.enter_context(mock_venue(base)) if args.mock else None
            config = training_config(
                base, out, mock_url=mock.url if mock else None, keep_brokers=args.config is not None
            )
            outcome = simulate(config, args.orders, mock)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    retry = RetryParams(**load_config(base).routing.retry.model_dump())
    result, handler = learn(config, out, retry)
    print(
        "simulated {orders} orders: {filled} filled, {cancelled} cancelled, {rejected} rejected; "
        "{open} left open, {placed_twice} placed twice".format(**outcome),
        file=stream,
    )
    print_tables(result, handler, stream)
    print(f"\nlearned: {out / 'learned.json'}  (set routing.learned to use it)", file=stream)
    return 0 if outcome["open"] == 0 and outcome["placed_twice"] == 0 else 1


if __name__ == "__main__":
    logger.remove()
    logger.add(sys.stderr, level=os.environ.get("FLUXTRADE_LOG_LEVEL", "ERROR"))
    sys.exit(main())
