"""The meta-agent's choice swapped into the running engine between cycles, positions handed over."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from actors.local import LocalGateway, build_local_agents
from actors.strategy.agent import StrategyAgent
from actors.strategy.library import OHLCV
from cycle.config import FluxtradeConfig
from cycle.messages import STRATEGY_SWAP_TOPIC, AgentMessage, StrategySwap
from cycle.steps import CycleRunner
from tests.conftest import make_config
from tuning.candidates import Candidate
from tuning.meta_agent import MetaRun
from tuning.metrics import METRIC_NAMES
from tuning.walkforward import Selection, SelectionPolicy

FAST = {"name": "fast_momentum", "class": "actors.strategy.library:Momentum",
        "params": {"lookback": 6, "threshold": 0.25}}
CHOSEN = Candidate(class_path="actors.strategy.library:SMACrossover",
                   params={"fast": 5, "slow": 20, "full_gap": 0.001})


class RecordingGateway(LocalGateway):
    """Notes the desk's positions and open orders on both sides of every message."""

    def __init__(self, agents: dict[str, Any]) -> None:
        super().__init__(agents)
        self.seen: list[tuple[str, Any, Any, AgentMessage]] = []

    def book(self) -> tuple[dict[str, float], list[str]]:
        execution = self.agents["execution"]
        return dict(execution.portfolio.quantities), sorted(execution.open)

    def message(self, role: str, message: AgentMessage, timeout_s: float) -> AgentMessage:
        before = self.book()
        reply = super().message(role, message, timeout_s)
        self.seen.append((message.topic, before, self.book(), reply))
        return reply


def desk(tmp_path) -> tuple[FluxtradeConfig, CycleRunner, RecordingGateway]:
    config = make_config(
        tmp_path, strategies=[FAST],
        execution={"order_type": "limit", "limit_offset_bps": 30.0, "order_ttl_bars": 500},
    )
    agents = build_local_agents(config)
    agents["ledger"].start_run({
        "run_id": "swap", "config_hash": config.content_hash(),
        "config": config.model_dump(mode="json", by_alias=True),
        "started_at": "2026-01-01T00:00:00+00:00",
    })
    gateway = RecordingGateway(agents)
    return config, CycleRunner(config, gateway, "swap"), gateway


def swap_of(candidate: Candidate) -> StrategySwap:
    return StrategySwap(
        run_id="meta_1", config_hash=candidate.config_hash(),
        strategy=candidate.strategy_config("meta_sma"), metric="sharpe", train_score=3.1,
        validation_score=2.4, confidence=0.98, reason="test",
    )


def events(gateway: RecordingGateway, kind: str) -> list[tuple[int, dict[str, Any]]]:
    rows = gateway.agents["ledger"].ledger.query(
        "SELECT cycle, payload FROM events WHERE run_id = 'swap' AND kind = ?", (kind,)
    )
    return [(cycle, json.loads(payload)) for cycle, payload in rows]


def test_swap_applies_between_cycles_keeps_positions_and_orders_and_is_in_the_ledger(
    tmp_path,
) -> None:
    _, runner, gateway = desk(tmp_path)
    agents = gateway.agents
    while not (any(agents["execution"].portfolio.quantities.values()) and agents["execution"].open):
        runner.run_cycle()
    swap_cycle = runner.state.cycle + 1
    runner.request_swap(swap_of(CHOSEN))
    assert list(agents["strategy"].strategies) == ["fast_momentum"]  # pending, not applied

    report = runner.run_cycle()

    topic, before, after, reply = gateway.seen[-1]
    assert topic == STRATEGY_SWAP_TOPIC and reply.ok
    assert after == before and any(before[0].values()) and before[1]
    assert list(agents["strategy"].strategies) == ["meta_sma"]
    assert report.cycle == swap_cycle
    [(cycle, payload)] = events(gateway, "strategy_swap")
    assert cycle == swap_cycle
    assert payload["config_hash"] == CHOSEN.config_hash()
    assert payload["replaced"] == ["fast_momentum"] and payload["installed"] == "meta_sma"
    for _ in range(30):
        runner.run_cycle()
    cancelled = agents["ledger"].ledger.query(
        "SELECT COUNT(*) FROM order_events WHERE run_id = 'swap' AND status = 'cancelled'"
    )
    assert cancelled == [(0,)]
    assert runner.state.pending_swap is None and len(events(gateway, "strategy_swap")) == 1


