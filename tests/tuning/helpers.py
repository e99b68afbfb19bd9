"""Small series and a loop-by-loop reference backtester for the tuning tests."""

from __future__ import annotations

import numpy as np

from actors.strategy.library import OHLCV
from tuning.data import Candles


def candles(open_: list[float] | np.ndarray, close: list[float] | np.ndarray,
            bar_seconds: int = 300) -> Candles:
    """Bars with the given opens and closes (high/low enclose them), 5 minutes apart."""
    o, c = np.asarray(open_, dtype=float), np.asarray(close, dtype=float)
    bars = OHLCV(o, np.maximum(o, c) * 1.001, np.minimum(o, c) * 0.999, c, np.ones_like(c))
    stamps = np.datetime64("2026-01-01T00:00", "ns") + np.arange(len(c)) * np.timedelta64(
        bar_seconds, "s"
    )
    return Candles("TEST", bar_seconds, stamps, bars)


def random_walk(n: int, seed: int, sigma: float = 0.002) -> Candles:
    """A driftless geometric random walk: no strategy has an edge on it."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, sigma, n)))
    open_ = np.concatenate(([100.0], close[:-1])) * np.exp(rng.normal(0.0, sigma / 4, n))
    return candles(open_, close)


def reference_equity(o: np.ndarray, c: np.ndarray, weights: np.ndarray, fee: float, slip: float,
                     cash0: float, allow_short: bool) -> np.ndarray:
    """Cash and units bar by bar; each order's size is found by fixed-point iteration.

    Independent of the closed form in tuning.backtest: it only knows the rules (target weight of
    post-cost equity at the open, fill at open +- slippage, fee on the fill's notional).
    """
    cash, units, held = cash0, 0.0, 0.0
    out = []
    for t in range(len(o)):
        if t > 0:
            target = weights[t - 1] if allow_short else max(weights[t - 1], 0.0)
            if target != held:
                after = cash + units * o[t]
                for _ in range(100):
                    delta = target * after / o[t] - units
                    price = o[t] * (1 + np.sign(delta) * slip)
                    after = cash - delta * price - fee * abs(delta) * price + (units + delta) * o[t]
                delta = target * after / o[t] - units
                price = o[t] * (1 + np.sign(delta) * slip)
                cash -= delta * price + fee * abs(delta) * price
                units += delta
                held = target
        out.append(cash + units * c[t])
    return np.array(out)
