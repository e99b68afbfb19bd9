"""Walk-forward selection: rank on training windows, judge on the validation windows after them.

The series (after the longest warm-up) is cut into ``folds`` consecutive blocks; each block is a
training window followed by its validation window. Candidates are ranked by the chosen metric over
all training windows pooled; the validation windows never enter the ranking, so the top
candidate's validation numbers are an honest out-of-sample estimate rather than the best of a
thousand lucky draws.

The top candidate is then *judged*, and either accepted or refused; the runner-up is never
promoted by looking at validation (that would turn validation into training). It must, on the
validation windows:

* reach the metric's threshold (Sharpe 1.0 by default),
* trade at least ``min_trades`` round trips, so the estimate rests on more than luck,
* show an edge at all: a probabilistic Sharpe ratio of at least ``min_confidence`` (0.95), the
  probability that its true Sharpe is above zero. On a random walk the best of many candidates
  fails this even when its raw validation number happens to clear the threshold.

The rank correlation between training and validation scores over all candidates says how much
the ranking carries out of sample: near 0 on noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from tuning.backtest import FloatArray, IntArray, Window, combine

SelectionMetric = Literal["sharpe", "sortino", "calmar", "win_rate"]

DEFAULT_THRESHOLDS: dict[str, float] = {
    "sharpe": 1.0, "sortino": 1.5, "calmar": 1.0, "win_rate": 0.5,
}
"""Validation bar per metric when the policy sets none (annualised ratios; win rate a share)."""


class SelectionPolicy(BaseModel):
    """How candidates are ranked and what the chosen one must show out of sample.

    Attributes:
        metric: Ranking and judging metric.
        threshold: Validation value the chosen candidate must reach (default per metric).
        min_trades: Round trips needed on the training windows to be ranked at all, and on the
            validation windows to be accepted.
        min_confidence: Probabilistic Sharpe ratio needed on validation (0 disables the check).
        folds: Number of train/validation blocks.
        train_fraction: Share of each block used for training.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: SelectionMetric = "sharpe"
    threshold: float | None = None
    min_trades: PositiveInt = 10
    min_confidence: float = Field(0.95, ge=0.0, le=1.0)
    folds: PositiveInt = 4
    train_fraction: float = Field(0.7, gt=0.0, lt=1.0)

    @property
    def bar(self) -> float:
        return DEFAULT_THRESHOLDS[self.metric] if self.threshold is None else self.threshold


@dataclass(frozen=True)
class Fold:
    train: Window
    validation: Window


def walk_forward(n_bars: int, folds: int, train_fraction: float, start: int = 0) -> list[Fold]:
    """Consecutive train/validation blocks over bars ``[start, n_bars)``.

    Args:
        n_bars: Length of the series.
        folds: Number of blocks.
        train_fraction: Share of each block used for training.
        start: First usable bar (after the longest warm-up, so no candidate is scored while it
            cannot yet trade).
    """
    block = (n_bars - start) // folds
    out = []
    for i in range(folds):
        first = start + i * block
        split = first + int(block * train_fraction)
        out.append(Fold((first, split), (split, first + block)))
    if any(f.train[1] - f.train[0] < 2 or f.validation[1] - f.validation[0] < 2 for f in out):
        raise ValueError(f"{n_bars - start} bars are too few for {folds} folds")
    return out


def windows_of(folds: Sequence[Fold]) -> list[Window]:
    """The windows to simulate, in the order :func:`select` expects: train, validation, ..."""
    return [w for f in folds for w in (f.train, f.validation)]


@dataclass(frozen=True)
class Selection:
    """The outcome of one walk-forward selection, numbers for every candidate included."""

    policy: SelectionPolicy
    train: dict[str, FloatArray]
    validation: dict[str, FloatArray]
    ranking: IntArray
    eligible: npt.NDArray[np.bool_]
    chosen: int | None
    accepted: bool
    reason: str
    rank_correlation: float

    def score(self, index: int, part: Literal["train", "validation"]) -> float:
        numbers = self.train if part == "train" else self.validation
        return float(numbers[self.policy.metric][index])



def _ranks(values: FloatArray) -> FloatArray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(values.size)
    ranks[order] = np.arange(values.size)
    return ranks


def rank_correlation(a: FloatArray, b: FloatArray) -> float:
    """Spearman correlation (ties broken by position); 0 when either side is constant."""
    if a.size < 3:
        return 0.0
    ra, rb = _ranks(np.nan_to_num(a, posinf=1e300, neginf=-1e300)), _ranks(
        np.nan_to_num(b, posinf=1e300, neginf=-1e300)
    )
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def select(
    stats: dict[str, FloatArray], n_folds: int, policy: SelectionPolicy, bar_seconds: float
) -> Selection:
    """Rank on training windows, judge the top candidate on validation windows.

    Args:
        stats: Window statistics, columns ordered as :func:`windows_of` (possibly repeated per
            symbol: column ``j`` is a training window when ``j`` is even).
        n_folds: Folds per symbol (only used to check the column count).
        policy: Metric, thresholds and minimum trades.
        bar_seconds: Bar interval, for annualisation.
    """
    columns = stats["bars"].shape[1]
    if columns % (2 * n_folds):
        raise ValueError(f"{columns} window columns do not make {n_folds} train/validation folds")
    train = combine(stats, bar_seconds, range(0, columns, 2))
    validation = combine(stats, bar_seconds, range(1, columns, 2))
    metric = policy.metric
    score = np.nan_to_num(train[metric], nan=-np.inf)
    eligible = train["trades"] >= policy.min_trades
    order = np.lexsort((-score, ~eligible))
    chosen = int(order[0]) if eligible.any() else None
    correlation = rank_correlation(train[metric][eligible], validation[metric][eligible])
    if chosen is None:
        return Selection(policy, train, validation, order, eligible, None, False,
                         f"no candidate made {policy.min_trades} trades in training", correlation)
    failures = []
    value = float(validation[metric][chosen])
    if not value >= policy.bar:
        failures.append(f"validation {metric} {value:.3g} < {policy.bar:.3g}")
    trades = int(validation["trades"][chosen])
    if trades < policy.min_trades:
        failures.append(f"validation trades {trades} < {policy.min_trades}")
    confidence = float(validation["confidence"][chosen])
    if confidence < policy.min_confidence:
        failures.append(f"confidence {confidence:.2f} < {policy.min_confidence:.2f}")
    accepted = not failures
    reason = (
        f"validation {metric} {value:.3g} >= {policy.bar:.3g} over {trades} trades, "
        f"confidence {confidence:.2f}"
        if accepted else "; ".join(failures)
    )
    return Selection(policy, train, validation, order, eligible, chosen, accepted, reason,
                     correlation)
