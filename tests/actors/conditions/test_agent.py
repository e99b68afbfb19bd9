"""The conditions agent over frames: quoted-spread anomalies, supply/demand and regime per bar."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from actors.conditions.agent import ConditionsAgent
from actors.conditions.regime import regime_series
from actors.feeds import book_features
from cycle.messages import Bar, BookLevel, OrderBook, TradeTape, ValidatedFrame
from tests.conftest import make_config

T0 = datetime(2018, 1, 10, tzinfo=UTC)


def observed_frame(i: int, close: float, spread_bps: float, buy: float = 1.0) -> ValidatedFrame:
    """One ETH/BTC bar with an observed book of the given spread and an observed tape."""
    stamp = T0 + timedelta(minutes=5 * i)
    bar = Bar(symbol="ETH/BTC", timestamp=stamp, open=close, high=close * 1.002,
              low=close * 0.998, close=close, volume=10.0 + (i % 3))
    half = close * spread_bps / 2e4
    book = OrderBook(symbol="ETH/BTC", timestamp=stamp, synthetic=False,
                     bids=(BookLevel(price=close - half, quantity=3.0),),
                     asks=(BookLevel(price=close + half, quantity=1.0),))
    tape = TradeTape(symbol="ETH/BTC", timestamp=stamp, buy_volume=buy, sell_volume=1.0,
                     trade_count=5, synthetic=False)
    return ValidatedFrame(cycle=i + 1, timestamp=stamp, bars={"ETH/BTC": bar},
                          books={"ETH/BTC": book}, tapes={"ETH/BTC": tape},
                          signals={"ETH/BTC": book_features(book)})


def test_a_quoted_spread_blowout_is_an_anomaly_even_when_the_bar_is_ordinary(tmp_path) -> None:
    agent = ConditionsAgent(make_config(tmp_path, symbols=["ETH/BTC"]))
    agent.initialize()
    rng = np.random.default_rng(1)
    closes = np.exp(np.cumsum(rng.normal(0, 0.001, 130))) * 0.1
    spreads = 10 + rng.normal(0, 0.5, 130)
    pairs = enumerate(zip(closes, spreads, strict=True))
    outputs = [agent.step(observed_frame(i, c, s)) for i, (c, s) in pairs]
    assert not any(o.by_symbol["ETH/BTC"].anomaly for o in outputs[101:])
    blowout = agent.step(observed_frame(130, closes[-1], 60.0, buy=3.0)).by_symbol["ETH/BTC"]
    assert blowout.anomaly
    assert [r.split("=")[0] for r in blowout.anomaly_reasons] == ["spread"]
    assert blowout.supply_demand == pytest.approx(0.5 * 0.5 + 0.5 * 0.5)  # book 3:1, tape 3:1
    labels = regime_series(np.append(closes, closes[-1]))
    assert blowout.regime == (labels[-1] or "warming_up")
