"""What to train next, how, and with what step: the schedule and ADAPTIVE mode's tuning.

The planner keeps per agent the cycle of its last CONTINUOUS and BATCH sessions, its current
learning rate and window, and how its recent sessions went. In ``continuous`` and ``batch`` mode
it follows the template's schedule. In ``adaptive`` mode it decides per due session:

* **BATCH** when a full re-fit is likely to help: the agent's live metric degraded (an alert),
  its last ``REJECTIONS_FOR_BATCH`` continuous sessions were all rejected on held-out data (the
  short window no longer finds anything), or the batch interval elapsed;
* **CONTINUOUS** otherwise.

After each deployed change the trainer measures its *live effect*: the paired score difference
between the new and the previous version on the cycles that arrived after the deployment (data
neither version was fitted or validated on). A positive effect grows the learning rate by
``GROW`` (bolder steps pay); a negative one halves it and widens the window by ``WIDEN`` (the
change chased noise, so use more history and smaller steps). Both stay within the template's
bounds. This is the "bold driver" rule of step-size control, applied to whole sessions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from actors.trainer.templates import TrainingTemplate
from cycle.messages import TrainingMode, TrainingSession

GROW = 1.5
SHRINK = 0.5
WIDEN = 1.5
REJECTIONS_FOR_BATCH = 3

Trigger = Literal["schedule", "adaptive", "request"]


@dataclass
class AgentPlan:
    """The planner's state for one agent (JSON-able, saved in the ledger)."""

    learning_rate: float
    window: int
    last_continuous: int = 0
    last_batch: int = 0
    rejections: int = 0
    wants_batch: str = ""


class TrainingPlanner:
    """Schedules sessions and, in adaptive mode, tunes learning rate and window per agent."""

    def __init__(
        self,
        templates: dict[str, TrainingTemplate],
        mode: Literal["continuous", "batch", "adaptive"],
        state: dict[str, Any] | None = None,
    ) -> None:
        self.templates = templates
        self.mode = mode
        saved = state or {}
        self.plans = {
            agent: AgentPlan(**saved[agent]) if agent in saved
            else AgentPlan(learning_rate=t.learning_rate, window=t.window)
            for agent, t in templates.items()
        }

    def state(self) -> dict[str, Any]:
        return {agent: asdict(plan) for agent, plan in self.plans.items()}

    def due(self, agent: str, cycle: int) -> tuple[TrainingMode, Trigger, str] | None:
        """The session this agent needs at ``cycle`` (mode, trigger, why), or None."""
        template, plan = self.templates[agent], self.plans[agent]
        batch_due = template.batch_every is not None and (
            cycle - plan.last_batch >= template.batch_every
        )
        continuous_due = cycle - max(plan.last_continuous, plan.last_batch) >= (
            template.continuous_every
        )
        if self.mode == "batch":
            return (TrainingMode.BATCH, "schedule", "batch interval") if batch_due else None
        if self.mode == "continuous":
            if batch_due:
                return TrainingMode.BATCH, "schedule", "batch interval"
            if continuous_due:
                return TrainingMode.CONTINUOUS, "schedule", "continuous interval"
            return None
        if plan.wants_batch and cycle - max(plan.last_continuous, plan.last_batch) >= 1:
            return TrainingMode.BATCH, "adaptive", plan.wants_batch
        if batch_due or continuous_due:
            mode, why = self.choose(agent, cycle)
            return mode, "adaptive", why
        return None

    def choose(self, agent: str, cycle: int) -> tuple[TrainingMode, str]:
        """ADAPTIVE mode's choice for a session run now, and why."""
        template, plan = self.templates[agent], self.plans[agent]
        if plan.wants_batch:
            return TrainingMode.BATCH, plan.wants_batch
        if template.batch_every is not None and cycle - plan.last_batch >= template.batch_every:
            return TrainingMode.BATCH, "batch interval"
        return TrainingMode.CONTINUOUS, "continuous interval"

    def settings(self, agent: str, mode: TrainingMode) -> tuple[float, int | None]:
        """Learning rate and window (cycles; None = all history) of the next session."""
        template, plan = self.templates[agent], self.plans[agent]
        adaptive = self.mode == "adaptive"
        rate = plan.learning_rate if adaptive else template.learning_rate
        if mode is TrainingMode.BATCH:
            return rate, template.batch_window
        return rate, plan.window if adaptive else template.window

    def after_session(self, session: TrainingSession) -> None:
        """Bookkeeping after a session: when it ran, and the run of rejections."""
        plan = self.plans[session.agent]
        if session.mode is TrainingMode.BATCH:
            plan.last_batch = session.cycle
            plan.wants_batch = ""
        else:
            plan.last_continuous = session.cycle
        if session.outcome == "deployed":
            plan.rejections = 0
        elif session.outcome == "rejected" and session.mode is TrainingMode.CONTINUOUS:
            plan.rejections += 1
            if plan.rejections >= REJECTIONS_FOR_BATCH:
                plan.rejections = 0
                plan.wants_batch = f"{REJECTIONS_FOR_BATCH} continuous sessions rejected in a row"

    def after_effect(self, agent: str, effect: float) -> None:
        """Tune the step from a deployed change's live effect (adaptive mode only)."""
        if self.mode != "adaptive" or effect == 0.0:
            return
        template, plan = self.templates[agent], self.plans[agent]
        low, high = template.lr_bounds
        low_w, high_w = template.window_bounds
        if effect > 0:
            plan.learning_rate = min(plan.learning_rate * GROW, high)
        else:
            plan.learning_rate = max(plan.learning_rate * SHRINK, low)
            plan.window = min(max(int(round(plan.window * WIDEN)), low_w), high_w)

    def degraded(self, agent: str, why: str) -> None:
        """A live metric of the agent dropped: its next adaptive session is a full re-fit."""
        if agent in self.plans and self.mode == "adaptive":
            self.plans[agent].wants_batch = why
