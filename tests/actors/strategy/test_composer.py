"""The composer: regime-aware weighting, account state, risk limits and the dominant strategy."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from actors.strategy.agent import StrategyAgent
from actors.strategy.composer import Composer, Vote, target_position
from actors.strategy.library import OHLCV, Strategy, StrategyParams
from cycle.config import RiskConfig
from cycle.messages import (
    AccountState,
    Bar,
    Conditions,
    StrategyInputs,
    SymbolConditions,
    ValidatedFrame,
)
from tests.conftest import make_config

T0 = datetime(2018, 1, 10, tzinfo=UTC)


class Fixed(Strategy):
    """A strategy that always says the same thing, in the regimes it is given."""

    style = "intraday"
    regimes = frozenset({"trending_up"})
    Params = StrategyParams
    param_ranges: dict[str, tuple[float, float]] = {}

    def __init__(self, name: str, value: float, regimes: set[str], unavailable: str = "") -> None:
        super().__init__(name)
        self.value = value
        self.regimes = frozenset(regimes)
        self._unavailable = unavailable

    @property
    def unavailable(self) -> str:
        return self._unavailable

    @property
    def warmup(self) -> int:
        return 1

    def weights(self, bars: OHLCV, flux: float = 0.0) -> np.ndarray:
        return np.full(len(bars), self.value)


RISK = RiskConfig(max_position_fraction=0.3, max_gross_exposure=0.9, max_net_exposure=0.6)


def composer(**strategies: Fixed) -> Composer:
    return Composer(strategies, RISK, off_regime_factor=0.25, drawdown_floor=0.25)


def account(equity: float = 1.0, peak: float = 1.0, day_start: float = 1.0) -> AccountState:
    return AccountState(
        cycle=1, timestamp=T0, cash=equity, positions={}, equity=equity, peak_equity=peak,
        day_start_equity=day_start, realised_pnl=0.0, fees_paid=0.0, initial_cash=1.0,
    )


def test_regime_weights_the_strategies_that_suit_it() -> None:
    c = composer(
        trend=Fixed("trend", 1.0, {"trending_up"}), revert=Fixed("revert", -1.0, {"ranging"})
    )
    votes = {"trend": Vote(1.0, 1.0), "revert": Vote(-1.0, 1.0)}
    weights = {"trend": 1.0, "revert": 1.0}
    up = c.compose(votes, weights, "trending_up")
    assert up.weight == pytest.approx((1.0 - 0.25) / 1.25) and up.dominant == "trend"
    assert up.contributions == pytest.approx({"trend": 0.8, "revert": -0.2})
    ranging = c.compose(votes, weights, "ranging")
    assert ranging.weight == pytest.approx(-0.6) and ranging.dominant == "revert"
    warming = c.compose(votes, weights, "warming_up")
    assert warming.weight == 0.0 and warming.dominant == "" and warming.confidence == 0.0


def test_a_strategy_that_cannot_speak_is_left_out() -> None:
    c = composer(a=Fixed("a", 0.5, {"ranging"}), ml=Fixed("ml", -1.0, {"ranging"}, "no weights"))
    out = c.compose({"a": Vote(0.5, 0.8), "ml": Vote(-1.0, 1.0)}, {"a": 1.0, "ml": 3.0}, "ranging")
    assert out.factors == {"a": 1.0, "ml": 0.0}
    assert out.weight == pytest.approx(0.5) and out.confidence == pytest.approx(0.8)


def test_confidence_is_agreement_times_mean_confidence() -> None:
    c = composer(a=Fixed("a", 1, {"ranging"}), b=Fixed("b", 1, {"ranging"}))
    agree = c.compose({"a": Vote(1.0, 0.8), "b": Vote(0.5, 0.4)}, {"a": 1, "b": 1}, "ranging")
    assert agree.weight == pytest.approx(0.75) and agree.confidence == pytest.approx(0.6)
    split = c.compose({"a": Vote(1.0, 0.8), "b": Vote(-0.5, 0.4)}, {"a": 1, "b": 1}, "ranging")
    assert split.weight == pytest.approx(0.25)
    assert split.confidence == pytest.approx((0.5 / 1.5) * 0.6)


def test_targets_shrink_with_drawdown_and_the_days_loss() -> None:
    c = composer(a=Fixed("a", 1, {"ranging"}))
    assert c.account_scale(account()) == 1.0
    drawdown_only = account(equity=0.925, day_start=0.925)  # 7.5% of the 15% drawdown limit
    assert c.account_scale(drawdown_only) == pytest.approx(1 - 0.75 * 0.5)
    assert c.account_scale(account(equity=0.97, peak=0.98)) == pytest.approx(1 - 0.75 * 0.6)
    assert c.account_scale(account(equity=0.5)) == pytest.approx(0.25)


def test_the_book_is_scaled_into_gross_and_net_limits_and_shorts_dropped() -> None:
    c = composer(a=Fixed("a", 1, {"ranging"}))
    fitted, reason = c.fit_book({"A": 1.0, "B": 1.0, "C": 0.5, "D": -1.0})
    assert fitted["D"] == 0.0
    assert reason == "net exposure budget"  # gross 0.75 <= 0.9, net 0.75 > 0.6
    assert sum(fitted.values()) * 0.3 == pytest.approx(0.6)
    assert fitted["A"] / fitted["C"] == pytest.approx(2.0)
    short_ok = Composer({}, RISK.model_copy(update={"allow_short": True, "max_net_exposure": 1.0}))
    fitted, reason = short_ok.fit_book({"A": 1.0, "B": 1.0, "C": 1.0, "D": -1.0})
    assert reason == "gross exposure budget"
    assert sum(abs(w) for w in fitted.values()) * 0.3 == pytest.approx(0.9)


def test_target_names_the_dominant_strategy_and_why() -> None:
    c = composer(trend=Fixed("trend", 1.0, {"trending_up"}), revert=Fixed("revert", 1, {"ranging"}))
    parts = c.compose({"trend": Vote(0.8, 1.0), "revert": Vote(0.2, 1.0)},
                      {"trend": 1.0, "revert": 1.0}, "trending_up")
    target = target_position("ETH/BTC", parts, 0.5, regime="trending_up", owner="")
    assert target.dominant == "trend" and target.weight == 0.5
    assert target.rationale == "regime trending_up; led by trend (+0.64)"  # 0.8 / 1.25
    flat = c.compose({"trend": Vote(0.0, 0.0), "revert": Vote(0.0, 0.0)},
                     {"trend": 1.0, "revert": 1.0}, "trending_up")
    assert target_position("ETH/BTC", flat, 0.0, regime="trending_up", owner="trend").dominant == (
        "trend"
    )


def frame(cycle: int, close: float) -> ValidatedFrame:
    bar = Bar(symbol="ETH/BTC", timestamp=T0, open=close, high=close, low=close, close=close,
              volume=1.0)
    return ValidatedFrame(cycle=cycle, timestamp=T0, bars={"ETH/BTC": bar})


def test_agent_attributes_a_closing_target_to_the_strategy_that_opened_it(tmp_path) -> None:
    config = make_config(tmp_path, symbols=["ETH/BTC"])
    agent = StrategyAgent(config)
    agent.initialize()
    trend = Fixed("trend", 1.0, {"trending_up"})
    agent.strategies = {"trend": trend}
    agent.weights = {"trend": 1.0}
    agent.composer = composer(trend=trend)
    conditions = Conditions(cycle=1, market_flux=0.0, by_symbol={
        "ETH/BTC": SymbolConditions(regime="trending_up", anomaly=False)})
    inputs = StrategyInputs(frame=frame(1, 1.0), conditions=conditions, analysis=None,
                            account=account())
    first = agent.step(inputs).targets["ETH/BTC"]
    assert (first.weight, first.dominant) == (1.0, "trend")
    trend.value = 0.0
    second = agent.step(inputs.model_copy(update={"frame": frame(2, 1.0)})).targets["ETH/BTC"]
    assert (second.weight, second.dominant) == (0.0, "trend")
    restored = StrategyAgent(config)
    restored.initialize()
    restored.restore(agent.snapshot(), cycle=2)
    assert restored.owners == {"ETH/BTC": "trend"}


def test_a_strategy_still_warming_up_does_not_dilute_the_others(tmp_path) -> None:
    config = make_config(tmp_path, symbols=["ETH/BTC"])
    agent = StrategyAgent(config)
    agent.initialize()
    ready = Fixed("ready", 0.8, {"ranging"})
    slow_warmup = type("Slow", (Fixed,), {"warmup": property(lambda self: 3)})
    slow = slow_warmup("slow", -0.4, {"ranging"})
    agent.strategies = {"ready": ready, "slow": slow}
    agent.weights = {"ready": 1.0, "slow": 1.0}
    agent.composer = composer(ready=ready, slow=slow)
    inputs = StrategyInputs(frame=frame(1, 1.0), conditions=None, analysis=None, account=account())
    first = agent.step(inputs)
    assert first.targets["ETH/BTC"].weight == pytest.approx(0.8)
    assert first.signals["slow"] == {"ETH/BTC": 0.0}
    agent.step(inputs.model_copy(update={"frame": frame(2, 1.0)}))
    third = agent.step(inputs.model_copy(update={"frame": frame(3, 1.0)}))
    assert third.targets["ETH/BTC"].weight == pytest.approx((0.8 - 0.4) / 2)
