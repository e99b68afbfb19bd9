"""Per-agent training strategies behind one interface: fit on the past, score on the held-out tail.

Every strategy turns the window of :class:`CycleOutcome` rows into candidate parameters
(:meth:`TrainingStrategy.fit`, on the rows before the held-out tail only) and scores any
parameters sample by sample on the tail (:meth:`TrainingStrategy.score_samples`). Before and
after are scored on exactly the same samples, so the gate in :mod:`actors.trainer.trainer` can
judge the paired difference rather than two noisy means. Parameters are plain JSON so a version
stored in the ledger and read back is the same version, float for float.

The four strategies:

* :class:`EnsembleTraining`: strategy weights from each member's t-statistic of realised paper
  PnL, soft-thresholded so that noise leaves the weights where they are, moved by at most
  ``trainer.max_weight_step`` per deployment and kept within the learner's bounds.
* :class:`ForecasterTraining`: a CONTINUOUS session fine-tunes the live torch forecaster on the
  recent window (warm start: its weights and normalisation, a few epochs); a BATCH one re-fits it
  from scratch on the whole window. The model file is the version's artifact.
* :class:`AdaptersTraining`: replays broker outcomes (and broker logs, when configured) through
  :class:`PatternAnalyzer` and :class:`BrokerIntelligence` into per-broker recommendations.
* :class:`ConditionsTraining`: searches the regime thresholds around the live ones.
"""

from __future__ import annotations

import math
import uuid
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from actors.adapters.learning import (
    BrokerEvent,
    BrokerIntelligence,
    PatternAnalyzer,
    PerformanceTracker,
    Recommendation,
    ScoringWeights,
    read_logs,
)
from actors.adapters.learning.intelligence import UNKNOWN_SCORE
from actors.conditions.regime import WARMUP_LABEL, Regime, RegimeThresholds, regime_series
from actors.intelligence.forecaster import Forecaster, ForecasterConfig
from actors.learner import bounded_simplex
from actors.trainer.templates import TrainingTemplate
from cycle.config import PROJECT_ROOT, FluxtradeConfig
from cycle.messages import BrokerCall, CycleOutcome, TrainingMode

Params = dict[str, Any]


@dataclass(frozen=True)
class FitSettings:
    """What a session asks of a fit: its step size, its window (cycles) and its mode."""

    learning_rate: float
    window: int
    mode: TrainingMode


class TrainingStrategy(ABC):
    """How one agent type is trained and judged; see the module docstring."""

    agent: ClassVar[str]

    def __init__(self, config: FluxtradeConfig, template: TrainingTemplate) -> None:
        self.config = config
        self.template = template

    @abstractmethod
    def initial_params(self) -> Params:
        """Version 0: the parameters the live agent starts with, before any training."""

    def not_ready(self, outcomes: Sequence[CycleOutcome]) -> str:
        """Why a session cannot run on this window, or "" when it can."""
        if len(outcomes) < self.template.min_cycles:
            return f"{len(outcomes)} cycles of history, {self.template.min_cycles} needed"
        return ""

    @abstractmethod
    def fit(self, train: Sequence[CycleOutcome], current: Params, settings: FitSettings) -> Params:
        """Candidate parameters from the training rows (never the held-out tail)."""

    @abstractmethod
    def score_samples(
        self, params: Params, outcomes: Sequence[CycleOutcome], holdout_from: int
    ) -> np.ndarray:
        """Per-sample scores (higher is better) of ``params`` on cycles ``>= holdout_from``.

        Rows before ``holdout_from`` may serve as history (indicator warm-up) but are never
        scored; the same rows give the same samples whatever the parameters.
        """

    def discard(self, params: Params) -> None:
        """Release what a rejected candidate holds (a model file, for the forecaster)."""
        return None


# --------------------------------------------------------------------------------------------
# the strategy ensemble
# --------------------------------------------------------------------------------------------


