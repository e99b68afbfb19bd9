"""The config schema: what a user may set, validated once at the edge.

Every model is frozen and ``extra="forbid"``: a typo in a YAML key is an error naming the key, not a
setting silently ignored. :func:`load_config` turns pydantic's errors into one
:class:`cycle.errors.ConfigError` whose message names each field and its problem.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from cycle.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
FeeRate = Annotated[float, Field(ge=0.0, lt=1.0)]
ClassPath = Annotated[str, Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")]

TIMEFRAME_SECONDS = {"1m": 60, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "4h": 14400, "1d": 86400}


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RunConfig(Section):
    name: str = Field("default", min_length=1)
    cycles: PositiveInt | None = None
    cycle_interval_s: NonNegativeFloat = 0.0
    seed: int = 7
    initial_cash: PositiveFloat = 1.0
    quote_currency: str = "BTC"


class SentimentConfig(Section):
    """A pluggable sentiment source, built as ``source(path=..., symbols=...)``.

    The default reads timestamped scores in [-1, 1] from a CSV (``timestamp,symbol,score``); a
    score older than ``max_age_bars`` bars is reported stale and not used.
    """

    source: ClassPath = "actors.sentiment:FileSentiment"
    path: str = "data/sentiment/synthetic_sentiment.csv"
    max_age_bars: PositiveInt = 24

    def resolved(self) -> Path:
        path = Path(self.path)
        return path if path.is_absolute() else PROJECT_ROOT / path


class LiveFeedConfig(Section):
    """A live ccxt feed: candles, order book and recent trades of ``data.source = "ccxt"``.

    ``base_url`` points every API section of the ccxt client at one host (the mock exchange on
    127.0.0.1 in tests); ``late_after_s`` reports a closed bar older than that, by the exchange's
    clock, as late instead of trading on it.
    """

    exchange_id: str = Field("binance", pattern=r"^[a-z0-9]+$")
    base_url: str | None = Field(None, pattern=r"^https?://")
    book_depth: PositiveInt = 10
    trades_limit: PositiveInt = 200
    late_after_s: PositiveFloat | None = None
    timeout_ms: PositiveInt = 5000


class DataConfig(Section):
    """Where bars come from. Relative file paths resolve against the project root.

    ``replay`` reads one CSV or Parquet file per symbol and resamples it when ``timeframe`` is
    coarser than the file's; ``ccxt`` polls an exchange (see :class:`LiveFeedConfig`).
    """

    source: Literal["replay", "ccxt"] = "replay"
    timeframe: Literal["1m", "5m", "15m", "30m", "1h", "4h", "1d"] = "5m"
    files: dict[str, str] = Field(default_factory=dict)
    history_bars: PositiveInt = 200
    stale_after_bars: PositiveInt = 3
    sentiment: SentimentConfig | None = None
    live: LiveFeedConfig | None = None

    @model_validator(mode="after")
    def _source_settings(self) -> DataConfig:
        if self.source == "replay" and not self.files:
            raise ValueError("files: a replay needs at least one file")
        if self.source == "ccxt" and self.live is None:
            raise ValueError("live: a ccxt feed needs its live settings")
        return self

    @property
    def timeframe_seconds(self) -> int:
        return TIMEFRAME_SECONDS[self.timeframe]

    def path_of(self, symbol: str) -> Path:
        path = Path(self.files[symbol])
        return path if path.is_absolute() else PROJECT_ROOT / path


PINNED_CCXT_VERSION = "4.5.90"
ENV_NAME = r"^[A-Z_][A-Z0-9_]*$"


class CcxtBrokerConfig(Section):
    """How to reach one venue through ccxt. Holds the *names* of credentials, never their values.

    Attributes:
        name: Broker name in fluxtrade (logs, routing, fill ids).
        exchange_id: ccxt exchange class (``binance``...).
        sandbox: Use the venue's testnet (ccxt ``set_sandbox_mode``).
        base_url: Replace the venue's host in every API URL (the mock exchange in tests).
        api_key_env: Environment variable holding the API key.
        api_secret_env: Environment variable holding the API secret.
        secrets_file: JSON file mapping those variable names to values, outside ``configs/``;
            environment variables win over it.
        timeout_ms: ccxt request timeout; past it a call raises BrokerTimeoutError.
        read_retries: ccxt's own retries for reads; placement always uses 0.
        enable_rate_limit: ccxt's client-side throttle (keep on against real venues).
        adjust_for_time_difference: Sync with the venue's clock when markets load.
        recv_window_ms: How stale a signed request may arrive (Binance ``recvWindow``).
        maker_fee: Fee rate used when a response carries no fee.
        taker_fee: Same, for taker fills.
        expected_ccxt_version: ccxt version the shapes and the error table were checked against;
            another version raises APIChangedError at construction (``None`` accepts any).
    """

    name: str = Field(default="binance", pattern=r"^[A-Za-z0-9_.:-]+$")
    exchange_id: str = "binance"
    sandbox: bool = False
    base_url: str | None = Field(default=None, pattern=r"^https?://[^/\s]+$")
    api_key_env: str = Field(default="FLUXTRADE_BINANCE_API_KEY", pattern=ENV_NAME)
    api_secret_env: str = Field(default="FLUXTRADE_BINANCE_API_SECRET", pattern=ENV_NAME)
    secrets_file: Path | None = None
    timeout_ms: PositiveInt = 10_000
    read_retries: NonNegativeInt = 0
    enable_rate_limit: bool = True
    adjust_for_time_difference: bool = True
    recv_window_ms: PositiveInt = 5_000
    maker_fee: FeeRate = 0.001
    taker_fee: FeeRate = 0.001
    expected_ccxt_version: str | None = PINNED_CCXT_VERSION

    @field_validator("secrets_file")
    @classmethod
    def _outside_configs(cls, path: Path | None) -> Path | None:
        if path is not None and "configs" in path.resolve().parts:
            raise ValueError("secrets_file: secrets must live outside configs/")
        return path


class FailureWindow(Section):
    """A span of the simulated venue's life, ``[start, end)`` in bars seen or seconds since start.

    With ``every`` the window repeats with that period (a daily maintenance hour is
    ``{start: 36, end: 48, every: 288}`` on 5-minute bars).
    """

    start: NonNegativeFloat
    end: PositiveFloat
    unit: Literal["bars", "seconds"] = "bars"
    every: PositiveFloat | None = None

    @model_validator(mode="after")
    def _ordered(self) -> FailureWindow:
        if self.end <= self.start:
            raise ValueError("end: a window must end after it starts")
        if self.every is not None and self.every <= self.end - self.start:
            raise ValueError("every: a repeating window must be shorter than its period")
        return self

    def active(self, bars: int, seconds: float) -> bool:
        """Whether the window covers the venue's clock now."""
        at = bars if self.unit == "bars" else seconds
        if self.every is not None and at >= self.start:
            at = self.start + (at - self.start) % self.every
        return self.start <= at < self.end


