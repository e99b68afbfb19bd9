"""Training templates: per agent type, what data a session needs and how success is measured.

A template is the contract between the trainer and one kind of learning agent. It fixes the
schedule (how often a CONTINUOUS session runs, how often a BATCH re-fit), the window of history
each uses, the share of that window held out for validation, how large an improvement on the
held-out tail must be before a change is deployed, and the bounds within which ADAPTIVE mode may
move the learning rate and the window. Windows and intervals count cycles (one bar per symbol
per cycle), so every agent's history is measured in the same unit.
"""

from __future__ import annotations

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from cycle.config import FluxtradeConfig, TrainableAgent
from cycle.messages import Frozen


class TrainingTemplate(Frozen):
    """What one agent type needs from the trainer and how its sessions are judged.

    Attributes:
        agent: The trainable agent type.
        target_role: The cycle role whose live state a deployment changes.
        data: What a session reads, in words (for the docs and the dashboard).
        metric: How the held-out score is computed, in words; higher is better.
        min_cycles: Cycles of history below which a session is skipped as not ready.
        continuous_every: Cycles between two CONTINUOUS sessions.
        batch_every: Cycles between two scheduled BATCH re-fits (``None``: on request only).
        window: Cycles of history of a CONTINUOUS session (the start of ADAPTIVE tuning).
        batch_window: Cycles of history of a BATCH session (``None``: all of it).
        holdout_fraction: Tail share of the window kept out of fitting and used for the gate.
        margin_se: Standard errors of the paired score difference a change must clear.
        learning_rate: Step size of a fit (its meaning is per agent, see ``strategies.py``).
        lr_bounds: Where ADAPTIVE mode may move the learning rate.
        window_bounds: Where ADAPTIVE mode may move the window.
    """

    agent: TrainableAgent
    target_role: str
    data: str
    metric: str
    min_cycles: PositiveInt
    continuous_every: PositiveInt
    batch_every: PositiveInt | None = None
    window: PositiveInt
    batch_window: PositiveInt | None = None
    holdout_fraction: float = Field(gt=0.0, lt=1.0)
    margin_se: float = Field(ge=0.0)
    learning_rate: PositiveFloat
    lr_bounds: tuple[PositiveFloat, PositiveFloat]
    window_bounds: tuple[PositiveInt, PositiveInt]

    @model_validator(mode="after")
    def _inside_bounds(self) -> TrainingTemplate:
        low, high = self.lr_bounds
        if not low <= self.learning_rate <= high:
            raise ValueError(f"learning_rate {self.learning_rate} outside {self.lr_bounds}")
        low_w, high_w = self.window_bounds
        if not low_w <= self.window <= high_w:
            raise ValueError(f"window {self.window} outside {self.window_bounds}")
        return self


TEMPLATES: dict[str, TrainingTemplate] = {
    "ensemble": TrainingTemplate(
        agent="ensemble",
        target_role="learner",
        data="per-cycle paper PnL of every strategy's own signals (the learner's last_pnl)",
        metric="mean per-cycle PnL of the weighted blend of strategy PnLs on the held-out tail",
        min_cycles=40,
        continuous_every=10,
        batch_every=500,
        window=200,
        batch_window=None,
        holdout_fraction=0.25,
        margin_se=1.0,
        learning_rate=1.0,
        lr_bounds=(0.1, 4.0),
        window_bounds=(60, 1000),
    ),
    "forecaster": TrainingTemplate(
        agent="forecaster",
        target_role="strategy",
        data="validated OHLCV bars of every symbol, oldest first",
        metric="minus the log-loss of P(next bar closes up) on the held-out tail",
        min_cycles=600,
        continuous_every=500,
        batch_every=None,
        window=1500,
        batch_window=None,
        holdout_fraction=0.2,
        margin_se=1.0,
        learning_rate=1e-3,
        lr_bounds=(1e-4, 1e-2),
        window_bounds=(600, 6000),
    ),
    "adapters": TrainingTemplate(
        agent="adapters",
        target_role="adapters",
        data="broker outcomes (fills with latency and slippage, rejections) and broker logs",
        metric="held-out success rate of the broker ranked first at each call's hour",
        min_cycles=100,
        continuous_every=100,
        batch_every=None,
        window=2000,
        batch_window=None,
        holdout_fraction=0.25,
        margin_se=1.0,
        learning_rate=1.0,
        lr_bounds=(0.25, 4.0),
        window_bounds=(200, 10000),
    ),
    "conditions": TrainingTemplate(
        agent="conditions",
        target_role="conditions",
        data="closes of every symbol (regime labels are recomputed from them)",
        metric="excess hit rate over a coin of the regime label's call on the next hour",
        min_cycles=300,
        continuous_every=250,
        batch_every=None,
        window=1200,
        batch_window=None,
        holdout_fraction=0.3,
        margin_se=1.0,
        learning_rate=0.25,
        lr_bounds=(0.05, 1.0),
        window_bounds=(400, 6000),
    ),
}
"""The default template of every trainable agent; config ``trainer.schedules`` overrides."""


def template_for(agent: str, config: FluxtradeConfig) -> TrainingTemplate:
    """The agent's template with the config's overrides applied and validated again."""
    base = TEMPLATES[agent]
    override = config.trainer.schedules.get(agent)  # type: ignore[call-overload]
    if override is None:
        return base
    changes = {k: v for k, v in override.model_dump().items() if v is not None}
    return TrainingTemplate.model_validate(base.model_dump() | changes)
