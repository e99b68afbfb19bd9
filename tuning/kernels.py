"""Weight rows of many parameter sets of one strategy class, sharing the work between them.

A sweep asks the same class for hundreds of parameter sets on the same bars. Most of a strategy's
work is shared: 594 SMA-crossover candidates need only 18 distinct moving averages, 625 momentum
candidates only 25 distinct z-scores. A kernel computes each shared array once (with the very
functions and the very arithmetic of ``Strategy.weights``; the forecaster and the ensemble run
their model once per series and map its probabilities per candidate with the library's own
functions) and broadcasts the per-candidate tail
over a block of candidates, so each row is bit-identical to what the live strategy returns
(``tests/tuning/test_kernels.py`` checks every kernel against ``Strategy.weights`` on the
bundled data). A class without a kernel falls back to calling ``Strategy.weights`` per candidate:
slower, never different.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from actors.intelligence.indicators import FloatArray, sma
from actors.strategy.library import (
    OHLCV,
    Ensemble,
    EnsembleParams,
    ForecasterParams,
    ForecasterStrategy,
    Momentum,
    MomentumParams,
    SMACrossover,
    SMACrossoverParams,
    Strategy,
    StrategyParams,
    _edge_weights,
    ensemble_blend,
)


class Kernel(Protocol):
    """Weight rows (candidates, bars) for a block of parameter sets of one class."""

    def rows(self, params: Sequence[StrategyParams]) -> FloatArray: ...


class GenericKernel:
    """Calls the live ``Strategy.weights`` once per parameter set."""

    def __init__(self, cls: type[Strategy], bars: OHLCV) -> None:
        self.cls = cls
        self.bars = bars

    def rows(self, params: Sequence[StrategyParams]) -> FloatArray:
        out = np.empty((len(params), len(self.bars)))
        for i, p in enumerate(params):
            out[i] = self.cls("candidate", p.model_dump()).weights(self.bars, 0.0)
        return out


class SMACrossoverKernel:
    """SMA crossover: each moving average once; candidates sharing (fast, slow) share the gap.

    Replacing a warm-up NaN of the gap by 0 before dividing gives the same 0 that
    ``nan_to_num`` gives after clipping, so the rows stay bit-identical to the strategy's.
    """

    def __init__(self, bars: OHLCV) -> None:
        self.close = bars.close
        self.averages: dict[int, FloatArray] = {}

    def _sma(self, window: int) -> FloatArray:
        if window not in self.averages:
            self.averages[window] = sma(self.close, window)
        return self.averages[window]

    def rows(self, params: Sequence[StrategyParams]) -> FloatArray:
        out = np.empty((len(params), len(self.close)))
        groups: dict[tuple[int, int], list[int]] = {}
        scales = np.empty(len(params))
        for i, p in enumerate(params):
            if not isinstance(p, SMACrossoverParams):
                raise TypeError(f"SMACrossoverKernel got {type(p).__name__}")
            groups.setdefault((p.fast, p.slow), []).append(i)
            scales[i] = p.full_gap
        for (fast, slow), index in groups.items():
            gap = np.nan_to_num(self._sma(fast) / self._sma(slow) - 1.0, nan=0.0)
            scale = scales[index]
            block = np.divide(gap[None, :], scale[:, None])
            np.clip(block, -1.0, 1.0, out=block)
            out[index] = block
        return out


class MomentumKernel:
    """Time-series momentum: one z-score per lookback, thresholds broadcast over it."""

    def __init__(self, bars: OHLCV) -> None:
        self.close = bars.close
        self.scores: dict[int, FloatArray] = {}

    def _z(self, lookback: int) -> FloatArray:
        """The z-score exactly as :meth:`Momentum.weights` computes it (NaN while warming up)."""
        if lookback not in self.scores:
            close = self.close
            log_close = np.log(close)
            returns = np.diff(log_close, prepend=np.nan)
            windows = np.lib.stride_tricks.sliding_window_view(returns, lookback)
            sigma = np.full(len(close), np.nan)
            sigma[lookback - 1 :] = windows.std(axis=1, ddof=1)
            move = np.full(len(close), np.nan)
            move[lookback:] = log_close[lookback:] - log_close[:-lookback]
            with np.errstate(divide="ignore", invalid="ignore"):
                self.scores[lookback] = move / (sigma * math.sqrt(lookback))
        return self.scores[lookback]

    def rows(self, params: Sequence[StrategyParams]) -> FloatArray:
        out = np.zeros((len(params), len(self.close)))
        groups: dict[int, list[int]] = {}
        thresholds = np.empty(len(params))
        for i, p in enumerate(params):
            if not isinstance(p, MomentumParams):
                raise TypeError(f"MomentumKernel got {type(p).__name__}")
            groups.setdefault(p.lookback, []).append(i)
            thresholds[i] = p.threshold
        for lookback, index in groups.items():
            if len(self.close) <= lookback:
                continue
            z = self._z(lookback)[None, :]
            threshold = thresholds[index][:, None]
            magnitude = np.abs(z)
            with np.errstate(invalid="ignore"):
                strength = np.clip((magnitude - threshold) / threshold, 0.0, 1.0)
                block = np.sign(z) * np.where(magnitude > threshold, np.maximum(strength, 0.5), 0.0)
            out[index] = np.nan_to_num(block, nan=0.0)
        return out


class ForecasterKernel:
    """The forecaster: the model's probabilities once, each candidate's edge mapping on them.

    Thresholds and edges only map P(up) to a weight, so the model (the expensive part) runs once
    per series instead of once per candidate; the mapping is the library's own code.
    """

    def __init__(self, bars: OHLCV) -> None:
        self.bars = bars
        self.probabilities: dict[str, FloatArray] = {}

    def rows(self, params: Sequence[StrategyParams]) -> FloatArray:
        out = np.empty((len(params), len(self.bars)))
        for i, p in enumerate(params):
            if not isinstance(p, ForecasterParams):
                raise TypeError(f"ForecasterKernel got {type(p).__name__}")
            strategy = ForecasterStrategy("candidate", p.model_dump())
            if p.model_path not in self.probabilities:
                self.probabilities[p.model_path] = strategy.probabilities(self.bars)
            proba = self.probabilities[p.model_path]
            out[i] = _edge_weights(proba, strategy._threshold(0.0), p.full_edge)[0]
        return out


class EnsembleKernel:
    """The ensemble: members' technical mean and the model's probabilities once per series."""

    def __init__(self, bars: OHLCV) -> None:
        self.bars = bars
        self.technical: dict[tuple[str, ...], FloatArray] = {}
        self.forecaster = ForecasterKernel(bars)

    def rows(self, params: Sequence[StrategyParams]) -> FloatArray:
        out = np.empty((len(params), len(self.bars)))
        for i, p in enumerate(params):
            if not isinstance(p, EnsembleParams):
                raise TypeError(f"EnsembleKernel got {type(p).__name__}")
            strategy = Ensemble("candidate", p.model_dump())
            if p.members not in self.technical:
                self.technical[p.members] = np.mean(
                    [m.weights(self.bars, 0.0) for m in strategy.members], axis=0
                )
            forecaster = strategy.forecaster
            ml = self.forecaster.rows([forecaster.params])[0]
            out[i] = ensemble_blend(
                ml, self.technical[p.members], strategy._ml_weight(), p.agreement_bonus
            )[0]
        return out


KERNELS: dict[type[Strategy], type] = {
    SMACrossover: SMACrossoverKernel,
    Momentum: MomentumKernel,
    ForecasterStrategy: ForecasterKernel,
    Ensemble: EnsembleKernel,
}
"""Classes with a shared-work kernel; any other class uses :class:`GenericKernel`."""


def kernel_for(cls: type[Strategy], bars: OHLCV) -> Kernel:
    """The kernel of ``cls`` over ``bars`` (exact class match: a subclass may change weights)."""
    kernel = KERNELS.get(cls)
    return kernel(bars) if kernel is not None else GenericKernel(cls, bars)
