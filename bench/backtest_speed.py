"""Backtest speed: fluxtrade beside backtesting.py, backtrader and vectorbt, in one run.

Two measurements, on the bundled candles chained end to end (:func:`tuning.data.chained_series`:
real 5-minute bars, each file rescaled to open where the previous one closed):

1. **One candidate, long series**: SMA(10)/SMA(30) crossover, long-only all-in, fee 0.1%, on
   1,000,000 bars; bars per second. fluxtrade runs the live ``SMACrossover.weights`` and the full
   backtest (equity curve, fills, round trips, every metric). backtesting.py and vectorbt run the
   same million bars; backtrader, at about 10k bars/s, runs the first 100,000 (its rate does not
   depend on length).
2. **A 1,000-candidate sweep**: the same rule over 1,000 (fast, slow) pairs (fast 2..41, slow
   45..285) on 100,000 bars; candidate-bars per second, in one process (one core). fluxtrade runs
   :func:`tuning.sweep.evaluate_candidates` (SMA kernel, simulation, all metrics). vectorbt runs
   its own sweep: ``vbt.MA.run`` for the averages, ``Portfolio.from_signals`` over 100 columns at
   a time, then final value, Sharpe, Sortino, Calmar, drawdown, trades, win rate and profit
   factor per column. backtesting.py and backtrader sweep one candidate at a time; their rate is
   measured on the first few candidates.

Rates are computed from the process's CPU time (the machine is shared; wall time is printed too)
and each timing is the best of repeated warm runs where the run is short. The ratios at the end
are fluxtrade's rate over each library's.

Agreement is bench/backtest_vs_peers.py's business; here only the sweep's final equities are
compared. The one-candidate run's are not: at 0.1% per side, 22,529 round trips over a million
bars take equity to 1e-14 of its start, and backtesting.py and vectorbt stop trading once a
position would be below their smallest order (vectorbt's last entry is at bar 481,186, equity
6.6e-5 at a price of 6,649), while fluxtrade's fractional orders go on.

    python bench/backtest_speed.py [--bars 1000000] [--sweep-bars 100000] [--candidates 1000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TQDM_DISABLE", "1")

from actors.strategy.library import SMACrossover  # noqa: E402
from bench import peers  # noqa: E402
from tuning.backtest import backtest, combine  # noqa: E402
from tuning.candidates import Candidate, class_path  # noqa: E402
from tuning.data import Candles, chained_series  # noqa: E402
from tuning.sweep import evaluate_candidates  # noqa: E402


def timed(run: Callable[[], Any], repeats: int = 1) -> tuple[Any, float, float]:
    """Result, best CPU seconds and best wall seconds over ``repeats`` runs."""
    best_cpu = best_wall = float("inf")
    result = None
    for _ in range(repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        result = run()
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    return result, best_cpu, best_wall


def pairs(count: int) -> list[tuple[int, int]]:
    grid = [(fast, slow) for fast in range(2, 42) for slow in range(45, 295, 10)]
    return grid[:count]


# --- fluxtrade ------------------------------------------------------------------------------


def flux_single(candles: Candles, fast: int = peers.FAST, slow: int = peers.SLOW) -> float:
    return float(backtest(peers.sma_crossover(fast, slow), candles, peers.COSTS).equity[-1])


def flux_sweep(candles: Candles, grid: list[tuple[int, int]]) -> np.ndarray:
    candidates = [
        Candidate(class_path=class_path(SMACrossover), params=peers.sma_params(f, s))
        for f, s in grid
    ]
    return combine(evaluate_candidates(candidates, candles, peers.COSTS), candles.bar_seconds)[
        "final_equity"
    ]


# --- backtesting.py -------------------------------------------------------------------------


def backtesting_single(data: pd.DataFrame, fast: int = peers.FAST, slow: int = peers.SLOW) -> float:
    return float(peers.backtesting_stats(data, fast, slow)["Equity Final [$]"])


# --- backtrader -----------------------------------------------------------------------------


def backtrader_single(data: pd.DataFrame, fast: int = peers.FAST, slow: int = peers.SLOW) -> float:
    cerebro = peers.backtrader_cerebro(data, fast, slow)
    cerebro.run()
    return float(cerebro.broker.getvalue())


# --- vectorbt -------------------------------------------------------------------------------


def vectorbt_single(data: pd.DataFrame, fast: int = peers.FAST, slow: int = peers.SLOW) -> float:
    import vectorbt as vbt

    ma = vbt.MA.run(data["Close"], window=[fast, slow]).ma
    long = pd.DataFrame({"sma": ma.iloc[:, 0].to_numpy() > ma.iloc[:, 1].to_numpy()},
                        index=data.index)
    return float(peers.vectorbt_portfolio(data, long).final_value().iloc[0])


def vectorbt_sweep(data: pd.DataFrame, grid: list[tuple[int, int]], block: int = 100) -> np.ndarray:
    import vectorbt as vbt

    windows = sorted({w for pair in grid for w in pair})
    ma = vbt.MA.run(data["Close"], window=windows).ma.to_numpy()
    column = {w: i for i, w in enumerate(windows)}
    finals = []
    for start in range(0, len(grid), block):
        chunk = grid[start : start + block]
        long = pd.DataFrame(
            np.stack([ma[:, column[f]] > ma[:, column[s]] for f, s in chunk], axis=1),
            index=data.index,
        )
        portfolio = peers.vectorbt_portfolio(data, long)
        finals.append(portfolio.final_value().to_numpy())
        for metric in (portfolio.sharpe_ratio, portfolio.sortino_ratio, portfolio.calmar_ratio,
                       portfolio.max_drawdown, portfolio.trades.count,
                       portfolio.trades.win_rate, portfolio.trades.profit_factor):
            metric()
    return np.concatenate(finals)


# --- the run --------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--sweep-bars", type=int, default=100_000)
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--backtrader-bars", type=int, default=100_000)
    args = parser.parse_args()

    long_series = chained_series(args.bars)
    sweep_series = chained_series(args.sweep_bars)
    data = peers.frame(long_series)
    grid = pairs(args.candidates)
    warm = peers.frame(chained_series(5_000))
    print(f"machine: {os.cpu_count()} cores (shared), load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}\n")

    single: dict[str, tuple[int, float, float, float]] = {}
    final, cpu, wall = timed(lambda: flux_single(long_series), repeats=3)
    single["fluxtrade"] = (len(long_series), cpu, wall, final)
    backtesting_single(warm)
    final, cpu, wall = timed(lambda: backtesting_single(data))
    single["backtesting.py"] = (len(data), cpu, wall, final)
    bt_data = data.iloc[: args.backtrader_bars]
    final, cpu, wall = timed(lambda: backtrader_single(bt_data))
    single["backtrader"] = (len(bt_data), cpu, wall, final)
    vectorbt_single(warm)
    final, cpu, wall = timed(lambda: vectorbt_single(data), repeats=3)
    single["vectorbt"] = (len(data), cpu, wall, final)

    print(f"1. one candidate: SMA(10)/SMA(30), long-only, all-in, fee {peers.FEE:.1%}\n")
    print("| library | bars | CPU s | wall s | bars/s (CPU) | fluxtrade x |")
    print("|---|---:|---:|---:|---:|---:|")
    ours = single["fluxtrade"][0] / single["fluxtrade"][1]
    for name, (bars, cpu, wall, _) in single.items():
        rate = bars / cpu
        print(f"| {name} | {bars:,} | {cpu:.3f} | {wall:.3f} | {rate:,.0f} | {ours / rate:,.1f} |")

    sweep: dict[str, tuple[int, int, float, float]] = {}
    flux_sweep(chained_series(5_000), grid[:10])
    finals, cpu, wall = timed(lambda: flux_sweep(sweep_series, grid), repeats=2)
    sweep["fluxtrade"] = (len(grid), len(sweep_series), cpu, wall)
    sweep_data = peers.frame(sweep_series)
    vectorbt_sweep(peers.frame(chained_series(5_000)), grid[:10])
    vbt_finals, cpu, wall = timed(lambda: vectorbt_sweep(sweep_data, grid))
    sweep["vectorbt"] = (len(grid), len(sweep_series), cpu, wall)
    few = grid[:3]
    _, cpu, wall = timed(lambda: [backtesting_single(sweep_data, f, s) for f, s in few])
    sweep["backtesting.py"] = (len(few), len(sweep_series), cpu, wall)
    bt_sweep = sweep_data.iloc[: args.backtrader_bars // 5]
    _, cpu, wall = timed(lambda: [backtrader_single(bt_sweep, f, s) for f, s in few[:1]])
    sweep["backtrader"] = (1, len(bt_sweep), cpu, wall)
    gaps = np.abs(vbt_finals / finals - 1)

    print(f"\n2. sweep: {len(grid):,} SMA-crossover candidates x {len(sweep_series):,} bars, "
          "one process\n")
    print("| library | candidates x bars run | CPU s | wall s | candidate-bars/s (CPU) |"
          " fluxtrade x |")
    print("|---|---:|---:|---:|---:|---:|")
    ours_sweep = sweep["fluxtrade"][0] * sweep["fluxtrade"][1] / sweep["fluxtrade"][2]
    for name, (count, bars, cpu, wall) in sweep.items():
        rate = count * bars / cpu
        print(f"| {name} | {count:,} x {bars:,} | {cpu:.2f} | {wall:.2f} | {rate:,.0f} |"
              f" {ours_sweep / rate:,.1f} |")
    print(f"\nfinal equities, vectorbt against fluxtrade over the {len(grid):,} candidates: median "
          f"difference {np.median(gaps):.1e}, {np.mean(gaps <= 1e-3):.0%} within 0.1%, worst "
          f"{gaps.max():.1e} (vectorbt's running-sum averages break exact ties of the two SMAs "
          "by rounding noise; fluxtrade reads a tie as not long)")
    ratio = ours / (single["backtesting.py"][0] / single["backtesting.py"][1])
    vbt_rate = sweep["vectorbt"][0] * sweep["vectorbt"][1] / sweep["vectorbt"][2]
    print(f"goal: one candidate >= 100x backtesting.py: {ratio:,.0f}x "
          f"({'met' if ratio >= 100 else 'NOT met'})")
    print(f"goal: sweep >= 20M candidate-bars/s per core: {ours_sweep / 1e6:,.1f}M "
          f"({'met' if ours_sweep >= 20e6 else 'NOT met'})")
    print(f"goal: sweep faster than vectorbt's sweep: {ours_sweep / vbt_rate:,.1f}x "
          f"({'met' if ours_sweep > vbt_rate else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
