"""The strategy library: one piece of code per strategy, used live and in backtests.

A strategy maps a window of bars to a target weight in [-1, 1] for *every* bar of the window,
vectorised and with no look-ahead (output[t] uses bars[:t+1]); the live engine takes the last value,
a backtest takes them all. Each strategy declares its style, the regimes it suits, its parameters
with the ranges a tuner may search, and how many bars it needs before it speaks.

Besides ``weights`` every strategy answers ``signals(bars, flux) -> (weights, confidence)`` with a
confidence in [0, 1] per bar, and ``latest(bars, flux)``: the last bar's pair, which the live
engine calls. ``latest`` equals the last element of ``signals`` (the forecaster computes only the
last window there, which is the same arithmetic on one window instead of all of them).

Strategies that read exponential averages (EMA, Wilder's RSI and ATR) forget their seed
geometrically; their ``warmup`` is long enough that a live window of ``data.history_bars`` bars
gives the value of the full history to well under 1e-6 (tested), and their weight is 0 before it.

Every threshold tightens with the flux level (0 calm .. 1 turbulent): a turbulent market needs a
clearer signal before a strategy commits, and risk shrinks the sizes on top.
"""

from __future__ import annotations

import math
import weakref
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
from loguru import logger
from pydantic import BaseModel, ConfigDict, Field, model_validator

from actors.intelligence.forecaster import DEFAULT_MODEL_PATH, Forecaster, load_forecaster
from actors.intelligence.indicators import (
    FloatArray,
    atr,
    bollinger,
    donchian,
    ema,
    rsi,
    sma,
)

