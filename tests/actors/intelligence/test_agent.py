"""The intelligence agent: its incremental outputs equal the vectorised library on bundled data."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from actors.intelligence import agent as agent_module
from actors.intelligence import indicators as ind
from actors.intelligence.agent import CORRELATION_WINDOW, IntelligenceAgent
from actors.intelligence.correlation import correlation_matrix
from actors.intelligence.forecaster import load_forecaster
from actors.intelligence.patterns import breakout
from cycle.config import PROJECT_ROOT
from cycle.messages import Analysis, Bar, ValidatedFrame
from tests.conftest import make_config

SYMBOLS = ("ETH/BTC", "LTC/BTC", "ADA/BTC")
ROWS = 1700  # the ADA/BTC gaps of 2018-01-15 fall inside


def bundled(symbol: str) -> pd.DataFrame:
    name = symbol.replace("/", "_")
    frame = pd.read_csv(PROJECT_ROOT / f"data/freqtrade_{name}-5m.csv", parse_dates=["timestamp"])
    return frame.set_index("timestamp")


@pytest.fixture(scope="module")
def data() -> dict[str, pd.DataFrame]:
    """The three bundled symbols aligned on ETH's first ``ROWS`` timestamps (ADA has gaps)."""
    eth = bundled("ETH/BTC").iloc[:ROWS]
    return {s: bundled(s).reindex(eth.index) for s in SYMBOLS}


def stream(data: dict[str, pd.DataFrame]) -> list[ValidatedFrame]:
    frames = []
    for i, stamp in enumerate(data["ETH/BTC"].index):
        bars = {}
        for symbol, frame in data.items():
            row = frame.iloc[i]
            if not np.isnan(row["close"]):
                bars[symbol] = Bar(symbol=symbol, timestamp=stamp.to_pydatetime(),
                                   open=row["open"], high=row["high"], low=row["low"],
                                   close=row["close"], volume=row["volume"])
        frames.append(ValidatedFrame(cycle=i + 1, timestamp=stamp.to_pydatetime(), bars=bars))
    return frames


