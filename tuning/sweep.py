"""Many candidates on one series: kernels make the weights, the backtester scores them per window.

This is the work inside one Tune trial (a batch of candidates) and inside the one-process
baseline the efficiency benchmark compares Tune with, so both run the same code.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tuning.backtest import (
    CELLS_PER_CHUNK,
    STAT_NAMES,
    BacktestSettings,
    FloatArray,
    Window,
    evaluate_weights,
)
from tuning.candidates import Candidate
from tuning.data import Candles
from tuning.kernels import kernel_for


def evaluate_candidates(
    candidates: Sequence[Candidate],
    candles: Candles,
    settings: BacktestSettings,
    windows: Sequence[Window] | None = None,
) -> dict[str, FloatArray]:
    """Window statistics of every candidate, arrays ``(candidates, windows)``.

    :func:`tuning.backtest.combine` turns them into metrics over any set of the windows.

    Candidates of one class share a kernel (its moving averages, z-scores...) across all the
    blocks they are simulated in; blocks keep memory bounded whatever the sweep's size.
    """
    windows = list(windows or [(0, len(candles))])
    out = {name: np.empty((len(candidates), len(windows))) for name in STAT_NAMES}
    groups: dict[str, list[int]] = {}
    for i, candidate in enumerate(candidates):
        groups.setdefault(candidate.class_path, []).append(i)
    per_block = max(1, CELLS_PER_CHUNK // len(candles))
    for index in groups.values():
        cls = candidates[index[0]].strategy_class()
        kernel = kernel_for(cls, candles.bars)
        for start in range(0, len(index), per_block):
            block = index[start : start + per_block]
            params = [cls.Params.model_validate(candidates[i].params) for i in block]
            numbers = evaluate_weights(kernel.rows(params), candles, settings, windows)
            for name in STAT_NAMES:
                out[name][block] = numbers[name]
    return out