class ApiChangeConfig(Section):
    """A new API version: order responses lose or rename fields while ``window`` is active."""

    window: FailureWindow | None = None
    renamed: dict[str, str] = Field(default_factory=dict)
    removed: tuple[str, ...] = ()
    version: str | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> ApiChangeConfig:
        if not (self.renamed or self.removed or self.version):
            raise ValueError("renamed: an API change must rename, remove or re-version something")
        return self


class BrokerFailures(Section):
    """Failures a simulated paper venue injects, mirroring ``mock_exchange.MockFailures``.

    Attributes:
        rate_limit: Requests the venue admits per ``rate_limit_window_s`` on one connection; the
            rest are refused with RateLimitError (HTTP 429). ``None``: no limit.
        downtime: Windows in which every request fails with BrokerUnavailableError.
        slow_rate: Share of requests that take ``slow_ms`` longer.
        timeout_rate: Share of requests that time out (BrokerTimeoutError).
        hidden_fill_rate: Share of timed-out writes (submit, cancel) the venue executed anyway:
            the timeout hides a fill that happened.
        insufficient_balance_rate: Share of new orders refused for insufficient balance.
        invalid_order_rate: Share of new orders refused by the venue's rules (lot size...).
        restricted_symbols: Symbols this account may not trade at the venue (KYC).
        api_change: An API version change that alters the shape of order responses.
    """

    rate_limit: NonNegativeInt | None = None
    rate_limit_window_s: PositiveFloat = 1.0
    downtime: tuple[FailureWindow, ...] = ()
    slow_rate: Fraction = 0.0
    slow_ms: NonNegativeFloat = 0.0
    timeout_rate: Fraction = 0.0
    hidden_fill_rate: Fraction = 0.0
    insufficient_balance_rate: Fraction = 0.0
    invalid_order_rate: Fraction = 0.0
    restricted_symbols: tuple[str, ...] = ()
    api_change: ApiChangeConfig | None = None


