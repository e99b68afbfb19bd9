"""The backtester: vectorised over bars and over many parameter sets at once.

Execution semantics (the tests in ``tests/tuning/test_backtest.py`` compute them by hand):

* **Signals.** A strategy gives a target weight ``w[t]`` in [-1, 1] at every bar, computed from
  bars ``[:t + 1]`` (its ``weights()``; no look-ahead). Long-only (``allow_short=False``, the live
  default) clips it at 0. ``weight_step > 0`` rounds it to multiples of the step, so a strategy
  whose conviction wobbles does not trade every bar; 0 trades every change.
* **Fills.** The signal of bar ``t``'s close is executed at bar ``t + 1``'s open: the position
  *held* during bar ``t + 1`` is ``w[t]`` (flat during bar 0; the last bar's signal is never
  executed). An order goes out only when the target changes; between changes the quantity is
  fixed and its value drifts with the price, as a real position would.
* **Sizing.** At the open ``o`` the order rebalances so that the position's value equals the
  target weight times the equity *after* the order's costs (both marked at ``o``): going all-in
  from cash leaves exactly zero cash, as in vectorbt's ``size=inf``. Quantities are fractional.
* **Costs.** The fill price is ``o * (1 + slippage)`` for a buy and ``o * (1 - slippage)`` for a
  sell; the fee is ``fee * |quantity| * fill price``, per side. Both are in basis points.
* **Marks.** Equity ``E[t] = cash + quantity * close[t]`` at every close.
* **Trades.** A round trip runs from leaving flat to returning to flat (or to a reversal); adding
  to or trimming a position does not start a new one. Its PnL is the change of equity between its
  start and its end, every fee included (a reversal's opening costs count to the trade it closes).
  A position still open at the end is a trade marked to the last close.

Because the order's size depends only on the equity and the weights, one order multiplies equity
by a factor that depends only on prices and weights: with ``x`` the drifted weight before the order,
``h`` the target, ``s`` the direction of the order and ``c = slippage + fee * (1 + s * slippage)``
its cost per unit of notional, ``E_after = E_before * (1 + c*s*x) / (1 + c*s*h)``. That closed form
is what makes the simulation a few array passes instead of a loop over bars.

The single-candidate path (:func:`backtest`) calls the live strategy code (``Strategy.weights``),
so what is backtested is what trades. Metrics are defined in :mod:`tuning.metrics`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat

from actors.strategy.library import Strategy
from tuning import metrics as m
from tuning.data import Candles

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Window = tuple[int, int]
"""Bars ``[start, stop)`` of a series."""

CELLS_PER_CHUNK = 1 << 18
"""Candidate-bars simulated at once: keeps a chunk's arrays near the CPU caches and bounded."""


