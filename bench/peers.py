"""The SMA-crossover experiment as each peer library is told it, shared by the backtest benchmarks.

bench/backtest_vs_peers.py checks that the peers agree with fluxtrade and bench/backtest_speed.py
times them, so both must run exactly the same thing: SMA(fast)/SMA(slow) on closes, long while
the fast average is above the slow one, the signal of a close executed at the next open, all-in
with fractional units, fee ``FEE`` of notional per side, no slippage, cash ``CASH``. How each
library is made to do that is set out in bench/backtest_vs_peers.py's docstring.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from actors.strategy.library import SMACrossover
from tuning.backtest import BacktestSettings
from tuning.data import Candles

FAST, SLOW, CASH, FEE = 10, 30, 10_000.0, 0.001
COSTS = BacktestSettings(fee_bps=FEE * 1e4, slippage_bps=0.0, initial_cash=CASH)


def frame(candles: Candles) -> pd.DataFrame:
    """The candles as the OHLCV frame the peer libraries read."""
    b = candles.bars
    return pd.DataFrame(
        {"Open": b.open, "High": b.high, "Low": b.low, "Close": b.close, "Volume": b.volume},
        index=pd.DatetimeIndex(candles.timestamps),
    )


def sma_params(fast: int = FAST, slow: int = SLOW) -> dict[str, float]:
    """fluxtrade's ``SMACrossover`` parameters; ``full_gap`` so small that its weight is +-1
    unless the averages are equal, i.e. all-in like the peers."""
    return {"fast": fast, "slow": slow, "full_gap": 1e-12}


def sma_crossover(fast: int = FAST, slow: int = SLOW) -> SMACrossover:
    """fluxtrade's live strategy, set for the experiment."""
    return SMACrossover("sma", sma_params(fast, slow))


def backtesting_stats(data: pd.DataFrame, fast: int = FAST, slow: int = SLOW) -> pd.Series:
    """backtesting.py's statistics of the crossover, in units of 1e-8 so that all-in is all-in."""
    from backtesting import Strategy
    from backtesting.lib import FractionalBacktest
    from backtesting.test import SMA

    class Cross(Strategy):
        def init(self) -> None:
            self.fast = self.I(SMA, self.data.Close, fast)
            self.slow = self.I(SMA, self.data.Close, slow)

        def next(self) -> None:
            if self.fast[-1] > self.slow[-1]:
                if not self.position:
                    self.buy()
            elif self.position:
                self.position.close()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return FractionalBacktest(
            data, Cross, cash=CASH, commission=FEE, fractional_unit=1e-8
        ).run()


def backtrader_cerebro(data: pd.DataFrame, fast: int = FAST, slow: int = SLOW) -> Any:
    """A backtrader engine set up for the crossover on ``data``, not yet run; its strategy
    records the bar of each entry in ``entries``."""
    import backtrader as bt

    class Cross(bt.Strategy):
        def __init__(self) -> None:
            self.fast = bt.indicators.SMA(self.data.close, period=fast)
            self.slow = bt.indicators.SMA(self.data.close, period=slow)
            self.entries: list[int] = []

        def notify_order(self, order: Any) -> None:
            if order.status == order.Completed and order.isbuy():
                self.entries.append(len(self) - 1)  # notified on the bar after the fill

        def next_open(self) -> None:
            # next_open runs at the new bar's open before the indicators are recalculated for
            # it, so [0] is still the previous bar's average: the signal of the last close.
            if len(self) < slow:
                return
            if self.fast[0] > self.slow[0]:
                if not self.position:
                    all_in = self.broker.getcash() / (self.data.open[0] * (1 + FEE))
                    self.buy(size=all_in * (1 - 1e-9))  # float dust would fail its cash check
            elif self.position:
                self.close()

    cerebro = bt.Cerebro(stdstats=False, cheat_on_open=True)
    cerebro.adddata(bt.feeds.PandasData(dataname=data))
    cerebro.addstrategy(Cross)
    cerebro.broker.setcash(CASH)
    cerebro.broker.setcommission(commission=FEE)
    cerebro.broker.set_coo(True)
    return cerebro


def vectorbt_portfolio(data: pd.DataFrame, long: pd.Series | pd.DataFrame) -> Any:
    """vectorbt's portfolio of ``long`` (one column per candidate), each close's signal shifted
    to the next bar and filled at its open."""
    import vectorbt as vbt

    shifted = long.shift(1, fill_value=False).astype(bool)
    return vbt.Portfolio.from_signals(
        data["Close"], entries=shifted, exits=~shifted, price=data["Open"], size=np.inf,
        fees=FEE, init_cash=CASH, freq="5min",
    )
