"""One JSON-lines log per broker, and learning from those logs.

Every order, fill, response and error a broker adapter sees is appended as one JSON object per line
to ``<folder>/<broker>.jsonl``: plain text that survives crashes (a torn last line is skipped on
read), greps well, and is the training set of the learning layer: :func:`train_from_logs` replays
a folder into a :class:`PerformanceTracker`, a :class:`PatternAnalyzer` and a
:class:`BrokerIntelligence`, so a desk that restarts knows its brokers from day one.

Records hold what the desk observed, never credentials: callers pass names, numbers and the
already-translated error message.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO

from loguru import logger
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, NonNegativeFloat, ValidationError

from actors.adapters.learning.intelligence import BrokerIntelligence, Recommendation
from actors.adapters.learning.patterns import PatternAnalyzer, PatternReport
from actors.adapters.learning.performance import PerformanceTracker
from cycle.errors import ConfigError
from cycle.messages import Fill, Order, utc_now

BROKER_NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")


class BrokerEvent(StrEnum):
    ORDER = "order"
    FILL = "fill"
    RESPONSE = "response"
    ERROR = "error"


class LogRecord(BaseModel):
    """One line of a broker log."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timestamp: AwareDatetime
    broker: str
    event: BrokerEvent
    operation: str
    success: bool = True
    latency_ms: NonNegativeFloat | None = None
    fee: NonNegativeFloat = 0.0
    error_type: str | None = None
    message: str = ""
    client_order_id: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class BrokerLogger:
    """Appends records to ``<folder>/<broker>.jsonl``; the folder is created if missing."""

    def __init__(self, folder: Path, clock: Callable[[], datetime] = utc_now) -> None:
        self.folder = folder
        self._clock = clock
        self._files: dict[str, TextIO] = {}
        folder.mkdir(parents=True, exist_ok=True)

    def path(self, broker: str) -> Path:
        if not BROKER_NAME.match(broker):
            raise ValueError(f"broker: {broker!r} is not usable as a log file name")
        return self.folder / f"{broker}.jsonl"

    def write(self, record: LogRecord) -> None:
        """Append one record and flush, so a crash loses at most the line being written.

        Files stay open between records (a busy desk writes thousands a second); :meth:`close`
        closes them.
        """
        handle = self._files.get(record.broker)
        if handle is None:
            handle = self._files[record.broker] = self.path(record.broker).open(
                "a", encoding="utf-8"
            )
        handle.write(record.model_dump_json() + "\n")
        handle.flush()

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()
        self._files.clear()

    def response(
        self,
        broker: str,
        operation: str,
        latency_ms: float,
        *,
        fee: float = 0.0,
        client_order_id: str | None = None,
        **detail: Any,
    ) -> None:
        """Log a successful call."""
        self.write(
            LogRecord(
                timestamp=self._clock(),
                broker=broker,
                event=BrokerEvent.RESPONSE,
                operation=operation,
                latency_ms=latency_ms,
                fee=fee,
                client_order_id=client_order_id,
                detail=detail,
            )
        )

    def error(
        self,
        broker: str,
        operation: str,
        latency_ms: float,
        error: BaseException,
        *,
        client_order_id: str | None = None,
    ) -> None:
        """Log a failed call with the (translated) error's type and message."""
        self.write(
            LogRecord(
                timestamp=self._clock(),
                broker=broker,
                event=BrokerEvent.ERROR,
                operation=operation,
                success=False,
                latency_ms=latency_ms,
                error_type=type(error).__name__,
                message=str(error),
                client_order_id=client_order_id,
            )
        )

    def order(self, broker: str, order: Order) -> None:
        """Log an order's state as the broker reported it."""
        self.write(
            LogRecord(
                timestamp=self._clock(),
                broker=broker,
                event=BrokerEvent.ORDER,
                operation="order",
                fee=order.fees,
                client_order_id=order.client_order_id,
                detail={
                    "symbol": order.request.symbol,
                    "side": order.request.side.value,
                    "type": order.request.order_type.value,
                    "quantity": order.request.quantity,
                    "status": order.status.value,
                    "filled": order.filled_quantity,
                    "average_price": order.average_price,
                    "broker_order_id": order.broker_order_id,
                },
            )
        )

    def fill(self, broker: str, fill: Fill) -> None:
        """Log one fill."""
        self.write(
            LogRecord(
                timestamp=self._clock(),
                broker=broker,
                event=BrokerEvent.FILL,
                operation="fill",
                latency_ms=fill.latency_ms,
                fee=fill.fee,
                client_order_id=fill.client_order_id,
                detail={
                    "fill_id": fill.fill_id,
                    "symbol": fill.symbol,
                    "side": fill.side.value,
                    "quantity": fill.quantity,
                    "price": fill.price,
                    "slippage_bps": fill.slippage_bps,
                },
            )
        )


