"""Typed messages: everything that crosses an actor boundary is one of these.

Messages are frozen pydantic models with ``extra="forbid"``: a message is never mutated, a new one is
derived with :meth:`pydantic.BaseModel.model_copy` or a helper below, and a misspelt field is an error,
not a silently ignored key.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    model_validator,
)

from cycle.config import StrategyConfig


class Frozen(BaseModel):
    """Base of every message: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def utc_now() -> datetime:
    """Timezone-aware now; naive datetimes are never used in fluxtrade."""
    return datetime.now(UTC)


class Bar(Frozen):
    """One OHLCV candle, keyed by the bar's open time.

    Values are not range-checked here: the validation bridge does that and records *why* a bar is
    rejected, which a construction error could not.
    """

    symbol: str
    timestamp: AwareDatetime
    open: float
    high: float
    low: float
    close: float
    volume: float


class BookLevel(Frozen):
    price: PositiveFloat
    quantity: NonNegativeFloat


class OrderBook(Frozen):
    """Top levels of a book. ``synthetic`` marks a book modelled from bars, not observed."""

    symbol: str
    timestamp: AwareDatetime
    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]
    synthetic: bool


class TradeTape(Frozen):
    """Aggressor volume in one bar. ``synthetic`` marks a split estimated from the bar's shape."""

    symbol: str
    timestamp: AwareDatetime
    buy_volume: NonNegativeFloat
    sell_volume: NonNegativeFloat
    trade_count: int = Field(ge=0)
    synthetic: bool


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        """+1 for a buy, -1 for a sell: the sign of the position change."""
        return 1 if self is Side.BUY else -1


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"


class OrderStatus(StrEnum):
    NEW = "new"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    UNKNOWN = "unknown"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED})

ORDER_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.NEW: frozenset(
        {OrderStatus.ACCEPTED, OrderStatus.REJECTED, OrderStatus.CANCELLED, OrderStatus.UNKNOWN}
    ),
    OrderStatus.ACCEPTED: frozenset(
        {
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELLED,
            OrderStatus.REJECTED,
            OrderStatus.UNKNOWN,
        }
    ),
    OrderStatus.PARTIALLY_FILLED: frozenset(
        {
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELLED,
            OrderStatus.UNKNOWN,
        }
    ),
    OrderStatus.UNKNOWN: frozenset(
        {
            OrderStatus.ACCEPTED,
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELLED,
            OrderStatus.REJECTED,
            OrderStatus.UNKNOWN,
        }
    ),
    OrderStatus.FILLED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
    OrderStatus.REJECTED: frozenset(),
}


class IllegalTransitionError(ValueError):
    """An order or agent was asked to move to a state its table does not allow."""


def new_client_order_id(prefix: str = "ft") -> str:
    """A globally unique client order id; short enough for every exchange's 36-char limit."""
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


class OrderRequest(Frozen):
    """What the desk wants to trade; the client order id is fixed before anything is sent."""

    client_order_id: str = Field(min_length=4, max_length=36)
    symbol: str
    side: Side
    order_type: OrderType
    quantity: PositiveFloat
    limit_price: PositiveFloat | None = None
    cycle: int = Field(ge=0)
    strategy: str
    reason: str = ""
    created_at: AwareDatetime

    @model_validator(mode="after")
    def _limit_needs_price(self) -> OrderRequest:
        if self.order_type is OrderType.LIMIT and self.limit_price is None:
            raise ValueError("limit_price: a limit order needs a limit price")
        if self.order_type is OrderType.MARKET and self.limit_price is not None:
            raise ValueError("limit_price: a market order takes no limit price")
        return self


