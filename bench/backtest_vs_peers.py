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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's progress bars

from bench import peers  # noqa: E402
from tuning.backtest import backtest  # noqa: E402
from tuning.data import Candles, load_symbol  # noqa: E402


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
    result = backtest(peers.sma_crossover(), candles, peers.COSTS)
    closed = int(result.trades["closed"].sum())
    return {"final": float(result.equity[-1]), "closed": closed,
            "open": len(result.trades) - closed, "drawdown": result.metrics.max_drawdown,
            "entries": result.trades["entry_bar"].tolist()}


def backtesting_py(data: pd.DataFrame) -> dict[str, float]:
    stats = peers.backtesting_stats(data)
    return {"final": float(stats["Equity Final [$]"]), "closed": int(stats["# Trades"]),
            "open": len(stats._strategy.trades),
            "drawdown": -float(stats["Max. Drawdown [%]"]) / 100,
            "entries": stats._trades["EntryBar"].tolist()}


def backtrader_run(data: pd.DataFrame) -> dict[str, float]:
    import backtrader as bt

    cerebro = peers.backtrader_cerebro(data)
    cerebro.addanalyzer(bt.analyzers.TradeAnalyzer, _name="trades")
    cerebro.addanalyzer(bt.analyzers.DrawDown, _name="drawdown")
    strategy = cerebro.run()[0]
    trades = strategy.analyzers.trades.get_analysis()
    return {"final": float(cerebro.broker.getvalue()), "closed": int(trades.total.closed),
            "open": int(trades.total.get("open", 0)),
            "drawdown": strategy.analyzers.drawdown.get_analysis().max.drawdown / 100,
            "entries": strategy.entries}


def vectorbt_run(data: pd.DataFrame) -> dict[str, float]:
    close = data["Close"]
    fast = close.rolling(peers.FAST).mean()
    slow = close.rolling(peers.SLOW).mean()
    portfolio = peers.vectorbt_portfolio(data, fast > slow)
    trades = portfolio.trades
    return {"final": float(portfolio.final_value()), "closed": int(trades.closed.count()),
            "open": int(trades.open.count()), "drawdown": -float(portfolio.max_drawdown()),
            "entries": trades.records["entry_idx"].tolist()}


def main() -> int:
    candles = load_symbol("BTC/USDT")
    data = peers.frame(candles)
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
    print(f"SMA({peers.FAST})/SMA({peers.SLOW}) crossover, long-only, all-in, "
          f"fee {peers.FEE:.1%} per side, {len(candles):,} bars of {candles.symbol} 5m, "
          f"cash {peers.CASH:,.0f}\n")
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