def read_logs(folder: Path, broker: str | None = None) -> Iterator[LogRecord]:
    """Yield the records of one broker (or of every broker, file by file) in written order.

    A line that does not parse (a torn last line after a crash) is skipped with a warning, so one
    bad line does not hide a month of history.
    """
    paths = [folder / f"{broker}.jsonl"] if broker else sorted(folder.glob("*.jsonl"))
    for path in paths:
        if not path.exists():
            continue
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                try:
                    yield LogRecord.model_validate_json(line)
                except ValidationError:
                    logger.bind(broker=path.stem).warning(
                        "skipping unreadable log line {}:{}", path.name, number
                    )


@dataclass(frozen=True)
class TrainingResult:
    """What :func:`train_from_logs` learnt, and the objects that hold it (to keep using them)."""

    tracker: PerformanceTracker
    analyzer: PatternAnalyzer
    intelligence: BrokerIntelligence
    reports: dict[str, PatternReport]
    recommendations: dict[str, Recommendation]
    recovery_s: dict[str, float]


def train_from_logs(
    folder: Path,
    *,
    tracker: PerformanceTracker | None = None,
    analyzer: PatternAnalyzer | None = None,
    intelligence: BrokerIntelligence | None = None,
) -> TrainingResult:
    """Replay a log folder into the learning layer and compute fresh recommendations.

    Responses and errors feed the tracker and the analyzer; the median length of each broker's
    failure runs (first failure to next success) becomes its typical recovery time, which sets how
    patient its retry schedule is.
    """
    tracker = tracker or PerformanceTracker()
    analyzer = analyzer or PatternAnalyzer()
    intelligence = intelligence or BrokerIntelligence()
    outage_started: dict[str, datetime] = {}
    outages: dict[str, list[float]] = {}
    for record in read_logs(folder):
        if record.event not in (BrokerEvent.RESPONSE, BrokerEvent.ERROR):
            continue
        broker = record.broker
        context = {"timestamp": record.timestamp, "latency_ms": record.latency_ms}
        tracker.record_response(broker, record.latency_ms or 0.0, record.success, record.fee)
        if record.success:
            analyzer.log_success(broker, context)
            started = outage_started.pop(broker, None)
            if started is not None:
                outages.setdefault(broker, []).append((record.timestamp - started).total_seconds())
        else:
            analyzer.log_failure(broker, record.error_type or "unknown", context)
            outage_started.setdefault(broker, record.timestamp)
    recovery = {broker: statistics.median(runs) for broker, runs in outages.items()}
    reports = {broker: analyzer.analyze_patterns(broker) for broker in analyzer.brokers()}
    recommendations = {
        broker: intelligence.update_recommendations(
            broker, tracker.metrics(broker), reports[broker], recovery.get(broker)
        )
        for broker in reports
    }
    return TrainingResult(tracker, analyzer, intelligence, reports, recommendations, recovery)


class LearnedBroker(BaseModel):
    """What training learnt about one broker, as the adapters agent loads it at start."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    recommendation: Recommendation
    patterns: PatternReport
    recovery_s: NonNegativeFloat | None = None


class Learned(BaseModel):
    """The file ``routing.learned`` names: one entry per broker."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    brokers: dict[str, LearnedBroker]


def save_learned(result: TrainingResult, path: Path) -> Learned:
    """Write a training result where ``routing.learned`` can point at it."""
    learned = Learned(
        brokers={
            broker: LearnedBroker(
                recommendation=result.recommendations[broker],
                patterns=result.reports[broker],
                recovery_s=result.recovery_s.get(broker),
            )
            for broker in result.recommendations
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(learned.model_dump_json(indent=2), encoding="utf-8")
    return learned


def load_learned(path: Path) -> dict[str, LearnedBroker]:
    """Read a file written by :func:`save_learned`.

    Raises:
        ConfigError: The file is missing or not a training result (names the setting).
    """
    try:
        return Learned.model_validate_json(path.read_text(encoding="utf-8")).brokers
    except OSError as error:
        raise ConfigError(f"routing.learned: cannot read {path} ({error.strerror})") from error
    except ValidationError as error:
        raise ConfigError(f"routing.learned: {path} is not a training result ({error})") from error