class Order(Frozen):
    """The desk's view of one order over its life; each change derives a new Order."""

    request: OrderRequest
    status: OrderStatus = OrderStatus.NEW
    broker: str | None = None
    broker_order_id: str | None = None
    filled_quantity: NonNegativeFloat = 0.0
    average_price: NonNegativeFloat = 0.0
    fees: NonNegativeFloat = 0.0
    reason: str = ""
    updated_at: AwareDatetime

    @property
    def client_order_id(self) -> str:
        return self.request.client_order_id

    @property
    def remaining(self) -> float:
        return max(self.request.quantity - self.filled_quantity, 0.0)

    def transition(self, status: OrderStatus, **changes: Any) -> Order:
        """Derive the order in a new status; raises if the state table forbids the move."""
        if status not in ORDER_TRANSITIONS[self.status]:
            raise IllegalTransitionError(
                f"order {self.client_order_id}: {self.status.value} -> {status.value} is not allowed"
            )
        return self.model_copy(update={"status": status, "updated_at": utc_now(), **changes})

    def with_fill(self, fill: Fill) -> Order:
        """Derive the order after a fill: quantities, average price, fees and status."""
        filled = self.filled_quantity + fill.quantity
        average = (
            self.average_price * self.filled_quantity + fill.price * fill.quantity
        ) / filled
        status = (
            OrderStatus.FILLED
            if filled >= self.request.quantity * (1 - 1e-12)
            else OrderStatus.PARTIALLY_FILLED
        )
        return self.transition(
            status, filled_quantity=filled, average_price=average, fees=self.fees + fill.fee
        )


class Fill(Frozen):
    """One execution against an order. Cash moves by ``-side * quantity * price - fee``."""

    fill_id: str
    client_order_id: str
    symbol: str
    side: Side
    quantity: PositiveFloat
    price: PositiveFloat
    fee: NonNegativeFloat
    broker: str
    liquidity: Literal["maker", "taker"]
    reference_price: PositiveFloat
    slippage_bps: float
    latency_ms: NonNegativeFloat
    timestamp: AwareDatetime

    @property
    def cash_delta(self) -> float:
        """Signed change of cash (quote currency) that this fill causes."""
        return -(self.side.sign * self.quantity * self.price) - self.fee


class BrokerReport(Frozen):
    """What a broker call returns: order changes and new fills, in the order they happened."""

    orders: tuple[Order, ...] = ()
    fills: tuple[Fill, ...] = ()


class AgentState(StrEnum):
    CREATED = "created"
    READY = "ready"
    RUNNING = "running"
    DEGRADED = "degraded"
    FAULTED = "faulted"
    STOPPED = "stopped"


class HealthReport(Frozen):
    """An agent's answer to a health ping."""

    agent_id: str
    role: str
    state: AgentState
    incarnation: str
    last_error: str | None
    error_count: int = Field(ge=0)
    step_count: int = Field(ge=0)
    last_step_latency_ms: NonNegativeFloat
    flux: float = Field(ge=0.0, le=1.0)
    restored_from_cycle: int | None = None


class MessageKind(StrEnum):
    REQUEST = "request"
    EVENT = "event"
    COMMAND = "command"
    RESPONSE = "response"


class AgentMessage(Frozen):
    """A typed message to or from an agent; a RESPONSE carries ``reply_to`` and ``ok``."""

    kind: MessageKind
    topic: str = Field(min_length=1)
    sender: str
    payload: dict[str, Any] = Field(default_factory=dict)
    message_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    reply_to: str | None = None
    ok: bool = True
    error: str | None = None
    sent_at: AwareDatetime = Field(default_factory=utc_now)

    def reply(
        self, sender: str, payload: dict[str, Any] | None = None, *, error: str | None = None
    ) -> AgentMessage:
        """The RESPONSE to this message; ``error`` set means it failed."""
        return AgentMessage(
            kind=MessageKind.RESPONSE,
            topic=self.topic,
            sender=sender,
            payload=payload or {},
            reply_to=self.message_id,
            ok=error is None,
            error=error,
        )


class MarketFrame(Frozen):
    """What the feeds saw this cycle, before validation. ``missing`` names symbols with no bar."""

    cycle: int = Field(ge=0)
    timestamp: AwareDatetime | None
    bars: dict[str, Bar]
    books: dict[str, OrderBook] = Field(default_factory=dict)
    tapes: dict[str, TradeTape] = Field(default_factory=dict)
    signals: dict[str, dict[str, float]] = Field(default_factory=dict)
    missing: dict[str, str] = Field(default_factory=dict)
    degraded: dict[str, str] = Field(default_factory=dict)
    exhausted: bool = False


class ValidatedFrame(Frozen):
    """Bars that passed validation; ``rejected`` maps each skipped symbol to the reason."""

    cycle: int = Field(ge=0)
    timestamp: AwareDatetime | None
    bars: dict[str, Bar]
    books: dict[str, OrderBook] = Field(default_factory=dict)
    tapes: dict[str, TradeTape] = Field(default_factory=dict)
    signals: dict[str, dict[str, float]] = Field(default_factory=dict)
    rejected: dict[str, str] = Field(default_factory=dict)
    degraded: dict[str, str] = Field(default_factory=dict)

    @property
    def closes(self) -> dict[str, float]:
        return {symbol: bar.close for symbol, bar in self.bars.items()}


