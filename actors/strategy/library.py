"""The strategy library: one piece of code per strategy, used live and in backtests.

A strategy maps a window of bars to a target weight in [-1, 1] for *every* bar of the window,
vectorised and with no look-ahead (output[t] uses bars[:t+1]); the live engine takes the last value,
a backtest takes them all. Each strategy declares its style, the regimes it suits, its parameters
with the ranges a tuner may search, and how many bars it needs before it speaks.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from actors.intelligence.indicators import FloatArray, sma

Style = Literal["intraday", "swing"]


@dataclass(frozen=True)
class OHLCV:
    """Aligned bar arrays of one symbol, oldest first."""

    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray

    def __len__(self) -> int:
        return len(self.close)

    @classmethod
    def from_rows(cls, rows: list[tuple[float, float, float, float, float]]) -> OHLCV:
        array = np.asarray(rows, dtype=float).reshape(-1, 5)
        return cls(*(np.ascontiguousarray(array[:, i]) for i in range(5)))


class StrategyParams(BaseModel):
    """Base of each strategy's parameters: frozen, and unknown keys are an error."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Strategy(ABC):
    """A trading rule with declared style, regimes and parameter ranges."""

    style: ClassVar[Style]
    regimes: ClassVar[frozenset[str]]
    Params: ClassVar[type[StrategyParams]]
    param_ranges: ClassVar[dict[str, tuple[float, float]]]

    def __init__(self, name: str, params: dict[str, Any] | None = None) -> None:
        self.name = name
        self.params = self.Params.model_validate(params or {})

    @property
    @abstractmethod
    def warmup(self) -> int:
        """Bars needed before the first non-zero target."""

    @abstractmethod
    def weights(self, bars: OHLCV, flux: float = 0.0) -> FloatArray:
        """Target weight in [-1, 1] at every bar; 0 while warming up. ``flux`` in [0, 1] makes
        entry thresholds stricter in turbulent markets."""


class SMACrossoverParams(StrategyParams):
    fast: int = Field(10, ge=2)
    slow: int = Field(30, ge=3)
    full_gap: float = Field(0.005, gt=0.0)

    @model_validator(mode="after")
    def _fast_below_slow(self) -> SMACrossoverParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be below slow ({self.slow})")
        return self


class SMACrossover(Strategy):
    """Long when the fast SMA is above the slow one; conviction grows with the gap.

    Weight = clip(gap / full_gap, -1, 1) with gap = fast/slow - 1, where a turbulent market (high
    flux) widens ``full_gap`` so the strategy needs a clearer trend to commit fully.
    """

    style = "swing"
    regimes = frozenset({"trending_up", "trending_down"})
    Params = SMACrossoverParams
    param_ranges = {"fast": (3, 50), "slow": (10, 200), "full_gap": (0.001, 0.02)}

    @property
    def warmup(self) -> int:
        return self.params.slow

    def weights(self, bars: OHLCV, flux: float = 0.0) -> FloatArray:
        p = self.params
        gap = sma(bars.close, p.fast) / sma(bars.close, p.slow) - 1.0
        scale = p.full_gap * (1.0 + flux)
        return np.nan_to_num(np.clip(gap / scale, -1.0, 1.0), nan=0.0)


class MomentumParams(StrategyParams):
    lookback: int = Field(24, ge=2)
    threshold: float = Field(1.0, gt=0.0)


class Momentum(Strategy):
    """Time-series momentum: trade the sign of the lookback return once it is significant.

    z = log(close_t / close_{t-L}) / (sigma * sqrt(L)), sigma the std of one-bar log returns over
    the same window. Below ``threshold * (1 + flux)`` the strategy stays flat; above, the weight
    grows linearly and saturates at twice the threshold.
    """

    style = "intraday"
    regimes = frozenset({"trending_up", "trending_down", "high_volatility"})
    Params = MomentumParams
    param_ranges = {"lookback": (6, 200), "threshold": (0.25, 3.0)}

    @property
    def warmup(self) -> int:
        return self.params.lookback + 1

    def weights(self, bars: OHLCV, flux: float = 0.0) -> FloatArray:
        p = self.params
        close = bars.close
        out = np.zeros(len(close))
        if len(close) <= p.lookback:
            return out
        log_close = np.log(close)
        returns = np.diff(log_close, prepend=np.nan)
        windows = np.lib.stride_tricks.sliding_window_view(returns, p.lookback)
        sigma = np.full(len(close), np.nan)
        sigma[p.lookback - 1 :] = windows.std(axis=1, ddof=1)
        move = np.full(len(close), np.nan)
        move[p.lookback :] = log_close[p.lookback :] - log_close[: -p.lookback]
        with np.errstate(divide="ignore", invalid="ignore"):
            z = move / (sigma * math.sqrt(p.lookback))
        threshold = p.threshold * (1.0 + flux)
        strength = np.clip((np.abs(z) - threshold) / threshold, 0.0, 1.0)
        weights = np.sign(z) * np.where(np.abs(z) > threshold, np.maximum(strength, 0.5), 0.0)
        return np.nan_to_num(weights, nan=0.0)
