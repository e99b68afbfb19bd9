"""Torch forecaster of the intelligence agent: P(next bar closes up) from a window of features.

The forecaster is deliberately small (a one-layer GRU or a two-layer transformer encoder with a
few thousand weights) because five-minute bars carry little directional signal and a cycle must
run one prediction per symbol in well under a millisecond or two. Everything that decides
whether a number is honest lives here too:

* features at bar ``t`` use bars ``<= t`` only (trailing windows, no centring, no forward fill);
* the label is ``close[t+1] > close[t]`` -- a flat bar counts as *not up*, for the model and the
  baselines alike;
* splits are chronological per symbol (train, then validation, then test) with a purge gap of
  one window between them, so no test window shares a bar with a training window;
* normalisation statistics come from the train split only and travel with the weights;
* the :class:`TrainReport` scores the model next to naive baselines on the *same* test samples
  and only says ``beats_baselines`` when the gap exceeds a stated number of standard errors.

Training on the CPU is reproducible for a fixed seed, data and thread count (seeded init, a
seeded shuffle generator, ``torch.use_deterministic_algorithms``), unless the wall-clock cap
cuts an epoch short -- the report says when it did.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from loguru import logger
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from cycle.config import PROJECT_ROOT
from cycle.errors import ConfigError, DataValidationError

__all__ = [
    "DEFAULT_FEATURES",
    "FEATURE_NAMES",
    "OHLCV_COLUMNS",
    "Forecaster",
    "ForecasterConfig",
    "TrainReport",
    "build_features",
    "build_labels",
    "chronological_splits",
    "feature_lookback",
    "load_forecaster",
]

DEFAULT_MODEL_PATH = "data/models/forecaster.pt"
"""The shipped weights, produced by ``python -m actors.intelligence.train_forecaster``."""

AGENT_ID = "intelligence"
_log = logger.bind(agent_id=AGENT_ID)

OHLCV_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")

FeatureName = Literal[
    "log_return",
    "log_return_z",
    "return_sign",
    "momentum_6",
    "momentum_24",
    "range",
    "body",
    "upper_wick",
    "lower_wick",
    "realized_vol",
    "volume_z",
]
FEATURE_NAMES: tuple[str, ...] = FeatureName.__args__  # type: ignore[attr-defined]
DEFAULT_FEATURES: tuple[str, ...] = FEATURE_NAMES

_MOMENTUM_LAGS: dict[str, int] = {"momentum_6": 6, "momentum_24": 24}
_FORMAT_VERSION = 1
_EPS = 1e-12

BarsLike = pd.DataFrame | Mapping[str, Any] | np.ndarray | Sequence[Any]


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------


class ForecasterConfig(BaseModel):
    """Everything that decides what the forecaster learns; stored next to the weights.

    The defaults train on the three bundled 5-minute files in a few seconds on two cores.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    window: int = Field(32, ge=2, le=512, description="bars of features per sample")
    features: tuple[FeatureName, ...] = Field(
        DEFAULT_FEATURES, min_length=1, description="feature columns, in this order"
    )
    stats_window: int = Field(
        48, ge=2, le=10_000, description="trailing bars for volume z-score and realized vol"
    )
    model_kind: Literal["gru", "transformer"] = "gru"
    hidden_size: int = Field(32, ge=2, le=1024)
    num_layers: int = Field(1, ge=1, le=8)
    num_heads: int = Field(4, ge=1, le=32, description="transformer only")
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    epochs: int = Field(30, ge=1, le=10_000)
    batch_size: int = Field(256, ge=1, le=1_000_000)
    learning_rate: float = Field(1e-3, gt=0.0, le=1.0)
    weight_decay: float = Field(1e-4, ge=0.0, le=1.0)
    grad_clip: float = Field(1.0, gt=0.0)
    patience: int = Field(5, ge=1, description="epochs without a better validation loss")
    seed: int = Field(0, ge=0)
    train_fraction: float = Field(0.70, gt=0.0, lt=1.0)
    val_fraction: float = Field(0.15, gt=0.0, lt=1.0)
    test_fraction: float = Field(0.15, gt=0.0, lt=1.0)
    max_train_seconds: float = Field(90.0, gt=0.0, description="hard cap on the training loop")
    num_threads: int = Field(2, ge=1, le=256, description="torch threads while training")
    inference_threads: int = Field(1, ge=1, le=256, description="torch threads per prediction")
    clip_value: float = Field(8.0, gt=0.0, description="normalised features are clipped to +-")
    beat_margin_se: float = Field(
        2.0, ge=0.0, description="standard errors the model must clear every baseline by"
    )

    @model_validator(mode="after")
    def _check(self) -> ForecasterConfig:
        total = self.train_fraction + self.val_fraction + self.test_fraction
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"train/val/test fractions must sum to 1, got {total}")
        if len(set(self.features)) != len(self.features):
            raise ValueError(f"features repeat a name: {self.features}")
        if self.model_kind == "transformer" and self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} must be a multiple of num_heads {self.num_heads}"
            )
        return self

    @property
    def lookback(self) -> int:
        """Bars of history a feature row needs before it is exact (see :func:`feature_lookback`)."""
        return feature_lookback(self.features, self.stats_window)

    @property
    def required_bars(self) -> int:
        """Trailing bars one prediction needs: the window plus the features' lookback."""
        return self.window + self.lookback