class SymbolConditions(Frozen):
    regime: str
    anomaly: bool
    anomaly_reasons: tuple[str, ...] = ()
    supply_demand: float = Field(0.0, ge=-1.0, le=1.0)
    volatility: float = Field(0.0, ge=0.0)


class Conditions(Frozen):
    """Market conditions per symbol and the smoothed market flux that every agent adapts to."""

    cycle: int = Field(ge=0)
    by_symbol: dict[str, SymbolConditions]
    market_flux: float = Field(ge=0.0, le=1.0)


class Analysis(Frozen):
    """Indicator values per symbol (NaN while warming up) and intelligence findings.

    ``correlation`` holds only pairs whose correlation is known; ``forecasts`` the forecaster's
    probability that the next bar closes up; ``notes`` says why something is absent.
    """

    cycle: int = Field(ge=0)
    indicators: dict[str, dict[str, float]]
    patterns: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    correlation: dict[str, dict[str, float]] = Field(default_factory=dict)
    forecasts: dict[str, float] = Field(default_factory=dict)
    notes: dict[str, str] = Field(default_factory=dict)


class TargetPosition(Frozen):
    """A strategy's wish: fraction of the per-symbol allowance to hold, in [-1, 1].

    ``dominant`` names the strategy that contributed most in the target's direction (the order
    that follows carries it); ``rationale`` says, for a human, why the target is what it is.
    """

    symbol: str
    weight: float = Field(ge=-1.0, le=1.0)
    confidence: float = Field(ge=0.0, le=1.0)
    contributions: dict[str, float] = Field(default_factory=dict)
    dominant: str = ""
    rationale: str = ""


class StrategyDecision(Frozen):
    cycle: int = Field(ge=0)
    targets: dict[str, TargetPosition]
    signals: dict[str, dict[str, float]]
    weights: dict[str, float]


class RiskDecision(Frozen):
    """A resize or rejection by the risk agent, with the reason a human can read."""

    symbol: str
    action: Literal["rejected", "resized", "halted"]
    reason: str
    detail: dict[str, float | str] = Field(default_factory=dict)


class OrderIntent(Frozen):
    """An order risk has approved; execution gives it a client order id and sends it."""

    symbol: str
    side: Side
    quantity: PositiveFloat
    order_type: OrderType
    limit_price: PositiveFloat | None = None
    strategy: str
    reason: str


class RiskOutcome(Frozen):
    cycle: int = Field(ge=0)
    intents: tuple[OrderIntent, ...]
    decisions: tuple[RiskDecision, ...]
    kill_switch: bool
    portfolio: dict[str, float] = Field(default_factory=dict)


class PositionState(Frozen):
    symbol: str
    quantity: float
    average_cost: float = Field(ge=0.0)
    mark: float = Field(ge=0.0)

    @property
    def market_value(self) -> float:
        return self.quantity * self.mark

    @property
    def unrealised_pnl(self) -> float:
        return self.quantity * (self.mark - self.average_cost)


class AccountState(Frozen):
    """The account as of one cycle, marked to the latest valid closes."""

    cycle: int = Field(ge=0)
    timestamp: AwareDatetime | None
    cash: float
    positions: dict[str, PositionState]
    equity: float
    peak_equity: float
    day_start_equity: float
    realised_pnl: float
    fees_paid: float = Field(ge=0.0)
    initial_cash: float

    @property
    def drawdown(self) -> float:
        """Fractional drop of equity from its peak, 0 at a new high."""
        return 0.0 if self.peak_equity <= 0 else max(0.0, 1.0 - self.equity / self.peak_equity)

    @property
    def daily_loss(self) -> float:
        """Fractional loss since the start of the market day, 0 when up on the day."""
        if self.day_start_equity <= 0:
            return 0.0
        return max(0.0, 1.0 - self.equity / self.day_start_equity)

    @property
    def gross_exposure(self) -> float:
        return sum(abs(p.market_value) for p in self.positions.values())

    def quantity(self, symbol: str) -> float:
        position = self.positions.get(symbol)
        return position.quantity if position else 0.0


