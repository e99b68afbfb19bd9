"""Sentiment feed: pluggable sources of timestamped scores in [-1, 1] per symbol.

A source answers one question: *which score had been published at or before time t?* Never a
score stamped after t, so a replay cannot peek at sentiment it would not yet have had. The feeds
agent builds the source named in ``data.sentiment.source`` (``"module:Class"``) with keyword
arguments ``path`` and ``symbols``, so another provider (an API client, a model over news) plugs
in by implementing :class:`SentimentSource`.

The default, :class:`FileSentiment`, reads a CSV or Parquet file of ``timestamp,symbol,score``
rows where ``timestamp`` is the *publication* time. The bundled file
``data/sentiment/synthetic_sentiment.csv`` is **synthetic**: :func:`synthesise` derives hourly
scores from each symbol's *past* 24-hour return plus seeded noise (see there). It carries no
information a price chart does not already hold and exists so the pipeline runs end to end; no
strategy of the library trades on it.

Regenerate it with ``python -m actors.sentiment``.
"""

from __future__ import annotations

import argparse
import importlib
import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from loguru import logger

from cycle.config import PROJECT_ROOT, SentimentConfig
from cycle.errors import ConfigError

SENTIMENT_COLUMNS = ("timestamp", "symbol", "score")
DEFAULT_FILE = PROJECT_ROOT / "data" / "sentiment" / "synthetic_sentiment.csv"

_log = logger.bind(agent_id="feeds")


@dataclass(frozen=True)
class SentimentReading:
    """One published score.

    Attributes:
        score: Sentiment in [-1, 1]; +1 all bullish, -1 all bearish.
        published: When the score became known (timezone-aware).
    """

    score: float
    published: datetime


