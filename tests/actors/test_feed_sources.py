"""Bar sources and market data beyond the replay of one CSV: Parquet, resampling, the live ccxt
feed against the mock exchange on 127.0.0.1, book and tape features, and the sentiment feed."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from actors.adapters.mock_exchange import MockExchange, MockFailures, eth_btc_market
from actors.feeds import (
    CcxtFeed,
    FeedsAgent,
    ReplayFeed,
    book_features,
    build_ccxt_exchange,
    infer_timeframe_seconds,
    load_ohlcv,
    resample_ohlcv,
    tape_features,
)
from actors.sentiment import FileSentiment, SentimentReading, synthesise
from cycle.config import PROJECT_ROOT, LiveFeedConfig
from cycle.errors import ConfigError
from cycle.messages import BookLevel, OrderBook, TradeTape
from tests.conftest import make_config

ETH_CSV = PROJECT_ROOT / "data" / "freqtrade_ETH_BTC-5m.csv"
ADA_CSV = PROJECT_ROOT / "data" / "freqtrade_ADA_BTC-5m.csv"
T0 = datetime(2018, 1, 10, 5, 0, tzinfo=UTC)


def five_minute_bars(hours: int, start: datetime = T0) -> pd.DataFrame:
    """``12 * hours`` bars with open = i, high = i + 0.5, low = i - 0.25, close = i + 0.25."""
    index = np.arange(12 * hours, dtype=float) + 10.0
    return pd.DataFrame({
        "timestamp": pd.date_range(start, periods=index.size, freq="5min"),
        "open": index, "high": index + 0.5, "low": index - 0.25, "close": index + 0.25,
        "volume": np.ones(index.size),
    })


# ------------------------------------------------------------------ files


def test_parquet_file_replays_exactly_like_the_csv(tmp_path: Path) -> None:
    frame = pd.read_csv(ETH_CSV).head(50)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    frame.set_index("timestamp").to_parquet(tmp_path / "eth.parquet")
    frame.to_csv(tmp_path / "eth.csv", index=False)
    parquet, csv = load_ohlcv(tmp_path / "eth.parquet"), load_ohlcv(tmp_path / "eth.csv")
    pd.testing.assert_frame_equal(parquet, csv, check_dtype=False)
    bars = [ReplayFeed({"ETH/BTC": f}).next_bars()[1]["ETH/BTC"] for f in (parquet, csv)]
    assert bars[0] == bars[1]


def test_resampling_5m_to_1h_aggregates_by_the_textbook_rules() -> None:
    hourly, dropped = resample_ohlcv(five_minute_bars(2), 300, 3600)
    assert dropped == {}
    assert hourly["timestamp"].tolist() == [pd.Timestamp(T0), pd.Timestamp(T0 + timedelta(hours=1))]
    first = hourly.iloc[0]
    assert (first.open, first.high, first.low, first.close, first.volume) == (
        10.0, 21.5, 9.75, 21.25, 12.0
    )
    assert hourly.iloc[1].open == 22.0 and hourly.iloc[1].close == 33.25


def test_resampling_drops_incomplete_and_bad_buckets_and_says_why() -> None:
    bars = five_minute_bars(3)
    bars.loc[15, "close"] = math.nan
    bars = bars.drop(index=30).reset_index(drop=True)
    hourly, dropped = resample_ohlcv(bars, 300, 3600)
    assert hourly["timestamp"].tolist() == [pd.Timestamp(T0)]
    assert dropped == {
        T0 + timedelta(hours=1): "1h bucket holds an invalid source bar",
        T0 + timedelta(hours=2): "incomplete 1h bucket: 11/12 source bars",
    }
    feed = ReplayFeed({"A": resample_ohlcv(five_minute_bars(3), 300, 3600)[0], "B": hourly},
                      {"B": dropped})
    steps = [feed.next_bars() for _ in range(3)]
    assert steps[1][2] == {"B": "1h bucket holds an invalid source bar"}
    assert steps[2][2] == {"B": "incomplete 1h bucket: 11/12 source bars"}


def test_a_timeframe_finer_than_the_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data.files.ETH/BTC .*cannot be built from 300 s"):
        FeedsAgent(make_config(tmp_path, data={
            "files": {"ETH/BTC": str(ETH_CSV)}, "timeframe": "1m"}, symbols=["ETH/BTC"],
        )).initialize()


def test_bundled_data_replayed_hourly_reports_the_ada_gap_hours(tmp_path: Path) -> None:
    files = {"ETH/BTC": str(ETH_CSV), "ADA/BTC": str(ADA_CSV)}
    agent = FeedsAgent(make_config(tmp_path, data={"files": files, "timeframe": "1h"},
                                   symbols=list(files)))
    agent.initialize()
    frames = [agent.step(c) for c in range(1, 480)]
    assert frames[-1].exhausted and agent.step(480).bars == {}

    def hourly_counts(path: Path) -> pd.Series:
        bars = pd.read_csv(path, parse_dates=["timestamp"])
        return bars.groupby(bars["timestamp"].dt.floor("1h")).size()

    eth_hours, ada_hours = hourly_counts(ETH_CSV), hourly_counts(ADA_CSV)
    complete = eth_hours[eth_hours == 12].index
    assert [f.timestamp for f in frames] == [t.to_pydatetime() for t in complete]
    ada = {t.to_pydatetime(): int(ada_hours.get(t, 0)) for t in complete}
    short = {hour: n for hour, n in ada.items() if n < 12}
    gaps = {f.timestamp: f.missing["ADA/BTC"] for f in frames if "ADA/BTC" in f.missing}
    assert set(gaps) == set(short) and len(gaps) == 5
    for hour, reason in gaps.items():
        expected = f"incomplete 1h bucket: {short[hour]}/12" if short[hour] else "no bar at"
        assert reason.startswith(expected)
    eth = pd.read_csv(ETH_CSV, parse_dates=["timestamp"])
    first_hour = eth[eth["timestamp"].dt.floor("1h") == pd.Timestamp("2018-01-10T05:00Z")]
    assert frames[0].timestamp == datetime(2018, 1, 10, 5, tzinfo=UTC)  # 04:00 holds one bar
    bar = frames[0].bars["ETH/BTC"]
    assert (bar.open, bar.close) == (first_hour["open"].iloc[0], first_hour["close"].iloc[-1])
    assert bar.high == first_hour["high"].max() and bar.low == first_hour["low"].min()
    assert bar.volume == pytest.approx(first_hour["volume"].sum(), rel=1e-12)
    assert infer_timeframe_seconds(pd.read_csv(ETH_CSV, parse_dates=["timestamp"])) == 300


# ------------------------------------------------------------------ book and tape features


def test_book_features_known_values() -> None:
    book = OrderBook(
        symbol="X", timestamp=T0, synthetic=False,
        bids=(BookLevel(price=99.0, quantity=2.0), BookLevel(price=98.0, quantity=3.0)),
        asks=(BookLevel(price=101.0, quantity=1.0), BookLevel(price=102.0, quantity=6.0)),
    )
    features = book_features(book)
    assert features["spread_bps"] == pytest.approx(200.0)
    assert features["depth_imbalance"] == pytest.approx((5 - 7) / 12)
    assert features["microprice_bps"] == pytest.approx(((101 * 2 + 99 * 1) / 3 - 100) / 100 * 1e4)
    assert book_features(book.model_copy(update={"asks": ()})) == {}


def test_tape_features_known_values() -> None:
    tape = TradeTape(symbol="X", timestamp=T0, buy_volume=3.0, sell_volume=1.0, trade_count=7,
                     synthetic=False)
    assert tape_features(tape) == {
        "aggressor_imbalance": 0.5, "buy_share": 0.75, "trade_count": 7.0,
    }


def test_replay_frame_carries_book_tape_and_derived_signals(tmp_path: Path) -> None:
    agent = FeedsAgent(make_config(tmp_path))
    agent.initialize()
    frame = agent.step(1)
    eth = frame.signals["ETH/BTC"]
    assert set(eth) >= {"spread_bps", "depth_imbalance", "microprice_bps",
                        "aggressor_imbalance", "buy_share", "trade_count", "range_fraction"}
    assert eth["depth_imbalance"] == 0.0  # the synthetic book is symmetric
    bar = frame.bars["ETH/BTC"]
    clv = (bar.close - bar.low) / (bar.high - bar.low)
    assert eth["aggressor_imbalance"] == pytest.approx(2 * clv - 1)


# ------------------------------------------------------------------ live ccxt feed


@pytest.fixture
def mock() -> Iterator[MockExchange]:
    with MockExchange([eth_btc_market()], {"BTC": 1.0}, api_key="k", api_secret="s") as server:
        yield server


def live_feed(mock: MockExchange, **options: Any) -> CcxtFeed:
    exchange = build_ccxt_exchange(LiveFeedConfig(base_url=mock.url))
    return CcxtFeed(exchange, ["ETH/BTC"], "5m", **options)


def aggressor_volumes(trades: list[dict[str, Any]]) -> tuple[float, float]:
    """(taker buy, taker sell) volume of ``aggTrades`` rows; ``m`` means the buyer was the maker."""
    buys = sum(float(t["q"]) for t in trades if not t["m"])
    return buys, sum(float(t["q"]) for t in trades if t["m"])


def test_ccxt_feed_reads_candle_book_and_tape_from_the_mock(mock: MockExchange) -> None:
    feed = live_feed(mock, book_depth=5)
    poll = feed.poll()
    eth = pd.read_csv(ETH_CSV, parse_dates=["timestamp"])
    row = eth[eth["close"].round(8) == round(mock.engine.price("ETHBTC"), 8)].iloc[0]
    bar = poll.bars["ETH/BTC"]
    assert bar.timestamp == row["timestamp"].to_pydatetime()
    assert (bar.open, bar.high, bar.low, bar.close) == pytest.approx(
        (row["open"], row["high"], row["low"], row["close"]), abs=1e-8)
    book = poll.books["ETH/BTC"]
    assert not book.synthetic and len(book.bids) == 5
    assert book.bids[0].price < bar.close < book.asks[0].price
    tape = poll.tapes["ETH/BTC"]
    assert not tape.synthetic and "ETH/BTC" not in poll.degraded
    assert tape.buy_volume + tape.sell_volume == pytest.approx(bar.volume, abs=1e-7)
    again = feed.poll()
    assert again.bars == {} and again.missing["ETH/BTC"].startswith("no new bar since")
    mock.engine.advance()
    assert feed.poll().bars["ETH/BTC"].timestamp == bar.timestamp + timedelta(minutes=5)


def test_ccxt_feed_splits_the_trade_tape_by_aggressor(mock: MockExchange) -> None:
    feed = live_feed(mock)
    for _ in range(2):
        served = mock.engine.bar_trades("ETHBTC")
        buys, sells = aggressor_volumes(served)
        assert buys > 0 and sells > 0
        poll = feed.poll()
        tape = poll.tapes["ETH/BTC"]
        assert tape.timestamp == poll.bars["ETH/BTC"].timestamp
        assert (tape.buy_volume, tape.sell_volume) == pytest.approx((buys, sells), abs=1e-9)
        assert tape.trade_count == len(served) < feed.trades_limit
        assert tape_features(tape) == pytest.approx({
            "aggressor_imbalance": (buys - sells) / (buys + sells),
            "buy_share": buys / (buys + sells), "trade_count": float(len(served)),
        })
        mock.engine.advance()


def test_a_slow_trades_endpoint_degrades_the_tape_but_keeps_bar_and_book(
    mock: MockExchange,
) -> None:
    mock.engine.set_failures(MockFailures(latency_s=1.0, latency_paths=frozenset({"aggTrades"})))
    exchange = build_ccxt_exchange(LiveFeedConfig(base_url=mock.url, timeout_ms=300))
    poll = CcxtFeed(exchange, ["ETH/BTC"], "5m").poll()
    assert set(poll.bars) == set(poll.books) == {"ETH/BTC"} and poll.tapes == {}
    assert poll.degraded["ETH/BTC"].startswith("trades unavailable: RequestTimeout")


def test_ccxt_feed_reports_a_late_candle_instead_of_trading_on_it(mock: MockExchange) -> None:
    poll = live_feed(mock, late_after_s=3600.0).poll()
    assert poll.bars == {}
    assert poll.missing["ETH/BTC"].startswith("late: newest closed bar 2018-")


def test_feeds_agent_on_a_ccxt_source_resumes_after_restore(
    mock: MockExchange, tmp_path: Path
) -> None:
    config = make_config(tmp_path, data={
        "source": "ccxt", "timeframe": "5m", "live": {"base_url": mock.url}}, symbols=["ETH/BTC"])
    agent = FeedsAgent(config)
    agent.initialize()
    first = agent.step(1)
    assert set(first.bars) == {"ETH/BTC"} and first.books["ETH/BTC"].synthetic is False
    buys, sells = aggressor_volumes(mock.engine.bar_trades("ETHBTC"))
    signals = first.signals["ETH/BTC"]
    assert signals["aggressor_imbalance"] == pytest.approx((buys - sells) / (buys + sells))
    bid, ask = first.books["ETH/BTC"].bids[0].price, first.books["ETH/BTC"].asks[0].price
    assert (bid + ask) / 2 == pytest.approx(mock.engine.price("ETHBTC"), abs=1e-12)
    assert signals["spread_bps"] == pytest.approx((ask - bid) / mock.engine.price("ETHBTC") * 1e4)
    assert signals["depth_imbalance"] == 0.0 and signals["microprice_bps"] == pytest.approx(0.0)
    restored = FeedsAgent(config)
    restored.initialize()
    restored.restore(agent.snapshot(), cycle=1)
    assert restored.step(2).missing["ETH/BTC"].startswith("no new bar since")


# ------------------------------------------------------------------ sentiment


def write_scores(path: Path, rows: list[tuple[str, str, float]]) -> Path:
    pd.DataFrame(rows, columns=["timestamp", "symbol", "score"]).to_csv(path, index=False)
    return path


def test_file_sentiment_never_answers_with_a_score_from_the_future(tmp_path: Path) -> None:
    path = write_scores(tmp_path / "s.csv", [
        ("2018-01-10T06:00:00Z", "ETH/BTC", 0.5), ("2018-01-10T05:00:00Z", "ETH/BTC", -0.2),
        ("2018-01-10T05:30:00Z", "LTC/BTC", 0.9),
    ])
    source = FileSentiment(path=path, symbols=["ETH/BTC"])
    at = datetime(2018, 1, 10, 5, 59, tzinfo=UTC)
    assert source.latest("ETH/BTC", at) == SentimentReading(-0.2, T0)
    assert source.latest("ETH/BTC", at + timedelta(minutes=1)).score == 0.5
    assert source.latest("ETH/BTC", T0 - timedelta(seconds=1)) is None
    assert source.latest("LTC/BTC", at) is None


def test_file_sentiment_refuses_a_score_outside_the_scale(tmp_path: Path) -> None:
    path = write_scores(tmp_path / "s.csv", [("2018-01-10T06:00:00Z", "ETH/BTC", 1.5)])
    with pytest.raises(ConfigError, match=r"within \[-1, 1\]"):
        FileSentiment(path=path, symbols=["ETH/BTC"])


class ConstantSentiment:
    """A plug-in source for the test: always 0.25, published an hour before it is asked."""

    def __init__(self, *, path: Path, symbols: list[str], **_: Any) -> None:
        self.symbols = symbols

    def latest(self, symbol: str, at: datetime) -> SentimentReading | None:
        return SentimentReading(0.25, at - timedelta(hours=1))


def test_sentiment_source_is_pluggable_and_stale_or_absent_scores_degrade(tmp_path: Path) -> None:
    plugged = make_config(tmp_path, data={
        "files": {"ETH/BTC": str(ETH_CSV)}, "timeframe": "5m",
        "sentiment": {"source": "tests.actors.test_feed_sources:ConstantSentiment",
                      "path": str(ETH_CSV), "max_age_bars": 24},
    }, symbols=["ETH/BTC"])
    agent = FeedsAgent(plugged)
    agent.initialize()
    frame = agent.step(1)
    assert frame.signals["ETH/BTC"]["sentiment"] == 0.25
    assert frame.signals["ETH/BTC"]["sentiment_age_bars"] == 12.0
    strict = plugged.model_copy(update={"data": plugged.data.model_copy(update={
        "sentiment": plugged.data.sentiment.model_copy(update={"max_age_bars": 6})})})
    stale = FeedsAgent(strict)
    stale.initialize()
    frame = stale.step(1)
    assert "sentiment" not in frame.signals["ETH/BTC"]
    assert frame.degraded["ETH/BTC"].startswith("sentiment stale: last score")
    default = FeedsAgent(make_config(tmp_path))
    default.initialize()
    first = default.step(1)
    assert first.degraded == {s: "no sentiment score published yet" for s in first.bars}


def test_synthetic_sentiment_only_looks_backwards() -> None:
    eth = pd.read_csv(ETH_CSV).head(1200)
    cut = pd.Timestamp("2018-01-12T12:00Z")
    changed = eth.copy()
    later = pd.to_datetime(changed["timestamp"], utc=True) >= cut  # bars closing after cut
    changed.loc[later, "close"] *= 1.5
    before = synthesise({"ETH/BTC": eth})
    after = synthesise({"ETH/BTC": changed})
    published = before["timestamp"] <= cut
    assert published.sum() > 20
    pd.testing.assert_frame_equal(before[published], after[published])
    assert not before[~published].equals(after[~published])


def test_bundled_synthetic_sentiment_matches_its_generator() -> None:
    frames = {s: pd.read_csv(PROJECT_ROOT / f"data/freqtrade_{s.replace('/', '_')}-5m.csv")
              for s in ("ETH/BTC", "LTC/BTC", "ADA/BTC")}
    shipped = pd.read_csv(PROJECT_ROOT / "data/sentiment/synthetic_sentiment.csv")
    regenerated = synthesise(frames)
    assert shipped["score"].tolist() == regenerated["score"].tolist()
    assert shipped["symbol"].tolist() == regenerated["symbol"].tolist()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"source": "ccxt", "timeframe": "5m"}, "data: live: a ccxt feed needs its live settings"),
        ({"source": "replay", "files": {}}, "data: files: a replay needs at least one file"),
        ({"files": {"ETH/BTC": str(ETH_CSV)}, "sentiment": {"path": "nope.csv"}},
         "data.sentiment.path: no such file"),
        ({"source": "ccxt", "live": {"base_url": "ftp://x"}}, "data.live.base_url"),
    ],
)
def test_bad_data_settings_name_the_field(tmp_path: Path, data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        make_config(tmp_path, data=data, symbols=["ETH/BTC"])