@pytest.fixture(scope="module")
def run(data: dict[str, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory) -> list[Analysis]:
    agent = IntelligenceAgent(make_config(tmp_path_factory.mktemp("intel")))
    agent.initialize()
    return [agent.step(frame) for frame in stream(data)]


def vectorised(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    h, lo, c, v = (frame[k].to_numpy() for k in ("high", "low", "close", "volume"))
    line, signal, hist = ind.macd(c, 12, 26, 9)
    adx, plus_di, minus_di = ind.adx(h, lo, c, 14)
    mid, upper, lower = ind.bollinger(c, 20, 2.0)
    d_upper, d_lower, d_mid = ind.donchian(h, lo, 20)
    return {
        "sma_20": ind.sma(c, 20), "ema_12": ind.ema(c, 12), "ema_26": ind.ema(c, 26),
        "rsi_14": ind.rsi(c, 14), "macd": line, "macd_signal": signal, "macd_hist": hist,
        "atr_14": ind.atr(h, lo, c, 14), "adx_14": adx, "plus_di_14": plus_di,
        "minus_di_14": minus_di, "bollinger_mid": mid, "bollinger_upper": upper,
        "bollinger_lower": lower, "obv": ind.obv(c, v), "vwap_48": ind.vwap(h, lo, c, v, 48),
        "donchian_upper_20": d_upper, "donchian_lower_20": d_lower, "donchian_mid_20": d_mid,
        "volatility_48": ind.realized_volatility(c, 48),
    }


@pytest.mark.parametrize("symbol", ["ETH/BTC", "LTC/BTC"])
def test_every_indicator_equals_the_vectorised_library_at_every_bar(
    symbol: str, data: dict[str, pd.DataFrame], run: list[Analysis]
) -> None:
    expected = vectorised(data[symbol])
    assert set(run[-1].indicators[symbol]) == set(expected)
    for name, series in expected.items():
        got = np.array([a.indicators[symbol][name] for a in run])
        np.testing.assert_array_equal(np.isnan(got), np.isnan(series), err_msg=name)
        finite = ~np.isnan(series)
        scale = np.maximum(np.abs(series[finite]), 1e-6 * np.abs(series[finite]).max())
        assert np.all(np.abs(got[finite] - series[finite]) <= 1e-9 * scale), name


def test_breakouts_equal_the_vectorised_pattern(data: dict[str, pd.DataFrame],
                                                run: list[Analysis]) -> None:
    frame = data["ETH/BTC"]
    signal = breakout(frame["high"], frame["low"], frame["close"], 20)
    up = np.array(["breakout_up" in a.patterns["ETH/BTC"] for a in run])
    down = np.array(["breakout_down" in a.patterns["ETH/BTC"] for a in run])
    np.testing.assert_array_equal(up, signal == 1)
    np.testing.assert_array_equal(down, signal == -1)
    assert up.sum() > 20 and down.sum() > 20


def test_correlation_matches_the_library_and_leaves_gaps_unknown(
    data: dict[str, pd.DataFrame], run: list[Analysis]
) -> None:
    closes = pd.DataFrame({s: f["close"] for s, f in data.items()})
    for t in (CORRELATION_WINDOW, 700, ROWS - 1):
        expected = correlation_matrix(closes.iloc[t - CORRELATION_WINDOW : t + 1],
                                      CORRELATION_WINDOW)
        got = run[t].correlation
        for a in ("ETH/BTC", "LTC/BTC"):
            for b in SYMBOLS:
                if a != b and np.isfinite(expected.loc[a, b]):
                    assert got[a][b] == pytest.approx(expected.loc[a, b], abs=1e-12)
    assert run[CORRELATION_WINDOW - 1].correlation == {}
    gap = closes["ADA/BTC"].isna().to_numpy()
    assert gap.any(), "the bundled ADA/BTC file has gaps in this stretch"
    window = CORRELATION_WINDOW
    blind = [t for t in range(window, ROWS) if gap[t - window : t + 1].any()]
    assert blind and all("ADA/BTC" not in run[t].correlation["ETH/BTC"] for t in blind)


def test_forecasts_equal_the_models_prediction_on_the_trailing_window(
    data: dict[str, pd.DataFrame], run: list[Analysis]
) -> None:
    model = load_forecaster("data/models/forecaster.pt")
    assert not isinstance(model, str)
    need = model.required_bars
    assert "ETH/BTC" not in run[need - 2].forecasts
    frame = data["ETH/BTC"].reset_index(drop=True)
    for t in (need - 1, 600, ROWS - 1):
        expected = model.predict_proba(frame.iloc[t - need + 1 : t + 1])
        assert run[t].forecasts["ETH/BTC"] == pytest.approx(expected, abs=1e-6)
    assert run[-1].notes == {}


def test_without_weights_there_are_no_forecasts_and_a_note_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agent_module, "DEFAULT_MODEL_PATH", str(tmp_path / "none.pt"))
    agent = IntelligenceAgent(make_config(tmp_path))
    agent.initialize()
    t0 = datetime(2018, 1, 10, tzinfo=UTC)
    bar = Bar(symbol="ETH/BTC", timestamp=t0, open=1.0, high=1.1, low=0.9, close=1.0, volume=1.0)
    analysis = None
    for i in range(100):
        stamp = t0 + timedelta(minutes=5 * i)
        analysis = agent.step(ValidatedFrame(cycle=i + 1, timestamp=stamp, bars={
            "ETH/BTC": bar.model_copy(update={"timestamp": stamp})}))
    assert analysis is not None and analysis.forecasts == {}
    assert "forecaster weights not found" in analysis.notes["forecaster"]


def test_snapshot_is_json_and_the_restored_agent_continues_identically(
    data: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    frames = stream({s: f.iloc[:400] for s, f in data.items()})
    config = make_config(tmp_path)
    agent = IntelligenceAgent(config)
    agent.initialize()
    for frame in frames[:300]:
        agent.step(frame)
    restored = IntelligenceAgent(config)
    restored.initialize()
    restored.restore(json.loads(json.dumps(agent.snapshot(), allow_nan=False)), cycle=300)
    for frame in frames[300:]:
        a, b = agent.step(frame), restored.step(frame)
        assert json.dumps(a.model_dump(), sort_keys=True) == json.dumps(b.model_dump(),
                                                                        sort_keys=True)
