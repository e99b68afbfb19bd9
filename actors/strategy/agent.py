"""Strategy engine: runs every configured strategy on each symbol's window and blends them.

Strategies are user code loaded by ``"module:Class"``; each call runs behind a guard that turns an
exception into a :class:`cycle.errors.StrategyError`, logs it and uses the safe default (flat), so a
buggy strategy never kills the engine. The blend is regime-aware: a strategy whose declared regimes
do not include the symbol's current regime counts at half weight.
"""

from __future__ import annotations

import importlib
from collections import Counter, deque
from typing import Any

from pydantic import ValidationError

from actors.base import Agent
from actors.strategy.library import OHLCV, Strategy
from cycle.config import StrategyConfig, describe_validation_error
from cycle.errors import ConfigError, StrategyError
from cycle.messages import StrategyDecision, StrategyInputs, TargetPosition

OFF_REGIME_FACTOR = 0.5


def load_strategy(spec: StrategyConfig) -> Strategy:
    """Import and build a strategy from its config; a bad path or bad params is a ConfigError."""
    module_name, class_name = spec.class_path.split(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"strategies.{spec.name}.class: cannot load {spec.class_path}") from error
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise ConfigError(f"strategies.{spec.name}.class: {spec.class_path} is not a Strategy")
    try:
        return cls(spec.name, spec.params)
    except ValidationError as error:
        problem = describe_validation_error(error)
        raise ConfigError(f"strategies.{spec.name}.params: {problem}") from error


def blend(
    signals: dict[str, float], weights: dict[str, float], factors: dict[str, float]
) -> tuple[float, float]:
    """Weighted mean of strategy signals and an agreement-based confidence in [0, 1]."""
    total = sum(weights[n] * factors[n] for n in signals)
    if total <= 0:
        return 0.0, 0.0
    target = sum(weights[n] * factors[n] * s for n, s in signals.items()) / total
    magnitude = sum(weights[n] * abs(s) for n, s in signals.items())
    confidence = abs(sum(weights[n] * s for n, s in signals.items())) / magnitude if magnitude else 0.0
    return max(-1.0, min(1.0, target)), min(1.0, confidence)


class StrategyAgent(Agent):
    role = "strategy"

    def setup(self) -> None:
        self.strategies = {s.name: load_strategy(s) for s in self.config.strategies}
        history = self.config.data.history_bars
        for strategy in self.strategies.values():
            if strategy.warmup > history:
                raise ConfigError(
                    f"strategies.{strategy.name}: needs {strategy.warmup} bars but "
                    f"data.history_bars is {history}"
                )
        self.weights = {s.name: s.weight for s in self.config.strategies}
        self.windows: dict[str, deque[tuple[float, ...]]] = {
            symbol: deque(maxlen=history) for symbol in self.config.symbols
        }
        self.failures: Counter[str] = Counter()

    def step(self, inputs: StrategyInputs) -> StrategyDecision:
        if inputs.weights:
            self.weights = {n: inputs.weights.get(n, w) for n, w in self.weights.items()}
        flux = self.flux
        targets: dict[str, TargetPosition] = {}
        signals: dict[str, dict[str, float]] = {name: {} for name in self.strategies}
        for symbol, bar in inputs.frame.bars.items():
            window = self.windows[symbol]
            window.append((bar.open, bar.high, bar.low, bar.close, bar.volume))
            bars = OHLCV.from_rows(list(window))
            regime = None
            if inputs.conditions and symbol in inputs.conditions.by_symbol:
                condition = inputs.conditions.by_symbol[symbol]
                if condition.anomaly:
                    continue
                regime = condition.regime
            per_symbol = {n: self._guarded(s, bars, flux) for n, s in self.strategies.items()}
            for name, value in per_symbol.items():
                signals[name][symbol] = value
            factors = {
                n: 1.0 if regime is None or regime in s.regimes else OFF_REGIME_FACTOR
                for n, s in self.strategies.items()
            }
            weight, confidence = blend(per_symbol, self.weights, factors)
            if not self.config.risk.allow_short:
                weight = max(weight, 0.0)
            targets[symbol] = TargetPosition(
                symbol=symbol, weight=weight, confidence=confidence, contributions=per_symbol
            )
        return StrategyDecision(
            cycle=inputs.frame.cycle, targets=targets, signals=signals, weights=dict(self.weights)
        )

    def _guarded(self, strategy: Strategy, bars: OHLCV, flux: float) -> float:
        if len(bars) < strategy.warmup:
            return 0.0
        try:
            value = float(strategy.weights(bars, flux)[-1])
            if not -1.0 <= value <= 1.0:
                raise StrategyError(f"{strategy.name} returned {value}, outside [-1, 1]")
        except Exception as error:  # noqa: BLE001 - user code: fall back to flat
            self.failures[strategy.name] += 1
            failure = error if isinstance(error, StrategyError) else StrategyError(
                f"{strategy.name} raised {type(error).__name__}: {error}"
            )
            self.log.error("strategy failed, using flat: {}", failure)
            return 0.0
        return value

    def extra_metrics(self) -> dict[str, float]:
        return {f"failures_{name}": float(count) for name, count in self.failures.items()}

    def state_dict(self) -> dict[str, Any]:
        return {
            "weights": dict(self.weights),
            "windows": {s: [list(row) for row in w] for s, w in self.windows.items()},
            "failures": dict(self.failures),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.weights = dict(state["weights"])
        for symbol, rows in state["windows"].items():
            self.windows[symbol] = deque((tuple(r) for r in rows), maxlen=self.config.data.history_bars)
        self.failures = Counter(state["failures"])