def test_the_new_strategy_drives_the_targets_from_the_swap_cycle_on(tmp_path) -> None:
    _, runner, gateway = desk(tmp_path)
    for _ in range(60):
        runner.run_cycle()
    strategy: StrategyAgent = gateway.agents["strategy"]
    runner.request_swap(swap_of(CHOSEN))
    seen: list[Any] = []
    original = strategy.step

    def spy(inputs):
        decision = original(inputs)
        seen.append(decision)
        return decision

    strategy.step = spy
    runner.run_cycle()
    assert set(seen[0].signals) == {"meta_sma"}
    window = strategy.windows["ETH/BTC"]
    assert len(window) == 61  # the bar history was kept, so the new strategy speaks at once
    expected = CHOSEN.build().weights(OHLCV.from_rows(list(window)), strategy.flux)[-1]
    assert seen[0].signals["meta_sma"]["ETH/BTC"] == pytest.approx(expected, abs=1e-12)
    assert expected != 0.0


def test_a_swap_the_engine_cannot_load_is_refused_and_recorded(tmp_path) -> None:
    _, runner, gateway = desk(tmp_path)
    runner.run_cycle()
    broken = Candidate(class_path="actors.strategy.library:NoSuchStrategy", params={})
    runner.request_swap(swap_of(broken))
    runner.run_cycle()
    assert list(gateway.agents["strategy"].strategies) == ["fast_momentum"]
    [(cycle, payload)] = events(gateway, "strategy_swap_refused")
    assert cycle == 2 and "cannot load" in payload["error"]
    assert events(gateway, "strategy_swap") == []


def test_a_restarted_engine_comes_back_with_the_swapped_strategy(tmp_path) -> None:
    config, runner, gateway = desk(tmp_path)
    runner.request_swap(swap_of(CHOSEN))
    runner.run_cycle()
    snapshot = gateway.agents["strategy"].snapshot()
    fresh = StrategyAgent(config)
    fresh.initialize()
    assert list(fresh.strategies) == ["fast_momentum"]
    fresh.restore(snapshot, cycle=1)
    assert list(fresh.strategies) == ["meta_sma"]
    assert fresh.strategies["meta_sma"].params.fast == 5


def selection(accepted: bool, validation_sharpe: float = 2.0) -> Selection:
    """A one-candidate selection with made-up numbers."""
    numbers = {name: np.array([1.0]) for name in (*METRIC_NAMES, "confidence")}
    validation = {**numbers, "sharpe": np.array([validation_sharpe])}
    return Selection(SelectionPolicy(), numbers, validation, np.array([0]), np.array([True]), 0,
                     accepted, "ok" if accepted else "confidence 0.50 < 0.95", 0.0)


def test_the_manager_sends_no_swap_for_a_refused_candidate() -> None:
    refused = MetaRun("r1", [CHOSEN], selection(False), ["ETH/BTC"], 1, 1.0)
    accepted = MetaRun("r2", [CHOSEN], selection(True), ["ETH/BTC"], 1, 1.0)
    assert refused.swap() is None
    swap = accepted.swap()
    assert swap is not None and swap.config_hash == CHOSEN.config_hash()
    assert swap.strategy.class_path == CHOSEN.class_path and swap.validation_score == 2.0


def test_the_manager_reevaluates_once_per_request_of_the_desk_and_swaps_an_accepted_choice(
    monkeypatch,
) -> None:
    from tuning.meta_agent import MetaAgentManager, MetaAgentSettings

    accepted = MetaRun("r3", [CHOSEN], selection(True), ["ETH/BTC"], 1, 1.0)
    manager = MetaAgentManager(MetaAgentSettings(files={"ETH/BTC": "unused"}), out=lambda _: None)
    evaluations: list[int] = []
    monkeypatch.setattr(manager, "evaluate", lambda: evaluations.append(1) or accepted)
    statuses = iter([
        {"reevaluation_due": ""},
        {"reevaluation_due": "cycle 288: scheduled: 288 cycles since the last evaluation"},
        {"reevaluation_due": "cycle 288: scheduled: 288 cycles since the last evaluation"},
        {"reevaluation_due": "cycle 301: live Sharpe -1.20 over 96 cycles < 0.00"},
        {"reevaluation_due": "", "exhausted": True},
    ])
    swaps: list[StrategySwap] = []
    runs = manager.watch(lambda: next(statuses), swaps.append, sleep=lambda _: None)
    assert runs == 2 and len(evaluations) == 2
    assert [s.config_hash for s in swaps] == [CHOSEN.config_hash()] * 2
