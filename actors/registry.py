"""Which plain agent class plays each role of the cycle."""

from __future__ import annotations

from actors.adapters.agent import AdaptersAgent
from actors.base import Agent
from actors.conditions.agent import ConditionsAgent
from actors.execution import ExecutionAgent
from actors.failure_prevention import FailureAgent
from actors.feeds import FeedsAgent
from actors.fees import FeesAgent
from actors.intelligence.agent import IntelligenceAgent
from actors.learner import LearnerAgent
from actors.ledger import LedgerAgent
from actors.reporter import ReporterAgent
from actors.risk.agent import RiskAgent
from actors.strategy.agent import StrategyAgent
from actors.validation import ValidationAgent

AGENT_CLASSES: dict[str, type[Agent]] = {
    cls.role: cls
    for cls in (
        FeedsAgent,
        ValidationAgent,
        ConditionsAgent,
        IntelligenceAgent,
        StrategyAgent,
        RiskAgent,
        ExecutionAgent,
        AdaptersAgent,
        FeesAgent,
        FailureAgent,
        LearnerAgent,
        ReporterAgent,
        LedgerAgent,
    )
}