# --------------------------------------------------------------------------------------------
# features and labels
# --------------------------------------------------------------------------------------------


def feature_lookback(features: Sequence[str], stats_window: int) -> int:
    """Bars before ``t`` that feature row ``t`` reads, so rows from that point on are exact.

    A row computed from a trailing slice equals the row computed from the whole series once the
    slice holds this many earlier bars; training samples start there and inference asks for it.
    """
    lags = [_MOMENTUM_LAGS.get(name, 1) for name in features]
    if any(name in ("log_return_z", "realized_vol") for name in features):
        lags.append(stats_window)  # returns over the trailing window need one more close
    if "volume_z" in features:
        lags.append(stats_window - 1)
    return max(lags)


def _trailing_mean_std(x: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population std over bars ``t-window+1 .. t``; shorter (expanding) at the start.

    NaN padding plus ``nanmean`` keeps row ``t`` a function of its own window only, which is what
    makes the no-look-ahead and slice-equals-full properties hold exactly.
    """
    padded = np.concatenate([np.full(window - 1, np.nan), x])
    view = sliding_window_view(padded, window)
    mean = np.nanmean(view, axis=1)
    std = np.sqrt(np.nanmean((view - mean[:, None]) ** 2, axis=1))
    return mean, std


def _as_float_array(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise DataValidationError("?", f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def build_features(
    open: Any,  # noqa: A002 - the OHLCV names are the domain's
    high: Any,
    low: Any,
    close: Any,
    volume: Any,
    *,
    features: Sequence[str] = DEFAULT_FEATURES,
    stats_window: int = 48,
    symbol: str = "?",
) -> np.ndarray:
    """Feature matrix ``[T, F]`` (float64) where row ``t`` uses bars ``0..t`` only.

    Price features are logs of ratios, so symbols quoted at different scales share one model.
    Rows before :func:`feature_lookback` use whatever history exists (expanding windows, zeros
    where a lag is missing); training skips them.

    Args:
        open: Opening prices, one per bar, oldest first.
        high: Highs.
        low: Lows.
        close: Closes.
        volume: Traded volume (base units); zero is allowed.
        features: Names from :data:`FEATURE_NAMES`, in column order.
        stats_window: Trailing bars for the volume z-score, return z-score and realized vol.
        symbol: Only for error messages.

    Raises:
        DataValidationError: lengths differ, prices are not finite and positive, or the high/low
            do not bracket open and close.
    """
    o, h, lo, c, v = (
        _as_float_array(a, n)
        for a, n in zip((open, high, low, close, volume), OHLCV_COLUMNS, strict=True)
    )
    n_bars = len(c)
    if not all(len(a) == n_bars for a in (o, h, lo, v)):
        raise DataValidationError(symbol, "open/high/low/close/volume differ in length")
    if n_bars == 0:
        raise DataValidationError(symbol, "no bars")
    prices = np.stack([o, h, lo, c])
    if not np.isfinite(prices).all() or (prices <= 0).any():
        raise DataValidationError(symbol, "prices must be finite and positive")
    if not np.isfinite(v).all() or (v < 0).any():
        raise DataValidationError(symbol, "volume must be finite and non-negative")
    if (h < np.maximum(o, c) * (1 - 1e-9)).any() or (lo > np.minimum(o, c) * (1 + 1e-9)).any():
        raise DataValidationError(symbol, "high/low do not bracket open and close")
    unknown = [f for f in features if f not in FEATURE_NAMES]
    if unknown:
        raise ConfigError(f"unknown features {unknown}; known: {FEATURE_NAMES}")

    log_c = np.log(c)
    ret = np.zeros(n_bars)
    ret[1:] = np.diff(log_c)
    cache: dict[str, np.ndarray] = {}

    def ret_stats() -> tuple[np.ndarray, np.ndarray]:
        if "ret" not in cache:
            cache["ret_mean"], cache["ret"] = _trailing_mean_std(ret, stats_window)
        return cache["ret_mean"], cache["ret"]

    columns: list[np.ndarray] = []
    for name in features:
        if name == "log_return":
            col = ret
        elif name == "log_return_z":
            col = ret / np.maximum(ret_stats()[1], _EPS)
            col = np.where(ret_stats()[1] > _EPS, col, 0.0)
        elif name == "return_sign":
            col = np.sign(ret)
        elif name in _MOMENTUM_LAGS:
            lag = _MOMENTUM_LAGS[name]
            col = np.zeros(n_bars)
            col[lag:] = log_c[lag:] - log_c[:-lag]
        elif name == "range":
            col = np.log(h / lo)
        elif name == "body":
            col = np.log(c / o)
        elif name == "upper_wick":
            col = np.log(h / np.maximum(o, c))
        elif name == "lower_wick":
            col = np.log(np.minimum(o, c) / lo)
        elif name == "realized_vol":
            col = ret_stats()[1]
        else:  # volume_z
            log_v = np.log1p(v)
            mean, std = _trailing_mean_std(log_v, stats_window)
            col = np.where(std > _EPS, (log_v - mean) / np.maximum(std, _EPS), 0.0)
        columns.append(col)
    return np.stack(columns, axis=1)


def build_labels(close: Any) -> np.ndarray:
    """``next_bar_up[t] = close[t+1] > close[t]`` for ``t = 0..T-2`` (length ``T-1``, int64).

    The last bar has no next bar and so no label. A flat next bar is labelled 0 (not up).
    """
    c = _as_float_array(close, "close")
    return (c[1:] > c[:-1]).astype(np.int64)


def chronological_splits(
    n_bars: int, config: ForecasterConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample bar indices ``t`` of one symbol for train, validation and test, oldest first.

    A sample at ``t`` reads feature rows ``t-window+1..t`` and is labelled by bar ``t+1``. The
    first ``lookback`` rows are skipped so every row is exact, and a gap of ``window`` samples
    is purged before validation and before test so no two splits share a bar of input.

    Raises:
        DataValidationError: too few bars for three non-empty splits.
    """
    first = config.window - 1 + config.lookback
    candidates = np.arange(first, n_bars - 1)
    gap = config.window
    usable = len(candidates) - 2 * gap
    n_train = int(usable * config.train_fraction)
    n_val = int(usable * config.val_fraction)
    n_test = usable - n_train - n_val
    if min(n_train, n_val, n_test) < 1:
        raise DataValidationError(
            "?",
            f"{n_bars} bars are too few for window {config.window}, lookback {config.lookback} "
            "and three chronological splits",
        )
    train = candidates[:n_train]
    val = candidates[n_train + gap : n_train + gap + n_val]
    test = candidates[n_train + 2 * gap + n_val :]
    return train, val, test


def _ohlcv_arrays(bars: BarsLike, symbol: str) -> tuple[np.ndarray, ...]:
    """Five float arrays from a DataFrame, a mapping of columns or an ``[N, 5]`` OHLCV array."""
    if isinstance(bars, pd.DataFrame):
        missing = [c for c in OHLCV_COLUMNS if c not in bars.columns]
        if missing:
            raise DataValidationError(symbol, f"missing columns {missing}")
        return tuple(bars[c].to_numpy(dtype=np.float64) for c in OHLCV_COLUMNS)
    if isinstance(bars, Mapping):
        missing = [c for c in OHLCV_COLUMNS if c not in bars]
        if missing:
            raise DataValidationError(symbol, f"missing columns {missing}")
        return tuple(np.asarray(bars[c], dtype=np.float64) for c in OHLCV_COLUMNS)
    arr = np.asarray(bars, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(OHLCV_COLUMNS):
        raise DataValidationError(symbol, f"expected an [N, 5] OHLCV array, got {arr.shape}")
    return tuple(arr[:, i] for i in range(len(OHLCV_COLUMNS)))


def _check_chronological(frame: pd.DataFrame, symbol: str) -> None:
    """Refuse frames whose timestamps go backwards: splits and windows assume time order."""
    stamps: Any = None
    if "timestamp" in frame.columns:
        stamps = pd.to_datetime(frame["timestamp"], utc=True)
    elif isinstance(frame.index, pd.DatetimeIndex):
        stamps = frame.index
    if stamps is not None and not pd.Index(stamps).is_monotonic_increasing:
        raise DataValidationError(symbol, "timestamps are not in increasing order")


# --------------------------------------------------------------------------------------------
# networks
# --------------------------------------------------------------------------------------------


class _GRUNet(nn.Module):
    """GRU over the window; the last hidden state is read by a linear head (one logit)."""

    def __init__(self, n_features: int, config: ForecasterConfig) -> None:
        super().__init__()
        self.gru = nn.GRU(
            n_features,
            config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x)
        return self.head(self.drop(out[:, -1])).squeeze(-1)


class _TransformerNet(nn.Module):
    """Pre-norm transformer encoder with learned positions; the last position is read out.

    No causal mask is needed: every row in the window is already in the past of the prediction.
    """

    def __init__(self, n_features: int, config: ForecasterConfig) -> None:
        super().__init__()
        d_model = config.hidden_size
        self.inp = nn.Linear(n_features, d_model)
        self.pos = nn.Parameter(torch.randn(1, config.window, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d_model,
            config.num_heads,
            dim_feedforward=2 * d_model,
            dropout=config.dropout,
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(
            layer, config.num_layers, enable_nested_tensor=False
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.inp(x) + self.pos)
        return self.head(self.norm(h[:, -1])).squeeze(-1)


def _build_net(n_features: int, config: ForecasterConfig) -> nn.Module:
    if config.model_kind == "gru":
        return _GRUNet(n_features, config)
    return _TransformerNet(n_features, config)


@contextlib.contextmanager
def _torch_threads(n_threads: int) -> Iterator[None]:
    """Run with ``n_threads`` intra-op threads, restoring the caller's setting afterwards."""
    before = torch.get_num_threads()
    if before != n_threads:
        torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


@contextlib.contextmanager
def _deterministic() -> Iterator[None]:
    """Deterministic kernels for the duration of a fit, restoring the global flag afterwards."""
    before = torch.are_deterministic_algorithms_enabled()
    before_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=before_warn)


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------


def _std_error(p: float, n: int) -> float:
    return math.sqrt(max(p * (1.0 - p), 0.0) / n) if n else float("inf")


def _log_loss(labels: np.ndarray, proba: np.ndarray) -> float:
    p = np.clip(proba, 1e-7, 1 - 1e-7)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


class TrainReport(BaseModel):
    """Out-of-sample scores of one fit next to naive baselines on the same test samples.

    Every baseline is scored on exactly the model's test samples. ``beats_baselines`` is True
    only when ``test_accuracy > b + beat_margin_se * sqrt(b(1-b)/n)`` for every baseline ``b``;
    the validator refuses a report whose flag disagrees with its own numbers.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_kind: str
    symbols: tuple[str, ...]
    window: int
    n_features: int
    n_parameters: int
    seconds: float = Field(description="wall time of the whole fit, data preparation included")
    epochs_run: int
    best_epoch: int
    stop_reason: Literal["epochs", "early_stop", "time_cap"]
    train_size: int
    val_size: int
    test_size: int
    train_up_rate: float
    test_up_rate: float
    val_accuracy: float
    val_log_loss: float
    test_accuracy: float
    test_log_loss: float
    majority_class: int = Field(description="majority label of the train split (1 = up)")
    baseline_majority: float
    baseline_persistence: float = Field(description="predict the last bar's direction again")
    baseline_always_up: float
    baseline_reversal: float = Field(description="predict the opposite of the last bar")
    baseline_log_loss_prior: float = Field(description="log-loss of the constant train up-rate")
    beat_margin_se: float
    required_accuracy: float = Field(description="accuracy needed to clear every baseline")
    beats_baselines: bool
    per_symbol_test_accuracy: dict[str, float]

    @property
    def baselines(self) -> dict[str, float]:
        """Accuracy of each naive baseline on the test set, by name."""
        return {
            "majority": self.baseline_majority,
            "persistence": self.baseline_persistence,
            "always_up": self.baseline_always_up,
            "reversal": self.baseline_reversal,
        }

    @staticmethod
    def required_for(baselines: Mapping[str, float], n: int, margin_se: float) -> float:
        """Accuracy above which the model clears every baseline by ``margin_se`` std errors."""
        return max(b + margin_se * _std_error(b, n) for b in baselines.values())

    @model_validator(mode="after")
    def _consistent(self) -> TrainReport:
        required = self.required_for(self.baselines, self.test_size, self.beat_margin_se)
        if abs(required - self.required_accuracy) > 1e-9:
            raise ValueError(f"required_accuracy {self.required_accuracy} != {required}")
        if self.beats_baselines != (self.test_accuracy > required):
            raise ValueError("beats_baselines disagrees with test_accuracy and the baselines")
        return self

    def summary(self) -> str:
        """A few lines for a human: sizes, time, the model's scores and every baseline."""
        se = _std_error(self.test_accuracy, self.test_size)
        best_name, best = max(self.baselines.items(), key=lambda kv: kv[1])
        verdict = (
            f"BEATS every baseline by more than {self.beat_margin_se:g} s.e."
            if self.beats_baselines
            else f"does NOT beat every baseline by more than {self.beat_margin_se:g} s.e."
        )
        per_symbol = ", ".join(f"{s} {a:.4f}" for s, a in self.per_symbol_test_accuracy.items())
        majority = "up" if self.majority_class == 1 else "not-up"
        return "\n".join(
            [
                f"forecaster {self.model_kind} ({self.n_parameters} params), window "
                f"{self.window} x {self.n_features} features, symbols {', '.join(self.symbols)}",
                f"samples: train {self.train_size}, val {self.val_size}, test {self.test_size} "
                f"(chronological); {self.epochs_run} epochs, best {self.best_epoch}, "
                f"stopped by {self.stop_reason}, {self.seconds:.1f} s",
                f"test accuracy {self.test_accuracy:.4f} (s.e. {se:.4f}), log-loss "
                f"{self.test_log_loss:.4f} vs constant-prior {self.baseline_log_loss_prior:.4f}",
                f"baselines on the same test set: majority({majority}) "
                f"{self.baseline_majority:.4f}, persistence {self.baseline_persistence:.4f}, "
                f"always-up {self.baseline_always_up:.4f}, reversal {self.baseline_reversal:.4f}",
                f"per symbol test accuracy: {per_symbol}",
                f"verdict: {verdict} (needs > {self.required_accuracy:.4f}; best baseline "
                f"{best_name} {best:.4f}; model - best = {self.test_accuracy - best:+.4f})",
            ]
        )


# --------------------------------------------------------------------------------------------
# forecaster
# --------------------------------------------------------------------------------------------


class _Split:
    """Windows, labels and last-bar directions of one split, all symbols concatenated."""

    def __init__(
        self, x: np.ndarray, y: np.ndarray, prev_up: np.ndarray, sym: np.ndarray
    ) -> None:
        self.x = x
        self.y = y
        self.prev_up = prev_up
        self.sym = sym

    def __len__(self) -> int:
        return len(self.y)


class Forecaster:
    """Direction-of-next-bar forecaster: train with :meth:`fit`, use :meth:`predict_proba`.

    One model serves every symbol it was trained on (features are scale free). Inference needs
    :attr:`required_bars` trailing bars of the symbol; more are accepted and trimmed.
    """

    def __init__(
        self, config: ForecasterConfig | None = None, *, agent_id: str = AGENT_ID
    ) -> None:
        self.config = config or ForecasterConfig()
        self.report: TrainReport | None = None
        self._agent_id = agent_id
        self._log = logger.bind(agent_id=agent_id)
        self._net: nn.Module | None = None
        self._mean: np.ndarray | None = None
        self._std: np.ndarray | None = None

    # ---------------------------------------------------------------- properties

    @property
    def required_bars(self) -> int:
        """Trailing bars of one symbol a prediction needs."""
        return self.config.required_bars

    @property
    def is_fitted(self) -> bool:
        """Whether weights and normalisation statistics are present."""
        return self._net is not None

    @property
    def normalisation(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature (mean, std) fitted on the train split; copies, float64."""
        self._require_fitted()
        assert self._mean is not None and self._std is not None
        return self._mean.copy(), self._std.copy()

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The network's weights (detached copies), for comparisons and checkpoints."""
        self._require_fitted()
        assert self._net is not None
        return {k: v.detach().clone() for k, v in self._net.state_dict().items()}

    # ---------------------------------------------------------------- data preparation

    def _features(self, bars: BarsLike, symbol: str) -> np.ndarray:
        o, h, lo, c, v = _ohlcv_arrays(bars, symbol)
        return build_features(
            o,
            h,
            lo,
            c,
            v,
            features=self.config.features,
            stats_window=self.config.stats_window,
            symbol=symbol,
        )

    def _normalise(self, feats: np.ndarray) -> np.ndarray:
        assert self._mean is not None and self._std is not None
        z = (feats - self._mean) / self._std
        return np.clip(z, -self.config.clip_value, self.config.clip_value).astype(np.float32)

    def _prepare(
        self, frames: Mapping[str, pd.DataFrame], *, fit_normalisation: bool = True
    ) -> tuple[_Split, _Split, _Split, np.ndarray]:
        """Per-symbol features and splits, train-only statistics, then windows per split.

        ``fit_normalisation=False`` keeps the statistics the model already has (a fine-tune: the
        network's inputs must keep meaning what they meant when it learnt them).
        """
        cfg = self.config
        offsets = np.arange(-cfg.window + 1, 1)
        per_symbol: list[tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, ...]]] = []
        train_rows: list[np.ndarray] = []
        for symbol, frame in frames.items():
            _check_chronological(frame, symbol)
            feats = self._features(frame, symbol)
            close = frame["close"].to_numpy(dtype=np.float64)
            labels = build_labels(close)
            try:
                splits = chronological_splits(len(close), cfg)
            except DataValidationError as e:
                raise DataValidationError(symbol, e.reason) from e
            train_idx = splits[0]
            train_rows.append(feats[train_idx[0] - cfg.window + 1 : train_idx[-1] + 1])
            prev_up = np.zeros(len(close), dtype=np.int64)
            prev_up[1:] = close[1:] > close[:-1]
            per_symbol.append((feats, labels, prev_up, splits))

        stacked = np.concatenate(train_rows)
        if fit_normalisation:
            self._mean = stacked.mean(axis=0)
            std = stacked.std(axis=0)
            self._std = np.where(std > _EPS, std, 1.0)

        parts: list[list[tuple[np.ndarray, ...]]] = [[], [], []]
        for sym_id, (feats, labels, prev_up, splits) in enumerate(per_symbol):
            norm = self._normalise(feats)
            for k, idx in enumerate(splits):
                parts[k].append(
                    (
                        norm[idx[:, None] + offsets[None, :]],
                        labels[idx],
                        prev_up[idx],
                        np.full(len(idx), sym_id, dtype=np.int64),
                    )
                )
        out = [_Split(*(np.concatenate([p[j] for p in part]) for j in range(4))) for part in parts]
        return out[0], out[1], out[2], stacked

    # ---------------------------------------------------------------- training

    def fit(self, frames: Mapping[str, pd.DataFrame]) -> TrainReport:
        """Train on one or more symbols and score on their chronological test splits.

        Each symbol is split on its own timeline, so no window crosses symbols and every test
        sample is later than every train sample of its symbol. Early stopping watches the
        validation log-loss and the best epoch's weights are kept; ``max_train_seconds`` caps
        the training loop (checked every batch).

        Args:
            frames: Symbol -> bars with columns open, high, low, close, volume, oldest first
                (a ``timestamp`` column or DatetimeIndex, if present, must be increasing).

        Returns:
            The :class:`TrainReport`, also kept on :attr:`report`.
        """
        if not frames:
            raise ConfigError("fit needs at least one symbol's bars")
        return self._train(frames, warm=False)

    def fine_tuned(
        self,
        frames: Mapping[str, pd.DataFrame],
        *,
        epochs: int,
        learning_rate: float,
        num_threads: int | None = None,
        max_train_seconds: float | None = None,
    ) -> Forecaster:
        """A copy of this model trained further on ``frames``: the warm start of a fine-tune.

        The copy keeps this model's architecture and normalisation statistics and starts from
        its weights with a fresh optimiser; early stopping starts from this model's own
        validation loss on the new data, so a fine-tune that never improves on it returns these
        weights unchanged. This model is left as it is (the live engine may be using it).
        """
        self._require_fitted()
        assert self._net is not None
        if not frames:
            raise ConfigError("fine_tuned needs at least one symbol's bars")
        changes: dict[str, Any] = {"epochs": epochs, "learning_rate": learning_rate}
        if num_threads is not None:
            changes["num_threads"] = num_threads
        if max_train_seconds is not None:
            changes["max_train_seconds"] = max_train_seconds
        config = ForecasterConfig.model_validate({**self.config.model_dump(), **changes})
        tuned = Forecaster(config, agent_id=self._agent_id)
        tuned._mean, tuned._std = self.normalisation
        tuned._net = _build_net(len(config.features), config)
        tuned._net.load_state_dict(self._net.state_dict())
        tuned._train(frames, warm=True)
        return tuned

    def _train(self, frames: Mapping[str, pd.DataFrame], *, warm: bool) -> TrainReport:
        """Train (from fresh weights, or from the current ones when ``warm``) and score."""
        cfg = self.config
        started = time.perf_counter()
        with (
            _torch_threads(cfg.num_threads),
            _deterministic(),
            torch.random.fork_rng(devices=[]),
        ):
            torch.manual_seed(cfg.seed)
            train, val, test, _ = self._prepare(frames, fit_normalisation=not warm)
            if not warm:
                self._net = _build_net(train.x.shape[2], cfg)
            assert self._net is not None
            epochs_run, best_epoch, stop_reason = self._train_loop(
                self._net, train, val, started, keep_start=warm
            )
            report = self._score(frames, train, val, test, epochs_run, best_epoch, stop_reason)
        report = report.model_copy(update={"seconds": time.perf_counter() - started})
        self.report = TrainReport.model_validate(report.model_dump())
        self._log.info(
            "forecaster {}: test acc {:.4f}, best baseline {:.4f}, beats={} in {:.1f}s",
            "fine-tuned" if warm else "trained",
            report.test_accuracy,
            max(report.baselines.values()),
            report.beats_baselines,
            report.seconds,
        )
        return self.report

    def _train_loop(
        self, net: nn.Module, train: _Split, val: _Split, started: float, *, keep_start: bool
    ) -> tuple[int, int, Literal["epochs", "early_stop", "time_cap"]]:
        """Epochs with early stopping on the validation loss; the best epoch's weights are kept.

        With ``keep_start`` the starting weights compete as epoch 0 (a fine-tune must not end
        worse on validation than where it began).
        """
        cfg = self.config
        opt = torch.optim.AdamW(
            net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay
        )
        loss_fn = nn.BCEWithLogitsLoss()
        x_train = torch.from_numpy(train.x)
        y_train = torch.from_numpy(train.y.astype(np.float32))
        gen = torch.Generator().manual_seed(cfg.seed)
        best_loss = _log_loss(val.y, self._proba_array(net, val.x)) if keep_start else math.inf
        best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        best_epoch = 0
        since_best = 0
        epochs_run = 0
        stop_reason: Literal["epochs", "early_stop", "time_cap"] = "epochs"
        for epoch in range(1, cfg.epochs + 1):
            net.train()
            order = torch.randperm(len(train), generator=gen)
            capped = False
            for start in range(0, len(train), cfg.batch_size):
                if time.perf_counter() - started > cfg.max_train_seconds:
                    capped = True
                    break
                idx = order[start : start + cfg.batch_size]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(net(x_train[idx]), y_train[idx])
                loss.backward()
                nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
                opt.step()
            epochs_run = epoch
            val_proba = self._proba_array(net, val.x)
            val_loss = _log_loss(val.y, val_proba)
            self._log.debug("epoch {} val log-loss {:.5f}", epoch, val_loss)
            if val_loss < best_loss - 1e-6:
                best_loss = val_loss
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                best_epoch = epoch
                since_best = 0
            else:
                since_best += 1
            if capped:
                stop_reason = "time_cap"
                self._log.warning("forecaster training hit the {}s cap", cfg.max_train_seconds)
                break
            if since_best >= cfg.patience:
                stop_reason = "early_stop"
                break
        net.load_state_dict(best_state)
        net.eval()
        return epochs_run, best_epoch, stop_reason

    @staticmethod
    def _proba_array(net: nn.Module, x: np.ndarray, batch: int = 8192) -> np.ndarray:
        was_training = net.training
        net.eval()
        with torch.inference_mode():
            out = [
                torch.sigmoid(net(torch.from_numpy(x[i : i + batch]))).double().numpy()
                for i in range(0, len(x), batch)
            ]
        net.train(was_training)
        return np.concatenate(out) if out else np.zeros(0)

    def _score(
        self,
        frames: Mapping[str, pd.DataFrame],
        train: _Split,
        val: _Split,
        test: _Split,
        epochs_run: int,
        best_epoch: int,
        stop_reason: Literal["epochs", "early_stop", "time_cap"],
    ) -> TrainReport:
        cfg = self.config
        assert self._net is not None
        val_proba = self._proba_array(self._net, val.x)
        test_proba = self._proba_array(self._net, test.x)
        test_pred = (test_proba > 0.5).astype(np.int64)
        y = test.y
        train_up = float(train.y.mean())
        majority = int(train_up > 0.5)
        baselines = {
            "majority": float(np.mean(y == majority)),
            "persistence": float(np.mean(y == test.prev_up)),
            "always_up": float(np.mean(y == 1)),
            "reversal": float(np.mean(y == 1 - test.prev_up)),
        }
        required = TrainReport.required_for(baselines, len(y), cfg.beat_margin_se)
        accuracy = float(np.mean(test_pred == y))
        symbols = tuple(frames)
        return TrainReport(
            model_kind=cfg.model_kind,
            symbols=symbols,
            window=cfg.window,
            n_features=len(cfg.features),
            n_parameters=sum(p.numel() for p in self._net.parameters()),
            seconds=0.0,
            epochs_run=epochs_run,
            best_epoch=best_epoch,
            stop_reason=stop_reason,
            train_size=len(train),
            val_size=len(val),
            test_size=len(test),
            train_up_rate=train_up,
            test_up_rate=float(y.mean()),
            val_accuracy=float(np.mean((val_proba > 0.5) == val.y)),
            val_log_loss=_log_loss(val.y, val_proba),
            test_accuracy=accuracy,
            test_log_loss=_log_loss(y, test_proba),
            majority_class=majority,
            baseline_majority=baselines["majority"],
            baseline_persistence=baselines["persistence"],
            baseline_always_up=baselines["always_up"],
            baseline_reversal=baselines["reversal"],
            baseline_log_loss_prior=_log_loss(y, np.full(len(y), train_up)),
            beat_margin_se=cfg.beat_margin_se,
            required_accuracy=required,
            beats_baselines=accuracy > required,
            per_symbol_test_accuracy={
                s: float(np.mean(test_pred[test.sym == i] == y[test.sym == i]))
                for i, s in enumerate(symbols)
            },
        )

    # ---------------------------------------------------------------- inference

    def _require_fitted(self) -> None:
        if self._net is None:
            raise ConfigError("forecaster has no weights: call fit() or Forecaster.load() first")

    def _window(self, bars: BarsLike, symbol: str) -> np.ndarray:
        """Normalised ``[window, F]`` float32 input from the trailing bars of one symbol."""
        o, h, lo, c, v = _ohlcv_arrays(bars, symbol)
        need = self.required_bars
        if len(c) < need:
            raise DataValidationError(
                symbol, f"{len(c)} bars given, a prediction needs the last {need}"
            )
        feats = build_features(
            o[-need:],
            h[-need:],
            lo[-need:],
            c[-need:],
            v[-need:],
            features=self.config.features,
            stats_window=self.config.stats_window,
            symbol=symbol,
        )
        return self._normalise(feats[-self.config.window :])

    def predict_proba(self, bars: BarsLike, *, symbol: str = "?") -> float:
        """Probability that the bar after the last given bar closes above the last close.

        Args:
            bars: Trailing bars of ONE symbol, oldest first: a DataFrame or mapping with columns
                open, high, low, close, volume, or an ``[N, 5]`` array in that order, with
                ``N >= required_bars`` (extra older bars are ignored).
            symbol: Only for error messages and logs.
        """
        self._require_fitted()
        assert self._net is not None
        x = torch.from_numpy(self._window(bars, symbol)).unsqueeze(0)
        with _torch_threads(self.config.inference_threads), torch.inference_mode():
            return float(torch.sigmoid(self._net(x))[0])

    def predict_batch(self, windows: Mapping[str, BarsLike]) -> dict[str, float]:
        """:meth:`predict_proba` for several symbols in one forward pass, keyed by symbol."""
        self._require_fitted()
        assert self._net is not None
        if not windows:
            return {}
        x = torch.from_numpy(np.stack([self._window(b, s) for s, b in windows.items()]))
        with _torch_threads(self.config.inference_threads), torch.inference_mode():
            proba = torch.sigmoid(self._net(x)).tolist()
        return dict(zip(windows, (float(p) for p in proba), strict=True))

    def predict_series(self, bars: BarsLike, *, symbol: str = "?") -> np.ndarray:
        """:meth:`predict_proba` at every bar of one symbol's history, in one batched pass.

        Element ``t`` is the probability that bar ``t + 1`` closes above bar ``t``, computed from
        bars ``<= t`` only (features are causal and each window ends at ``t``), so a backtest
        can use the whole series while the live engine asks :meth:`predict_proba` for the last
        bar alone; the two agree to float32 rounding.

        Returns:
            float64 array of ``len(bars)`` probabilities, NaN before ``required_bars - 1``.
        """
        self._require_fitted()
        assert self._net is not None
        o, h, lo, c, v = _ohlcv_arrays(bars, symbol)
        out = np.full(len(c), np.nan)
        first = self.required_bars - 1
        if len(c) <= first:
            return out
        feats = build_features(
            o, h, lo, c, v, features=self.config.features,
            stats_window=self.config.stats_window, symbol=symbol,
        )
        norm = self._normalise(feats)
        ends = np.arange(first, len(c))
        windows = norm[ends[:, None] + np.arange(-self.config.window + 1, 1)[None, :]]
        with _torch_threads(self.config.inference_threads):
            out[first:] = self._proba_array(self._net, np.ascontiguousarray(windows))
        return out

    # ---------------------------------------------------------------- persistence

    def save(self, path: str | Path) -> Path:
        """Write weights, config, normalisation statistics and the report to one file."""
        self._require_fitted()
        assert self._net is not None and self._mean is not None and self._std is not None
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format_version": _FORMAT_VERSION,
            "config": self.config.model_dump(mode="json"),
            "state_dict": self._net.state_dict(),
            "norm_mean": torch.from_numpy(self._mean.copy()),
            "norm_std": torch.from_numpy(self._std.copy()),
            "report": self.report.model_dump(mode="json") if self.report else None,
        }
        torch.save(payload, path)
        self._log.info("forecaster saved to {}", path)
        return path

    @classmethod
    def load(cls, path: str | Path, *, agent_id: str = AGENT_ID) -> Forecaster:
        """Rebuild a forecaster from :meth:`save`'s file; predictions match the saved model.

        Loads with ``weights_only=True``: the file holds tensors and plain values only.
        """
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
        version = payload.get("format_version")
        if version != _FORMAT_VERSION:
            raise ConfigError(
                f"{path}: forecaster file format {version}, expected {_FORMAT_VERSION}"
            )
        model = cls(ForecasterConfig.model_validate(payload["config"]), agent_id=agent_id)
        model._mean = payload["norm_mean"].numpy().astype(np.float64)
        model._std = payload["norm_std"].numpy().astype(np.float64)
        net = _build_net(len(model.config.features), model.config)
        net.load_state_dict(payload["state_dict"])
        net.eval()
        model._net = net
        if payload.get("report") is not None:
            model.report = TrainReport.model_validate(payload["report"])
        return model


_MODELS: dict[Path, Forecaster | str] = {}
_MODELS_LOCK = threading.Lock()


def load_forecaster(model_path: str) -> Forecaster | str:
    """The forecaster saved at ``model_path`` (relative to the project), or why there is none.

    Loaded once per process and shared: the forecaster strategy and the ensemble use the same
    weights, and the file is read-only while the desk runs.
    """
    path = Path(model_path)
    path = path if path.is_absolute() else PROJECT_ROOT / path
    with _MODELS_LOCK:
        if path not in _MODELS:
            if not path.is_file():
                _MODELS[path] = (
                    f"forecaster weights not found at {path}; train them with "
                    "`python -m actors.intelligence.train_forecaster`"
                )
            else:
                try:
                    _MODELS[path] = Forecaster.load(path)
                except Exception as error:  # noqa: BLE001 - a bad file makes the strategy flat
                    _MODELS[path] = f"forecaster weights at {path} unreadable: {error}"
        return _MODELS[path]