class SentimentSource(Protocol):
    """What the feeds agent asks of any sentiment provider."""

    def latest(self, symbol: str, at: datetime) -> SentimentReading | None:
        """The newest score published at or before ``at``; None if there is none."""
        ...


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file, chosen by suffix; a missing file is a ConfigError."""
    if not path.is_file():
        raise ConfigError(f"data file {path}: no such file")
    if path.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path)
    return pd.read_csv(path)


class FileSentiment:
    """Timestamped scores from a ``timestamp,symbol,score`` file, looked up without look-ahead.

    Args:
        path: CSV or Parquet file; ``timestamp`` is the publication time (UTC).
        symbols: Symbols the desk trades; scores of other symbols are ignored.

    Raises:
        ConfigError: Missing columns, a score outside [-1, 1] or not finite, or timestamps that
            cannot be parsed. A bad score must stop the run, not be clipped into a plausible one.
    """

    def __init__(self, *, path: Path | str, symbols: Sequence[str], **_: Any) -> None:
        path = Path(path)
        frame = read_table(path)
        missing = [c for c in SENTIMENT_COLUMNS if c not in frame.columns]
        if missing:
            raise ConfigError(f"sentiment file {path}: missing columns {missing}")
        scores = frame["score"].to_numpy(dtype=float)
        if not np.all(np.isfinite(scores)) or np.any(np.abs(scores) > 1.0):
            raise ConfigError(f"sentiment file {path}: scores must be finite and within [-1, 1]")
        try:
            stamps = pd.to_datetime(frame["timestamp"], utc=True)
        except (ValueError, TypeError) as error:
            raise ConfigError(f"sentiment file {path}: bad timestamp ({error})") from error
        table = pd.DataFrame({"timestamp": stamps, "symbol": frame["symbol"], "score": scores})
        table = table.sort_values("timestamp", kind="stable")
        self._stamps: dict[str, list[datetime]] = {}
        self._scores: dict[str, list[float]] = {}
        for symbol in symbols:
            rows = table[table["symbol"] == symbol]
            self._stamps[symbol] = list(rows["timestamp"].dt.to_pydatetime())
            self._scores[symbol] = rows["score"].tolist()

    def latest(self, symbol: str, at: datetime) -> SentimentReading | None:
        """The newest score published at or before ``at`` (bisection, O(log n))."""
        stamps = self._stamps.get(symbol, [])
        index = bisect_right(stamps, at) - 1
        if index < 0:
            return None
        return SentimentReading(self._scores[symbol][index], stamps[index])


def load_sentiment_source(config: SentimentConfig, symbols: Sequence[str]) -> SentimentSource:
    """Build the configured source; a bad class path is a ConfigError naming the field."""
    module_name, class_name = config.source.split(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"data.sentiment.source: cannot load {config.source}") from error
    source = cls(path=config.resolved(), symbols=list(symbols))
    if not callable(getattr(source, "latest", None)):
        raise ConfigError(f"data.sentiment.source: {config.source} has no latest(symbol, at)")
    return source


def synthesise(
    frames: Mapping[str, pd.DataFrame],
    *,
    every: timedelta = timedelta(hours=1),
    lookback: timedelta = timedelta(hours=24),
    bar: timedelta = timedelta(minutes=5),
    gain: float = 20.0,
    noise: float = 0.3,
    seed: int = 7,
) -> pd.DataFrame:
    """Synthetic hourly sentiment that only looks backwards.

    A score published at ``P`` is ``clip(0.7 * tanh(gain * r) + noise * e, -1, 1)`` where ``r``
    is the log return over the ``lookback`` ending with the last bar *closed* by ``P`` (open time
    at most ``P - bar``) and ``e`` an AR(1) Gaussian series (coefficient 0.8) from ``seed``: it
    trails price like crowd mood tends to, and by construction it cannot know the future.

    Args:
        frames: Symbol -> bars with ``timestamp`` (open time, UTC) and ``close``.
        every: Publication interval.
        lookback: Return horizon the score reacts to.
        bar: Bar length, to know when a bar has closed.
        gain: Steepness of the tanh response to the return.
        noise: Weight of the AR(1) noise.
        seed: Seed of the noise generator.

    Returns:
        Rows ``timestamp,symbol,score`` ordered by time, then symbol.
    """
    rng = np.random.default_rng(seed)
    rows: list[tuple[pd.Timestamp, str, float]] = []
    for symbol, frame in frames.items():
        stamps = pd.to_datetime(frame["timestamp"], utc=True)
        closes = frame["close"].to_numpy(dtype=float)
        start = (stamps.iloc[0] + lookback + bar).ceil(every)
        state = 0.0
        for published in pd.date_range(start, stamps.iloc[-1] + bar, freq=every):
            last = int(stamps.searchsorted(published - bar, side="right")) - 1
            first = int(stamps.searchsorted(published - bar - lookback, side="left"))
            state = 0.8 * state + math.sqrt(1 - 0.8**2) * float(rng.normal())
            if last <= first:
                continue
            ret = math.log(closes[last] / closes[first])
            score = float(np.clip(0.7 * math.tanh(gain * ret) + noise * state, -1.0, 1.0))
            rows.append((published, symbol, round(score, 4)))
    table = pd.DataFrame(rows, columns=list(SENTIMENT_COLUMNS))
    return table.sort_values(["timestamp", "symbol"], kind="stable").reset_index(drop=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Write the bundled synthetic sentiment file for the default symbols."""
    parser = argparse.ArgumentParser(description="Generate the synthetic sentiment file.")
    parser.add_argument("--out", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    files = {
        "ETH/BTC": "data/freqtrade_ETH_BTC-5m.csv",
        "LTC/BTC": "data/freqtrade_LTC_BTC-5m.csv",
        "ADA/BTC": "data/freqtrade_ADA_BTC-5m.csv",
    }
    frames = {s: pd.read_csv(PROJECT_ROOT / f) for s, f in files.items()}
    table = synthesise(frames, seed=args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.assign(timestamp=table["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(
        args.out, index=False
    )
    _log.info("wrote {} synthetic sentiment rows to {}", len(table), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
