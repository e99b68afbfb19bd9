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


class DataConfig(Section):
    """Where bars come from. Relative file paths resolve against the project root."""

    source: Literal["replay"] = "replay"
    timeframe: Literal["1m", "5m", "15m", "30m", "1h", "4h", "1d"] = "5m"
    files: dict[str, str] = Field(min_length=1)
    history_bars: PositiveInt = 200
    stale_after_bars: PositiveInt = 3

    @property
    def timeframe_seconds(self) -> int:
        return TIMEFRAME_SECONDS[self.timeframe]

    def path_of(self, symbol: str) -> Path:
        path = Path(self.files[symbol])
        return path if path.is_absolute() else PROJECT_ROOT / path


class BrokerConfig(Section):
    """One simulated paper broker, run as a pool of ``pool_size`` actors."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    kind: Literal["paper"] = "paper"
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


class RoutingConfig(Section):
    policy: Literal["priority", "cheapest", "round_robin"] = "priority"


class RiskConfig(Section):
    """Limits as fractions of equity; the kill switch trips on drawdown from the equity peak."""

    max_position_fraction: Fraction = 0.3
    max_order_notional_fraction: Fraction = 0.1
    max_gross_exposure: Annotated[float, Field(gt=0.0, le=10.0)] = 1.0
    daily_loss_limit: Fraction = 0.05
    max_drawdown: Fraction = 0.15
    min_order_notional: NonNegativeFloat = 0.0
    rebalance_threshold: Fraction = 0.1
    kill_switch_flatten: bool = True
    allow_short: bool = False


class StrategyConfig(Section):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    class_path: ClassPath = Field(alias="class")
    weight: Annotated[float, Field(gt=0.0)] = 1.0
    params: dict[str, Any] = Field(default_factory=dict)

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class LearnerConfig(Section):
    learning_rate: NonNegativeFloat = 20.0
    min_weight: Fraction = 0.05
    max_weight: Fraction = 0.9


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
        unknown = sorted(set(value) - set(ROLES) - {"broker", "coordinator"})
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
    learner: LearnerConfig = LearnerConfig()
    execution: ExecutionConfig = ExecutionConfig()
    monitor: MonitorConfig = MonitorConfig()
    ledger: LedgerConfig = LedgerConfig()
    report: ReportConfig = ReportConfig()
    ray: RayConfig = RayConfig()
    agents: AgentsConfig = AgentsConfig()

    @model_validator(mode="after")
    def _cross_checks(self) -> FluxtradeConfig:
        unknown = [s for s in self.symbols if s not in self.data.files]
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
        for symbol in self.symbols:
            if not self.data.path_of(symbol).is_file():
                raise ValueError(f"data.files.{symbol}: no such file {self.data.path_of(symbol)}")
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
