"""The risk agent's own market state, its tail-risk report and the latched kill switch."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from actors.intelligence.indicators import atr, realized_volatility
from actors.risk.agent import RiskAgent, portfolio_report
from actors.risk.portfolio_risk import (
    historical_cvar,
    historical_var,
    parametric_cvar,
    parametric_var,
)
from actors.risk.sizing import kelly_fraction_from_moments
from actors.risk.view import RiskTracker, RiskView, SymbolRisk, book_risk
from cycle.config import PROJECT_ROOT, RiskConfig
from cycle.messages import (
    AccountState,
    AgentMessage,
    Bar,
    MessageKind,
    PositionState,
    RiskInputs,
    Side,
    StrategyDecision,
    TargetPosition,
    ValidatedFrame,
)
from tests.conftest import make_config

T0 = datetime(2018, 1, 10, tzinfo=UTC)
SYMBOLS = ("ETH/BTC", "LTC/BTC")


def bundled(symbol: str, rows: int) -> pd.DataFrame:
    name = symbol.replace("/", "_")
    return pd.read_csv(PROJECT_ROOT / f"data/freqtrade_{name}-5m.csv").head(rows)


def frames(rows: int) -> list[ValidatedFrame]:
    data = {s: bundled(s, rows) for s in SYMBOLS}
    out = []
    for i in range(rows):
        bars = {
            s: Bar(symbol=s, timestamp=T0 + timedelta(minutes=5 * i), open=f.open[i],
                   high=f.high[i], low=f.low[i], close=f.close[i], volume=f.volume[i])
            for s, f in data.items()
        }
        out.append(ValidatedFrame(cycle=i + 1, timestamp=T0 + timedelta(minutes=5 * i), bars=bars))
    return out


def decision(cycle: int, weights: dict[str, float]) -> StrategyDecision:
    return StrategyDecision(cycle=cycle, signals={}, weights={"x": 1.0}, targets={
        s: TargetPosition(symbol=s, weight=w, confidence=1.0, dominant="x")
        for s, w in weights.items()
    })


def test_tracker_atr_and_volatility_equal_the_vectorised_indicators() -> None:
    risk = RiskConfig(atr_period=14, volatility_window=48)
    tracker = RiskTracker(risk, SYMBOLS, bars_per_year=105_120)
    for frame in frames(400):
        tracker.update(frame)
    eth = bundled("ETH/BTC", 400)
    info = tracker.view().symbols["ETH/BTC"]
    assert info.atr == pytest.approx(atr(eth.high, eth.low, eth.close, 14)[-1], rel=1e-9)
    assert info.volatility == pytest.approx(realized_volatility(eth.close, 48)[-1], rel=1e-9)


def test_kelly_comes_from_the_paper_record_of_the_targets() -> None:
    risk = RiskConfig(kelly_window=200, kelly_min_history=100, kelly_cap=1.0)
    tracker = RiskTracker(risk, SYMBOLS, bars_per_year=105_120)
    stream = frames(301)
    for i, frame in enumerate(stream):
        tracker.update(frame)
        assert (tracker.view().symbols["ETH/BTC"].kelly is None) == (i < 100)  # i records
        tracker.remember(decision(frame.cycle, {"ETH/BTC": -0.5 if i % 2 else 0.7}), frame)
    close = bundled("ETH/BTC", 301).close.to_numpy()
    signs = np.array([-1.0 if i % 2 else 1.0 for i in range(300)])
    record = (signs * (close[1:] / close[:-1] - 1))[-200:]
    expected = kelly_fraction_from_moments(
        mean_return=float(record.mean()), variance=float(record.var(ddof=1)), flux=0.0, cap=1.0
    )
    assert tracker.view().symbols["ETH/BTC"].kelly == pytest.approx(expected, rel=1e-9)
    assert tracker.view().symbols["LTC/BTC"].kelly is None  # never targeted: no record


def test_book_risk_equals_a_direct_computation_on_the_aligned_returns() -> None:
    tracker = RiskTracker(RiskConfig(var_window=300), SYMBOLS, bars_per_year=105_120)
    for frame in frames(320):
        tracker.update(frame)
    view = tracker.view()
    closes = pd.DataFrame({s: bundled(s, 320).close for s in SYMBOLS})
    returns = closes.pct_change().dropna().tail(300).to_numpy()
    np.testing.assert_allclose(view.returns, returns, rtol=1e-12)
    book = returns @ np.array([0.2, -0.1])
    report = book_risk({"ETH/BTC": 0.2, "LTC/BTC": -0.1}, view)
    assert report == pytest.approx({
        "var_hist_95": historical_var(book, 0.95), "cvar_hist_95": historical_cvar(book, 0.95),
        "var_param_95": parametric_var(book, 0.95), "cvar_param_95": parametric_cvar(book, 0.95),
        "var_hist_99": historical_var(book, 0.99), "cvar_hist_99": historical_cvar(book, 0.99),
        "var_param_99": parametric_var(book, 0.99), "cvar_param_99": parametric_cvar(book, 0.99),
    }, rel=1e-12)
    assert report["cvar_hist_99"] >= report["var_hist_99"] >= report["var_hist_95"] > 0


def test_portfolio_report_on_a_known_two_point_distribution() -> None:
    returns = np.zeros((100, 2))
    returns[:5, 0] = -0.1  # 5% of bars lose 10% on the first asset, the rest nothing
    view = RiskView(symbols={s: SymbolRisk() for s in SYMBOLS}, returns=returns, order=SYMBOLS,
                    correlation={"ETH/BTC": {"LTC/BTC": 0.5}, "LTC/BTC": {"ETH/BTC": 0.5}})
    positions = {"ETH/BTC": PositionState(symbol="ETH/BTC", quantity=0.5, average_cost=1.0,
                                          mark=1.0),
                 "LTC/BTC": PositionState(symbol="LTC/BTC", quantity=0.25, average_cost=1.0,
                                          mark=1.0)}
    account = AccountState(cycle=1, timestamp=T0, cash=0.25, positions=positions, equity=1.0,
                           peak_equity=1.0, day_start_equity=1.0, realised_pnl=0.0,
                           fees_paid=0.0, initial_cash=1.0)
    report = portfolio_report(account, view)
    assert report["var_hist_95"] == pytest.approx(0.05)  # 5th worst of 100: a 10% loss on 0.5
    assert report["cvar_hist_99"] == pytest.approx(0.05)
    assert report["var_hist_99"] == pytest.approx(0.05)
    assert report["gross_exposure"] == pytest.approx(0.75)
    assert report["net_exposure"] == pytest.approx(0.75)
    assert report["correlated_exposure"] == pytest.approx(math.sqrt(0.25 + 0.0625 + 0.125))


def risk_inputs(
    frame: ValidatedFrame, account: AccountState, weights: dict[str, float]
) -> RiskInputs:
    return RiskInputs(decision=decision(frame.cycle, weights), account=account, frame=frame,
                      conditions=None)


def flat_account(equity: float, peak: float) -> AccountState:
    return AccountState(cycle=1, timestamp=T0, cash=equity, positions={}, equity=equity,
                        peak_equity=peak, day_start_equity=equity, realised_pnl=0.0,
                        fees_paid=0.0, initial_cash=1.0)


def test_kill_switch_latches_once_the_drawdown_limit_is_crossed_until_reset(tmp_path) -> None:
    agent = RiskAgent(make_config(tmp_path))
    agent.initialize()
    stream = frames(3)
    calm = agent.step(risk_inputs(stream[0], flat_account(1.0, 1.0), {"ETH/BTC": 1.0}))
    assert [i.side for i in calm.intents] == [Side.BUY] and not calm.kill_switch
    crossed = agent.step(risk_inputs(stream[1], flat_account(0.84, 1.0), {"ETH/BTC": 1.0}))
    assert crossed.kill_switch and crossed.intents == ()
    recovered = agent.step(risk_inputs(stream[2], flat_account(0.95, 1.0), {"ETH/BTC": 1.0}))
    assert recovered.kill_switch and recovered.intents == ()
    assert agent.metrics()["kill_switch"] == 1.0
    agent.handle(AgentMessage(kind=MessageKind.COMMAND, topic="reset_kill_switch", sender="op"))
    after = agent.step(risk_inputs(stream[2], flat_account(0.95, 1.0), {"ETH/BTC": 1.0}))
    assert not after.kill_switch and after.intents


def test_risk_agent_snapshot_is_json_and_resumes_identically(tmp_path) -> None:
    config = make_config(tmp_path)
    agent = RiskAgent(config)
    agent.initialize()
    stream = frames(160)
    for frame in stream[:150]:
        agent.step(risk_inputs(frame, flat_account(1.0, 1.0), {"ETH/BTC": 0.5}))
    restored = RiskAgent(config)
    restored.initialize()
    restored.restore(json.loads(json.dumps(agent.snapshot(), allow_nan=False)), cycle=150)
    for frame in stream[150:]:
        inputs = risk_inputs(frame, flat_account(1.0, 1.0), {"ETH/BTC": 0.5})
        assert restored.step(inputs) == agent.step(inputs)
