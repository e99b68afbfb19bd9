"""Strategy engine: runs every configured strategy on each symbol's window and composes them.

Strategies are user code loaded by ``"module:Class"``; each call runs behind a guard that turns an
exception into a :class:`cycle.errors.StrategyError`, logs it and uses the safe default (flat), so a
buggy strategy never kills the engine. Each strategy votes a weight and a confidence through its
``latest`` (the last bar of the same vectorised code a backtest runs), and the
:class:`~actors.strategy.composer.Composer` turns the votes into targets by regime, account state
and risk limits; each target names its dominant strategy, which the resulting order carries.
"""

from __future__ import annotations

import importlib
from collections import Counter, deque
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from actors.base import Agent
from actors.intelligence.forecaster import Forecaster
from actors.strategy.composer import Composer, Vote, blend, target_position
from actors.strategy.library import OHLCV, Strategy
from cycle.config import PROJECT_ROOT, StrategyConfig, describe_validation_error
from cycle.errors import ConfigError, StrategyError
from cycle.messages import (
    STRATEGY_SWAP_TOPIC,
    TRAINER_DEPLOY_TOPIC,
    AgentMessage,
    DeployCommand,
    MessageKind,
    StrategyDecision,
    StrategyInputs,
    StrategySwap,
    TargetPosition,
)

