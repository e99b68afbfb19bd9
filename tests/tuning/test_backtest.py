"""The backtester against equity computed by hand, and its metrics against direct formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.tuning.helpers import candles, random_walk, reference_equity
from tuning.backtest import BacktestSettings, backtest_weights, held_positions
from tuning.metrics import SECONDS_PER_YEAR, probabilistic_sharpe

CASH = 10_000.0


def test_all_in_long_buys_at_next_open_and_sells_at_the_open_after_the_exit_signal() -> None:
    # signal 1 on bar 0's close -> buy at bar 1's open; signal 0 on bar 2 -> sell at bar 3's open;
    # the signal of the last bar is never executed.
    bars = candles(open_=[100, 101, 104, 102, 103], close=[100.5, 103, 103, 102.5, 104])
    costs = BacktestSettings(fee_bps=10, slippage_bps=5, initial_cash=CASH)
    result = backtest_weights([1, 1, 0, 0, 1], bars, costs)

    buy_price = 101 * 1.0005  # open + 5 bps slippage
    units = CASH / (buy_price * 1.001)  # all-in: units * price * (1 + fee) spends all the cash
    sell_price = 102 * 0.9995
    cash = units * sell_price * 0.999
    expected = [CASH, units * 103, units * 103, cash, cash]
    assert result.equity == pytest.approx(expected, abs=1e-9)
    assert round(result.equity[-1], 2) == 10068.76
    assert result.fills["bar"].tolist() == [1, 3]
    assert result.fills["side"].tolist() == ["buy", "sell"]
    assert result.fills["quantity"].tolist() == pytest.approx([units, units], rel=1e-12)
    assert result.fills["price"].tolist() == pytest.approx([buy_price, sell_price], rel=1e-12)
    assert result.fills["fee"].tolist() == pytest.approx(
        [units * buy_price * 0.001, units * sell_price * 0.001], rel=1e-12
    )
    assert result.fills["cash"].tolist() == pytest.approx([0.0, cash], abs=1e-9)
    trade = result.trades.iloc[0]
    assert len(result.trades) == 1 and result.metrics.trades == 1
    assert (trade["entry_bar"], trade["exit_bar"], trade["closed"]) == (1, 3, True)
    assert trade["pnl"] == pytest.approx(cash - CASH, abs=1e-9)
    assert result.metrics.exposure == pytest.approx(2 / 5)
    assert result.metrics.win_rate == 1.0


def test_fractional_weights_size_on_equity_after_costs_and_drift_between_orders() -> None:
    bars = candles(open_=[100, 100, 110, 120], close=[100, 105, 115, 118])
    costs = BacktestSettings(fee_bps=10, slippage_bps=0, initial_cash=CASH)
    result = backtest_weights([0.5, 0.25, 0.25, 0.25], bars, costs)

    # bar 1: y1 * 100 = 0.5 * (cash1 + y1 * 100) with cash1 = 10000 - y1 * 100 * 1.001
    y1 = 5000 / 100.05
    cash1 = CASH - y1 * 100.1
    # bar 2: sell to y2 with y2 * 110 = 0.25 * (cash1 + (y1 - y2) * 110 * 0.999 + y2 * 110)
    y2 = (0.25 * cash1 + 27.4725 * y1) / 109.9725
    cash2 = cash1 + (y1 - y2) * 110 * 0.999
    # bar 3: the target is unchanged, so no order: the position drifts with the price
    expected = [CASH, cash1 + 105 * y1, cash2 + 115 * y2, cash2 + 118 * y2]
    assert result.equity == pytest.approx(expected, abs=1e-9)
    assert y1 != int(y1) and result.fills["units"].tolist() == pytest.approx([y1, y2])
    assert y2 * 110 == pytest.approx(0.25 * (cash2 + y2 * 110), rel=1e-12)
    assert result.fills["bar"].tolist() == [1, 2]
    assert round(result.equity[-1], 2) == 10682.64


def test_long_short_reverses_in_one_order_and_counts_two_trades() -> None:
    bars = candles(open_=[100, 100, 90, 95], close=[100, 92, 94, 96])
    costs = BacktestSettings(fee_bps=10, slippage_bps=0, allow_short=True, initial_cash=CASH)
    result = backtest_weights([1, -1, 0, 0], bars, costs)

    q1 = CASH / (100 * 1.001)
    # bar 2: y * 90 = -(cash' + y * 90), cash' = (q1 - y) * 90 * 0.999  (one sell of q1 - y)
    y = -(q1 * 90 * 0.999) / (180 - 89.91)
    cash2 = (q1 - y) * 90 * 0.999
    cash3 = cash2 + y * 95 * 1.001  # buy back -y at bar 3's open
    assert result.equity == pytest.approx([CASH, q1 * 92, cash2 + y * 94, cash3], abs=1e-9)
    assert y < 0 and result.fills["side"].tolist() == ["buy", "sell", "buy"]
    assert result.trades["direction"].tolist() == [1.0, -1.0]
    flip_equity = cash2 + y * 90
    assert result.trades["pnl"].tolist() == pytest.approx(
        [flip_equity - CASH, cash3 - flip_equity], abs=1e-9
    )
    assert result.trades["pnl"].sum() == pytest.approx(result.equity[-1] - CASH, abs=1e-9)


def test_long_only_reads_a_short_signal_as_flat() -> None:
    bars = candles(open_=[100, 100, 90, 95], close=[100, 92, 94, 96])
    costs = BacktestSettings(fee_bps=10, slippage_bps=0, allow_short=False, initial_cash=CASH)
    result = backtest_weights([1, -1, -1, 0], bars, costs)

    q1 = CASH / (100 * 1.001)
    cash = q1 * 90 * 0.999
    assert result.equity == pytest.approx([CASH, q1 * 92, cash, cash], abs=1e-9)
    assert result.fills["side"].tolist() == ["buy", "sell"]
    assert result.metrics.trades == 1


def test_a_signal_executes_one_bar_later_and_the_last_signal_never() -> None:
    bars = candles(open_=[10, 11, 12, 13, 14, 15], close=[10.5, 11.5, 12.5, 13.5, 14.5, 15.5])
    result = backtest_weights([0, 0, 1, 1, 0, 1], bars, BacktestSettings(fee_bps=0, slippage_bps=0))
    assert result.fills["bar"].tolist() == [3, 5]
    assert result.held.tolist() == [0, 0, 0, 1, 1, 0]
    assert result.equity[-1] == pytest.approx(15 / 13, rel=1e-15)


def test_weight_step_rounds_targets_so_small_wobbles_do_not_trade() -> None:
    costs = BacktestSettings(weight_step=0.25)
    held = held_positions([0.34, 0.36, 0.6, 0.62, -0.4], costs)
    assert held.tolist() == [0.0, 0.25, 0.25, 0.5, 0.5]


def test_open_position_at_the_end_is_a_trade_marked_to_the_last_close() -> None:
    bars = candles(open_=[100, 100, 100], close=[100, 110, 121])
    result = backtest_weights([1, 1, 1], bars, BacktestSettings(fee_bps=0, slippage_bps=0))
    assert result.trades["closed"].tolist() == [False]
    assert result.trades["pnl"].tolist() == pytest.approx([0.21])
    assert result.metrics.trades == 1 and result.metrics.win_rate == 1.0


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    fee_bps=st.floats(0, 50),
    slippage_bps=st.floats(0, 20),
    allow_short=st.booleans(),
)
def test_matches_a_bar_by_bar_cash_and_units_reference(
    seed: int, fee_bps: float, slippage_bps: float, allow_short: bool
) -> None:
    rng = np.random.default_rng(seed)
    bars = random_walk(120, seed, sigma=0.01)
    weights = np.round(rng.uniform(-1, 1, 120), 1)
    costs = BacktestSettings(fee_bps=fee_bps, slippage_bps=slippage_bps, allow_short=allow_short,
                             initial_cash=CASH)
    result = backtest_weights(weights, bars, costs)
    expected = reference_equity(bars.bars.open, bars.bars.close, weights, fee_bps / 1e4,
                                slippage_bps / 1e4, CASH, allow_short)
    assert result.equity == pytest.approx(expected, rel=1e-10)
    fills = result.fills
    opens = bars.bars.open[fills["bar"].to_numpy()]
    assert fills["equity"].to_numpy() == pytest.approx(
        (fills["cash"] + fills["units"] * opens).to_numpy(), rel=1e-12
    )
    assert result.trades["pnl"].sum() == pytest.approx(result.equity[-1] - CASH, abs=1e-6)


def test_metrics_match_their_definitions_computed_directly() -> None:
    bars = random_walk(3000, seed=3, sigma=0.004)
    rng = np.random.default_rng(3)
    weights = np.repeat(rng.choice([-1.0, 0.0, 0.5, 1.0], 60), 50)
    costs = BacktestSettings(fee_bps=7.5, slippage_bps=2, allow_short=True, initial_cash=CASH)
    result = backtest_weights(weights, bars, costs)
    m = result.metrics
    equity = result.equity
    r = equity / np.concatenate(([CASH], equity[:-1])) - 1
    per_year = SECONDS_PER_YEAR / 300
    years = len(r) * 300 / SECONDS_PER_YEAR
    cagr = (equity[-1] / CASH) ** (1 / years) - 1
    peak = np.maximum.accumulate(np.concatenate(([CASH], equity)))[1:]
    drawdown = np.max(1 - equity / peak)
    pnl = result.trades["pnl"].to_numpy()
    assert m.total_return == pytest.approx(equity[-1] / CASH - 1, rel=1e-12)
    assert m.sharpe == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(per_year), rel=1e-9)
    downside = math.sqrt(np.mean(np.minimum(r, 0) ** 2))
    assert m.sortino == pytest.approx(r.mean() / downside * math.sqrt(per_year), rel=1e-9)
    assert m.cagr == pytest.approx(cagr, rel=1e-9)
    assert m.max_drawdown == pytest.approx(drawdown, rel=1e-12)
    assert m.calmar == pytest.approx(cagr / drawdown, rel=1e-9)
    assert m.trades == len(pnl) > 10
    assert m.win_rate == pytest.approx(np.mean(pnl > 0))
    assert m.profit_factor == pytest.approx(pnl[pnl > 0].sum() / -pnl[pnl < 0].sum(), rel=1e-9)
    assert m.exposure == pytest.approx(np.mean(result.held != 0))
    assert per_year == 105_120


def test_probabilistic_sharpe_matches_its_formula() -> None:
    r = np.random.default_rng(5).standard_t(5, 4000) * 0.001 + 0.0001
    n, mean, std = r.size, r.mean(), r.std(ddof=1)
    sr = mean / std
    centred = r - mean
    skew = np.mean(centred**3) / np.mean(centred**2) ** 1.5
    kurt = np.mean(centred**4) / np.mean(centred**2) ** 2
    z = sr * math.sqrt(n - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
    expected = 0.5 * (1 + math.erf(z / math.sqrt(2)))
    got = probabilistic_sharpe(np.array([mean]), np.array([std]), np.array([np.sum(r**3)]),
                               np.array([np.sum(r**4)]), np.array([float(n)]))
    assert got[0] == pytest.approx(expected, rel=1e-9)
    assert 0.5 < got[0] < 1.0