Style = Literal["intraday", "swing"]
ALL_REGIMES = frozenset({"trending_up", "trending_down", "ranging", "high_volatility"})


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

    def signals(self, bars: OHLCV, flux: float = 0.0) -> tuple[FloatArray, FloatArray]:
        """Weight and confidence in [0, 1] at every bar.

        The default reads conviction as confidence (``|weight|``); strategies with a better
        measure of how sure they are (agreement, a probability) override it.
        """
        weights = self.weights(bars, flux)
        return weights, np.abs(weights)

    def latest(self, bars: OHLCV, flux: float = 0.0) -> tuple[float, float]:
        """The last bar's weight and confidence: what the live engine trades on."""
        weights, confidence = self.signals(bars, flux)
        return float(weights[-1]), float(confidence[-1])

    @property
    def unavailable(self) -> str:
        """Why the strategy cannot speak (it is then flat), or "" when it can."""
        return ""

    def use_forecaster(self, model: Forecaster | None, reason: str) -> bool:
        """Trade a new forecaster from now on (``None``: none; ``reason`` says why).

        Returns whether this strategy reads a forecaster at all; the trainer deploys re-trained
        models through it.
        """
        return False

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Declared style, regimes, parameter defaults and tuning ranges, for docs and tuners."""
        defaults = cls.Params().model_dump()
        return {
            "class": cls.__name__,
            "style": cls.style,
            "regimes": sorted(cls.regimes),
            "params": defaults,
            "param_ranges": dict(cls.param_ranges),
        }


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


def _zero_before(weights: FloatArray, warmup: int) -> FloatArray:
    """Weights are 0 until ``warmup`` bars exist (index ``warmup - 1`` is the first that speaks)."""
    out = np.nan_to_num(weights, nan=0.0)
    out[: max(warmup - 1, 0)] = 0.0
    return out


def _held(entry: np.ndarray, exit_: np.ndarray, max_hold: int) -> tuple[np.ndarray, np.ndarray]:
    """Whether a position opened by ``entry`` is still held at every bar, and since which bar.

    Held at ``t`` when an entry fired within the last ``max_hold`` bars and no exit fired since.
    Written over "last entry" and "last exit" indices rather than as a running position, so the
    answer at ``t`` depends on the last ``max_hold`` bars only: a live window that covers them
    gives the same answer as the full history, which a path-dependent loop could not promise.

    Returns:
        ``(held, last_entry)``: the mask and the index of the entry each held bar belongs to
        (-1 where none).
    """
    index = np.arange(entry.size)
    last_entry = np.maximum.accumulate(np.where(entry, index, -1))
    last_exit = np.maximum.accumulate(np.where(exit_, index, -1))
    held = (last_entry >= 0) & (last_entry > last_exit) & (index - last_entry < max_hold)
    return held, last_entry


class EMAMomentumParams(StrategyParams):
    fast: int = Field(12, ge=2)
    slow: int = Field(48, ge=3)
    atr_period: int = Field(14, ge=2)
    threshold: float = Field(0.25, ge=0.0)
    full_atr: float = Field(1.0, gt=0.0)

    @model_validator(mode="after")
    def _fast_below_slow(self) -> EMAMomentumParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be below slow ({self.slow})")
        return self


class EMAMomentum(Strategy):
    """Trend following on the EMA spread measured in ATRs (a volatility-normalised MACD).

    ``s = (EMA_fast - EMA_slow) / ATR``; flat while ``|s| <= threshold * (1 + flux)``, then the
    weight grows linearly and reaches ``±1`` ``full_atr`` ATRs beyond the threshold. Measuring
    the spread in ATRs makes one threshold serve quiet and hectic markets alike.
    """

    style = "intraday"
    regimes = frozenset({"trending_up", "trending_down"})
    Params = EMAMomentumParams
    param_ranges = {
        "fast": (3, 50), "slow": (10, 100), "atr_period": (5, 50),
        "threshold": (0.0, 1.5), "full_atr": (0.25, 3.0),
    }

    @property
    def warmup(self) -> int:
        return 4 * max(self.params.slow, self.params.atr_period)

    def weights(self, bars: OHLCV, flux: float = 0.0) -> FloatArray:
        p = self.params
        with np.errstate(divide="ignore", invalid="ignore"):
            spread = (ema(bars.close, p.fast) - ema(bars.close, p.slow)) / atr(
                bars.high, bars.low, bars.close, p.atr_period
            )
        threshold = p.threshold * (1.0 + flux)
        strength = np.clip((np.abs(spread) - threshold) / p.full_atr, 0.0, 1.0)
        return _zero_before(np.sign(spread) * strength, self.warmup)


class MeanReversionParams(StrategyParams):
    period: int = Field(20, ge=3)
    band: float = Field(2.0, gt=0.0)
    rsi_period: int = Field(14, ge=2)
    oversold: float = Field(30.0, gt=0.0, lt=50.0)
    overbought: float = Field(70.0, gt=50.0, lt=100.0)
    max_hold: int = Field(48, ge=1)


class MeanReversion(Strategy):
    """Fade an excursion beyond the Bollinger band that RSI confirms, until price is back at mid.

    Long entry: ``z = (close - SMA) / std < -band * (1 + flux / 2)`` and RSI below ``oversold``
    (short: the mirror). While held, the weight is ``clip(-z / band, 0, 1)``: full at the band,
    shrinking as price reverts and 0 at the mean, which is the exit; a position not back at the
    mean after ``max_hold`` bars is dropped (the excursion was a new trend, not noise).
    Confidence is how deep RSI sits in its extreme zone.
    """

    style = "intraday"
    regimes = frozenset({"ranging"})
    Params = MeanReversionParams
    param_ranges = {
        "period": (10, 100), "band": (1.0, 3.5), "rsi_period": (5, 30),
        "oversold": (10.0, 45.0), "overbought": (55.0, 90.0), "max_hold": (6, 200),
    }

    @property
    def warmup(self) -> int:
        return max(self.params.period, 10 * self.params.rsi_period) + self.params.max_hold

    def signals(self, bars: OHLCV, flux: float = 0.0) -> tuple[FloatArray, FloatArray]:
        p = self.params
        mid, upper, _ = bollinger(bars.close, p.period, p.band)
        strength = rsi(bars.close, p.rsi_period)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(upper > mid, (bars.close - mid) / ((upper - mid) / p.band), 0.0)
        entry_band = p.band * (1.0 + flux / 2.0)
        long_held, _ = _held((z < -entry_band) & (strength < p.oversold), z >= 0.0, p.max_hold)
        short_held, _ = _held((z > entry_band) & (strength > p.overbought), z <= 0.0, p.max_hold)
        depth = np.clip(np.abs(z) / p.band, 0.0, 1.0)
        weights = np.where(long_held, depth, 0.0) - np.where(short_held, depth, 0.0)
        extreme = np.where(
            long_held,
            (50.0 - strength) / (50.0 - p.oversold),
            np.where(short_held, (strength - 50.0) / (p.overbought - 50.0), 0.0),
        )
        weights = _zero_before(weights, self.warmup)
        confidence = np.where(weights != 0.0, np.clip(np.nan_to_num(extreme), 0.0, 1.0), 0.0)
        return weights, confidence

    def weights(self, bars: OHLCV, flux: float = 0.0) -> FloatArray:
        return self.signals(bars, flux)[0]


class DonchianBreakoutParams(StrategyParams):
    channel: int = Field(48, ge=2)
    exit_channel: int = Field(24, ge=2)
    max_hold: int = Field(96, ge=1)
    flux_buffer: float = Field(0.1, ge=0.0)
    volume_factor: float = Field(1.5, ge=0.0)

    @model_validator(mode="after")
    def _exit_inside_entry(self) -> DonchianBreakoutParams:
        if self.exit_channel > self.channel:
            raise ValueError(
                f"exit_channel ({self.exit_channel}) must not exceed channel ({self.channel})"
            )
        return self


class DonchianBreakout(Strategy):
    """Turtle-style breakout: enter on a close beyond the prior ``channel``-bar high or low.

    The channel excludes the current bar (its own high is always >= its close). In turbulent
    markets the close must clear the channel by ``flux_buffer * flux`` channel widths, to skip
    the false breakouts noise produces. A long is held until the close falls below the prior
    ``exit_channel``-bar low (short: mirror) or for ``max_hold`` bars at most. Confidence is 1
    when the breakout bar traded ``volume_factor`` times the channel's mean volume, else 0.6.
    """

    style = "swing"
    regimes = frozenset({"trending_up", "trending_down", "high_volatility"})
    Params = DonchianBreakoutParams
    param_ranges = {
        "channel": (10, 200), "exit_channel": (5, 100), "max_hold": (12, 400),
        "flux_buffer": (0.0, 0.5), "volume_factor": (1.0, 3.0),
    }

    @property
    def warmup(self) -> int:
        return self.params.channel + 1 + self.params.max_hold

    def signals(self, bars: OHLCV, flux: float = 0.0) -> tuple[FloatArray, FloatArray]:
        p = self.params
        close = bars.close
        upper, lower, _ = (_prior(x) for x in donchian(bars.high, bars.low, p.channel))
        exit_upper, exit_lower, _ = (
            _prior(x) for x in donchian(bars.high, bars.low, p.exit_channel)
        )
        buffer = p.flux_buffer * flux * (upper - lower)
        long_held, long_from = _held(close > upper + buffer, close < exit_lower, p.max_hold)
        short_held, short_from = _held(close < lower - buffer, close > exit_upper, p.max_hold)
        latest_long = long_held & (~short_held | (long_from > short_from))
        latest_short = short_held & ~latest_long
        weights = _zero_before(latest_long.astype(float) - latest_short.astype(float), self.warmup)
        confirmed = bars.volume >= p.volume_factor * _prior(sma(bars.volume, p.channel))
        entry = np.where(latest_long, long_from, short_from).clip(min=0)
        confidence = np.where(weights != 0.0, np.where(confirmed[entry], 1.0, 0.6), 0.0)
        return weights, confidence

    def weights(self, bars: OHLCV, flux: float = 0.0) -> FloatArray:
        return self.signals(bars, flux)[0]


def _prior(x: FloatArray) -> FloatArray:
    """Shift one bar later, so the value at ``t`` describes bars up to ``t - 1``."""
    out = np.full(x.size, np.nan)
    out[1:] = x[:-1]
    return out


class ForecasterParams(StrategyParams):
    model_path: str = DEFAULT_MODEL_PATH
    threshold: float = Field(0.02, ge=0.0, lt=0.5)
    full_edge: float = Field(0.1, gt=0.0, le=0.5)

    @model_validator(mode="after")
    def _edge_beyond_threshold(self) -> ForecasterParams:
        if self.full_edge <= self.threshold:
            raise ValueError(
                f"full_edge ({self.full_edge}) must exceed threshold ({self.threshold})"
            )
        return self


def _edge_weights(
    proba: FloatArray, threshold: float, full_edge: float
) -> tuple[FloatArray, FloatArray]:
    """Weight and confidence from P(up): flat inside ``0.5 ± threshold``, full at ``full_edge``."""
    edge = np.nan_to_num(proba - 0.5, nan=0.0)
    span = max(full_edge - threshold, 1e-12)
    weights = np.sign(edge) * np.clip((np.abs(edge) - threshold) / span, 0.0, 1.0)
    return weights, np.clip(np.abs(edge) / full_edge, 0.0, 1.0)


class ForecasterStrategy(Strategy):
    """Trade the torch forecaster's probability that the next bar closes up.

    ``edge = P(up) - 0.5``; flat while ``|edge| <= threshold * (1 + flux)``, full weight at
    ``full_edge``. Confidence is ``|edge| / full_edge``. Without weights on disk the strategy is
    flat and says why (``unavailable``) instead of guessing.

    The model's out-of-sample accuracy is about 0.61 against 0.54 for the best naive baseline
    (see ``data/models/forecaster_report.json``); much of that edge is the bounce of 5-minute
    closes between bid and ask, which a taker pays away in spread and fees.
    """

    style = "intraday"
    regimes = ALL_REGIMES
    Params = ForecasterParams
    param_ranges = {"threshold": (0.0, 0.1), "full_edge": (0.02, 0.3)}

    def __init__(self, name: str, params: dict[str, Any] | None = None) -> None:
        super().__init__(name, params)
        loaded = load_forecaster(self.params.model_path)
        self.use_forecaster(loaded if isinstance(loaded, Forecaster) else None, str(loaded))

    @property
    def unavailable(self) -> str:
        return self._unavailable

    def use_forecaster(self, model: Forecaster | None, reason: str) -> bool:
        self.model = model
        self._unavailable = "" if model is not None else reason
        if self._unavailable:
            logger.bind(agent_id="strategy").warning("{} is flat: {}", self.name, reason)
        return True

    @property
    def warmup(self) -> int:
        return self.model.required_bars if self.model is not None else 1

    def _threshold(self, flux: float) -> float:
        return min(self.params.threshold * (1.0 + flux), self.params.full_edge * (1 - 1e-9))

    def probabilities(self, bars: OHLCV) -> FloatArray:
        """P(next bar up) at every bar; NaN in warm-up or without a model."""
        if self.model is None:
            return np.full(len(bars), np.nan)
        return self.model.predict_series(_columns(bars))

    def signals(self, bars: OHLCV, flux: float = 0.0) -> tuple[FloatArray, FloatArray]:
        return _edge_weights(
            self.probabilities(bars), self._threshold(flux), self.params.full_edge
        )

    def weights(self, bars: OHLCV, flux: float = 0.0) -> FloatArray:
        return self.signals(bars, flux)[0]

    def latest(self, bars: OHLCV, flux: float = 0.0) -> tuple[float, float]:
        if self.model is None or len(bars) < self.model.required_bars:
            return 0.0, 0.0
        proba = np.array([_latest_proba(self.model, bars)])
        weights, confidence = _edge_weights(proba, self._threshold(flux), self.params.full_edge)
        return float(weights[0]), float(confidence[0])


def _columns(bars: OHLCV) -> dict[str, FloatArray]:
    return {
        "open": bars.open, "high": bars.high, "low": bars.low,
        "close": bars.close, "volume": bars.volume,
    }


_LATEST: weakref.WeakKeyDictionary[Forecaster, tuple[bytes, float]] = weakref.WeakKeyDictionary()


def _latest_proba(model: Forecaster, bars: OHLCV) -> float:
    """P(up) after the last bar, remembered for the window it was computed on.

    The forecaster strategy and the ensemble ask the same model about the same window in the
    same cycle; the key is the model itself (held weakly: a model deployed in its place is a
    different key) and the window's bytes, so a different window is never answered from it.
    """
    need = model.required_bars
    columns = {k: v[-need:] for k, v in _columns(bars).items()}
    key = np.concatenate(list(columns.values())).tobytes()
    remembered = _LATEST.get(model)
    if remembered is not None and remembered[0] == key:
        return remembered[1]
    proba = model.predict_proba(columns)
    _LATEST[model] = (key, proba)
    return proba


TECHNICAL: dict[str, type[Strategy]] = {
    "sma_crossover": SMACrossover,
    "momentum": Momentum,
    "ema_momentum": EMAMomentum,
    "mean_reversion": MeanReversion,
    "donchian_breakout": DonchianBreakout,
}
"""Technical strategies an ensemble may combine, by name."""


class EnsembleParams(StrategyParams):
    members: tuple[str, ...] = (
        "sma_crossover", "ema_momentum", "mean_reversion", "donchian_breakout",
    )
    ml_weight: float = Field(0.4, ge=0.0, le=1.0)
    agreement_bonus: float = Field(0.5, ge=0.0, le=1.0)
    model_path: str = DEFAULT_MODEL_PATH
    ml_threshold: float = Field(0.1, ge=0.0, lt=0.5)
    ml_full_edge: float = Field(0.2, gt=0.0, le=0.5)

    @model_validator(mode="after")
    def _known_members(self) -> EnsembleParams:
        unknown = sorted(set(self.members) - set(TECHNICAL))
        if unknown or not self.members:
            raise ValueError(f"members: unknown {unknown}; known: {sorted(TECHNICAL)}")
        return self


def ensemble_blend(
    ml: FloatArray, technical: FloatArray, ml_weight: float, bonus: float
) -> tuple[FloatArray, FloatArray]:
    """Blend an ML and a technical weight, rewarding agreement.

    ``w = ml_weight * ml + (1 - ml_weight) * technical``, times ``1 + bonus`` where both point
    the same way, clipped to [-1, 1]. Confidence is ``|w|`` when they agree, ``0.75 |w|`` when
    one of them is flat and ``0.5 |w|`` when they disagree: two unrelated methods seeing the same
    thing is the strongest evidence the desk has.
    """
    blended = ml_weight * ml + (1.0 - ml_weight) * technical
    agree = ml * technical > 0
    conflict = ml * technical < 0
    weights = np.clip(np.where(agree, blended * (1.0 + bonus), blended), -1.0, 1.0)
    confidence = np.abs(weights) * np.where(agree, 1.0, np.where(conflict, 0.5, 0.75))
    return weights, confidence


class Ensemble(Strategy):
    """ML and technical signals in one: the forecaster against the mean of technical members.

    Members run with their default parameters. Without forecaster weights the ensemble is the
    technical mean alone (``ml_weight`` treated as 0; the forecaster logs why it is flat). See
    :func:`ensemble_blend` for the arithmetic.
    """

    style = "intraday"
    regimes = ALL_REGIMES
    Params = EnsembleParams
    param_ranges = {
        "ml_weight": (0.0, 1.0), "agreement_bonus": (0.0, 1.0),
        "ml_threshold": (0.0, 0.2), "ml_full_edge": (0.05, 0.4),
    }

    def __init__(self, name: str, params: dict[str, Any] | None = None) -> None:
        super().__init__(name, params)
        self.members = [TECHNICAL[m](f"{name}.{m}") for m in self.params.members]
        self.forecaster = ForecasterStrategy(
            f"{name}.forecaster",
            {
                "model_path": self.params.model_path,
                "threshold": self.params.ml_threshold,
                "full_edge": self.params.ml_full_edge,
            },
        )

    @property
    def warmup(self) -> int:
        return max([m.warmup for m in self.members] + [self.forecaster.warmup])

    def _ml_weight(self) -> float:
        return 0.0 if self.forecaster.unavailable else self.params.ml_weight

    def use_forecaster(self, model: Forecaster | None, reason: str) -> bool:
        return self.forecaster.use_forecaster(model, reason)

    def signals(self, bars: OHLCV, flux: float = 0.0) -> tuple[FloatArray, FloatArray]:
        technical = np.mean([m.weights(bars, flux) for m in self.members], axis=0)
        ml = self.forecaster.weights(bars, flux)
        return ensemble_blend(ml, technical, self._ml_weight(), self.params.agreement_bonus)

    def weights(self, bars: OHLCV, flux: float = 0.0) -> FloatArray:
        return self.signals(bars, flux)[0]

    def latest(self, bars: OHLCV, flux: float = 0.0) -> tuple[float, float]:
        technical = float(np.mean([m.latest(bars, flux)[0] for m in self.members]))
        ml = self.forecaster.latest(bars, flux)[0]
        weights, confidence = ensemble_blend(
            np.array([ml]), np.array([technical]), self._ml_weight(), self.params.agreement_bonus
        )
        return float(weights[0]), float(confidence[0])
