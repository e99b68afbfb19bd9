"""Learner: re-weights strategies by the PnL their own signals would have earned.

Each strategy's signal at bar t-1 is scored against the realised log return of bar t (its
"paper" PnL, free of the blend and of execution), and weights follow the multiplicative-weights
rule ``w_i <- w_i * exp(eta * pnl_i)``, renormalised and kept within [min_weight, max_weight] so no
strategy is ever silenced for good.

When the agent trainer trains the ensemble (``trainer.enabled`` with ``ensemble`` among its
agents), the learner still measures every strategy's PnL each cycle but no longer moves the
weights itself: they change only by a ``trainer.deploy`` COMMAND, applied exactly as sent, after
the trainer has shown on held-out cycles that the new weights are better (see
``actors/trainer``). Two writers of one set of weights would undo each other's work.
"""

from __future__ import annotations

import math
from typing import Any

from actors.base import Agent
from cycle.messages import (
    TRAINER_DEPLOY_TOPIC,
    AgentMessage,
    DeployCommand,
    LearnerInputs,
    LearnerOutput,
    MessageKind,
)

WEIGHT_TOLERANCE = 1e-9


def multiplicative_update(
    weights: dict[str, float], pnl: dict[str, float], rate: float, low: float, high: float
) -> dict[str, float]:
    """One multiplicative-weights step, then the nearest weights that sum to 1 within bounds."""
    raw = {n: w * math.exp(rate * pnl.get(n, 0.0)) for n, w in weights.items()}
    return bounded_simplex(raw, low, high)


def bounded_simplex(raw: dict[str, float], low: float, high: float) -> dict[str, float]:
    """Scale ``raw`` to sum 1, pinning any weight that would leave [low, high] at the bound.

    Plain clipping followed by renormalising pushes weights back past the bound; instead the
    out-of-bound weights are fixed at their bound and the rest share what remains in proportion.
    """
    fixed: dict[str, float] = {}
    free = dict(raw)
    while free:
        remaining = 1.0 - sum(fixed.values())
        total = sum(free.values())
        proposal = {n: remaining * v / total for n, v in free.items()}
        over = [n for n, v in proposal.items() if v > high]
        under = [n for n, v in proposal.items() if v < low]
        if not over and not under:
            return fixed | proposal
        for name in over or under:
            fixed[name] = high if over else low
            free.pop(name)
    return fixed


class LearnerAgent(Agent):
    role = "learner"

    def setup(self) -> None:
        total = sum(s.weight for s in self.config.strategies)
        self.weights = {s.name: s.weight / total for s in self.config.strategies}
        self.previous_signals: dict[str, dict[str, float]] = {}
        self.previous_closes: dict[str, float] = {}
        self.cumulative = {name: 0.0 for name in self.weights}
        trainer = self.config.trainer
        self.trainer_owns_weights = trainer.enabled and "ensemble" in trainer.agents
        self.weights_version = 0
        self.last_deployment: str | None = None

    def step(self, inputs: LearnerInputs) -> LearnerOutput:
        pnl = {name: 0.0 for name in self.weights}
        for name, signals in self.previous_signals.items():
            if name not in pnl:
                continue
            for symbol, signal in signals.items():
                before, now = self.previous_closes.get(symbol), inputs.closes.get(symbol)
                if before and now:
                    pnl[name] += signal * math.log(now / before)
        cfg = self.config.learner
        if not self.trainer_owns_weights:
            self.weights = multiplicative_update(
                self.weights, pnl, cfg.learning_rate, cfg.min_weight, cfg.max_weight
            )
        for name, value in pnl.items():
            self.cumulative[name] += value
        if inputs.decision is not None:
            self._follow_roster(list(inputs.decision.signals))
            self.previous_signals = {n: dict(s) for n, s in inputs.decision.signals.items()}
        self.previous_closes.update(inputs.closes)
        return LearnerOutput(weights=dict(self.weights), last_pnl=pnl, cumulative_pnl=dict(self.cumulative))

    def _follow_roster(self, names: list[str]) -> None:
        """A strategy swapped in joins at the average weight; one swapped out leaves."""
        if set(names) == set(self.weights) or not names:
            return
        average = 1.0 / len(names)
        raw = {n: self.weights.get(n, average) for n in names}
        cfg = self.config.learner
        self.weights = bounded_simplex(raw, cfg.min_weight, cfg.max_weight)
        for name in names:
            self.cumulative.setdefault(name, 0.0)
        self.log.info("strategy roster changed: {}", sorted(names))

    def extra_metrics(self) -> dict[str, float]:
        return {f"weight_{n}": w for n, w in self.weights.items()}

    def on_message(self, message: AgentMessage) -> dict[str, Any]:
        """``trainer.deploy``: set the ensemble weights of a trained or rolled-back version.

        The weights are checked (every strategy, sum 1, within the learner's bounds) and then
        applied exactly as sent, so a rollback restores the earlier weights to the last bit. A
        deployment already applied is acknowledged again without change.
        """
        if message.kind is not MessageKind.COMMAND or message.topic != TRAINER_DEPLOY_TOPIC:
            return super().on_message(message)
        command = DeployCommand.model_validate(message.payload)
        if command.agent != "ensemble":
            raise ValueError(f"the learner runs the ensemble, not {command.agent!r}")
        if command.deployment_id == self.last_deployment:
            return {"version": self.weights_version, "weights": dict(self.weights)}
        weights = {str(n): float(w) for n, w in command.params["weights"].items()}
        cfg = self.config.learner
        if set(weights) != set(self.weights):
            raise ValueError(
                f"weights for {sorted(weights)}, strategies are {sorted(self.weights)}"
            )
        if abs(sum(weights.values()) - 1.0) > WEIGHT_TOLERANCE:
            raise ValueError(f"weights sum to {sum(weights.values())}, not 1")
        outside = {
            n: w for n, w in weights.items()
            if not cfg.min_weight - WEIGHT_TOLERANCE <= w <= cfg.max_weight + WEIGHT_TOLERANCE
        }
        if outside:
            raise ValueError(f"weights {outside} outside [{cfg.min_weight}, {cfg.max_weight}]")
        self.weights = weights
        self.weights_version = command.version
        self.last_deployment = command.deployment_id
        self.log.info(
            "{} of ensemble weights version {}: {}", command.kind, command.version, weights
        )
        return {"version": command.version, "weights": dict(weights)}

    def state_dict(self) -> dict[str, Any]:
        return {
            "weights": self.weights, "previous_signals": self.previous_signals,
            "previous_closes": self.previous_closes, "cumulative": self.cumulative,
            "weights_version": self.weights_version, "last_deployment": self.last_deployment,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.weights = dict(state["weights"])
        self.previous_signals = {n: dict(s) for n, s in state["previous_signals"].items()}
        self.previous_closes = dict(state["previous_closes"])
        self.cumulative = dict(state["cumulative"])
        self.weights_version = state.get("weights_version", 0)
        self.last_deployment = state.get("last_deployment")
