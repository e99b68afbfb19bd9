"""Market-conditions agent: regime, anomalies and supply/demand per symbol, and the market flux.

The logic lives in :mod:`actors.conditions.regime` and :mod:`actors.intelligence.anomaly`; this agent
keeps each symbol's trailing closes and volumes long enough for the volatility percentile
(``window + vol_lookback`` bars) and publishes one smoothed flux level for the whole market, which
every agent then blends into its own flux.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np

from actors.base import Agent
from actors.conditions.regime import (
    MarketFlux,
    RegimeThresholds,
    classify_regime,
    supply_demand,
    volatility_percentile_series,
    volume_ratio,
)
from actors.intelligence.anomaly import AnomalyDetector
from cycle.messages import Conditions, SymbolConditions, ValidatedFrame

WARMING_UP = "warming_up"


class ConditionsAgent(Agent):
    role = "conditions"

    def setup(self) -> None:
        self.thresholds = RegimeThresholds()
        keep = self.thresholds.window + self.thresholds.vol_lookback + 1
        self.closes = {s: deque(maxlen=keep) for s in self.config.symbols}
        self.volumes = {s: deque(maxlen=self.thresholds.volume_lookback + 1) for s in self.config.symbols}
        self.detectors = {s: AnomalyDetector() for s in self.config.symbols}
        self.flux_tracker = MarketFlux(self.thresholds)

    def step(self, frame: ValidatedFrame) -> Conditions:
        by_symbol: dict[str, SymbolConditions] = {}
        percentiles, ratios = [], []
        for symbol, bar in frame.bars.items():
            closes, volumes = self.closes[symbol], self.volumes[symbol]
            previous = closes[-1] if closes else math.nan
            closes.append(bar.close)
            volumes.append(bar.volume)
            prices = np.fromiter(closes, float)
            regime = WARMING_UP
            volatility = 0.0
            if len(prices) > self.thresholds.window:
                regime = classify_regime(prices, thresholds=self.thresholds).value
                volatility = float(np.std(np.diff(np.log(prices[-self.thresholds.window - 1 :])), ddof=1))
                pct = volatility_percentile_series(
                    prices, window=self.thresholds.window, vol_lookback=self.thresholds.vol_lookback
                )[-1]
                if math.isfinite(pct):
                    percentiles.append(float(pct))
            if len(volumes) > self.thresholds.volume_lookback:
                try:
                    ratios.append(volume_ratio(np.fromiter(volumes, float), lookback=self.thresholds.volume_lookback))
                except ValueError:
                    pass
            anomalies = self.detectors[symbol].update(
                {
                    "returns": math.log(bar.close / previous) if previous > 0 else math.nan,
                    "volume": bar.volume,
                    "spread": (bar.high - bar.low) / bar.close,
                }
            )
            pressure = 0.0
            book, tape = frame.books.get(symbol), frame.tapes.get(symbol)
            if book is not None and tape is not None:
                pressure = supply_demand(
                    [lvl.quantity for lvl in book.bids], [lvl.quantity for lvl in book.asks],
                    tape.buy_volume, tape.sell_volume,
                )
            by_symbol[symbol] = SymbolConditions(
                regime=regime,
                anomaly=bool(anomalies),
                anomaly_reasons=tuple(a.reason for a in anomalies),
                supply_demand=pressure,
                volatility=volatility,
            )
        if percentiles and ratios:
            self.flux_tracker.update(float(np.mean(percentiles)), float(np.mean(ratios)))
        return Conditions(cycle=frame.cycle, by_symbol=by_symbol, market_flux=self.flux_tracker.level)

    def state_dict(self) -> dict[str, Any]:
        return {
            "closes": {s: list(d) for s, d in self.closes.items()},
            "volumes": {s: list(d) for s, d in self.volumes.items()},
            "detectors": {s: d.snapshot() for s, d in self.detectors.items()},
            "flux": self.flux_tracker.snapshot(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for symbol, values in state["closes"].items():
            self.closes[symbol].clear()
            self.closes[symbol].extend(values)
        for symbol, values in state["volumes"].items():
            self.volumes[symbol].clear()
            self.volumes[symbol].extend(values)
        self.detectors = {s: AnomalyDetector.restore(d) for s, d in state["detectors"].items()}
        self.flux_tracker.restore(state["flux"])