class StrategyInputs(Frozen):
    """Everything the strategy engine may look at in one cycle."""

    frame: ValidatedFrame
    conditions: Conditions | None
    analysis: Analysis | None
    account: AccountState
    weights: dict[str, float] | None = None


class RiskInputs(Frozen):
    """The strategy's wishes and the account they must fit into."""

    decision: StrategyDecision | None
    account: AccountState
    frame: ValidatedFrame
    conditions: Conditions | None
    open_orders: tuple[Order, ...] = ()
    halted: bool = False
    halt_reason: str = ""


class StepOutcome(Frozen):
    """What an operation returned, or why it failed; the coordinator never sees a raw exception."""

    agent_id: str
    operation: str
    ok: bool
    output: Any = None
    error: str | None = None
    error_type: str | None = None
    latency_ms: float = Field(ge=0.0)
    incarnation: str | None = None


class ExecutionPlan(Frozen):
    """New orders to send and stale ones to cancel, both already known to the ledger."""

    cycle: int = Field(ge=0)
    new_orders: tuple[Order, ...]
    cancels: tuple[Order, ...]


class PrepareInputs(Frozen):
    cycle: int = Field(ge=0)
    intents: tuple[OrderIntent, ...]


class ApplyInputs(Frozen):
    cycle: int = Field(ge=0)
    timestamp: AwareDatetime | None
    report: BrokerReport
    marks: dict[str, float]


class ExecutionState(Frozen):
    account: AccountState
    open_orders: tuple[Order, ...]
    terminal_orders: tuple[Order, ...]


class FeesInputs(Frozen):
    cycle: int = Field(ge=0)
    fills: tuple[Fill, ...]
    account: AccountState


class BrokerFees(Frozen):
    fills: int = Field(ge=0)
    notional: float = Field(ge=0.0)
    fees: float = Field(ge=0.0)

    @property
    def fee_bps(self) -> float:
        return self.fees / self.notional * 1e4 if self.notional else 0.0


class FeeReport(Frozen):
    by_broker: dict[str, BrokerFees]
    total_fees: float = Field(ge=0.0)
    gross_pnl: float
    net_pnl: float


BreakerState = Literal["closed", "open", "half_open"]


class FailureInputs(Frozen):
    cycle: int = Field(ge=0)
    steps: int = Field(ge=0)
    step_errors: int = Field(ge=0)
    orders: int = Field(ge=0)
    rejections: int = Field(ge=0)


class ResourceReading(Frozen):
    memory_percent: float = Field(ge=0.0, le=100.0)
    cpu_percent: float = Field(ge=0.0)
    process_rss_mb: float = Field(ge=0.0)
    ray_cpus_available: float | None = None
    ray_cpus_total: float | None = None


class FailureReport(Frozen):
    breaker: BreakerState
    reason: str
    error_rate: float = Field(ge=0.0, le=1.0)
    rejection_streak: int = Field(ge=0)
    resources: ResourceReading

    @property
    def breaker_open(self) -> bool:
        return self.breaker == "open"


class LearnerInputs(Frozen):
    cycle: int = Field(ge=0)
    decision: StrategyDecision | None
    closes: dict[str, float]


class LearnerOutput(Frozen):
    weights: dict[str, float]
    last_pnl: dict[str, float]
    cumulative_pnl: dict[str, float]


# --- the agent trainer (actors/trainer) ------------------------------------------------------

TRAINER_DEPLOY_TOPIC = "trainer.deploy"
"""COMMAND topic by which a trained (or rolled-back) version reaches the agent that runs it."""


class TrainingMode(StrEnum):
    """How a training session uses history: a short rolling window, or a full re-fit."""

    CONTINUOUS = "continuous"
    BATCH = "batch"


class BrokerCall(Frozen):
    """One broker outcome of a cycle, at market time: a fill (success) or a rejection."""

    broker: str
    at: AwareDatetime
    success: bool
    latency_ms: NonNegativeFloat | None = None
    slippage_bps: float | None = None
    fee: NonNegativeFloat = 0.0
    error_type: str | None = None


