"""Tests of the torch forecaster: no look-ahead, it can learn, honest baselines, reproducibility.

Configs are tiny and the real-data fit uses one bundled file, so the module runs in seconds on
two CPU cores. Inference latency is measured and printed, never asserted.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from pydantic import ValidationError

from actors.intelligence.forecaster import (
    FEATURE_NAMES,
    OHLCV_COLUMNS,
    Forecaster,
    ForecasterConfig,
    TrainReport,
    build_features,
    build_labels,
    chronological_splits,
    feature_lookback,
)
from actors.intelligence.train_forecaster import main as cli_main
from actors.intelligence.train_forecaster import read_ohlcv_csv
from cycle.errors import ConfigError, DataValidationError

DATA = Path(__file__).resolve().parents[3] / "data"
ETH = DATA / "freqtrade_ETH_BTC-5m.csv"

TINY = ForecasterConfig(
    window=8,
    stats_window=12,
    hidden_size=8,
    epochs=4,
    batch_size=128,
    learning_rate=3e-3,
    patience=3,
    num_threads=2,
    max_train_seconds=20.0,
)


def _random_bars(n: int, seed: int = 0) -> pd.DataFrame:
    """A positive random-walk OHLCV frame whose high/low bracket open and close."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.005, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.005, n))
    volume = rng.lognormal(3, 1, n)
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": volume})


def _pattern_bars(n: int, seed: int = 1) -> pd.DataFrame:
    """Deterministic up, up, down cycle with a little noise: learnable, and not any baseline."""
    rng = np.random.default_rng(seed)
    steps = np.tile([0.01, 0.01, -0.015], n // 3 + 1)[:n] + rng.normal(0, 0.001, n)
    close = 100 * np.exp(np.cumsum(steps))
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) * 1.001
    low = np.minimum(open_, close) * 0.999
    volume = rng.lognormal(3, 0.2, n)
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": volume})


def _features(frame: pd.DataFrame, config: ForecasterConfig = TINY) -> np.ndarray:
    return build_features(
        *(frame[c].to_numpy() for c in OHLCV_COLUMNS),
        features=config.features,
        stats_window=config.stats_window,
    )


@pytest.fixture(scope="module")
def eth() -> pd.DataFrame:
    return read_ohlcv_csv(ETH)


@pytest.fixture(scope="module")
def eth_model(eth: pd.DataFrame) -> tuple[Forecaster, TrainReport]:
    model = Forecaster(TINY)
    report = model.fit({"ETH_BTC": eth})
    return model, report


# ------------------------------------------------------------------ features and labels


def test_labels_on_a_constructed_series() -> None:
    labels = build_labels([1.0, 2.0, 2.0, 1.0, 3.0])
    assert labels.tolist() == [1, 0, 0, 1]  # flat counts as not up; the last bar has no label


@pytest.mark.parametrize("t", [0, 5, 13, 60, 150, 298])
def test_features_have_no_look_ahead(t: int) -> None:
    frame = _random_bars(300)
    before = _features(frame)
    changed = frame.copy()
    rng = np.random.default_rng(t)
    scale = rng.uniform(0.5, 2.0, (len(frame) - t - 1, 1))
    changed.iloc[t + 1 :] = changed.iloc[t + 1 :].to_numpy() * scale
    after = _features(changed)
    assert before.shape == (300, len(FEATURE_NAMES))
    np.testing.assert_array_equal(before[: t + 1], after[: t + 1])
    assert not np.array_equal(before[t + 1 :], after[t + 1 :])
    # label t reads bar t+1 by definition, so labels before t stay too
    np.testing.assert_array_equal(
        build_labels(frame["close"])[:t], build_labels(changed["close"])[:t]
    )


def test_feature_values_on_a_constructed_series() -> None:
    frame = _random_bars(100, seed=3)
    cols = {name: i for i, name in enumerate(TINY.features)}
    feats = _features(frame)
    close = frame["close"].to_numpy()
    np.testing.assert_allclose(feats[1:, cols["log_return"]], np.diff(np.log(close)))
    assert feats[0, cols["log_return"]] == 0.0
    np.testing.assert_allclose(feats[6:, cols["momentum_6"]], np.log(close[6:] / close[:-6]))
    t, w = 50, TINY.stats_window
    log_v = np.log1p(frame["volume"].to_numpy()[t - w + 1 : t + 1])
    expected = (log_v[-1] - log_v.mean()) / log_v.std()
    assert feats[t, cols["volume_z"]] == pytest.approx(expected, rel=1e-9)
    np.testing.assert_allclose(
        feats[:, cols["range"]], np.log(frame["high"] / frame["low"]).to_numpy()
    )


def test_a_trailing_slice_reproduces_the_full_series_features() -> None:
    frame = _random_bars(400, seed=4)
    full = _features(frame)
    need = TINY.required_bars
    assert need == TINY.window + feature_lookback(TINY.features, TINY.stats_window)
    for t in (need - 1, 200, 399):
        part = _features(frame.iloc[t - need + 1 : t + 1])
        np.testing.assert_allclose(
            part[-TINY.window :], full[t - TINY.window + 1 : t + 1], rtol=1e-12, atol=1e-12
        )