class BacktestSettings(BaseModel):
    """Costs and rules of a backtest; frozen, so it can key results.

    Attributes:
        fee_bps: Fee per side in basis points of traded notional (10 = 0.1%).
        slippage_bps: Price concession per fill in basis points of the open.
        allow_short: Whether negative weights open shorts (else they mean flat).
        weight_step: Targets are rounded to multiples of this; 0 keeps them exact.
        initial_cash: Starting equity, in the quote currency.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    fee_bps: float = Field(10.0, ge=0.0, lt=10_000.0)
    slippage_bps: float = Field(2.0, ge=0.0, lt=10_000.0)
    allow_short: bool = False
    weight_step: float = Field(0.0, ge=0.0, le=1.0)
    initial_cash: PositiveFloat = 1.0


def held_positions(weights: npt.ArrayLike, settings: BacktestSettings) -> FloatArray:
    """Weights per bar (last axis) to the target weight *held* during each bar.

    Rounds to ``weight_step``, clips shorts when they are not allowed, and shifts by one bar: the
    weight of bar t's close is held from bar t + 1's open.
    """
    w = np.asarray(weights, dtype=np.float64)
    w = w[None] if w.ndim == 0 else w
    low, high = w.min(initial=0.0), w.max(initial=0.0)
    if not (low >= -1.0 and high <= 1.0):  # NaN fails both comparisons
        raise ValueError(f"weights must lie in [-1, 1] and not be NaN (a strategy returns 0 "
                         f"while warming up); got min {low}, max {high}")
    held = np.empty_like(w)
    held[..., 0] = 0.0
    shifted = held[..., 1:]
    if settings.weight_step > 0:
        np.divide(w[..., :-1], settings.weight_step, out=shifted)
        np.round(shifted, out=shifted)
        shifted *= settings.weight_step
        np.clip(shifted, -1.0, 1.0, out=shifted)
    else:
        shifted[...] = w[..., :-1]
    if not settings.allow_short:
        np.maximum(shifted, 0.0, out=shifted)
    return held


@dataclass(frozen=True)
class Simulation:
    """Everything one simulated chunk of candidates produced.

    Dense arrays are ``(candidates, bars)``; order arrays hold one entry per order, sorted by
    candidate and bar. Round trips are listed by the bar where they end (``n - 1`` for one still
    open), with their PnL in the quote currency.
    """

    held: FloatArray
    equity: FloatArray
    returns: FloatArray
    order_rows: IntArray
    order_bars: IntArray
    order_from: FloatArray
    order_to: FloatArray
    order_side: FloatArray
    equity_after: FloatArray
    units_after: FloatArray
    cash_after: FloatArray
    trip_rows: IntArray
    trip_bars: IntArray
    trip_pnl: FloatArray
    initial_cash: float


def _cumprod_by_row(factors: FloatArray, first: npt.NDArray[np.bool_]) -> FloatArray:
    """Running product of ``factors`` that restarts where ``first`` is set (a new candidate).

    Multiplies in order within each candidate, exactly as a loop would (no logs, no division).
    """
    if factors.size == 0:
        return factors.copy()
    starts = np.flatnonzero(first)
    lengths = np.diff(np.append(starts, factors.size))
    group = np.repeat(np.arange(starts.size), lengths)
    position = np.arange(factors.size) - np.repeat(starts, lengths)
    grid = np.ones((starts.size, int(lengths.max())))
    grid[group, position] = factors
    np.multiply.accumulate(grid, axis=1, out=grid)
    return grid[group, position]


def _segments(
    values: FloatArray, initial: float, rows: IntArray, bars: IntArray, rows_n: int, n: int
) -> FloatArray:
    """Dense ``(rows_n, n)`` array holding each order's value from its bar to the next order.

    Every row starts with ``initial`` until its first order. One ``np.repeat`` over the segments
    (a row's start, then each order) writes the array in a single pass.
    """
    before = np.searchsorted(rows, np.arange(rows_n))
    count = rows.size + rows_n
    position = np.arange(rows.size) + rows + 1
    starts = np.empty(count, dtype=np.int64)
    starts[before + np.arange(rows_n)] = np.arange(rows_n) * n
    starts[position] = rows * n + bars
    fill = np.full(count, initial)
    fill[position] = values
    lengths = np.diff(starts, append=rows_n * n)
    return np.repeat(fill, lengths).reshape(rows_n, n)


def simulate(
    open_: FloatArray, close: FloatArray, held: FloatArray, settings: BacktestSettings
) -> Simulation:
    """Simulate held-position rows over one price series (semantics in the module docstring)."""
    held = np.atleast_2d(held)
    rows_n, n = held.shape
    fee, slip, cash0 = settings.fee_bps / 1e4, settings.slippage_bps / 1e4, settings.initial_cash
    rows, cols = np.divmod(np.flatnonzero(held[:, 1:] != held[:, :-1]), n - 1)
    bars = cols + 1
    h_old, h_new = held[rows, cols], held[rows, bars]
    first = np.ones(rows.size, dtype=bool)
    first[1:] = rows[1:] != rows[:-1]
    prev_bars = np.empty_like(bars)
    prev_bars[1:] = bars[:-1]
    prev_bars[first] = bars[first]
    price = open_[bars]
    rel = price / open_[prev_bars]
    growth = 1.0 + h_old * (rel - 1.0)
    drift = h_old * rel / growth
    side = np.sign(h_new - drift)
    cost = slip + fee * (1.0 + side * slip)
    factor = growth * (1.0 + cost * side * drift) / (1.0 + cost * side * h_new)
    equity_after = _cumprod_by_row(factor, first) * cash0
    units = h_new * equity_after / price
    cash = equity_after * (1.0 - h_new)

    equity = _segments(units, 0.0, rows, bars, rows_n, n)
    equity *= close
    equity += _segments(cash, cash0, rows, bars, rows_n, n)
    returns = np.empty_like(equity)
    returns[:, 0] = equity[:, 0] / cash0
    np.divide(equity[:, 1:], equity[:, :-1], out=returns[:, 1:])
    returns -= 1.0

    closing = (h_old != 0) & (np.sign(h_new) != np.sign(h_old))
    still_open = np.flatnonzero(held[:, -1] != 0)
    trip_rows = np.concatenate((rows[closing], still_open))
    trip_bars = np.concatenate((bars[closing], np.full(still_open.size, n - 1)))
    trip_end = np.concatenate((equity_after[closing], equity[still_open, -1]))
    tiebreak = np.concatenate((np.zeros(closing.sum()), np.ones(still_open.size)))
    order = np.lexsort((tiebreak, trip_bars, trip_rows))
    trip_rows, trip_bars, trip_end = trip_rows[order], trip_bars[order], trip_end[order]
    trip_start = np.empty_like(trip_end)
    trip_start[1:] = trip_end[:-1]
    new_row = np.ones(trip_rows.size, dtype=bool)
    new_row[1:] = trip_rows[1:] != trip_rows[:-1]
    trip_start[new_row] = cash0
    return Simulation(
        held=held, equity=equity, returns=returns, order_rows=rows, order_bars=bars,
        order_from=h_old, order_to=h_new, order_side=side, equity_after=equity_after,
        units_after=units, cash_after=cash, trip_rows=trip_rows, trip_bars=trip_bars,
        trip_pnl=trip_end - trip_start, initial_cash=cash0,
    )


STAT_NAMES = (
    "bars", "sum_r", "sum_r2", "sum_r3", "sum_r4", "sum_down2", "growth", "max_drawdown",
    "trades", "wins", "profit", "loss", "exposed", "final_equity",
)
"""Per-window statistics: additive sums (so windows combine exactly) and per-window extremes."""


def window_stats(sim: Simulation, windows: Sequence[Window]) -> dict[str, FloatArray]:
    """The statistics of every candidate on every window: arrays ``(candidates, windows)``.

    A window is scored on its own bars: returns from bar to bar, drawdown from the equity at the
    window's start (its first peak), exposure, and the round trips that end inside it. Sums are
    row by row with numpy's ``sum`` (pairwise, in index order), so a candidate's numbers do not
    depend on which block or Tune trial it was simulated in.
    :func:`combine` turns any set of windows into metrics.
    """
    rows_n, n = sim.equity.shape
    out = {name: np.empty((rows_n, len(windows))) for name in STAT_NAMES}
    for i, (start, stop) in enumerate(windows):
        if not 0 <= start < stop <= n or stop - start < 2:
            raise ValueError(f"window [{start}, {stop}) does not fit {n} bars")
        base = sim.equity[:, start - 1] if start else np.full(rows_n, sim.initial_cash)
        r = sim.returns[:, start:stop]
        r2 = np.square(r)
        scratch = np.multiply(r2, r)
        out["sum_r3"][:, i] = scratch.sum(axis=1)
        out["sum_r4"][:, i] = np.multiply(r2, r2, out=scratch).sum(axis=1)
        np.minimum(r, 0.0, out=scratch)
        out["sum_down2"][:, i] = np.square(scratch, out=scratch).sum(axis=1)
        equity = sim.equity[:, start:stop]
        peak = np.maximum.accumulate(equity, axis=1, out=scratch)
        np.maximum(peak, base[:, None], out=peak)
        inside = (sim.trip_bars >= start) & (sim.trip_bars < stop)
        rows, pnl = sim.trip_rows[inside], sim.trip_pnl[inside]
        out["bars"][:, i] = stop - start
        out["sum_r"][:, i] = r.sum(axis=1)
        out["sum_r2"][:, i] = r2.sum(axis=1)
        out["growth"][:, i] = equity[:, -1] / base
        out["max_drawdown"][:, i] = 1.0 - np.divide(equity, peak, out=peak).min(axis=1)
        out["trades"][:, i] = np.bincount(rows, minlength=rows_n)
        out["wins"][:, i] = np.bincount(rows[pnl > 0], minlength=rows_n)
        out["profit"][:, i] = np.bincount(rows, weights=np.maximum(pnl, 0.0), minlength=rows_n)
        out["loss"][:, i] = np.bincount(rows, weights=np.maximum(-pnl, 0.0), minlength=rows_n)
        out["exposed"][:, i] = _exposed(sim, start, stop, rows_n)
        out["final_equity"][:, i] = equity[:, -1]
    return out


def _exposed(sim: Simulation, start: int, stop: int, rows_n: int) -> FloatArray:
    """Bars of ``[start, stop)`` with a position, per row, from the orders (no dense pass)."""
    ends = np.empty_like(sim.order_bars)
    ends[:-1] = sim.order_bars[1:]
    ends[-1:] = sim.held.shape[1]
    last = np.ones(sim.order_rows.size, dtype=bool)
    last[:-1] = sim.order_rows[1:] != sim.order_rows[:-1]
    ends[last] = sim.held.shape[1]
    overlap = np.minimum(ends, stop) - np.maximum(sim.order_bars, start)
    held = np.where(sim.order_to != 0, np.maximum(overlap, 0), 0)
    return np.bincount(sim.order_rows, weights=held, minlength=rows_n)


def combine(
    stats: dict[str, FloatArray], bar_seconds: float, columns: Sequence[int] | None = None
) -> dict[str, FloatArray]:
    """Metrics of each candidate over a set of windows taken together (default: all of them).

    Returns pool the windows' bars (one mean and one deviation over all of them); total return
    compounds the windows' growth; drawdown is the worst within any one window; trades, wins and
    PnL add up. See :mod:`tuning.metrics` for the formulas.
    """
    pick = slice(None) if columns is None else list(columns)
    total = {name: stats[name][:, pick] for name in STAT_NAMES}
    n = total["bars"].sum(axis=1)
    mean = total["sum_r"].sum(axis=1) / n
    variance = (total["sum_r2"].sum(axis=1) - n * mean * mean) / (n - 1)
    std = np.sqrt(np.maximum(variance, 0.0))
    downside = np.sqrt(total["sum_down2"].sum(axis=1) / n)
    total_return = total["growth"].prod(axis=1) - 1.0
    drawdown = total["max_drawdown"].max(axis=1)
    growth = m.cagr(total_return, int(n[0]) if n.size else 1, bar_seconds)
    trades = total["trades"].sum(axis=1)
    wins = total["wins"].sum(axis=1)
    return {
        "total_return": total_return,
        "cagr": growth,
        "sharpe": m.sharpe(mean, std, bar_seconds),
        "sortino": m.sortino(mean, downside, bar_seconds),
        "calmar": m.calmar(growth, drawdown),
        "max_drawdown": drawdown,
        "win_rate": np.divide(wins, trades, out=np.zeros_like(wins), where=trades > 0),
        "profit_factor": m.profit_factor(
            total["profit"].sum(axis=1), total["loss"].sum(axis=1)
        ),
        "exposure": total["exposed"].sum(axis=1) / n,
        "trades": trades,
        "final_equity": total["final_equity"][:, -1],
        "confidence": m.probabilistic_sharpe(
            mean, std, total["sum_r3"].sum(axis=1), total["sum_r4"].sum(axis=1), n
        ),
    }


def evaluate_weights(
    weights: FloatArray,
    candles: Candles,
    settings: BacktestSettings,
    windows: Sequence[Window] | None = None,
) -> dict[str, FloatArray]:
    """Window statistics (:func:`window_stats`) of many weight rows (default: whole series).

    Rows are simulated in chunks of about :data:`CELLS_PER_CHUNK` candidate-bars, so a sweep of
    any size runs in bounded memory.
    """
    weights = np.atleast_2d(weights)
    windows = list(windows or [(0, len(candles))])
    per_chunk = max(1, CELLS_PER_CHUNK // weights.shape[1])
    parts = []
    for start in range(0, weights.shape[0], per_chunk):
        held = held_positions(weights[start : start + per_chunk], settings)
        sim = simulate(candles.bars.open, candles.bars.close, held, settings)
        parts.append(window_stats(sim, windows))
    return {name: np.concatenate([p[name] for p in parts]) for name in STAT_NAMES}


@dataclass(frozen=True)
class BacktestResult:
    """One candidate's backtest: the equity curve, its orders and trades, and the metrics.

    ``fills`` has one row per order (all filled at the open); ``trades`` one row per round trip.
    """

    equity: FloatArray
    held: FloatArray
    fills: pd.DataFrame
    trades: pd.DataFrame
    metrics: m.Metrics


def _fills_frame(sim: Simulation, candles: Candles, settings: BacktestSettings) -> pd.DataFrame:
    bars = sim.order_bars
    units_before = np.concatenate(([0.0], sim.units_after[:-1]))
    quantity = sim.units_after - units_before
    price = candles.bars.open[bars] * (1.0 + sim.order_side * settings.slippage_bps / 1e4)
    return pd.DataFrame({
        "bar": bars,
        "time": candles.timestamps[bars],
        "side": pd.Categorical.from_codes((quantity > 0).astype(np.int8), ["sell", "buy"]),
        "quantity": np.abs(quantity),
        "price": price,
        "fee": np.abs(quantity) * price * settings.fee_bps / 1e4,
        "target": sim.order_to,
        "units": sim.units_after,
        "cash": sim.cash_after,
        "equity": sim.equity_after,
    })


def _trades_frame(sim: Simulation, candles: Candles) -> pd.DataFrame:
    """Round trips with their entry: the order that left flat or reversed the position."""
    opens = (sim.order_to != 0) & (np.sign(sim.order_to) != np.sign(sim.order_from))
    entry_bars = sim.order_bars[opens]
    exits = sim.trip_bars
    closed = np.ones(exits.size, dtype=bool)
    if sim.held[0, -1] != 0:
        closed[-1] = False
    base = np.concatenate(([sim.initial_cash], np.cumsum(sim.trip_pnl)[:-1] + sim.initial_cash))
    return pd.DataFrame({
        "direction": np.sign(sim.order_to[opens]),
        "entry_bar": entry_bars,
        "entry_time": candles.timestamps[entry_bars],
        "exit_bar": exits,
        "exit_time": candles.timestamps[exits],
        "closed": closed,
        "pnl": sim.trip_pnl,
        "return": sim.trip_pnl / base,
    })


def backtest_weights(
    weights: npt.ArrayLike, candles: Candles, settings: BacktestSettings | None = None
) -> BacktestResult:
    """Backtest one row of target weights (one per bar) on ``candles``."""
    settings = settings or BacktestSettings()
    held = held_positions(np.asarray(weights, dtype=np.float64)[None, :], settings)
    sim = simulate(candles.bars.open, candles.bars.close, held, settings)
    numbers = combine(window_stats(sim, [(0, len(candles))]), candles.bar_seconds)
    metrics = m.Metrics(
        **{name: float(numbers[name][0]) for name in m.METRIC_NAMES if name != "trades"},
        trades=int(numbers["trades"][0]),
        final_equity=float(numbers["final_equity"][0]),
        bars=len(candles),
    )
    return BacktestResult(
        equity=sim.equity[0], held=sim.held[0], fills=_fills_frame(sim, candles, settings),
        trades=_trades_frame(sim, candles), metrics=metrics,
    )


def backtest(
    strategy: Strategy, candles: Candles, settings: BacktestSettings | None = None
) -> BacktestResult:
    """Backtest a live strategy object: its own ``weights()`` (flux 0) drive the simulation."""
    return backtest_weights(strategy.weights(candles.bars, 0.0), candles, settings)
