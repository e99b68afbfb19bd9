"""Market-conditions agent: regime, anomalies and supply/demand per symbol, and the market flux.

The logic lives in :mod:`actors.conditions.regime` and :mod:`actors.intelligence.anomaly`; this
agent keeps one incremental :class:`RegimeState` and anomaly detector per symbol (O(window) per
bar) and publishes one smoothed flux level for the whole market, which every agent blends into its
own.

Anomalies are robust z-scores of the log return, the volume and the spread. The spread is the
quoted one when the book is observed (a live feed) and the bar's relative range otherwise: a
synthetic book is built from that range, so its spread would add nothing but a scale factor.

The regime thresholds are the trainer's to tune (``trainer.deploy``): a deployment relabels from
the next bar on over the history already kept, so no warm-up is lost. Thresholds that size that
history (``window``, ``vol_lookback``, ``volume_lookback``) cannot change in a running desk.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np
from pydantic import ValidationError

from actors.base import Agent
from actors.conditions.regime import (
    MarketFlux,
    RegimeState,
    RegimeThresholds,
    supply_demand,
    volume_ratio,
)
from actors.intelligence.anomaly import AnomalyDetector
from cycle.config import describe_validation_error
from cycle.errors import ConfigError
from cycle.messages import (
    TRAINER_DEPLOY_TOPIC,
    AgentMessage,
    Conditions,
    DeployCommand,
    MessageKind,
    SymbolConditions,
    ValidatedFrame,
)

WARMING_UP = "warming_up"

HISTORY_SHAPING = ("window", "vol_lookback", "volume_lookback")
"""Thresholds that size the kept history: fixed for the life of a run."""


class ConditionsAgent(Agent):
    role = "conditions"

    def setup(self) -> None:
        self.thresholds = RegimeThresholds()
        symbols = self.config.symbols
        self.regimes = {s: RegimeState(self.thresholds) for s in symbols}
        self.volumes = {s: deque(maxlen=self.thresholds.volume_lookback + 1) for s in symbols}
        self.last_close: dict[str, float] = {}
        self.detectors = {s: AnomalyDetector() for s in symbols}
        self.flux_tracker = MarketFlux(self.thresholds)
        self.deployment: DeployCommand | None = None

    def step(self, frame: ValidatedFrame) -> Conditions:
        by_symbol: dict[str, SymbolConditions] = {}
        percentiles, ratios = [], []
        for symbol, bar in frame.bars.items():
            reading = self.regimes[symbol].update(bar.close)
            if math.isfinite(reading.vol_percentile):
                percentiles.append(reading.vol_percentile)
            volumes = self.volumes[symbol]
            volumes.append(bar.volume)
            lookback = self.thresholds.volume_lookback
            if len(volumes) > lookback and sorted(volumes)[len(volumes) // 2] > 0:
                ratios.append(volume_ratio(np.fromiter(volumes, float), lookback=lookback))
            previous = self.last_close.get(symbol)
            self.last_close[symbol] = bar.close
            book, tape = frame.books.get(symbol), frame.tapes.get(symbol)
            spread = (bar.high - bar.low) / bar.close
            quoted = frame.signals.get(symbol, {}).get("spread_bps")
            if book is not None and not book.synthetic and quoted is not None:
                spread = quoted / 1e4
            anomalies = self.detectors[symbol].update(
                {
                    "returns": math.log(bar.close / previous) if previous else math.nan,
                    "volume": bar.volume,
                    "spread": spread,
                }
            )
            pressure = 0.0
            if book is not None and tape is not None:
                pressure = supply_demand(
                    [lvl.quantity for lvl in book.bids], [lvl.quantity for lvl in book.asks],
                    tape.buy_volume, tape.sell_volume,
                )
            by_symbol[symbol] = SymbolConditions(
                regime=reading.regime.value if reading.regime else WARMING_UP,
                anomaly=bool(anomalies),
                anomaly_reasons=tuple(a.reason for a in anomalies),
                supply_demand=pressure,
                volatility=0.0 if math.isnan(reading.volatility) else reading.volatility,
            )
        if percentiles and ratios:
            self.flux_tracker.update(float(np.mean(percentiles)), float(np.mean(ratios)))
        return Conditions(
            cycle=frame.cycle, by_symbol=by_symbol, market_flux=self.flux_tracker.level
        )

    def on_message(self, message: AgentMessage) -> dict[str, Any]:
        """COMMAND ``trainer.deploy``: label regimes with a trained (or rolled-back) version."""
        if message.kind is MessageKind.COMMAND and message.topic == TRAINER_DEPLOY_TOPIC:
            return self.deploy(DeployCommand.model_validate(message.payload))
        return super().on_message(message)

    def deploy(self, command: DeployCommand) -> dict[str, Any]:
        """Install ``params["thresholds"]`` exactly, keeping every symbol's history.

        Raises:
            ConfigError: Not the conditions agent's command, invalid thresholds, or a change to
                a threshold that sizes the history; the agent keeps its thresholds.
        """
        if command.agent != "conditions":
            raise ConfigError(f"the conditions agent runs its regimes, not {command.agent!r}")
        if self.deployment is not None and self.deployment.deployment_id == command.deployment_id:
            return {"version": self.deployment.version, "thresholds": self.thresholds.model_dump()}
        try:
            thresholds = RegimeThresholds.model_validate(command.params["thresholds"])
        except ValidationError as error:
            raise ConfigError(
                f"trainer.deploy thresholds: {describe_validation_error(error)}"
            ) from error
        fixed = {
            name: (getattr(self.thresholds, name), getattr(thresholds, name))
            for name in HISTORY_SHAPING
            if getattr(self.thresholds, name) != getattr(thresholds, name)
        }
        if fixed:
            raise ConfigError(f"trainer.deploy: {fixed} size the kept history; fixed while running")
        self._relabel(thresholds)
        self.deployment = command
        self.log.info(
            "{} of regime thresholds version {}: trend t {}, high-vol percentile {}",
            command.kind, command.version, thresholds.trend_threshold, thresholds.high_vol_pct,
        )
        return {"version": command.version, "thresholds": thresholds.model_dump()}

    def _relabel(self, thresholds: RegimeThresholds) -> None:
        """Every regime state and the flux tracker under new thresholds, history kept."""
        self.regimes = {
            s: RegimeState.restore({**r.snapshot(), "thresholds": thresholds.model_dump()})
            for s, r in self.regimes.items()
        }
        flux = self.flux_tracker.snapshot()
        self.flux_tracker = MarketFlux(thresholds)
        self.flux_tracker.restore(flux)
        self.thresholds = thresholds

    def state_dict(self) -> dict[str, Any]:
        return {
            "regimes": {s: r.snapshot() for s, r in self.regimes.items()},
            "volumes": {s: list(d) for s, d in self.volumes.items()},
            "last_close": dict(self.last_close),
            "detectors": {s: d.snapshot() for s, d in self.detectors.items()},
            "flux": self.flux_tracker.snapshot(),
            "thresholds": self.thresholds.model_dump(),
            "deployment": self.deployment.model_dump(mode="json") if self.deployment else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "thresholds" in state:
            thresholds = RegimeThresholds.model_validate(state["thresholds"])
            self.flux_tracker = MarketFlux(thresholds)
            self.thresholds = thresholds
        if state.get("deployment"):
            self.deployment = DeployCommand.model_validate(state["deployment"])
        self.regimes = {s: RegimeState.restore(r) for s, r in state["regimes"].items()}
        for symbol, values in state["volumes"].items():
            self.volumes[symbol].clear()
            self.volumes[symbol].extend(values)
        self.last_close = dict(state["last_close"])
        self.detectors = {s: AnomalyDetector.restore(d) for s, d in state["detectors"].items()}
        self.flux_tracker.restore(state["flux"])
