"""Intelligence agent (cycle step 3): indicators, patterns, correlations and the forecaster.

Indicators update bar by bar through the ``*State`` twins of :mod:`actors.intelligence.indicators`,
so a cycle costs O(window) per symbol however long the run; their values equal the vectorised
functions that backtests use (tested to 1e-9 on the bundled data). Candlestick patterns are read
off the last two bars, the Donchian breakout off the channel *before* the bar. The cross-symbol
correlation of log returns is computed over the last ``CORRELATION_WINDOW`` aligned bars; a pair
with a gap in the window is left out (unknown), never filled. The torch forecaster, when its
weights are on disk, gives each symbol's probability that the next bar closes up; when they are
not, ``Analysis.notes`` says so and no probability is reported.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import pandas as pd

from actors.base import Agent
from actors.intelligence.correlation import correlation_matrix
from actors.intelligence.forecaster import (
    DEFAULT_MODEL_PATH,
    OHLCV_COLUMNS,
    Forecaster,
    load_forecaster,
)
from actors.intelligence.indicators import (
    ADXState,
    ATRState,
    BollingerState,
    DonchianState,
    EMAState,
    MACDState,
    OBVState,
    RealizedVolState,
    RSIState,
    SMAState,
    VWAPState,
)
from actors.intelligence.patterns import candlestick_patterns
from cycle.messages import Analysis, ValidatedFrame

PATTERN_BARS = 2
CORRELATION_WINDOW = 96
DONCHIAN_BARS = 20


def _fresh_states() -> dict[str, Any]:
    return {
        "sma_20": SMAState(20),
        "ema_12": EMAState(12),
        "ema_26": EMAState(26),
        "rsi_14": RSIState(14),
        "macd": MACDState(12, 26, 9),
        "atr_14": ATRState(14),
        "adx_14": ADXState(14),
        "bollinger_20": BollingerState(20, 2.0),
        "obv": OBVState(),
        "vwap_48": VWAPState(48),
        "donchian_20": DonchianState(DONCHIAN_BARS),
        "volatility_48": RealizedVolState(48),
    }


class IntelligenceAgent(Agent):
    role = "intelligence"

    def setup(self) -> None:
        symbols = self.config.symbols
        self.states = {s: _fresh_states() for s in symbols}
        self.recent = {s: deque(maxlen=PATTERN_BARS) for s in symbols}
        self.channels: dict[str, tuple[float, float]] = {}
        self.closes: deque[dict[str, float]] = deque(maxlen=CORRELATION_WINDOW + 1)
        loaded = load_forecaster(DEFAULT_MODEL_PATH)
        self.forecaster: Forecaster | None = loaded if isinstance(loaded, Forecaster) else None
        self.forecaster_note = "" if self.forecaster is not None else str(loaded)
        if self.forecaster_note:
            self.log.warning("no forecasts: {}", self.forecaster_note)
        need = self.forecaster.required_bars if self.forecaster is not None else 1
        self.bars = {s: deque(maxlen=need) for s in symbols}

    def step(self, frame: ValidatedFrame) -> Analysis:
        indicators: dict[str, dict[str, float]] = {}
        patterns: dict[str, tuple[str, ...]] = {}
        for symbol, bar in frame.bars.items():
            indicators[symbol] = self._indicators(
                symbol, bar.high, bar.low, bar.close, bar.volume
            )
            recent = self.recent[symbol]
            recent.append((bar.open, bar.high, bar.low, bar.close))
            columns = list(zip(*recent, strict=True))
            found = candlestick_patterns(*columns)
            names = [name for name, mask in found.items() if mask[-1]]
            names += self._breakout(symbol, bar.close, indicators[symbol])
            patterns[symbol] = tuple(names)
            self.bars[symbol].append((bar.open, bar.high, bar.low, bar.close, bar.volume))
        self.closes.append(frame.closes)
        notes = {"forecaster": self.forecaster_note} if self.forecaster_note else {}
        return Analysis(
            cycle=frame.cycle,
            indicators=indicators,
            patterns=patterns,
            correlation=self._correlation(),
            forecasts=self._forecasts(frame),
            notes=notes,
        )

    def _indicators(
        self, symbol: str, high: float, low: float, close: float, volume: float
    ) -> dict[str, float]:
        s = self.states[symbol]
        mid, upper, lower = s["bollinger_20"].update(close)
        line, signal, hist = s["macd"].update(close)
        adx, plus_di, minus_di = s["adx_14"].update(high, low, close)
        d_upper, d_lower, d_mid = s["donchian_20"].update(high, low)
        return {
            "sma_20": s["sma_20"].update(close),
            "ema_12": s["ema_12"].update(close),
            "ema_26": s["ema_26"].update(close),
            "rsi_14": s["rsi_14"].update(close),
            "macd": line,
            "macd_signal": signal,
            "macd_hist": hist,
            "atr_14": s["atr_14"].update(high, low, close),
            "adx_14": adx,
            "plus_di_14": plus_di,
            "minus_di_14": minus_di,
            "bollinger_mid": mid,
            "bollinger_upper": upper,
            "bollinger_lower": lower,
            "obv": s["obv"].update(close, volume),
            "vwap_48": s["vwap_48"].update(high, low, close, volume),
            "donchian_upper_20": d_upper,
            "donchian_lower_20": d_lower,
            "donchian_mid_20": d_mid,
            "volatility_48": s["volatility_48"].update(close),
        }

    def _breakout(self, symbol: str, close: float, values: dict[str, float]) -> list[str]:
        """Close beyond the channel of the bars *before* this one (see ``patterns.breakout``)."""
        before = self.channels.get(symbol)
        upper, lower = values["donchian_upper_20"], values["donchian_lower_20"]
        if not (math.isnan(upper) or math.isnan(lower)):
            self.channels[symbol] = (upper, lower)
        if before is None:
            return []
        if close > before[0]:
            return ["breakout_up"]
        if close < before[1]:
            return ["breakout_down"]
        return []

    def _correlation(self) -> dict[str, dict[str, float]]:
        symbols = self.config.symbols
        if len(self.closes) <= CORRELATION_WINDOW or len(symbols) < 2:
            return {}
        closes = pd.DataFrame(list(self.closes), columns=symbols, dtype=float)
        matrix = correlation_matrix(closes, CORRELATION_WINDOW)
        return {
            a: {b: float(v) for b, v in row.items() if a != b and math.isfinite(v)}
            for a, row in matrix.iterrows()
        }

    def _forecasts(self, frame: ValidatedFrame) -> dict[str, float]:
        if self.forecaster is None:
            return {}
        need = self.forecaster.required_bars
        windows = {
            s: pd.DataFrame(list(self.bars[s]), columns=list(OHLCV_COLUMNS))
            for s in frame.bars
            if len(self.bars[s]) >= need
        }
        return self.forecaster.predict_batch(windows) if windows else {}

    def state_dict(self) -> dict[str, Any]:
        return {
            "states": {
                sym: {k: v.snapshot() for k, v in st.items()} for sym, st in self.states.items()
            },
            "recent": {s: [list(r) for r in d] for s, d in self.recent.items()},
            "channels": {s: list(c) for s, c in self.channels.items()},
            "closes": [dict(row) for row in self.closes],
            "bars": {s: [list(r) for r in d] for s, d in self.bars.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for symbol, saved in state["states"].items():
            fresh = _fresh_states()
            self.states[symbol] = {k: type(fresh[k]).restore(v) for k, v in saved.items()}
        for symbol, rows in state["recent"].items():
            self.recent[symbol] = deque((tuple(r) for r in rows), maxlen=PATTERN_BARS)
        self.channels = {s: (c[0], c[1]) for s, c in state["channels"].items()}
        self.closes.clear()
        self.closes.extend(dict(row) for row in state["closes"])
        for symbol, rows in state["bars"].items():
            self.bars[symbol] = deque((tuple(r) for r in rows), maxlen=self.bars[symbol].maxlen)