def test_bad_bars_are_refused() -> None:
    frame = _random_bars(50)
    frame.loc[10, "close"] = -1.0
    with pytest.raises(DataValidationError):
        _features(frame)
    backwards = _random_bars(400)
    backwards["timestamp"] = pd.date_range("2024-01-01", periods=400, freq="5min", tz="UTC")[::-1]
    with pytest.raises(DataValidationError, match="increasing"):
        Forecaster(TINY).fit({"X": backwards})


def test_splits_are_chronological_disjoint_and_purged() -> None:
    train, val, test = chronological_splits(1000, TINY)
    assert train[0] == TINY.window - 1 + TINY.lookback
    assert train[-1] + TINY.window < val[0] and val[-1] + TINY.window < test[0]
    assert test[-1] == 998  # the last bar has no label
    assert np.all(np.diff(np.concatenate([train, val, test])) > 0)
    assert len(train) > len(val) > 0 and len(test) > 0


def test_config_is_frozen_and_validated() -> None:
    with pytest.raises(ValidationError):
        ForecasterConfig(train_fraction=0.8, val_fraction=0.15, test_fraction=0.15)
    with pytest.raises(ValidationError):
        ForecasterConfig(hidden_size=10, num_heads=4, model_kind="transformer")
    with pytest.raises(ValidationError):
        ForecasterConfig(windw=8)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        TINY.window = 3  # type: ignore[misc]


# ------------------------------------------------------------------ learning


@pytest.mark.parametrize("kind", ["gru", "transformer"])
def test_learns_a_predictable_pattern(kind: str) -> None:
    config = TINY.model_copy(update={"model_kind": kind, "epochs": 15, "hidden_size": 16})
    config = ForecasterConfig.model_validate(config.model_dump())
    report = Forecaster(config).fit({"PATTERN": _pattern_bars(1500)})
    print(f"\n{report.summary()}")
    assert report.test_accuracy > 0.9
    # the pattern is up, up, down: persistence and reversal each get ~1/3 or ~2/3 only
    assert max(report.baselines.values()) < 0.75
    assert report.beats_baselines


def test_real_data_fit_and_baselines_are_honest(
    eth: pd.DataFrame, eth_model: tuple[Forecaster, TrainReport]
) -> None:
    _, report = eth_model
    print(f"\n{report.summary()}")
    assert report.seconds < TINY.max_train_seconds + 5.0
    assert report.stop_reason in ("epochs", "early_stop")

    close = eth["close"].to_numpy()
    labels = build_labels(close)
    train, val, test = chronological_splits(len(close), TINY)
    assert (report.train_size, report.val_size, report.test_size) == (
        len(train),
        len(val),
        len(test),
    )
    n_up_train = int(labels[train].sum())
    majority = 1 if n_up_train > len(train) - n_up_train else 0
    assert report.majority_class == majority
    y = labels[test]
    assert report.baseline_majority == pytest.approx(np.count_nonzero(y == majority) / len(y))
    assert report.baseline_always_up == pytest.approx(np.count_nonzero(y == 1) / len(y))
    last_up = (close[test] > close[test - 1]).astype(int)
    assert report.baseline_persistence == pytest.approx(np.mean(y == last_up))
    assert report.baseline_reversal == pytest.approx(np.mean(y == 1 - last_up))
    assert 0.0 <= report.test_accuracy <= 1.0 and report.test_log_loss > 0

    n = report.test_size
    needed = max(b + 2 * math.sqrt(b * (1 - b) / n) for b in report.baselines.values())
    assert report.required_accuracy == pytest.approx(needed)
    assert report.beats_baselines == (report.test_accuracy > needed)
    with pytest.raises(ValidationError):
        TrainReport.model_validate(
            {**report.model_dump(), "beats_baselines": not report.beats_baselines}
        )
    verdict = "BEATS" if report.beats_baselines else "does NOT beat"
    assert verdict in report.summary()
    assert f"{report.baseline_majority:.4f}" in report.summary()


def test_time_cap_stops_training(eth: pd.DataFrame) -> None:
    config = TINY.model_copy(update={"epochs": 10_000, "max_train_seconds": 0.3})
    threads_before = torch.get_num_threads()
    report = Forecaster(config).fit({"ETH_BTC": eth.iloc[:2000]})
    assert report.stop_reason in ("time_cap", "early_stop")
    assert report.seconds < 0.3 + 5.0
    assert torch.get_num_threads() == threads_before


# ------------------------------------------------------------------ reproducibility and i/o


def _weights_equal(a: Forecaster, b: Forecaster) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_same_seed_gives_identical_weights(eth: pd.DataFrame) -> None:
    frames = {"ETH_BTC": eth.iloc[:1500]}
    config = TINY.model_copy(update={"epochs": 2})
    first, second = Forecaster(config), Forecaster(config)
    r1, r2 = first.fit(frames), second.fit(frames)
    assert _weights_equal(first, second)
    assert r1.test_accuracy == r2.test_accuracy and r1.test_log_loss == r2.test_log_loss
    other = Forecaster(config.model_copy(update={"seed": 1}))
    other.fit(frames)
    assert not _weights_equal(first, other)


