"""Intelligence agent: incremental indicators and candlestick patterns per symbol.

Indicators update bar by bar through the ``*State`` twins of :mod:`actors.intelligence.indicators`,
so a cycle costs O(window) per symbol however long the run; their values equal the vectorised
functions that backtests use. Patterns are read off the last two bars.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from actors.base import Agent
from actors.intelligence.indicators import (
    ATRState,
    BollingerState,
    EMAState,
    RealizedVolState,
    RSIState,
    SMAState,
)
from actors.intelligence.patterns import candlestick_patterns
from cycle.messages import Analysis, ValidatedFrame

PATTERN_BARS = 2


def _fresh_states() -> dict[str, Any]:
    return {
        "sma_20": SMAState(20),
        "ema_12": EMAState(12),
        "ema_26": EMAState(26),
        "rsi_14": RSIState(14),
        "atr_14": ATRState(14),
        "bollinger_20": BollingerState(20, 2.0),
        "volatility_48": RealizedVolState(48),
    }


class IntelligenceAgent(Agent):
    role = "intelligence"

    def setup(self) -> None:
        self.states = {s: _fresh_states() for s in self.config.symbols}
        self.recent = {s: deque(maxlen=PATTERN_BARS) for s in self.config.symbols}

    def step(self, frame: ValidatedFrame) -> Analysis:
        indicators: dict[str, dict[str, float]] = {}
        patterns: dict[str, tuple[str, ...]] = {}
        for symbol, bar in frame.bars.items():
            s = self.states[symbol]
            mid, upper, lower = s["bollinger_20"].update(bar.close)
            indicators[symbol] = {
                "sma_20": s["sma_20"].update(bar.close),
                "ema_12": s["ema_12"].update(bar.close),
                "ema_26": s["ema_26"].update(bar.close),
                "rsi_14": s["rsi_14"].update(bar.close),
                "atr_14": s["atr_14"].update(bar.high, bar.low, bar.close),
                "bollinger_upper": upper,
                "bollinger_lower": lower,
                "volatility_48": s["volatility_48"].update(bar.close),
            }
            recent = self.recent[symbol]
            recent.append((bar.open, bar.high, bar.low, bar.close))
            columns = list(zip(*recent, strict=True))
            found = candlestick_patterns(*columns)
            patterns[symbol] = tuple(name for name, mask in found.items() if mask[-1])
        return Analysis(cycle=frame.cycle, indicators=indicators, patterns=patterns)

    def state_dict(self) -> dict[str, Any]:
        return {
            "states": {sym: {k: v.snapshot() for k, v in st.items()} for sym, st in self.states.items()},
            "recent": {s: [list(r) for r in d] for s, d in self.recent.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for symbol, saved in state["states"].items():
            fresh = _fresh_states()
            self.states[symbol] = {k: type(fresh[k]).restore(v) for k, v in saved.items()}
        for symbol, rows in state["recent"].items():
            self.recent[symbol] = deque((tuple(r) for r in rows), maxlen=PATTERN_BARS)