EVIDENCE_T = 2.0
"""t-statistic of a strategy's mean PnL below which its record counts as noise (about 5%)."""

STILL = 1e-9
"""A weight move smaller than this is rounding: the live weights are kept as they are."""


class EnsembleTraining(TrainingStrategy):
    """Re-weights the ensemble from realised PnL with a soft-thresholded t-statistic.

    The target weight of member ``i`` is proportional to ``exp(lr * s_i)`` with
    ``s_i = sign(t_i) * max(|t_i| - 2, 0)`` and ``t_i`` the t-statistic of its mean per-cycle PnL
    over the training rows. Plain multiplicative weights on cumulative PnL drift on noise like a
    random walk; the threshold leaves a member at the common level until its record is
    significant. The deployed weights move from the live ones toward the target by at most
    ``max_weight_step`` (the whole move is scaled, so weights still sum to one) and stay within
    ``[learner.min_weight, learner.max_weight]``.
    """

    agent = "ensemble"

    def __init__(self, config: FluxtradeConfig, template: TrainingTemplate) -> None:
        super().__init__(config, template)
        self.names = [s.name for s in config.strategies]
        self.low = config.learner.min_weight
        self.high = config.learner.max_weight
        self.max_step = config.trainer.max_weight_step

    def initial_params(self) -> Params:
        total = sum(s.weight for s in self.config.strategies)
        return {"weights": {s.name: s.weight / total for s in self.config.strategies}}

    def pnl_matrix(self, outcomes: Sequence[CycleOutcome]) -> np.ndarray:
        """Rows of per-strategy PnL, columns in config order (absent = 0)."""
        return np.array(
            [[o.strategy_pnl.get(n, 0.0) for n in self.names] for o in outcomes], dtype=float
        ).reshape(len(outcomes), len(self.names))

    def _vector(self, params: Params) -> np.ndarray:
        weights = params["weights"]
        return np.array([weights.get(n, 0.0) for n in self.names], dtype=float)

    def fit(self, train: Sequence[CycleOutcome], current: Params, settings: FitSettings) -> Params:
        pnl = self.pnl_matrix(train)
        if len(pnl) < 2:
            return {"weights": dict(current["weights"])}
        mean = pnl.mean(axis=0)
        se = pnl.std(axis=0, ddof=1) / math.sqrt(len(pnl))
        t_stat = np.divide(mean, se, out=np.zeros_like(mean), where=se > 0)
        evidence = np.sign(t_stat) * np.maximum(np.abs(t_stat) - EVIDENCE_T, 0.0)
        log_raw = settings.learning_rate * evidence
        raw = np.exp(log_raw - log_raw.max())
        target = bounded_simplex(dict(zip(self.names, raw, strict=True)), self.low, self.high)
        live = self._vector(current)
        goal = np.array([target[n] for n in self.names])
        largest = float(np.max(np.abs(goal - live)))
        if largest < STILL:
            return {"weights": dict(current["weights"])}
        share = min(1.0, self.max_step / largest) if largest > 0 else 0.0
        moved = live + share * (goal - live)
        if np.any(moved < self.low - 1e-12) or np.any(moved > self.high + 1e-12):
            return {"weights": bounded_simplex(dict(zip(self.names, moved, strict=True)),
                                               self.low, self.high)}
        return {"weights": {n: float(w) for n, w in zip(self.names, moved, strict=True)}}

    def score_samples(
        self, params: Params, outcomes: Sequence[CycleOutcome], holdout_from: int
    ) -> np.ndarray:
        tail = [o for o in outcomes if o.cycle >= holdout_from]
        return self.pnl_matrix(tail) @ self._vector(params)


# --------------------------------------------------------------------------------------------
# bars of every symbol, shared by the forecaster and the conditions strategies
# --------------------------------------------------------------------------------------------


