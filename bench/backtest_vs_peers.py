"""The same SMA-crossover backtest in fluxtrade, backtesting.py, backtrader and vectorbt.

The experiment: the bundled BTC/USDT-like 5-minute candles (10,999 bars), SMA(10) against
SMA(30) on closes, long while the fast average is above the slow one and flat otherwise; the
signal of a bar's close is executed at the next bar's open; every entry goes all-in with
fractional units (cash 10,000 USDT, about half a bitcoin), fee 0.1% of notional per side, no
slippage; equity is marked at each close. Each library is told exactly that:

* fluxtrade: ``SMACrossover(fast=10, slow=30, full_gap=1e-12)`` (its weight is +-1 unless the
  averages are equal) through :func:`tuning.backtest.backtest`, long-only.
* backtesting.py: ``FractionalBacktest`` (units of 1e-8 BTC, so all-in is all-in), commission
  0.001, orders at the next open (its default), ``buy()`` with its default all-equity size.
* backtrader: ``cheat_on_open`` with a cheat-on-open broker, so the all-in size is computed
  from the open it fills at (less 1e-9 of it: an order for exactly all the cash fails
  backtrader's cash check by float dust), percentage commission 0.001.
* vectorbt: ``Portfolio.from_signals`` with the signals shifted one bar, ``price=open``,
  ``size=inf`` (all-in), ``fees=0.001``.

Printed: final equity, closed round trips (plus a position still open at the end), maximum
drawdown, and each library's final equity against fluxtrade's; the check is agreement within 0.1%
of final equity and exact on trades. Timings are warm (best of three runs after one warm-up).
Where a final equity differs, the first entry that differs is printed with the share of the gap
it explains. (backtesting.py skips the first bar on which every indicator exists, "+1 to have at
least two entries available" in ``Backtest.run``: it never sees the signal of bar 29, where
SMA(30) first exists, and if that bar says "long" it enters one bar later than the others.)

    python bench/backtest_vs_peers.py
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's progress bars

from actors.strategy.library import SMACrossover  # noqa: E402
from tuning.backtest import BacktestSettings, backtest  # noqa: E402
from tuning.data import Candles, load_symbol  # noqa: E402

FAST, SLOW, CASH, FEE = 10, 30, 10_000.0, 0.001


def frame(candles: Candles) -> pd.DataFrame:
    b = candles.bars
    return pd.DataFrame(
        {"Open": b.open, "High": b.high, "Low": b.low, "Close": b.close, "Volume": b.volume},
        index=pd.DatetimeIndex(candles.timestamps),
    )


def best_time(run: Callable[[], Any], repeats: int = 3) -> tuple[Any, float]:
    """The result and the best wall time of ``repeats`` runs after one warm-up run."""
    result = run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return result, min(times)


def fluxtrade(candles: Candles) -> dict[str, float]:
    strategy = SMACrossover("sma", {"fast": FAST, "slow": SLOW, "full_gap": 1e-12})
    costs = BacktestSettings(fee_bps=FEE * 1e4, slippage_bps=0.0, initial_cash=CASH)
    result = backtest(strategy, candles, costs)
    closed = int(result.trades["closed"].sum())
    return {"final": float(result.equity[-1]), "closed": closed,
            "open": len(result.trades) - closed, "drawdown": result.metrics.max_drawdown,
            "entries": result.trades["entry_bar"].tolist()}


def backtesting_py(data: pd.DataFrame) -> dict[str, float]:
    from backtesting import Strategy
    from backtesting.lib import FractionalBacktest
    from backtesting.test import SMA

    class Cross(Strategy):
        def init(self) -> None:
            self.fast = self.I(SMA, self.data.Close, FAST)
            self.slow = self.I(SMA, self.data.Close, SLOW)

        def next(self) -> None:
            if self.fast[-1] > self.slow[-1]:
                if not self.position:
                    self.buy()
            elif self.position:
                self.position.close()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = FractionalBacktest(data, Cross, cash=CASH, commission=FEE,
                                   fractional_unit=1e-8).run()
    return {"final": float(stats["Equity Final [$]"]), "closed": int(stats["# Trades"]),
            "open": len(stats._strategy.trades),
            "drawdown": -float(stats["Max. Drawdown [%]"]) / 100,
            "entries": stats._trades["EntryBar"].tolist()}


def backtrader_run(data: pd.DataFrame) -> dict[str, float]:
    import backtrader as bt

    class Cross(bt.Strategy):
        def __init__(self) -> None:
            self.fast = bt.indicators.SMA(self.data.close, period=FAST)
            self.slow = bt.indicators.SMA(self.data.close, period=SLOW)
            self.entries: list[int] = []

        def notify_order(self, order: Any) -> None:
            if order.status == order.Completed and order.isbuy():
                self.entries.append(len(self) - 1)  # notified on the bar after the fill

        def next_open(self) -> None:
            # next_open runs at the new bar's open before the indicators are recalculated for
            # it, so [0] is still the previous bar's average: the signal of the last close.
            if len(self) < SLOW:
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
    cerebro.addanalyzer(bt.analyzers.TradeAnalyzer, _name="trades")
    cerebro.addanalyzer(bt.analyzers.DrawDown, _name="drawdown")
    strategy = cerebro.run()[0]
    trades = strategy.analyzers.trades.get_analysis()
    return {"final": float(cerebro.broker.getvalue()), "closed": int(trades.total.closed),
            "open": int(trades.total.get("open", 0)),
            "drawdown": strategy.analyzers.drawdown.get_analysis().max.drawdown / 100,
            "entries": strategy.entries}


def vectorbt_run(data: pd.DataFrame) -> dict[str, float]:
    import vectorbt as vbt

    close = data["Close"]
    fast = close.rolling(FAST).mean()
    slow = close.rolling(SLOW).mean()
    long = (fast > slow).shift(1, fill_value=False).astype(bool)
    portfolio = vbt.Portfolio.from_signals(
        close, entries=long, exits=~long, price=data["Open"], size=np.inf, fees=FEE,
        init_cash=CASH, freq="5min",
    )
    trades = portfolio.trades
    return {"final": float(portfolio.final_value()), "closed": int(trades.closed.count()),
            "open": int(trades.open.count()), "drawdown": -float(portfolio.max_drawdown()),
            "entries": trades.records["entry_idx"].tolist()}


def main() -> int:
    candles = load_symbol("BTC/USDT")
    data = frame(candles)
    runs: dict[str, tuple[dict[str, float], float]] = {
        "fluxtrade": best_time(lambda: fluxtrade(candles)),
    }
    for name, run in (("backtesting.py", backtesting_py), ("backtrader", backtrader_run),
                      ("vectorbt", vectorbt_run)):
        try:
            runs[name] = best_time(lambda run=run: run(data))
        except ImportError as error:
            print(f"{name}: not installed ({error}); pip install -e '.[bench]'")
    ours = runs["fluxtrade"][0]
    print(f"SMA({FAST})/SMA({SLOW}) crossover, long-only, all-in, fee {FEE:.1%} per side, "
          f"{len(candles):,} bars of {candles.symbol} 5m, cash {CASH:,.0f}\n")
    print("| library | final equity | vs fluxtrade | closed trades | open at end | max drawdown"
          " | warm time | bars/s | agrees |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, (r, seconds) in runs.items():
        gap = r["final"] / ours["final"] - 1
        agrees = abs(gap) <= 0.001 and r["closed"] == ours["closed"] and r["open"] == ours["open"]
        print(f"| {name} | {r['final']:,.2f} | {gap:+.4%} | {r['closed']} | {r['open']} "
              f"| {r['drawdown']:.3%} | {seconds * 1000:,.1f} ms | {len(candles) / seconds:,.0f} "
              f"| {'yes' if agrees else 'NO'} |")
    explain(runs, candles)
    return 0


def explain(runs: dict[str, tuple[dict[str, Any], float]], candles: Candles) -> None:
    """For each library whose final equity differs, the first entry that differs and whether the
    ratio of the two entry prices accounts for the whole difference."""
    ours = runs["fluxtrade"][0]
    opens = candles.bars.open
    for name, (r, _) in runs.items():
        gap = r["final"] / ours["final"] - 1
        if name == "fluxtrade" or abs(gap) < 1e-9:
            continue
        pairs = list(zip(ours["entries"], r["entries"], strict=False))
        differ = [(i, a, b) for i, (a, b) in enumerate(pairs) if a != b]
        if not differ:
            print(f"\n{name}: same entries; final equity differs by {gap:+.6%}")
            continue
        i, a, b = differ[0]
        implied = opens[a] / opens[b] - 1
        print(f"\n{name}: {len(differ)} of {len(pairs)} entries differ; the first is trade {i + 1}:"
              f" bar {b} at {opens[b]:,.2f} against fluxtrade's bar {a} at {opens[a]:,.2f}."
              f" That entry buys {implied:+.6%} more units, and the final equity differs by"
              f" {gap:+.6%}.")


if __name__ == "__main__":
    sys.exit(main())