class RateLimitConfig(Section):
    """A venue's allowed request rate; the members of a pool share one limiter that keeps it."""

    requests: PositiveInt
    window_s: PositiveFloat = 1.0


class BrokerConfig(Section):
    """One broker, run as a pool of ``pool_size`` actors: a simulated ``paper`` venue (with
    ``failures`` injected) or a real one through ``ccxt`` (settings in ``ccxt``)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    kind: Literal["paper", "ccxt"] = "paper"
    pool_size: PositiveInt = 2
    max_in_flight: PositiveInt = 8
    taker_fee: FeeRate = 0.001
    maker_fee: FeeRate = 0.0008
    slippage_bps: NonNegativeFloat = 2.0
    latency_ms: NonNegativeFloat = 5.0
    latency_jitter_ms: NonNegativeFloat = 2.0
    realtime_latency: bool = False
    reject_rate: Fraction = 0.0
    max_participation: Annotated[float, Field(gt=0.0, le=1.0)] = 0.1
    priority: NonNegativeInt = 0
    rate_limit: RateLimitConfig | None = None
    failures: BrokerFailures = BrokerFailures()
    ccxt: CcxtBrokerConfig | None = None

    @model_validator(mode="after")
    def _kind_settings(self) -> BrokerConfig:
        if self.kind == "ccxt" and self.ccxt is None:
            raise ValueError("ccxt: a ccxt broker needs its ccxt settings")
        if self.kind == "paper" and self.ccxt is not None:
            raise ValueError("ccxt: only a ccxt broker takes ccxt settings")
        if self.kind == "ccxt" and self.failures != BrokerFailures():
            raise ValueError("failures: only a paper broker injects failures")
        given = self.ccxt.model_fields_set if self.ccxt else set()
        shared = sorted({"name", "maker_fee", "taker_fee"} & given)
        if shared:
            raise ValueError(f"ccxt.{shared[0]}: set it on the broker, not in its ccxt settings")
        return self

    def venue(self) -> CcxtBrokerConfig:
        """The ccxt settings with this broker's name and fees."""
        if self.ccxt is None:
            raise ConfigError(f"brokers.{self.name}: not a ccxt broker")
        return self.ccxt.model_copy(
            update={"name": self.name, "maker_fee": self.maker_fee, "taker_fee": self.taker_fee}
        )


class RetrySettings(Section):
    """Backoff of broker calls, as ``actors.adapters.learning.RetryParams`` (learning adapts it)."""

    max_retries: Annotated[int, Field(ge=0, le=10)] = 2
    base_delay_s: PositiveFloat = 0.05
    max_delay_s: PositiveFloat = 1.0
    multiplier: Annotated[float, Field(ge=1.0)] = 2.0
    jitter: Fraction = 0.5
    max_elapsed_s: PositiveFloat | None = 2.0


class HealthSettings(Section):
    """When a broker counts as degraded or down, as ``actors.adapters.learning.HealthParams``."""

    window_s: PositiveFloat = 60.0
    down_after_failures: PositiveInt = 3
    degraded_error_rate: Annotated[float, Field(gt=0.0, le=1.0)] = 0.2
    min_samples: PositiveInt = 5
    degraded_latency_ms: PositiveFloat = 2000.0
    max_samples: PositiveInt = 500