def replayed_outcomes(config: FluxtradeConfig, cycles: int | None = None) -> list[CycleOutcome]:
    """The config's candle files as the learn step would have recorded them, one cycle per bar
    (the first ``cycles``, or as many as every symbol has): history to train on before a run."""
    frames = {s: pd.read_csv(config.data.path_of(s)) for s in config.symbols}
    count = min(len(f) for f in frames.values())
    count = count if cycles is None else min(count, cycles)
    columns = ["open", "high", "low", "close", "volume"]
    rows = {s: f[columns].to_numpy() for s, f in frames.items()}
    stamps = pd.to_datetime(frames[config.symbols[0]]["timestamp"], utc=True)
    return [
        CycleOutcome(
            cycle=i + 1, market_time=stamps[i].to_pydatetime(), strategy_pnl={}, weights={},
            ohlcv={s: tuple(float(x) for x in r[i]) for s, r in rows.items()},
        )
        for i in range(count)
    ]


def symbol_bars(
    outcomes: Sequence[CycleOutcome], symbol: str
) -> tuple[np.ndarray, np.ndarray]:
    """``(cycles, ohlcv[n, 5])`` of one symbol over the outcomes that carry its bar."""
    rows = [(o.cycle, o.ohlcv[symbol]) for o in outcomes if symbol in o.ohlcv]
    cycles = np.array([c for c, _ in rows], dtype=np.int64)
    bars = np.array([b for _, b in rows], dtype=float).reshape(len(rows), 5)
    return cycles, bars


