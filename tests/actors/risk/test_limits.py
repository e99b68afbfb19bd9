"""Pre-trade risk: whatever the signals and prices, no approved order breaks a limit."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from actors.risk.limits import CASH_PRICE_BUFFER, full_size, plan_orders
from actors.risk.view import RiskView, SymbolRisk, correlated_exposure
from cycle.config import ExecutionConfig, RiskConfig
from cycle.messages import AccountState, PositionState, Side, StrategyDecision, TargetPosition

T0 = datetime(2018, 1, 10, tzinfo=UTC)
SYMBOLS = ["A", "B", "C"]


def account(cash: float, positions: dict[str, tuple[float, float]], peak: float | None = None,
            day_start: float | None = None) -> AccountState:
    states = {
        s: PositionState(symbol=s, quantity=q, average_cost=m, mark=m)
        for s, (q, m) in positions.items()
    }
    equity = cash + sum(q * m for q, m in positions.values())
    return AccountState(
        cycle=1, timestamp=T0, cash=cash, positions=states, equity=equity,
        peak_equity=peak or equity, day_start_equity=day_start or equity, realised_pnl=0.0,
        fees_paid=0.0, initial_cash=1.0,
    )


def decision(weights: dict[str, float]) -> StrategyDecision:
    return StrategyDecision(
        cycle=1,
        targets={
            s: TargetPosition(symbol=s, weight=w, confidence=1.0, contributions={"x": w})
            for s, w in weights.items()
        },
        signals={}, weights={"x": 1.0},
    )


RISK = RiskConfig(max_position_fraction=0.3, max_order_notional_fraction=0.1,
                  max_gross_exposure=0.6, daily_loss_limit=0.05, max_drawdown=0.15,
                  min_order_notional=0.0, rebalance_threshold=0.0, allow_short=False)


def plan(acct: AccountState, weights: dict[str, float], prices: dict[str, float],
         risk: RiskConfig = RISK, **kw):
    return plan_orders(cycle=1, decision=decision(weights), account=acct, prices=prices,
                       open_orders=(), risk=risk, execution=ExecutionConfig(),
                       flux=kw.pop("flux", 0.0),
                       kill_switch=kw.pop("kill_switch", False),
                       halted=kw.pop("halted", False), **kw)


@settings(max_examples=300, deadline=None)
@given(
    cash=st.floats(0.0, 10.0),
    held=st.lists(st.floats(0.0, 5.0), min_size=3, max_size=3),
    prices=st.lists(st.floats(0.01, 10.0), min_size=3, max_size=3),
    weights=st.lists(st.floats(-1.0, 1.0), min_size=3, max_size=3),
    flux=st.floats(0.0, 1.0),
)
def test_no_approved_order_breaks_a_limit(cash, held, prices, weights, flux) -> None:
    positions = zip(SYMBOLS, held, prices, strict=True)
    acct = account(cash, {s: (q, p) for s, q, p in positions if q > 0})
    price = dict(zip(SYMBOLS, prices, strict=True))
    outcome = plan(acct, dict(zip(SYMBOLS, weights, strict=True)), price, flux=flux)
    equity = acct.equity
    after = {s: acct.quantity(s) for s in SYMBOLS}
    spent = 0.0
    for intent in outcome.intents:
        notional = intent.quantity * price[intent.symbol]
        assert notional <= RISK.max_order_notional_fraction * equity * (1 + 1e-9)
        after[intent.symbol] += intent.side.sign * intent.quantity
        if intent.side is Side.BUY:
            spent += notional * (1 + CASH_PRICE_BUFFER)
    for s in SYMBOLS:
        grew = abs(after[s]) > abs(acct.quantity(s)) + 1e-12
        if grew:
            assert abs(after[s]) * price[s] <= RISK.max_position_fraction * equity * (1 + 1e-9)
        assert after[s] >= -1e-12, "went short although shorting is off"
    gross_before = sum(abs(acct.quantity(s)) * price[s] for s in SYMBOLS)
    gross_after = sum(abs(after[s]) * price[s] for s in SYMBOLS)
    assert gross_after <= max(gross_before, RISK.max_gross_exposure * equity) * (1 + 1e-9) + 1e-12
    assert spent <= max(cash, 0.0) * (1 + 1e-9) + 1e-12


def test_oversized_wish_is_resized_with_reasons() -> None:
    acct = account(1.0, {})
    outcome = plan(acct, {"A": 1.0}, {"A": 1.0})
    (intent,) = outcome.intents
    assert intent.quantity == pytest.approx(0.1)
    reasons = [d.reason for d in outcome.decisions]
    assert "order notional limit" in reasons


def test_kill_switch_flattens_once_drawdown_crosses_the_limit() -> None:
    acct = account(0.5, {"A": (0.3, 1.0)}, peak=1.0)
    assert acct.drawdown == pytest.approx(0.2)
    outcome = plan(acct, {"A": 1.0, "B": 1.0}, {"A": 1.0, "B": 1.0})
    assert outcome.kill_switch
    assert [(i.symbol, i.side) for i in outcome.intents] == [("A", Side.SELL)]
    assert outcome.intents[0].quantity == pytest.approx(0.1 * acct.equity)
    assert any(d.reason.startswith("kill switch") for d in outcome.decisions)


def test_latched_kill_switch_without_flattening_sends_nothing() -> None:
    risk = RISK.model_copy(update={"kill_switch_flatten": False})
    outcome = plan(account(1.0, {"A": (0.1, 1.0)}), {"A": 0.0, "B": 1.0}, {"A": 1.0, "B": 1.0},
                   risk=risk, kill_switch=True)
    assert outcome.intents == () and outcome.kill_switch


def test_daily_loss_limit_allows_only_reducing_orders() -> None:
    acct = account(0.6, {"A": (0.3, 1.0)}, day_start=1.0, peak=1.0)
    assert acct.daily_loss == pytest.approx(0.1)
    risk = RISK.model_copy(update={"max_drawdown": 0.5})
    outcome = plan(acct, {"A": 0.0, "B": 1.0}, {"A": 1.0, "B": 1.0}, risk=risk)
    assert [(i.symbol, i.side) for i in outcome.intents] == [("A", Side.SELL)]
    assert any(
        d.symbol == "B" and d.reason.startswith("daily loss limit") for d in outcome.decisions
    )


def test_halt_rejects_everything_with_the_reason() -> None:
    outcome = plan(account(1.0, {}), {"A": 1.0}, {"A": 1.0}, halted=True, halt_reason="operator")
    assert outcome.intents == ()
    assert [d.reason for d in outcome.decisions] == ["halted: operator"]


def test_higher_flux_never_buys_more() -> None:
    calm = plan(account(1.0, {}), {"A": 0.2}, {"A": 1.0}, flux=0.0).intents[0].quantity
    stormy = plan(account(1.0, {}), {"A": 0.2}, {"A": 1.0}, flux=1.0).intents[0].quantity
    assert stormy == pytest.approx(calm / 2)


# ------------------------------------------------------------------ sizing and the new limits

WIDE = RISK.model_copy(update={"max_order_notional_fraction": 1.0, "max_gross_exposure": 5.0,
                               "max_net_exposure": 5.0, "max_correlated_exposure": 5.0})


def view(returns: np.ndarray | None = None, correlation: dict | None = None,
         **symbols: SymbolRisk) -> RiskView:
    order = tuple(SYMBOLS)
    return RiskView(
        symbols={s: symbols.get(s, SymbolRisk()) for s in SYMBOLS},
        correlation=correlation or {},
        returns=np.zeros((0, 3)) if returns is None else returns,
        order=order,
    )


def test_full_size_takes_the_tightest_sizer_then_flux_and_entropy() -> None:
    risk = RISK.model_copy(update={"max_position_fraction": 0.25, "risk_per_trade": 0.003,
                                   "stop_atr_multiple": 2.0, "target_volatility": 0.5,
                                   "flux_floor": 0.5})
    info = SymbolRisk(atr=0.01, volatility=0.003, kelly=None, entropy_scale=0.8)
    fraction, sizer, entropy = full_size("A", 1.0, 1.0, 0.0, risk, view(A=info))
    assert (sizer, entropy) == ("ATR stop", 0.8)
    assert fraction == pytest.approx(0.003 / (2 * 0.01) * 0.8)  # 0.15 of equity, then entropy
    kelly = SymbolRisk(atr=0.01, volatility=0.003, kelly=0.1, entropy_scale=1.0)
    assert full_size("A", 1.0, 1.0, 1.0, risk, view(A=kelly))[:2] == (pytest.approx(0.05), "Kelly")
    wild = SymbolRisk(atr=1e-4, volatility=0.02, kelly=None)
    fraction, sizer, _ = full_size("A", 1.0, 1.0, 0.0, risk, view(A=wild))
    assert sizer == "volatility target"
    assert fraction == pytest.approx(0.5 / (0.02 * math.sqrt(105_120)))
    plain = full_size("A", 1.0, 1.0, 0.5, risk, None)
    assert plain == (pytest.approx(0.25 * 0.75), "position limit", 1.0)


def test_sizing_and_entropy_resizes_travel_with_the_order() -> None:
    info = SymbolRisk(atr=0.01, volatility=0.003, entropy_scale=0.8)
    risk = WIDE.model_copy(update={"risk_per_trade": 0.003})
    outcome = plan(account(1.0, {}), {"A": 1.0}, {"A": 1.0}, risk=risk, view=view(A=info))
    (intent,) = outcome.intents
    assert intent.quantity == pytest.approx(0.12)
    assert [d.reason for d in outcome.decisions] == ["sizing: ATR stop", "entropy scaling"]
    assert outcome.decisions[0].detail == {"wanted_fraction": pytest.approx(0.3),
                                           "allowed_fraction": pytest.approx(0.12)}


def test_net_exposure_limit_resizes_an_order_that_adds_to_the_net() -> None:
    risk = WIDE.model_copy(update={"max_net_exposure": 0.6})
    outcome = plan(account(0.5, {"A": (0.5, 1.0)}), {"B": 1.0}, {"A": 1.0, "B": 1.0}, risk=risk)
    (intent,) = outcome.intents
    assert (intent.symbol, intent.side) == ("B", Side.BUY)
    assert intent.quantity == pytest.approx(0.1)  # net 0.5 -> 0.6
    assert any(d.reason == "net exposure limit" for d in outcome.decisions)


@pytest.mark.parametrize(
    ("corr", "allowed"),
    # the largest d with 0.4^2 + 2 d (0.4 corr) + d^2 <= 0.6^2, capped by the 0.3 position limit
    [(1.0, 0.2), (0.0, 0.3), (None, 0.2), (0.5, -0.2 + math.sqrt(0.24))],
)
def test_correlated_exposure_limit_solves_for_the_largest_order(corr, allowed) -> None:
    risk = WIDE.model_copy(update={"max_correlated_exposure": 0.6})
    correlation = {} if corr is None else {"A": {"B": corr}, "B": {"A": corr}}
    acct = account(0.6, {"A": (0.4, 1.0)})
    outcome = plan(acct, {"B": 1.0}, {"A": 1.0, "B": 1.0}, risk=risk,
                   view=view(correlation=correlation))
    (intent,) = outcome.intents
    assert intent.quantity == pytest.approx(allowed)
    after = {"A": 0.4, "B": intent.quantity}
    assert correlated_exposure(after, view(correlation=correlation)) <= 0.6 + 1e-12
    clipped = any(d.reason == "correlated exposure limit" for d in outcome.decisions)
    assert clipped == (allowed < 0.3)


@pytest.mark.parametrize(("price", "reason"), [(0.95, "stop loss"), (1.09, "take profit")])
def test_stop_loss_and_take_profit_close_the_position(price, reason) -> None:
    risk = WIDE.model_copy(update={"stop_loss_atr": 4.0, "take_profit_atr": 8.0})
    positions = {"A": PositionState(symbol="A", quantity=0.2, average_cost=1.0, mark=price)}
    acct = account(0.8, {}).model_copy(update={"positions": positions, "equity": 0.8 + 0.2 * price})
    outcome = plan(acct, {"A": 1.0}, {"A": price}, risk=risk, view=view(A=SymbolRisk(atr=0.01)))
    (intent,) = outcome.intents
    assert (intent.side, intent.quantity) == (Side.SELL, pytest.approx(0.2))
    assert intent.reason.startswith(reason)
    (decision,) = [d for d in outcome.decisions if d.reason == reason]
    assert decision.detail["atr_move"] == pytest.approx((price - 1.0) / 0.01)


def test_a_stopped_symbol_may_not_be_re_entered_during_its_cooldown() -> None:
    outcome = plan(account(1.0, {}), {"A": 1.0}, {"A": 1.0}, risk=WIDE,
                   view=view(A=SymbolRisk(cooldown=5)))
    assert outcome.intents == ()
    assert [d.reason for d in outcome.decisions] == ["stop cooldown: no re-entry yet"]


def test_cvar_limit_scales_the_target_book_to_the_limit() -> None:
    returns = np.zeros((100, 3))
    returns[:2, 0] = -0.05  # the worst 1% of 100 bars: one bar losing 5%
    risk = WIDE.model_copy(update={"max_cvar_99": 0.01, "max_position_fraction": 0.25})
    outcome = plan(account(1.0, {}), {"A": 1.0}, {"A": 1.0}, risk=risk, view=view(returns))
    (intent,) = outcome.intents
    assert intent.quantity == pytest.approx(0.25 * 0.01 / (0.25 * 0.05))  # CVaR 1.25% -> 1%
    (decision,) = [d for d in outcome.decisions if d.reason == "CVaR 99% limit"]
    assert decision.detail["cvar_99"] == pytest.approx(0.0125)


@st.composite
def market_views(draw) -> RiskView:
    def maybe(low: float, high: float) -> float:
        return draw(st.one_of(st.just(math.nan), st.floats(low, high)))

    symbols = {  # ATR as a fraction of the price; the test scales it by the drawn price
        s: SymbolRisk(atr=maybe(1e-4, 0.02), volatility=maybe(1e-4, 0.005),
                      kelly=draw(st.sampled_from([None, None, 0.0, 0.1, 0.25])),
                      entropy_scale=draw(st.floats(0.5, 1.0)),
                      cooldown=draw(st.sampled_from([0, 0, 0, 3])))
        for s in SYMBOLS
    }
    pairs = [("A", "B"), ("A", "C"), ("B", "C")]
    correlation: dict[str, dict[str, float]] = {s: {} for s in SYMBOLS}
    for a, b in pairs:
        value = maybe(0.0, 1.0)
        if not math.isnan(value):
            correlation[a][b] = correlation[b][a] = value
    rows = draw(st.sampled_from([0, 20, 50]))
    returns = draw(arrays(np.float64, (rows, 3), elements=st.floats(-0.1, 0.1)))
    return RiskView(symbols=symbols, correlation=correlation, returns=returns, order=tuple(SYMBOLS))


LIMITS = RiskConfig(max_position_fraction=0.4, max_order_notional_fraction=0.3,
                    max_gross_exposure=0.6, max_net_exposure=0.5, max_correlated_exposure=0.4,
                    daily_loss_limit=0.05, max_drawdown=0.15, min_order_notional=0.0,
                    rebalance_threshold=0.0, allow_short=False, max_cvar_99=0.02,
                    stop_loss_atr=3.0, take_profit_atr=6.0, risk_per_trade=0.02)


@settings(max_examples=300, deadline=None)
@given(
    cash=st.floats(0.01, 10.0),
    held=st.lists(st.floats(0.0, 0.3), min_size=3, max_size=3),
    costs=st.lists(st.floats(0.97, 1.03), min_size=3, max_size=3),
    prices=st.lists(st.floats(0.01, 10.0), min_size=3, max_size=3),
    weights=st.lists(st.floats(-0.25, 1.0), min_size=3, max_size=3),
    flux=st.floats(0.0, 1.0),
    peak=st.floats(1.0, 1.25),
    market=market_views(),
)
def test_no_approved_order_breaks_any_limit_with_market_data(
    cash, held, costs, prices, weights, flux, peak, market
) -> None:
    """``held`` are position values as fractions of equity, so books span every exposure."""
    price = dict(zip(SYMBOLS, prices, strict=True))
    market = replace(market, symbols={
        s: replace(info, atr=info.atr * price[s]) for s, info in market.symbols.items()
    })
    equity = cash / (1 - sum(held))
    positions = {
        s: PositionState(symbol=s, quantity=e * equity / price[s], average_cost=price[s] * c,
                         mark=price[s])
        for s, e, c in zip(SYMBOLS, held, costs, strict=True) if e > 0
    }
    acct = AccountState(cycle=1, timestamp=T0, cash=cash, positions=positions, equity=equity,
                        peak_equity=max(equity, 1e-9) * peak, day_start_equity=equity,
                        realised_pnl=0.0, fees_paid=0.0, initial_cash=1.0)
    outcome = plan(acct, dict(zip(SYMBOLS, weights, strict=True)), price, risk=LIMITS,
                   flux=flux, view=market)
    before = {s: acct.quantity(s) for s in SYMBOLS}
    after = dict(before)
    spent = 0.0
    for intent in outcome.intents:
        notional = intent.quantity * price[intent.symbol]
        assert notional <= LIMITS.max_order_notional_fraction * equity * (1 + 1e-9)
        after[intent.symbol] += intent.side.sign * intent.quantity
        if intent.side is Side.BUY:
            spent += notional * (1 + CASH_PRICE_BUFFER)
    stopped = {d.symbol for d in outcome.decisions if d.reason in ("stop loss", "take profit")}
    for s in SYMBOLS:
        grew = after[s] > before[s] + 1e-12
        assert after[s] >= -1e-12, "went short although shorting is off"
        if grew:
            assert after[s] * price[s] <= LIMITS.max_position_fraction * equity * (1 + 1e-9)
            assert market.symbols[s].cooldown == 0, "re-entered during a stop cooldown"
            assert s not in stopped
            assert not outcome.kill_switch, "bought with the kill switch engaged"
    exposure_before = {s: before[s] * price[s] / equity for s in SYMBOLS} if equity > 0 else {}
    exposure_after = {s: after[s] * price[s] / equity for s in SYMBOLS} if equity > 0 else {}
    gross_before, gross_after = sum(exposure_before.values()), sum(exposure_after.values())
    assert gross_after <= max(gross_before, LIMITS.max_gross_exposure) * (1 + 1e-9) + 1e-12
    assert gross_after <= max(gross_before, LIMITS.max_net_exposure) * (1 + 1e-9) + 1e-12  # net
    if exposure_after:
        corr_before = correlated_exposure(exposure_before, market)
        corr_after = correlated_exposure(exposure_after, market)
        assert corr_after <= max(corr_before, LIMITS.max_correlated_exposure) * (1 + 1e-9) + 1e-12
    assert spent <= max(cash, 0.0) * (1 + 1e-9) + 1e-12
    if outcome.kill_switch:
        assert all(i.side is Side.SELL for i in outcome.intents)


def test_risk_windows_and_sizers_are_validated() -> None:
    with pytest.raises(ValueError, match="kelly_min_history: must not exceed kelly_window"):
        RiskConfig(kelly_window=50, kelly_min_history=60)
    with pytest.raises(ValueError, match="sizing: a method is listed twice"):
        RiskConfig(sizing=("kelly", "kelly"))
    with pytest.raises(ValueError):
        RiskConfig(sizing=("martingale",))