class RoutingConfig(Section):
    """How orders are routed: the policy, the patience per call and what the desk learns.

    ``learned`` names the ``learned.json`` written by ``python -m actors.adapters.train``: retry
    schedules, scores and windows to avoid per broker, loaded when the adapters agent starts.
    """

    policy: Literal["priority", "best_score", "cheapest", "fastest", "round_robin"] = "priority"
    call_timeout_s: PositiveFloat = 2.0
    retry: RetrySettings = RetrySettings()
    health: HealthSettings = HealthSettings()
    performance_window: PositiveInt = 500
    learned: str | None = None

    @model_validator(mode="after")
    def _learned_exists(self) -> RoutingConfig:
        path = self.learned_path()
        if path is not None and not path.is_file():
            raise ValueError(f"learned: no such file {path}")
        return self

    def learned_path(self) -> Path | None:
        if self.learned is None:
            return None
        path = Path(self.learned)
        return path if path.is_absolute() else PROJECT_ROOT / path


Exposure = Annotated[float, Field(gt=0.0, le=10.0)]
SizingMethod = Literal["atr_stop", "vol_target", "kelly"]


class RiskConfig(Section):
    """Limits as fractions of equity; the kill switch trips on drawdown from the equity peak.

    Sizing: a full-conviction position is the smallest of ``max_position_fraction`` and the
    sizers named in ``sizing`` (fixed-fraction risk at an ATR stop, volatility target, capped
    Kelly of the signal's recent record), scaled down by the market flux (to ``flux_floor`` at
    flux 1) and by the entropy of recent returns; a strategy weight in [-1, 1] takes that share.
    Net and correlation-weighted exposure, a stop loss and take profit in ATRs and a limit on the
    target book's historical CVaR at 99% come on top of the position, order, gross, cash, daily
    loss and drawdown limits.
    """

    max_position_fraction: Fraction = 0.3
    max_order_notional_fraction: Fraction = 0.1
    max_gross_exposure: Exposure = 1.0
    daily_loss_limit: Fraction = 0.05
    max_drawdown: Fraction = 0.15
    min_order_notional: NonNegativeFloat = 0.0
    rebalance_threshold: Fraction = 0.1
    kill_switch_flatten: bool = True
    allow_short: bool = False
    max_net_exposure: Exposure = 1.0
    max_correlated_exposure: Exposure = 1.0
    correlation_window: Annotated[int, Field(ge=2)] = 96
    sizing: tuple[SizingMethod, ...] = ("atr_stop", "vol_target", "kelly")
    risk_per_trade: Annotated[float, Field(gt=0.0, le=1.0)] = 0.005
    stop_atr_multiple: PositiveFloat = 2.0
    atr_period: PositiveInt = 14
    target_volatility: PositiveFloat = 0.8
    volatility_window: Annotated[int, Field(ge=2)] = 48
    kelly_cap: Annotated[float, Field(gt=0.0, le=1.0)] = 0.25
    kelly_window: Annotated[int, Field(ge=10)] = 500
    kelly_min_history: Annotated[int, Field(ge=10)] = 100
    flux_floor: Fraction = 0.5
    stop_loss_atr: NonNegativeFloat = 3.0
    take_profit_atr: NonNegativeFloat = 6.0
    stop_cooldown_bars: NonNegativeInt = 12
    max_cvar_99: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    var_window: Annotated[int, Field(ge=20)] = 500
    entropy_window: Annotated[int, Field(ge=10)] = 100
    entropy_floor: Fraction = 0.25
    entropy_knee: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.85

    @model_validator(mode="after")
    def _windows_fit(self) -> RiskConfig:
        if self.kelly_min_history > self.kelly_window:
            raise ValueError("kelly_min_history: must not exceed kelly_window")
        if len(set(self.sizing)) != len(self.sizing):
            raise ValueError(f"sizing: a method is listed twice in {list(self.sizing)}")
        return self


class StrategyConfig(Section):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    class_path: ClassPath = Field(alias="class")
    weight: Annotated[float, Field(gt=0.0)] = 1.0
    params: dict[str, Any] = Field(default_factory=dict)

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class ComposerConfig(Section):
    """How the strategy composer weighs strategies (see ``actors/strategy/composer.py``)."""

    off_regime_factor: Fraction = 0.25
    drawdown_floor: Fraction = 0.25


