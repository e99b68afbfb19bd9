"""The learning layer: measure each broker, find when it misbehaves, and route around it.

Plain classes (no Ray): :class:`PerformanceTracker`, :class:`RetryHandler`,
:class:`PatternAnalyzer`, :class:`BrokerIntelligence`, :class:`BrokerRouter`,
:class:`HealthChecker`, :class:`APIMonitor` and :class:`BrokerLogger` with :func:`train_from_logs`.
"""

from actors.adapters.learning.api_monitor import APIMonitor, ResponseShape, ShapeDiff
from actors.adapters.learning.health import HealthChecker, HealthParams, HealthState
from actors.adapters.learning.intelligence import (
    AvoidWindow,
    BrokerIntelligence,
    Recommendation,
    ScoringWeights,
)
from actors.adapters.learning.logs import (
    BrokerEvent,
    BrokerLogger,
    LogRecord,
    TrainingResult,
    read_logs,
    train_from_logs,
)
from actors.adapters.learning.patterns import Pattern, PatternAnalyzer, PatternReport, Trend
from actors.adapters.learning.performance import BrokerMetrics, PerformanceTracker
from actors.adapters.learning.retry import RetryHandler, RetryParams, adapt_retry_params
from actors.adapters.learning.router import (
    BrokerRouter,
    RoutedOrder,
    RouterConfig,
    RoutingStrategy,
)

__all__ = [
    "APIMonitor",
    "AvoidWindow",
    "BrokerEvent",
    "BrokerIntelligence",
    "BrokerLogger",
    "BrokerMetrics",
    "BrokerRouter",
    "HealthChecker",
    "HealthParams",
    "HealthState",
    "LogRecord",
    "Pattern",
    "PatternAnalyzer",
    "PatternReport",
    "PerformanceTracker",
    "Recommendation",
    "ResponseShape",
    "RetryHandler",
    "RetryParams",
    "RoutedOrder",
    "RouterConfig",
    "RoutingStrategy",
    "ScoringWeights",
    "ShapeDiff",
    "Trend",
    "TrainingResult",
    "adapt_retry_params",
    "read_logs",
    "train_from_logs",
]
