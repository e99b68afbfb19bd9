"""The adapters agent over its learning layer: policies, snapshots, training input, credentials."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from actors.adapters.agent import AdaptersAgent
from actors.adapters.learning import (
    BrokerEvent,
    BrokerLogger,
    read_logs,
    train_from_logs,
)
from actors.adapters.learning.logs import save_learned
from actors.adapters.mock_exchange import ApiChange, MockExchange, MockFailures, MockMarket
from actors.adapters.pool import LocalPool
from cycle.errors import AuthenticationError, BrokerUnavailableError, NetworkError
from cycle.messages import AgentMessage, MessageKind
from tests.actors.adapters.conftest import START_BALANCES
from tests.actors.adapters.desk import (
    FAST_RETRIES,
    Desk,
    FakeClock,
    assert_no_order_lost_or_doubled,
    desk_config,
)
from tests.actors.adapters.secrets_scan import (
    PROVOKED_ERRORS,
    assert_secrets_absent,
    captured_logs,
)


def brokers_message(agent: AdaptersAgent, topic: str, **payload: Any) -> dict[str, Any]:
    message = AgentMessage(kind=MessageKind.REQUEST, topic=topic, sender="test", payload=payload)
    return agent.handle(message).payload


@pytest.mark.parametrize(
    ("policy", "primary", "backup", "expected"),
    [
        ("priority", {}, {}, {"primary"}),
        ("cheapest", {"taker_fee": 0.002}, {"taker_fee": 0.001}, {"backup"}),
        ("fastest", {"latency_ms": 40.0}, {"latency_ms": 4.0}, {"backup"}),
        ("best_score", {"failures": {"timeout_rate": 0.6}}, {}, {"backup"}),
        ("round_robin", {}, {}, {"primary", "backup"}),
    ],
)
def test_routing_policy_comes_from_config(
    tmp_path: Path, policy: str, primary: dict, backup: dict, expected: set[str]
) -> None:
    config = desk_config(tmp_path, primary, backup=backup, routing={"policy": policy})
    desk = Desk(config, LocalPool(config))
    desk.run(3)
    late = [c for c, at in desk.sent_at.items() if at >= 3]
    desk.run(6)
    desk.drain()

    assert {desk.where(c) for c in desk.created if desk.sent_at[c] > 3} == expected
    assert late
    assert_no_order_lost_or_doubled(desk, desk.venues())


def test_snapshot_restores_routing_health_learning_and_open_orders(tmp_path: Path) -> None:
    clock = FakeClock()
    config = desk_config(
        tmp_path,
        {"failures": {"restricted_symbols": ["ETH/BTC"]}},
        backup={"failures": {"timeout_rate": 0.2}},
        routing={"health": {"degraded_error_rate": 0.9, "down_after_failures": 10}},
    )
    desk = Desk(config, LocalPool(config), clock)
    desk.run(6)
    snapshot = json.loads(json.dumps(desk.agent.snapshot()))

    fresh = AdaptersAgent(config, pool=desk.agent.pool, clock=clock)
    fresh.initialize()
    fresh.restore(snapshot, cycle=6)

    assert fresh.snapshot()["agent"] == snapshot["agent"]
    assert fresh.router.restricted == {"primary": {"ETH/BTC"}}
    assert fresh.intelligence.score("primary") == desk.agent.intelligence.score("primary")
    assert fresh.retry.params("primary") == desk.agent.retry.params("primary")
    assert fresh.venue_health.status("primary") is desk.agent.venue_health.status("primary")
    assert set(fresh.orders) == set(desk.agent.orders) and fresh.orders
    desk.agent = fresh
    desk.run(4)
    desk.drain()
    assert_no_order_lost_or_doubled(desk, desk.venues())


def test_learned_file_sets_scores_windows_and_retries_at_start(tmp_path: Path) -> None:
    journal = BrokerLogger(tmp_path / "logs")
    for _ in range(30):
        journal.response("primary", "ping", 5.0)
    for _ in range(3):
        journal.error("backup", "ping", 5.0, BrokerUnavailableError("503"))
        journal.error("backup", "ping", 5.0, NetworkError("reset"))
        journal.response("backup", "ping", 5.0)
    learned = save_learned(train_from_logs(tmp_path / "logs"), tmp_path / "learned.json")
    config = desk_config(
        tmp_path, routing={"policy": "best_score", "learned": str(tmp_path / "learned.json")}
    )

    agent = AdaptersAgent(config, pool=LocalPool(config))
    agent.initialize()

    assert agent.intelligence.score("primary") > agent.intelligence.score("backup")
    assert agent.retry.params("backup") == learned.brokers["backup"].recommendation.retry
    assert agent.router.candidates() == ["primary", "backup"]


def test_flagged_broker_is_degraded_until_a_human_clears_it(tmp_path: Path) -> None:
    change = {"window": {"start": 2, "end": 4}, "removed": ["executedQty"]}
    config = desk_config(tmp_path, {"failures": {"api_change": change}})
    desk = Desk(config, LocalPool(config))
    desk.run(6)

    before = brokers_message(desk.agent, "brokers")["primary"]
    cleared = brokers_message(desk.agent, "clear_flags", broker="primary")

    assert before["health"] == "degraded" and "missing executedQty" in before["flags"][0]
    assert cleared == {"broker": "primary", "health": "healthy"}
    assert desk.agent.metrics()["primary_api_changes"] == 1.0


def test_every_broker_call_is_journaled_in_one_log_per_broker(tmp_path: Path) -> None:
    config = desk_config(tmp_path, {"failures": {"timeout_rate": 0.3}})
    desk = Desk(config, LocalPool(config))
    desk.run(5)
    desk.drain()

    folder = config.report.resolved() / "brokers"
    records = list(read_logs(folder))

    assert sorted(p.name for p in folder.iterdir()) == ["backup.jsonl", "primary.jsonl"]
    assert {r.operation for r in records} >= {"sync", "submit", "order", "fill"}
    assert any(
        r.event is BrokerEvent.ERROR and r.error_type == "BrokerTimeoutError" for r in records
    )
    fills = [r for r in records if r.event is BrokerEvent.FILL]
    assert len(fills) == sum(len(f) for f in desk.fills.values())


def test_planted_credentials_appear_nowhere_on_the_agent_path(
    market: MockMarket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, secret = "PLANTED-KEY-agent-77aa5511", "PLANTED-SECRET-agent-99cc3377"
    monkeypatch.setenv("PLANTED_KEY", key)
    monkeypatch.setenv("PLANTED_SECRET", secret)
    monkeypatch.setenv("WRONG_SECRET", "not-" + secret[::-1])
    texts: list[str] = []
    with (
        captured_logs() as captured,
        MockExchange([market], START_BALANCES, api_key=key, api_secret=secret) as mock,
    ):
        venue = {"base_url": mock.url, "timeout_ms": 300, "enable_rate_limit": False}
        brokers = [
            {
                "name": "primary",
                "kind": "ccxt",
                "pool_size": 2,
                "priority": 0,
                "ccxt": {
                    **venue,
                    "api_key_env": "PLANTED_KEY",
                    "api_secret_env": "PLANTED_SECRET",
                },
            },
            {"name": "backup", "pool_size": 1, "priority": 1},
            {
                "name": "impostor",
                "kind": "ccxt",
                "pool_size": 1,
                "priority": 2,
                "ccxt": {
                    **venue,
                    "api_key_env": "PLANTED_KEY",
                    "api_secret_env": "WRONG_SECRET",
                },
            },
        ]
        config = desk_config(
            tmp_path,
            brokers=brokers,
            routing={"retry": {**FAST_RETRIES, "max_retries": 1}, "call_timeout_s": 2.0},
            symbols=["ETH/BTC"],
        )
        desk = Desk(config, LocalPool(config))
        phases = [
            MockFailures(),
            MockFailures(latency_s=0.5),
            MockFailures(rate_limit=0),
            MockFailures(unavailable_next=1000),
            MockFailures(reject_insufficient_balance=True),
            MockFailures(api_change=ApiChange(renamed={"executedQty": "x"})),
            MockFailures(clock_skew_ms=-60_000),
            MockFailures(restricted_symbols=frozenset({"ETHBTC"})),
        ]
        for failures in phases:
            desk.clock.advance(config.routing.health.window_s + 1)
            if failures.restricted_symbols:
                brokers_message(desk.agent, "clear_flags", broker="primary")
            mock.engine.set_failures(failures)
            desk.step(orders=1)
        with pytest.raises(AuthenticationError):
            desk.agent.loop.run_until_complete(desk.agent._call("broker:impostor:0", "balances"))
        mock.engine.set_failures(MockFailures())
        desk.drain()
        doubled = [c for c in desk.created if len(mock.engine.orders_by_client_id(c)) > 1]
        texts += [json.dumps(desk.agent.snapshot()), json.dumps(desk.agent.metrics())]
        texts += [desk.agent.health().model_dump_json()]
        texts += [json.dumps(brokers_message(desk.agent, "brokers"))]
        texts += [o.model_dump_json() for o in desk.terminal.values()]
        texts += [p.read_text() for p in (config.report.resolved() / "brokers").glob("*")]
        records = list(read_logs(config.report.resolved() / "brokers"))
        desk.agent.shutdown()
    errors = {r.error_type for r in records if r.event is BrokerEvent.ERROR}

    assert desk.execution.open == {} and desk.execution.illegal_updates == 0
    assert not doubled
    assert errors >= PROVOKED_ERRORS
    assert_secrets_absent(captured + texts, key, secret)
