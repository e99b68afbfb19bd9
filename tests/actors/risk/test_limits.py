"""Pre-trade risk: whatever the signals and prices, no approved order breaks a limit."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.risk.limits import CASH_PRICE_BUFFER, plan_orders
from cycle.config import ExecutionConfig, RiskConfig
from cycle.messages import AccountState, PositionState, Side, StrategyDecision, TargetPosition

T0 = datetime(2018, 1, 10, tzinfo=UTC)
SYMBOLS = ["A", "B", "C"]


def account(cash: float, positions: dict[str, tuple[float, float]], peak: float | None = None,
            day_start: float | None = None) -> AccountState:
    states = {s: PositionState(symbol=s, quantity=q, average_cost=m, mark=m) for s, (q, m) in positions.items()}
    equity = cash + sum(q * m for q, m in positions.values())
    return AccountState(
        cycle=1, timestamp=T0, cash=cash, positions=states, equity=equity,
        peak_equity=peak or equity, day_start_equity=day_start or equity, realised_pnl=0.0,
        fees_paid=0.0, initial_cash=1.0,
    )


def decision(weights: dict[str, float]) -> StrategyDecision:
    return StrategyDecision(
        cycle=1,
        targets={s: TargetPosition(symbol=s, weight=w, confidence=1.0, contributions={"x": w}) for s, w in weights.items()},
        signals={}, weights={"x": 1.0},
    )


RISK = RiskConfig(max_position_fraction=0.3, max_order_notional_fraction=0.1, max_gross_exposure=0.6,
                  daily_loss_limit=0.05, max_drawdown=0.15, min_order_notional=0.0,
                  rebalance_threshold=0.0, allow_short=False)


def plan(acct: AccountState, weights: dict[str, float], prices: dict[str, float], risk: RiskConfig = RISK, **kw):
    return plan_orders(cycle=1, decision=decision(weights), account=acct, prices=prices, open_orders=(),
                       risk=risk, execution=ExecutionConfig(), flux=kw.pop("flux", 0.0),
                       kill_switch=kw.pop("kill_switch", False), halted=kw.pop("halted", False), **kw)


@settings(max_examples=300, deadline=None)
@given(
    cash=st.floats(0.0, 10.0),
    held=st.lists(st.floats(0.0, 5.0), min_size=3, max_size=3),
    prices=st.lists(st.floats(0.01, 10.0), min_size=3, max_size=3),
    weights=st.lists(st.floats(-1.0, 1.0), min_size=3, max_size=3),
    flux=st.floats(0.0, 1.0),
)
def test_no_approved_order_breaks_a_limit(cash, held, prices, weights, flux) -> None:
    acct = account(cash, {s: (q, p) for s, q, p in zip(SYMBOLS, held, prices, strict=True) if q > 0})
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
    assert any(d.symbol == "B" and d.reason.startswith("daily loss limit") for d in outcome.decisions)


def test_halt_rejects_everything_with_the_reason() -> None:
    outcome = plan(account(1.0, {}), {"A": 1.0}, {"A": 1.0}, halted=True, halt_reason="operator")
    assert outcome.intents == ()
    assert [d.reason for d in outcome.decisions] == ["halted: operator"]


def test_higher_flux_never_buys_more() -> None:
    calm = plan(account(1.0, {}), {"A": 0.2}, {"A": 1.0}, flux=0.0).intents[0].quantity
    stormy = plan(account(1.0, {}), {"A": 0.2}, {"A": 1.0}, flux=1.0).intents[0].quantity
    assert stormy == pytest.approx(calm / 2)
