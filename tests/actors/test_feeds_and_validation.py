from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from actors.feeds import FeedsAgent, ReplayFeed, synthetic_book, synthetic_tape
from actors.validation import ValidationAgent, bar_problem
from cycle.messages import Bar, MarketFrame
from tests.conftest import make_config

T0 = datetime(2018, 1, 10, 5, 0, tzinfo=UTC)
STALE = timedelta(minutes=15)


def bar(**changes) -> Bar:
    fields = dict(symbol="ETH/BTC", timestamp=T0, open=1.0, high=1.2, low=0.9, close=1.1, volume=5.0)
    fields.update(changes)
    return Bar(**fields)


@pytest.mark.parametrize(
    ("changes", "previous", "reason"),
    [
        ({"close": math.nan}, None, "close is not a finite number"),
        ({"volume": math.inf}, None, "volume is not a finite number"),
        ({"low": -0.5}, None, "low is not positive"),
        ({"open": 0.0}, None, "open is not positive"),
        ({"high": 0.8}, None, "high 0.8 < low 0.9"),
        ({"close": 1.3}, None, "open/close outside the high-low range"),
        ({}, T0, "duplicate timestamp"),
        ({}, T0 + timedelta(minutes=5), "not after previous"),
        ({"timestamp": T0 - timedelta(minutes=20)}, None, "stale"),
    ],
)
def test_each_kind_of_bad_bar_is_rejected_with_its_reason(changes, previous, reason) -> None:
    problem = bar_problem(bar(**changes), previous, T0, STALE)
    assert problem is not None and reason in problem


def test_sound_bar_passes() -> None:
    assert bar_problem(bar(), T0 - timedelta(minutes=5), T0, STALE) is None


def test_validation_skips_only_the_bad_symbol_and_records_why(tmp_path) -> None:
    agent = ValidationAgent(make_config(tmp_path))
    agent.initialize()
    frame = MarketFrame(
        cycle=1, timestamp=T0,
        bars={"ETH/BTC": bar(), "LTC/BTC": bar(symbol="LTC/BTC", high=0.5)},
        missing={"ADA/BTC": "no bar at 2018-01-10T05:00:00+00:00"},
    )
    valid = agent.step(frame)
    assert set(valid.bars) == {"ETH/BTC"}
    assert "high 0.5 < low 0.9" in valid.rejected["LTC/BTC"]
    assert valid.rejected["ADA/BTC"].startswith("missing: no bar at")
    again = agent.step(frame.model_copy(update={"cycle": 2, "bars": {"ETH/BTC": bar()}}))
    assert "duplicate timestamp" in again.rejected["ETH/BTC"]


def test_replay_aligns_symbols_on_time_and_reports_gaps() -> None:
    stamps = pd.to_datetime(["2018-01-10T05:00Z", "2018-01-10T05:05Z", "2018-01-10T05:10Z"], utc=True)
    full = pd.DataFrame({"timestamp": stamps, "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0})
    gappy = full.drop(index=1).reset_index(drop=True)
    feed = ReplayFeed({"A": full, "B": gappy})
    seen = [feed.next_bars() for _ in range(3)]
    assert [set(bars) for _, bars, _ in seen] == [{"A", "B"}, {"A"}, {"A", "B"}]
    assert seen[1][2] == {"B": "no bar at 2018-01-10T05:05:00+00:00"}
    assert feed.exhausted


def test_feeds_replay_the_bundled_candles_with_synthetic_book_and_tape(tmp_path) -> None:
    agent = FeedsAgent(make_config(tmp_path))
    agent.initialize()
    first = agent.step(1)
    assert set(first.bars) == {"ETH/BTC", "LTC/BTC", "ADA/BTC"}
    eth = first.bars["ETH/BTC"]
    assert (eth.open, eth.close) == (0.0984, 0.0994766)
    assert first.books["ETH/BTC"].synthetic and first.tapes["ETH/BTC"].synthetic
    second = agent.step(2)
    expected = math.log(second.bars["ETH/BTC"].close / eth.close)
    assert second.signals["ETH/BTC"]["log_return"] == pytest.approx(expected)
    restored = FeedsAgent(make_config(tmp_path))
    restored.initialize()
    restored.restore(agent.snapshot(), cycle=2)
    assert restored.step(3).bars == agent.step(3).bars


def test_synthetic_book_brackets_the_close_and_tape_splits_volume() -> None:
    b = bar(open=1.0, high=1.2, low=1.0, close=1.15, volume=10.0)
    book = synthetic_book(b)
    assert book.bids[0].price < b.close < book.asks[0].price
    assert book.bids[0].quantity > book.bids[-1].quantity
    tape = synthetic_tape(b)
    assert tape.buy_volume == pytest.approx(7.5) and tape.sell_volume == pytest.approx(2.5)