def _frame(bars: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(bars, columns=["open", "high", "low", "close", "volume"])


# --------------------------------------------------------------------------------------------
# the forecaster
# --------------------------------------------------------------------------------------------

CONTINUOUS_EPOCHS = 8
"""Epochs of a CONTINUOUS fine-tune of the live forecaster on recent bars."""

_CACHED_MODELS = 4


class ForecasterTraining(TrainingStrategy):
    """Fine-tunes or re-fits the torch forecaster; scores minus the held-out log-loss.

    The learning rate is the optimiser's. A candidate's weights go to
    ``<artifacts>/forecaster/<id>.pt``; the version's params name that file, which is kept for as
    long as the version may be rolled back to. A version without a model (no file on disk at
    start) predicts 0.5, the honest no-information forecast.
    """

    agent = "forecaster"

    def __init__(
        self, config: FluxtradeConfig, template: TrainingTemplate, artifacts: Path
    ) -> None:
        super().__init__(config, template)
        self.folder = artifacts / "forecaster"
        self._models: OrderedDict[str, Forecaster] = OrderedDict()

    def initial_params(self) -> Params:
        paths = [s.params.get("model_path") for s in self.config.strategies]
        candidates = [p for p in paths if p] + ["data/models/forecaster.pt"]
        for candidate in candidates:
            path = Path(candidate)
            path = path if path.is_absolute() else PROJECT_ROOT / path
            if path.is_file():
                return {"artifact": str(path)}
        return {"artifact": None}

    def model(self, params: Params) -> Forecaster | None:
        """The forecaster a version names (loaded once, a few kept), or None without one."""
        artifact = params.get("artifact")
        if artifact is None:
            return None
        if artifact not in self._models:
            self._models[artifact] = Forecaster.load(artifact, agent_id="trainer")
            while len(self._models) > _CACHED_MODELS:
                self._models.popitem(last=False)
        self._models.move_to_end(artifact)
        return self._models[artifact]

    def fit(self, train: Sequence[CycleOutcome], current: Params, settings: FitSettings) -> Params:
        live = self.model(current)
        trainer = self.config.trainer
        frames = {s: _frame(symbol_bars(train, s)[1]) for s in self.config.symbols}
        frames = {s: f for s, f in frames.items() if len(f)}
        if settings.mode is TrainingMode.CONTINUOUS and live is not None:
            model = live.fine_tuned(
                frames, epochs=min(CONTINUOUS_EPOCHS, live.config.epochs),
                learning_rate=settings.learning_rate, num_threads=trainer.forecaster_threads,
                max_train_seconds=trainer.forecaster_max_seconds,
            )
        else:
            base = live.config if live is not None else ForecasterConfig()
            config = ForecasterConfig.model_validate({
                **base.model_dump(),
                "learning_rate": settings.learning_rate,
                "num_threads": trainer.forecaster_threads,
                "max_train_seconds": trainer.forecaster_max_seconds,
            })
            model = Forecaster(config, agent_id="trainer")
            model.fit(frames)
        path = self.folder / f"{uuid.uuid4().hex[:12]}.pt"
        model.save(path)
        return {"artifact": str(path)}

    def score_samples(
        self, params: Params, outcomes: Sequence[CycleOutcome], holdout_from: int
    ) -> np.ndarray:
        model = self.model(params)
        scores: list[np.ndarray] = []
        for symbol in self.config.symbols:
            cycles, bars = symbol_bars(outcomes, symbol)
            if len(bars) < 2:
                continue
            close = bars[:, 3]
            proba = (
                model.predict_series(_frame(bars), symbol=symbol)
                if model is not None and len(bars) >= model.required_bars
                else np.full(len(bars), np.nan)
            )
            proba = np.clip(np.nan_to_num(proba, nan=0.5), 1e-7, 1 - 1e-7)
            up = (close[1:] > close[:-1]).astype(float)
            scored = cycles[:-1] >= holdout_from
            p = proba[:-1][scored]
            y = up[scored]
            scores.append(y * np.log(p) + (1 - y) * np.log(1 - p))
        return np.concatenate(scores) if scores else np.zeros(0)

    def discard(self, params: Params) -> None:
        artifact = params.get("artifact")
        if artifact and Path(artifact).parent == self.folder:
            self._models.pop(artifact, None)
            Path(artifact).unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# the adapters agent
# --------------------------------------------------------------------------------------------

BASE_ALPHA = 0.01
"""PatternAnalyzer family-wise error rate at learning rate 1; the rate scales it."""


def log_calls(folder: Path | None) -> list[BrokerCall]:
    """Broker responses and errors from a broker log folder, as :class:`BrokerCall` rows."""
    if folder is None or not folder.is_dir():
        return []
    return [
        BrokerCall(
            broker=r.broker, at=r.timestamp, success=r.success, latency_ms=r.latency_ms,
            fee=r.fee, error_type=r.error_type,
        )
        for r in read_logs(folder)
        if r.event in (BrokerEvent.RESPONSE, BrokerEvent.ERROR)
    ]


class AdaptersTraining(TrainingStrategy):
    """Per-broker recommendations (score, windows to avoid, retry schedule) from outcomes.

    The learning rate scales the significance level of the pattern tests (``0.01 * lr``): a
    higher rate calls a time window bad on less evidence. The held-out score asks, for every
    held-out call, how often the broker the recommendations rank first at that moment succeeded
    in that hour of the held-out period; with no recommendations the ranking is the config's
    broker priority, the desk's static routing.
    """

    agent = "adapters"

    def __init__(
        self, config: FluxtradeConfig, template: TrainingTemplate, log_folder: Path | None = None
    ) -> None:
        super().__init__(config, template)
        self.log_folder = log_folder
        self.priority = [b.name for b in sorted(config.brokers, key=lambda b: b.priority)]
        self.weights = ScoringWeights()

    def initial_params(self) -> Params:
        return {"recommendations": {}}

    def not_ready(self, outcomes: Sequence[CycleOutcome]) -> str:
        reason = super().not_ready(outcomes)
        if reason:
            return reason
        if not any(o.broker_calls for o in outcomes) and not log_calls(self.log_folder):
            return "no broker outcomes yet"
        return ""

    def _calls(
        self, outcomes: Sequence[CycleOutcome], start: datetime | None, end: datetime | None
    ) -> list[BrokerCall]:
        calls = [c for o in outcomes for c in o.broker_calls]
        calls += [
            c for c in log_calls(self.log_folder)
            if (start is None or c.at >= start) and (end is None or c.at <= end)
        ]
        return sorted(calls, key=lambda c: c.at)

    def fit(self, train: Sequence[CycleOutcome], current: Params, settings: FitSettings) -> Params:
        times = [o.market_time for o in train if o.market_time is not None]
        end = max(times) if times else None
        calls = self._calls(train, None, end)
        tracker = PerformanceTracker(window=max(len(calls), 1))
        analyzer = PatternAnalyzer(alpha=min(BASE_ALPHA * settings.learning_rate, 0.2))
        clock_at = end or (calls[-1].at if calls else None)
        intelligence = BrokerIntelligence(weights=self.weights, clock=lambda: clock_at)
        outage_started: dict[str, datetime] = {}
        outages: dict[str, list[float]] = {}
        for call in calls:
            context = {"timestamp": call.at, "latency_ms": call.latency_ms}
            tracker.record_response(call.broker, call.latency_ms or 0.0, call.success, call.fee)
            if call.success:
                analyzer.log_success(call.broker, context)
                started = outage_started.pop(call.broker, None)
                if started is not None:
                    outages.setdefault(call.broker, []).append((call.at - started).total_seconds())
            else:
                analyzer.log_failure(call.broker, call.error_type or "unknown", context)
                outage_started.setdefault(call.broker, call.at)
        recommendations = {
            broker: intelligence.update_recommendations(
                broker, tracker.metrics(broker), analyzer.analyze_patterns(broker),
                float(np.median(outages[broker])) if broker in outages else None,
            ).model_dump(mode="json")
            for broker in analyzer.brokers()
        }
        return {"recommendations": recommendations}

    def ranked(self, params: Params, at: datetime) -> list[str]:
        """Brokers best first at ``at``, as the adapters agent would rank them with ``params``."""
        recs = {
            b: Recommendation.model_validate(r) for b, r in params["recommendations"].items()
        }

        def score(broker: str) -> float:
            rec = recs.get(broker)
            if rec is None:
                return UNKNOWN_SCORE
            inside = any(w.contains(at) for w in rec.avoid)
            return rec.score * (self.weights.avoid_factor if inside else 1.0)

        return sorted(self.priority, key=lambda b: -score(b))

    def score_samples(
        self, params: Params, outcomes: Sequence[CycleOutcome], holdout_from: int
    ) -> np.ndarray:
        tail = [o for o in outcomes if o.cycle >= holdout_from]
        times = [o.market_time for o in tail if o.market_time is not None]
        calls = self._calls(tail, min(times), None) if times else []
        cells: dict[tuple[str, int], list[int]] = {}
        overall: dict[str, list[int]] = {}
        for call in calls:
            cells.setdefault((call.broker, call.at.hour), [0, 0])
            overall.setdefault(call.broker, [0, 0])
            for tally in (cells[(call.broker, call.at.hour)], overall[call.broker]):
                tally[0] += int(call.success)
                tally[1] += 1

        def rate(broker: str, hour: int) -> float:
            tally = cells.get((broker, hour)) or overall.get(broker)
            return tally[0] / tally[1] if tally else 0.5

        return np.array([rate(self.ranked(params, c.at)[0], c.at.hour) for c in calls], dtype=float)


# --------------------------------------------------------------------------------------------
# the market-conditions agent
# --------------------------------------------------------------------------------------------

HORIZON_BARS = 12
"""Bars ahead a regime label is judged on (one hour of 5-minute bars)."""


class ConditionsTraining(TrainingStrategy):
    """Regime thresholds from a small search around the live ones, judged on the next hour.

    A label scores +0.5 when the next ``HORIZON_BARS`` bars bear it out and -0.5 when they do
    not: a trend when the move has the labelled sign, HIGH_VOLATILITY when the absolute move
    exceeds the training period's median, RANGING when it does not; bars still warming up
    score 0. The learning rate is the relative step of the search: the trend threshold is tried
    at ``x / (1 + lr)``, ``x`` and ``x * (1 + lr)``, the volatility percentile at ``p`` and
    ``p -/+ 10 lr``.
    """

    agent = "conditions"

    def initial_params(self) -> Params:
        return {"thresholds": RegimeThresholds().model_dump()}

    def fit(self, train: Sequence[CycleOutcome], current: Params, settings: FitSettings) -> Params:
        live = RegimeThresholds.model_validate(current["thresholds"])
        step = settings.learning_rate
        trends = sorted({
            min(max(live.trend_threshold * f, 0.5), 6.0) for f in (1 / (1 + step), 1.0, 1 + step)
        })
        percentiles = sorted({
            min(max(live.high_vol_pct + d, 50.0), 99.5) for d in (-10 * step, 0.0, 10 * step)
        })
        start = train[0].cycle if train else 0
        best, best_score = live, self._mean(live, train, start)
        for trend in trends:
            for pct in percentiles:
                candidate = live.model_copy(update={"trend_threshold": trend, "high_vol_pct": pct})
                score = self._mean(candidate, train, start)
                if score > best_score + 1e-12:
                    best, best_score = candidate, score
        return {"thresholds": best.model_dump()}

    def _mean(
        self, thresholds: RegimeThresholds, rows: Sequence[CycleOutcome], start: int
    ) -> float:
        samples = self._samples(thresholds, rows, start)
        return float(samples.mean()) if len(samples) else 0.0

    def score_samples(
        self, params: Params, outcomes: Sequence[CycleOutcome], holdout_from: int
    ) -> np.ndarray:
        thresholds = RegimeThresholds.model_validate(params["thresholds"])
        return self._samples(thresholds, outcomes, holdout_from)

    def _samples(
        self, thresholds: RegimeThresholds, rows: Sequence[CycleOutcome], scored_from: int
    ) -> np.ndarray:
        out: list[np.ndarray] = []
        for symbol in self.config.symbols:
            cycles, bars = symbol_bars(rows, symbol)
            if len(bars) <= HORIZON_BARS:
                continue
            close = bars[:, 3]
            labels = regime_series(close, thresholds=thresholds)[:-HORIZON_BARS]
            move = np.log(close[HORIZON_BARS:] / close[:-HORIZON_BARS])
            known = cycles[:-HORIZON_BARS]
            reference = np.abs(move[known < scored_from])
            median = float(np.median(reference if len(reference) else np.abs(move)))
            calm = np.abs(move) <= median
            borne_out = np.select(
                [
                    labels == Regime.TRENDING_UP.value,
                    labels == Regime.TRENDING_DOWN.value,
                    labels == Regime.HIGH_VOLATILITY.value,
                    labels == Regime.RANGING.value,
                ],
                [move > 0, move < 0, ~calm, calm],
                default=False,
            )
            value = np.where(labels == WARMUP_LABEL, 0.0, np.where(borne_out, 0.5, -0.5))
            out.append(value[known >= scored_from])
        return np.concatenate(out) if out else np.zeros(0)


def build_strategies(
    config: FluxtradeConfig, templates: dict[str, TrainingTemplate], artifacts: Path
) -> dict[str, TrainingStrategy]:
    """One strategy per agent the config asks the trainer to train."""
    log_folder = config.trainer.broker_log_folder
    folder = None
    if log_folder:
        folder = Path(log_folder) if Path(log_folder).is_absolute() else PROJECT_ROOT / log_folder
    makers = {
        "ensemble": lambda t: EnsembleTraining(config, t),
        "forecaster": lambda t: ForecasterTraining(config, t, artifacts),
        "adapters": lambda t: AdaptersTraining(config, t, folder),
        "conditions": lambda t: ConditionsTraining(config, t),
    }
    return {agent: makers[agent](template) for agent, template in templates.items()}
