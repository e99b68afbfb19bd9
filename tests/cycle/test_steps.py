"""The nine steps over plain agents in this process: policy, order safety and accounting."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from actors.execution import ExecutionAgent
from actors.local import LocalGateway, build_local_agents
from cycle.config import PROJECT_ROOT, FluxtradeConfig
from cycle.messages import OrderStatus
from cycle.steps import CycleRunner
from tests.conftest import make_config
from tests.invariants import check_run


def start(config: FluxtradeConfig, run_id: str = "run") -> tuple[CycleRunner, dict]:
    agents = build_local_agents(config)
    agents["ledger"].start_run({
        "run_id": run_id, "config_hash": config.content_hash(),
        "config": config.model_dump(mode="json", by_alias=True), "started_at": "2026-01-01T00:00:00+00:00",
    })
    return CycleRunner(config, LocalGateway(agents), run_id), agents


def finish(runner: CycleRunner, config: FluxtradeConfig) -> dict:
    runner.cancel_all("end of test")
    return check_run(config.ledger.resolved(), runner.run_id, config.run.initial_cash)


def test_long_run_reports_the_ada_gap_and_keeps_every_invariant(tmp_path) -> None:
    config = make_config(tmp_path)
    runner, _ = start(config)
    reports = [runner.run_cycle() for _ in range(1700)]
    gap = [r for r in reports if "ADA/BTC" in r.rejected_symbols]
    assert len(gap) == 40
    assert all(r.rejected_symbols["ADA/BTC"].startswith("missing: no bar at") for r in gap)
    assert all(r.regimes.keys() >= {"ETH/BTC", "LTC/BTC"} for r in gap[5:])
    numbers = finish(runner, config)
    assert numbers["cycles"] == 1700 and numbers["fills"] > 10


def write_bad_copy(tmp_path: Path) -> Path:
    """LTC/BTC with one bad row of each kind at known places."""
    frame = pd.read_csv(PROJECT_ROOT / "data" / "freqtrade_LTC_BTC-5m.csv").head(120)
    frame.loc[60, "close"] = float("nan")
    frame.loc[70, "low"] = -1.0
    frame.loc[80, "high"] = frame.loc[80, "low"] / 2
    frame = pd.concat([frame.iloc[:91], frame.iloc[[90]], frame.iloc[91:]], ignore_index=True)
    path = tmp_path / "ltc_bad.csv"
    frame.to_csv(path, index=False)
    return path


def test_bad_bars_skip_their_symbol_with_the_reason_and_the_rest_go_on(tmp_path) -> None:
    files = {
        "ETH/BTC": "data/freqtrade_ETH_BTC-5m.csv",
        "LTC/BTC": str(write_bad_copy(tmp_path)),
        "ADA/BTC": "data/freqtrade_ADA_BTC-5m.csv",
    }
    config = make_config(tmp_path, data={"files": files, "timeframe": "5m"})
    runner, _ = start(config)
    reports = [runner.run_cycle() for _ in range(118)]
    rejected = {r.cycle: r.rejected_symbols["LTC/BTC"] for r in reports if "LTC/BTC" in r.rejected_symbols}
    assert "close is not a finite number" in rejected[61]
    assert "low is not positive" in rejected[71]
    assert "< low" in rejected[81]
    assert "duplicate timestamp" in rejected[92]
    assert all("stale" in reason for c, reason in rejected.items() if c > 92)
    assert all(set(r.regimes) >= {"ETH/BTC", "ADA/BTC"} for r in reports[60:])
    assert all(r.outcome == "ok" for r in reports)
    finish(runner, config)


def test_failing_optional_agent_degrades_the_step_and_trading_goes_on(tmp_path) -> None:
    config = make_config(tmp_path)
    runner, agents = start(config)
    for _ in range(60):
        runner.run_cycle()

    def broken(frame):
        raise RuntimeError("indicator overflow")

    agents["intelligence"].step = broken
    reports = [runner.run_cycle() for _ in range(40)]
    assert all(r.outcome == "degraded" for r in reports)
    assert all("indicator overflow" in r.degraded["intelligence"] for r in reports)
    assert sum(r.orders_sent for r in reports) > 0
    finish(runner, config)


def test_failing_critical_agent_stops_new_orders_for_that_cycle(tmp_path) -> None:
    config = make_config(tmp_path)
    runner, agents = start(config)
    for _ in range(60):
        runner.run_cycle()

    def broken(decision):
        raise RuntimeError("limit table corrupt")

    agents["risk"].step = broken
    reports = [runner.run_cycle() for _ in range(30)]
    assert all(r.orders_sent == 0 and r.outcome == "no_orders" for r in reports)
    assert all("limit table corrupt" in r.degraded["risk"] for r in reports)
    finish(runner, config)


def test_halt_cancels_open_orders_and_sends_none_until_resumed(tmp_path) -> None:
    config = make_config(tmp_path, execution={"order_type": "limit", "limit_offset_bps": 200.0, "order_ttl_bars": 50})
    runner, agents = start(config)
    while not agents["execution"].open:
        runner.run_cycle()
    open_before = len(agents["execution"].open)
    assert runner.halt("operator") == open_before > 0
    assert agents["execution"].open == {}
    halted = [runner.run_cycle() for _ in range(20)]
    assert all(r.orders_sent == 0 and r.outcome == "halted" for r in halted)
    runner.resume()
    assert runner.run_cycle().outcome != "halted"
    db = sqlite3.connect(config.ledger.resolved())
    assert db.execute("SELECT COUNT(*) FROM events WHERE kind='cancel_all'").fetchone()[0] == 1
    finish(runner, config)


def test_restarted_agent_is_restored_from_its_snapshot(tmp_path) -> None:
    config = make_config(tmp_path)
    runner, agents = start(config)
    for _ in range(120):
        runner.run_cycle()
    equity = agents["execution"].portfolio.equity
    fresh = ExecutionAgent(config)
    fresh.initialize()
    runner.gateway.agents["execution"] = fresh
    report = runner.run_cycle()
    assert runner.state.restarts == {"execution": 1}
    assert fresh.restored_from_cycle == 120
    assert report.equity == pytest.approx(equity, rel=0.05)
    for _ in range(50):
        runner.run_cycle()
    finish(runner, config)


def test_every_order_ends_terminal_with_a_unique_client_id(tmp_path) -> None:
    config = make_config(tmp_path)
    runner, _ = start(config)
    for _ in range(300):
        runner.run_cycle()
    numbers = finish(runner, config)
    db = sqlite3.connect(config.ledger.resolved())
    statuses = {s for (s,) in db.execute("SELECT DISTINCT status FROM orders")}
    assert statuses <= {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED}
    assert numbers["orders"] > 5
