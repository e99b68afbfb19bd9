from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cycle.accounting import Portfolio
from cycle.messages import Fill, Side

T0 = datetime(2018, 1, 10, tzinfo=UTC)


def fill(side: Side, quantity: float, price: float, fee: float = 0.0, n: int = 0) -> Fill:
    return Fill(
        fill_id=f"f{n}", client_order_id=f"o{n}", symbol="ETH/BTC", side=side, quantity=quantity,
        price=price, fee=fee, broker="paper", liquidity="taker", reference_price=price,
        slippage_bps=0.0, latency_ms=0.0, timestamp=T0,
    )


def test_round_trip_books_realised_pnl_and_fees() -> None:
    book = Portfolio(10.0)
    book.apply_fill(fill(Side.BUY, 2.0, 1.0, fee=0.002))
    book.apply_fill(fill(Side.BUY, 2.0, 2.0, fee=0.004))
    assert book.average_costs["ETH/BTC"] == pytest.approx(1.5)
    book.apply_fill(fill(Side.SELL, 3.0, 2.5, fee=0.0075))
    assert book.quantities["ETH/BTC"] == pytest.approx(1.0)
    assert book.realised_pnl == pytest.approx(3.0 * (2.5 - 1.5))
    assert book.cash == pytest.approx(10.0 - 2.0 - 4.0 + 7.5 - 0.0135)
    book.mark({"ETH/BTC": 3.0})
    assert book.equity == pytest.approx(book.cash + 3.0)


def test_flip_through_zero_opens_the_remainder_at_the_fill_price() -> None:
    book = Portfolio(10.0)
    book.apply_fill(fill(Side.BUY, 1.0, 2.0))
    book.apply_fill(fill(Side.SELL, 3.0, 4.0))
    assert book.quantities["ETH/BTC"] == pytest.approx(-2.0)
    assert book.average_costs["ETH/BTC"] == pytest.approx(4.0)
    assert book.realised_pnl == pytest.approx(2.0)


def test_closed_cycle_tracks_peak_and_day_open() -> None:
    book = Portfolio(1.0)
    state = book.close_cycle(1, T0)
    assert state.peak_equity == 1.0 and state.day_start_equity == 1.0
    book.apply_fill(fill(Side.BUY, 1.0, 0.5))
    book.mark({"ETH/BTC": 0.25})
    state = book.close_cycle(2, T0)
    assert state.drawdown == pytest.approx(0.25)
    assert state.daily_loss == pytest.approx(0.25)


def test_snapshot_restore_is_exact() -> None:
    book = Portfolio(1.0)
    book.apply_fill(fill(Side.BUY, 0.3, 0.7, fee=0.0002))
    book.mark({"ETH/BTC": 0.8})
    again = Portfolio.restore(book.snapshot())
    assert again.snapshot() == book.snapshot()
    assert again.equity == book.equity


trades = st.lists(
    st.tuples(
        st.sampled_from([Side.BUY, Side.SELL]),
        st.floats(0.001, 10.0),
        st.floats(0.01, 100.0),
        st.floats(0.0, 0.01),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(trades=trades, mark=st.floats(0.01, 100.0))
def test_equity_change_is_realised_plus_unrealised_minus_fees(trades, mark) -> None:
    book = Portfolio(100.0)
    for n, (side, quantity, price, fee_rate) in enumerate(trades):
        book.apply_fill(fill(side, quantity, price, fee=quantity * price * fee_rate, n=n))
    book.mark({"ETH/BTC": mark})
    state = book.state(1, T0)
    unrealised = sum(p.unrealised_pnl for p in state.positions.values())
    scale = 100.0 + sum(q * p for _, q, p, _ in trades)
    assert state.equity - 100.0 == pytest.approx(
        state.realised_pnl + unrealised - state.fees_paid, abs=1e-9 * scale
    )
    assert state.equity == pytest.approx(state.cash + sum(p.market_value for p in state.positions.values()), abs=1e-12 * scale)