def test_fine_tune_starts_from_the_weights_and_never_ends_worse_on_validation(
    eth: pd.DataFrame, eth_model: tuple[Forecaster, TrainReport]
) -> None:
    base = eth_model[0]
    before = base.state_dict()
    recent = {"ETH_BTC": eth.iloc[-1500:]}
    reckless = base.fine_tuned(recent, epochs=2, learning_rate=1.0)
    tuned = base.fine_tuned(recent, epochs=3, learning_rate=3e-3)

    assert _weights_equal(reckless, base)
    assert reckless.report is not None and reckless.report.best_epoch == 0
    base_val_loss = reckless.report.val_log_loss
    assert tuned.report is not None
    assert tuned.report.val_log_loss <= base_val_loss
    assert tuned.report.best_epoch > 0 and not _weights_equal(tuned, base)
    for kept, fitted in zip(tuned.normalisation, base.normalisation, strict=True):
        np.testing.assert_array_equal(kept, fitted)
    assert tuned.config == base.config.model_copy(update={"epochs": 3, "learning_rate": 3e-3})
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())
    with pytest.raises(ConfigError, match="no weights"):
        Forecaster(TINY).fine_tuned(recent, epochs=1, learning_rate=1e-3)


@pytest.mark.parametrize("kind", ["gru", "transformer"])
def test_save_load_round_trip_predicts_identically(
    kind: str, eth: pd.DataFrame, eth_model: tuple[Forecaster, TrainReport], tmp_path: Path
) -> None:
    if kind == "gru":
        model = eth_model[0]
    else:
        model = Forecaster(TINY.model_copy(update={"model_kind": kind, "epochs": 1}))
        model.fit({"ETH_BTC": eth.iloc[:1500]})
    path = model.save(tmp_path / "sub" / "forecaster.pt")
    loaded = Forecaster.load(path)
    assert loaded.config == model.config and loaded.report == model.report
    assert _weights_equal(model, loaded)
    for a, b in zip(model.normalisation, loaded.normalisation, strict=True):
        np.testing.assert_array_equal(a, b)
    need = model.required_bars
    for end in (need, 2000, len(eth)):
        bars = eth.iloc[end - need : end]
        assert loaded.predict_proba(bars) == model.predict_proba(bars)
    tails = {"a": eth.iloc[-need:], "b": eth.iloc[1000 : 1000 + need]}
    assert loaded.predict_batch(tails) == model.predict_batch(tails)


def test_predict_proba_inputs_bounds_and_latency(
    eth: pd.DataFrame, eth_model: tuple[Forecaster, TrainReport]
) -> None:
    model, _ = eth_model
    need = model.required_bars
    bars = eth.iloc[-need:]
    p = model.predict_proba(bars)
    assert 0.0 <= p <= 1.0
    as_array = bars[list(OHLCV_COLUMNS)].to_numpy()
    as_mapping = {c: bars[c].to_numpy() for c in OHLCV_COLUMNS}
    assert model.predict_proba(as_array) == p == model.predict_proba(as_mapping)
    assert model.predict_proba(eth.iloc[-need - 500 :]) == p  # older bars are trimmed
    with pytest.raises(DataValidationError, match="needs the last"):
        model.predict_proba(bars.iloc[1:])

    probs = [model.predict_proba(eth.iloc[e - need : e]) for e in range(need, len(eth), 97)]
    assert all(0.0 <= q <= 1.0 for q in probs) and len(set(probs)) > 1
    batch = model.predict_batch({"x": bars, "y": eth.iloc[:need]})
    assert batch["x"] == pytest.approx(p, abs=1e-6)
    assert batch["y"] == pytest.approx(model.predict_proba(eth.iloc[:need]), abs=1e-6)

    for _ in range(20):
        model.predict_proba(as_array)
    runs = 200
    start = time.perf_counter()
    for _ in range(runs):
        model.predict_proba(as_array)
    per_window_ms = (time.perf_counter() - start) / runs * 1e3
    print(f"\npredict_proba: {per_window_ms:.3f} ms per window (mean of {runs})")


def test_untrained_forecaster_refuses_to_predict(eth: pd.DataFrame) -> None:
    with pytest.raises(ConfigError):
        Forecaster(TINY).predict_proba(eth.iloc[-TINY.required_bars :])


def test_cli_trains_prints_and_saves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "freqtrade_ETH_BTC-5m.csv"
    pd.read_csv(ETH).iloc[:1500].to_csv(csv, index=False)
    out = tmp_path / "runs" / "f.pt"
    code = cli_main(
        [
            "--data",
            str(csv),
            "--out",
            str(out),
            "--window",
            "8",
            "--hidden-size",
            "8",
            "--epochs",
            "1",
            "--config-json",
            '{"stats_window": 12}',
        ],
        configure_logging=False,
    )
    printed = capsys.readouterr().out
    assert code == 0 and out.exists()
    assert "test accuracy" in printed and "persistence" in printed and "ms/window" in printed
    assert Forecaster.load(out).report is not None