class LearnerConfig(Section):
    learning_rate: NonNegativeFloat = 20.0
    min_weight: Fraction = 0.05
    max_weight: Fraction = 0.9


TrainableAgent = Literal["ensemble", "forecaster", "adapters", "conditions"]
TRAINABLE_AGENTS: tuple[str, ...] = TrainableAgent.__args__  # type: ignore[attr-defined]


class TrainerScheduleConfig(Section):
    """Overrides of one agent's training template (``actors/trainer/templates.py``).

    ``None`` keeps the template's value. Windows and intervals count cycles.
    """

    min_cycles: PositiveInt | None = None
    continuous_every: PositiveInt | None = None
    batch_every: PositiveInt | None = None
    window: PositiveInt | None = None
    batch_window: PositiveInt | None = None
    holdout_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] | None = None
    margin_se: NonNegativeFloat | None = None
    learning_rate: PositiveFloat | None = None


class TrainerConfig(Section):
    """The agent trainer: who it trains, how, and how a change must prove itself.

    ``mode`` is ``continuous`` (short re-fits on a rolling window every few cycles), ``batch``
    (full re-fits on the batch schedule or on request only) or ``adaptive`` (the trainer picks
    per session and tunes each agent's learning rate and window from the measured effect of its
    last changes). A change reaches the live agent only when it beats the live version on
    held-out data by ``margin_se`` standard errors of the paired difference.
    """

    enabled: bool = False
    mode: Literal["continuous", "batch", "adaptive"] = "adaptive"
    agents: tuple[TrainableAgent, ...] = ("ensemble", "conditions", "adapters", "forecaster")
    schedules: dict[TrainableAgent, TrainerScheduleConfig] = Field(default_factory=dict)
    poll_interval_s: PositiveFloat = 0.05
    stop_timeout_s: PositiveFloat = 60.0
    outbox_limit: PositiveInt = 2000
    max_weight_step: Annotated[float, Field(gt=0.0, le=1.0)] = 0.1
    analytics_window: Annotated[int, Field(ge=5)] = 50
    alert_drop_se: PositiveFloat = 4.0
    broker_log_folder: str | None = None
    forecaster_threads: PositiveInt = 1
    forecaster_max_seconds: PositiveFloat = 30.0
    artifacts: str = "runs/trainer"
    export_format: Literal["csv", "parquet"] = "parquet"

    @field_validator("agents")
    @classmethod
    def _unique_agents(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError(f"an agent is listed twice in {list(value)}")
        return value

    def artifacts_folder(self) -> Path:
        path = Path(self.artifacts)
        return path if path.is_absolute() else PROJECT_ROOT / path


class ExecutionConfig(Section):
    order_type: Literal["market", "limit"] = "market"
    limit_offset_bps: NonNegativeFloat = 5.0
    order_ttl_bars: PositiveInt = 1


class MonitorConfig(Section):
    error_rate_threshold: Fraction = 0.3
    window_cycles: PositiveInt = 20
    max_memory_percent: Annotated[float, Field(gt=0.0, le=100.0)] = 95.0
    max_rejection_streak: PositiveInt = 10
    breaker_cooldown_cycles: PositiveInt = 10


class LedgerConfig(Section):
    path: str = "runs/ledger.sqlite"

    def resolved(self) -> Path:
        path = Path(self.path)
        return path if path.is_absolute() else PROJECT_ROOT / path


class ReportConfig(Section):
    folder: str = "runs/report"

    def resolved(self) -> Path:
        path = Path(self.folder)
        return path if path.is_absolute() else PROJECT_ROOT / path


class RayConfig(Section):
    namespace: str = Field("fluxtrade", pattern=r"^[A-Za-z0-9_-]+$")
    num_cpus: PositiveInt | None = None
    include_dashboard: bool = True
    step_timeout_s: PositiveFloat = 10.0
    health_timeout_s: PositiveFloat = 2.0


ROLES = (
    "feeds",
    "validation",
    "conditions",
    "intelligence",
    "strategy",
    "risk",
    "execution",
    "adapters",
    "fees",
    "failure",
    "learner",
    "reporter",
    "ledger",
)
"""Every agent role the coordinator drives, in cycle order."""


class AgentOptions(Section):
    """Supervision and placement of one agent's actor."""

    max_restarts: NonNegativeInt = 3
    num_cpus: NonNegativeFloat = 0.0
    critical: bool = True
    resources: dict[str, PositiveFloat] = Field(default_factory=dict)


class AgentsConfig(Section):
    default: AgentOptions = AgentOptions()
    overrides: dict[str, AgentOptions] = Field(default_factory=dict)

    @field_validator("overrides")
    @classmethod
    def _known_roles(cls, value: dict[str, AgentOptions]) -> dict[str, AgentOptions]:
        unknown = sorted(set(value) - set(ROLES) - {"broker", "coordinator", "trainer"})
        if unknown:
            raise ValueError(f"unknown agent role(s) {unknown}; known: {list(ROLES)}")
        return value

    def options_for(self, role: str) -> AgentOptions:
        return self.overrides.get(role, self.default)


class FluxtradeConfig(Section):
    """The whole run, as parsed once from YAML by the front door."""

    run: RunConfig = RunConfig()
    data: DataConfig
    symbols: list[str] = Field(min_length=1)
    brokers: list[BrokerConfig] = Field(min_length=1)
    routing: RoutingConfig = RoutingConfig()
    risk: RiskConfig = RiskConfig()
    strategies: list[StrategyConfig] = Field(min_length=1)
    composer: ComposerConfig = ComposerConfig()
    learner: LearnerConfig = LearnerConfig()
    trainer: TrainerConfig = TrainerConfig()
    execution: ExecutionConfig = ExecutionConfig()
    monitor: MonitorConfig = MonitorConfig()
    ledger: LedgerConfig = LedgerConfig()
    report: ReportConfig = ReportConfig()
    ray: RayConfig = RayConfig()
    agents: AgentsConfig = AgentsConfig()

    @model_validator(mode="after")
    def _cross_checks(self) -> FluxtradeConfig:
        replay = self.data.source == "replay"
        unknown = [s for s in self.symbols if s not in self.data.files] if replay else []
        if unknown:
            raise ValueError(
                f"symbols: unknown symbol(s) {unknown}; data.files has {sorted(self.data.files)}"
            )
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError("symbols: a symbol is listed twice")
        for field, names in (
            ("brokers", [b.name for b in self.brokers]),
            ("strategies", [s.name for s in self.strategies]),
        ):
            if len(set(names)) != len(names):
                raise ValueError(f"{field}: names must be unique, got {names}")
        for symbol in self.symbols if replay else ():
            if not self.data.path_of(symbol).is_file():
                raise ValueError(f"data.files.{symbol}: no such file {self.data.path_of(symbol)}")
        sentiment = self.data.sentiment
        if sentiment is not None and not sentiment.resolved().is_file():
            raise ValueError(f"data.sentiment.path: no such file {sentiment.resolved()}")
        return self

    def content_hash(self) -> str:
        """A short stable hash of the whole config; keys ledger rows and result tables."""
        text = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def with_symbols(self, symbols: list[str]) -> FluxtradeConfig:
        """The same config trading other symbols, validated again."""
        data = self.model_dump(mode="python", by_alias=True)
        data["symbols"] = symbols
        return parse_config(data)


def describe_validation_error(error: ValidationError) -> str:
    """One line per bad field: ``location: problem``."""
    lines = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"{location}: {message}" if location else message)
    return "; ".join(lines)


def parse_config(data: dict[str, Any]) -> FluxtradeConfig:
    """Validate a config mapping; raises ConfigError naming every bad field."""
    try:
        return FluxtradeConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"invalid config: {describe_validation_error(error)}") from error


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> FluxtradeConfig:
    """Read a YAML config, apply top-level overrides (e.g. from the command line), validate once."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ConfigError(f"config file {path}: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path}: not valid YAML ({error})") from error
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: the top level must be a mapping")
    data.update(overrides or {})
    return parse_config(data)