class CycleOutcome(Frozen):
    """What one cycle taught the desk: the learner's per-strategy PnL and the raw material.

    ``strategy_pnl`` is each strategy's own paper PnL for the cycle (signal at t-1 times the log
    return of bar t), ``weights`` the ensemble weights after step 8, ``ohlcv`` the validated bar
    of each symbol as ``(open, high, low, close, volume)``.
    """

    cycle: int = Field(ge=0)
    market_time: AwareDatetime | None
    strategy_pnl: dict[str, float]
    weights: dict[str, float]
    ohlcv: dict[str, tuple[float, float, float, float, float]] = Field(default_factory=dict)
    broker_calls: tuple[BrokerCall, ...] = ()
    equity: float | None = None
    forecasts: dict[str, float] = Field(default_factory=dict)
    regimes: dict[str, str] = Field(default_factory=dict)


class DeployCommand(Frozen):
    """A version of an agent's trained parameters, to be applied exactly as given."""

    deployment_id: str
    agent: str
    target_role: str
    version: int = Field(ge=0)
    kind: Literal["deploy", "rollback"]
    params: dict[str, Any]
    replaces: int = Field(ge=0)


class DeployAck(Frozen):
    """Whether the target agent applied a :class:`DeployCommand` (``error`` says why not)."""

    deployment_id: str
    ok: bool
    error: str | None = None


class TrainerBatch(Frozen):
    """Outcomes of the cycles since the last batch, and acks of delivered deployments."""

    outcomes: tuple[CycleOutcome, ...] = ()
    acks: tuple[DeployAck, ...] = ()


class TrainerEvent(Frozen):
    """Something the ledger must record: an alert, or a request to re-evaluate strategies."""

    kind: Literal["performance_alert", "meta_reevaluation_requested"]
    cycle: int = Field(ge=0)
    payload: dict[str, Any] = Field(default_factory=dict)


class TrainerFeedback(Frozen):
    """The trainer's answer to a batch: deployments to deliver and events to record."""

    deployments: tuple[DeployCommand, ...] = ()
    events: tuple[TrainerEvent, ...] = ()


class PerformanceAlert(Frozen):
    """A live metric has dropped well below its own recent baseline and is heading lower."""

    agent: str
    metric: str
    cycle: int = Field(ge=0)
    current: float
    baseline: float
    z: float
    forecast: float
    reason: str


class ReevaluationRequest(Frozen):
    """Asks the meta-agent (tuning) to re-select strategies: live performance has degraded."""

    run_id: str
    cycle: int = Field(ge=0)
    alert: PerformanceAlert


class TrainingSession(Frozen):
    """One training session of one agent, as recorded in the ledger (``trainer_sessions``).

    Scores are the mean of per-sample scores on the held-out tail of the window, higher is
    better; ``diff_se`` is the standard error of the paired per-sample difference.
    """

    session_id: str
    run_id: str
    agent: str
    mode: TrainingMode
    trigger: Literal["schedule", "adaptive", "request"]
    cycle: int = Field(ge=0)
    window_start: int = Field(ge=0)
    window_end: int = Field(ge=0)
    holdout_from: int = Field(ge=0)
    samples: int = Field(ge=0)
    learning_rate: PositiveFloat
    window: int = Field(ge=1)
    params_before: dict[str, Any]
    params_after: dict[str, Any] | None = None
    score_before: float | None = None
    score_after: float | None = None
    diff_se: float | None = None
    version_before: int = Field(ge=0)
    version_after: int | None = None
    started_at: AwareDatetime
    duration_s: NonNegativeFloat
    outcome: Literal["deployed", "rejected", "skipped", "failed"]
    reason: str = ""
    live_effect: float | None = None


# --- the meta-agent (tuning/meta_agent.py) ------------------------------------------------------

STRATEGY_SWAP_TOPIC = "strategy.swap"
"""COMMAND topic by which the meta-agent's chosen strategy reaches the strategy engine."""


class StrategySwap(Frozen):
    """The meta-agent's chosen strategy, to trade from the next cycle on.

    The coordinator holds it until the cycle in flight has finished and hands it to the strategy
    engine before the next cycle sees a bar; positions stay with the execution agent, so the new
    strategy's targets simply take over from the old ones. ``config_hash`` keys the candidate's
    row in the meta-agent's result table; the scores are its walk-forward numbers.
    """

    run_id: str
    config_hash: str
    strategy: StrategyConfig
    metric: str
    train_score: float
    validation_score: float
    confidence: float = Field(ge=0.0, le=1.0)
    reason: str = ""
