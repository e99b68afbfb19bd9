"""The default run trades the full strategy library through the composer, and its summary says
which strategies traded and why risk resized or refused orders."""

from __future__ import annotations

from actors.local import LocalGateway, build_local_agents
from cycle.report import render_markdown, summarise
from cycle.steps import CycleRunner
from tests.conftest import make_config
from tests.invariants import check_run

CYCLES = 900


def test_default_run_trades_several_library_strategies_and_explains_resizes(tmp_path) -> None:
    config = make_config(tmp_path)
    names = {s.name for s in config.strategies}
    assert names == {"sma_crossover", "momentum", "ema_momentum", "mean_reversion",
                     "donchian_breakout", "forecaster", "ensemble"}
    agents = build_local_agents(config, run_id="default")
    agents["ledger"].start_run({
        "run_id": "default", "config_hash": config.content_hash(),
        "config": config.model_dump(mode="json", by_alias=True),
        "started_at": "2026-01-01T00:00:00+00:00",
    })
    assert all(not s.unavailable for s in agents["strategy"].strategies.values())
    runner = CycleRunner(config, LocalGateway(agents), "default")
    reports = [runner.run_cycle() for _ in range(CYCLES)]
    runner.cancel_all("end of test")
    numbers = check_run(config.ledger.resolved(), "default", config.run.initial_cash)
    stats = agents["ledger"].run_stats("default")

    traded = set(stats.orders_by_strategy)
    assert traded <= names | {"risk"}, traded
    assert len(traded & names) >= 4, stats.orders_by_strategy
    reasons = stats.decisions_by_reason
    assert any(r.startswith("resized: sizing: ") for r in reasons), reasons
    assert any(r.startswith("resized: entropy scaling") for r in reasons), reasons
    assert sum(stats.orders_by_strategy.values()) == numbers["orders"]
    assert all(r.outcome == "ok" for r in reports)
    assert any(r.portfolio_risk.get("cvar_hist_99", 0.0) > 0 for r in reports)
    markdown = render_markdown(summarise(stats, config))
    by_strategy = markdown.split("## Orders by strategy")[1].split("##")[0]
    assert all(f"| {name} | {count} |" in by_strategy
               for name, count in stats.orders_by_strategy.items())
    assert "resized: sizing: " in markdown.split("## Risk resizes and rejections by reason")[1]