__all__ = ["StrategyAgent", "blend", "load_strategy"]


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
        composer = self.config.composer
        self.composer = Composer(
            self.strategies, self.config.risk,
            off_regime_factor=composer.off_regime_factor, drawdown_floor=composer.drawdown_floor,
        )
        self.owners: dict[str, str] = {}
        self.swapped: StrategySwap | None = None
        self.forecaster_deployment: DeployCommand | None = None
        self.forecaster_model: Forecaster | None = None
        for name, strategy in self.strategies.items():
            if strategy.unavailable:
                self.log.warning("strategy {} is flat: {}", name, strategy.unavailable)

    def step(self, inputs: StrategyInputs) -> StrategyDecision:
        if inputs.weights:
            self.weights = {n: inputs.weights.get(n, w) for n, w in self.weights.items()}
        flux = self.flux
        composed, regimes = {}, {}
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
            votes = {}
            for name, strategy in self.strategies.items():
                vote = self._vote(strategy, bars, flux)
                signals[name][symbol] = 0.0 if vote is None else vote.weight
                if vote is not None:
                    votes[name] = vote
            composed[symbol] = self.composer.compose(votes, self.weights, regime)
            regimes[symbol] = regime
        scale = self.composer.account_scale(inputs.account)
        fitted, book_note = self.composer.fit_book(
            {s: c.weight * scale for s, c in composed.items()}
        )
        notes = [f"x{scale:.2f} for drawdown and daily loss"] if scale < 1.0 else []
        notes += [f"scaled into the {book_note}"] if book_note else []
        targets: dict[str, TargetPosition] = {}
        for symbol, parts in composed.items():
            if parts.dominant:
                self.owners[symbol] = parts.dominant
            targets[symbol] = target_position(
                symbol, parts, fitted[symbol], regime=regimes[symbol],
                owner=self.owners.get(symbol, ""), note="; ".join(notes),
            )
        return StrategyDecision(
            cycle=inputs.frame.cycle, targets=targets, signals=signals, weights=dict(self.weights)
        )

    def _guarded(self, strategy: Strategy, bars: OHLCV, flux: float) -> float:
        """The strategy's weight for the last bar, flat if it fails (see :meth:`_vote`)."""
        vote = self._vote(strategy, bars, flux)
        return 0.0 if vote is None else vote.weight

    def _vote(self, strategy: Strategy, bars: OHLCV, flux: float) -> Vote | None:
        """The strategy's last-bar vote; a failure or an out-of-range answer votes flat.

        A strategy still warming up has no opinion yet and does not vote (None): counting it
        as a flat vote would dilute the strategies that can already speak.
        """
        if len(bars) < strategy.warmup:
            return None
        try:
            weight, confidence = strategy.latest(bars, flux)
            if not -1.0 <= weight <= 1.0 or not 0.0 <= confidence <= 1.0:
                raise StrategyError(
                    f"{strategy.name} returned weight {weight}, confidence {confidence}; "
                    "they must lie in [-1, 1] and [0, 1]"
                )
        except Exception as error:  # noqa: BLE001 - user code: fall back to flat
            self.failures[strategy.name] += 1
            failure = error if isinstance(error, StrategyError) else StrategyError(
                f"{strategy.name} raised {type(error).__name__}: {error}"
            )
            self.log.error("strategy failed, using flat: {}", failure)
            return Vote(0.0, 0.0)
        return Vote(weight, confidence)

    def extra_metrics(self) -> dict[str, float]:
        return {f"failures_{name}": float(count) for name, count in self.failures.items()}

    def state_dict(self) -> dict[str, Any]:
        return {
            "weights": dict(self.weights),
            "windows": {s: [list(row) for row in w] for s, w in self.windows.items()},
            "failures": dict(self.failures),
            "owners": dict(self.owners),
            "swap": self.swapped.model_dump(mode="json") if self.swapped else None,
            "forecaster": (
                self.forecaster_deployment.model_dump(mode="json")
                if self.forecaster_deployment else None
            ),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.weights = dict(state["weights"])
        history = self.config.data.history_bars
        for symbol, rows in state["windows"].items():
            self.windows[symbol] = deque((tuple(r) for r in rows), maxlen=history)
        self.failures = Counter(state["failures"])
        self.owners = dict(state.get("owners", {}))
        if state.get("swap"):
            self._install(StrategySwap.model_validate(state["swap"]))
        if state.get("forecaster"):
            command = DeployCommand.model_validate(state["forecaster"])
            try:
                self.deploy(command)
            except ConfigError as error:
                self.log.error(
                    "forecaster version {} not restored, trading the config's model: {}",
                    command.version, error,
                )

    def on_message(self, message: AgentMessage) -> dict[str, Any]:
        """COMMAND ``strategy.swap``: trade the meta-agent's choice from the next step on.
        COMMAND ``trainer.deploy``: trade a re-trained (or rolled-back) forecaster."""
        if message.topic == STRATEGY_SWAP_TOPIC:
            return self.swap(StrategySwap.model_validate(message.payload))
        if message.kind is MessageKind.COMMAND and message.topic == TRAINER_DEPLOY_TOPIC:
            return self.deploy(DeployCommand.model_validate(message.payload))
        return super().on_message(message)

    def deploy(self, command: DeployCommand) -> dict[str, Any]:
        """Every strategy that reads the forecaster trades the version's model from now on.

        ``params["artifact"]`` is the model file (``None``: a version without a model, which
        makes those strategies flat). The file must be readable from this actor's node; the
        trainer's ``artifacts`` folder is shared storage on a cluster. The same deployment sent
        twice is applied once.

        Raises:
            ConfigError: The command is not the forecaster's, its file cannot be loaded, or the
                model needs more bars than the engine keeps; the engine keeps its model.
        """
        if command.agent != "forecaster":
            raise ConfigError(f"the strategy engine runs the forecaster, not {command.agent!r}")
        known = self.forecaster_deployment
        if known is not None and known.deployment_id == command.deployment_id:
            return {"version": known.version, "artifact": known.params.get("artifact")}
        artifact = command.params.get("artifact")
        self.forecaster_model = None if artifact is None else self._load_model(str(artifact))
        self.forecaster_deployment = command
        users = self._use_deployed_forecaster()
        self.log.info(
            "{} of forecaster version {} ({}) to {}", command.kind, command.version,
            artifact, users or "no strategy (none reads the forecaster)",
        )
        return {"version": command.version, "artifact": artifact, "strategies": users}

    def _use_deployed_forecaster(self) -> list[str]:
        """Hand the deployed model to every strategy that reads one; their names."""
        assert self.forecaster_deployment is not None
        reason = f"forecaster version {self.forecaster_deployment.version} has no model"
        return [
            name for name, strategy in self.strategies.items()
            if strategy.use_forecaster(self.forecaster_model, reason)
        ]

    def _load_model(self, artifact: str) -> Forecaster:
        path = Path(artifact)
        path = path if path.is_absolute() else PROJECT_ROOT / path
        if not path.is_file():
            raise ConfigError(f"trainer.deploy: no forecaster file at {path} on this node")
        try:
            model = Forecaster.load(path, agent_id=self.agent_id)
        except Exception as error:  # noqa: BLE001 - any unreadable file is a refusal
            raise ConfigError(
                f"trainer.deploy: forecaster file {path} unreadable: {error}"
            ) from error
        history = self.config.data.history_bars
        if model.required_bars > history:
            raise ConfigError(
                f"trainer.deploy: the model needs {model.required_bars} bars but "
                f"data.history_bars is {history}"
            )
        return model

    def swap(self, swap: StrategySwap) -> dict[str, Any]:
        """Replace the strategies with the chosen one; windows (bar history) are kept, so it
        speaks at once, and positions are not the engine's to touch.

        Raises:
            ConfigError: The strategy cannot be loaded or needs more history than is kept; the
                engine then keeps trading what it had.
        """
        replaced = sorted(self.strategies)
        self._install(swap)
        self.weights = {swap.strategy.name: swap.strategy.weight}
        self.log.info("swapped {} for {} ({})", replaced, swap.strategy.name, swap.config_hash)
        return {"replaced": replaced, "installed": swap.strategy.name}

    def _install(self, swap: StrategySwap) -> None:
        strategy = load_strategy(swap.strategy)
        history = self.config.data.history_bars
        if strategy.warmup > history:
            raise ConfigError(
                f"swap {swap.strategy.name}: needs {strategy.warmup} bars but "
                f"data.history_bars is {history}"
            )
        self.strategies = {swap.strategy.name: strategy}
        if self.forecaster_deployment is not None:
            self._use_deployed_forecaster()
        self.composer = Composer(
            self.strategies, self.composer.risk,
            off_regime_factor=self.composer.off_regime_factor,
            drawdown_floor=self.composer.drawdown_floor,
        )
        self.swapped = swap
