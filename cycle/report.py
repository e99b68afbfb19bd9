"""Cycle reports and the run summary.

Statistics of a run are computed from the ledger's rows. Sharpe is annualised from the bar
interval: ``mean / std * sqrt(bars_per_year)`` of per-cycle simple equity returns, with crypto's
24/7 year (``365 * 86400 / timeframe_seconds`` bars).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import AwareDatetime, Field

from cycle.config import FluxtradeConfig
from cycle.messages import Frozen

Outcome = Literal["ok", "degraded", "no_orders", "halted", "exhausted"]


class CycleReport(Frozen):
    """What one cycle did, how long each step took, and what went wrong."""

    run_id: str
    cycle: int = Field(ge=0)
    market_time: AwareDatetime | None
    started_at: AwareDatetime
    duration_ms: float = Field(ge=0.0)
    step_ms: dict[str, float]
    outcome: Outcome
    degraded: dict[str, str] = Field(default_factory=dict)
    rejected_symbols: dict[str, str] = Field(default_factory=dict)
    degraded_symbols: dict[str, str] = Field(default_factory=dict)
    orders_sent: int = Field(0, ge=0)
    orders_terminal: int = Field(0, ge=0)
    open_orders: int = Field(0, ge=0)
    fills: int = Field(0, ge=0)
    fees: float = Field(0.0, ge=0.0)
    equity: float
    cash: float
    net_pnl: float
    drawdown: float = Field(ge=0.0)
    kill_switch: bool = False
    breaker: str = "closed"
    market_flux: float = Field(0.0, ge=0.0, le=1.0)
    regimes: dict[str, str] = Field(default_factory=dict)
    weights: dict[str, float] = Field(default_factory=dict)
    risk_decisions: dict[str, int] = Field(default_factory=dict)
    portfolio_risk: dict[str, float] = Field(default_factory=dict)
    round_trips: int = Field(0, ge=0)
    fill_latency_ms: tuple[float, ...] = ()

    def progress_line(self) -> str:
        stamp = self.market_time.strftime("%Y-%m-%d %H:%M") if self.market_time else "-"
        degraded = ",".join(sorted(self.degraded)) or "-"
        return (
            f"cycle {self.cycle:>5} | {stamp} | equity {self.equity:.6f} | pnl {self.net_pnl:+.6f}"
            f" | orders {self.orders_sent} | fills {self.fills} | {self.outcome}"
            f" | degraded {degraded} | {self.duration_ms:.1f} ms"
        )


class RunStats(Frozen):
    """The raw numbers of a run, read from the ledger."""

    run_id: str
    initial_cash: float
    equity: list[float]
    orders_by_status: dict[str, int]
    orders_by_strategy: dict[str, int]
    fills: int = Field(ge=0)
    fees: float = Field(ge=0.0)
    decisions_by_reason: dict[str, int]
    agent_health: dict[str, Any] = Field(default_factory=dict)
    step_ms_p50: dict[str, float] = Field(default_factory=dict)


class RunSummary(Frozen):
    run_id: str
    cycles: int
    orders: int
    fills: int
    fees: float
    initial_equity: float
    final_equity: float
    net_pnl: float
    sharpe: float
    max_drawdown: float
    bars_per_year: float
    orders_by_status: dict[str, int]
    orders_by_strategy: dict[str, int]
    decisions_by_reason: dict[str, int]
    agent_health: dict[str, Any]
    step_ms_p50: dict[str, float]


def annualised_sharpe(equity: list[float] | np.ndarray, bars_per_year: float) -> float:
    """Sharpe of per-bar simple returns, annualised by sqrt(bars per year); 0 if undefined."""
    values = np.asarray(equity, dtype=float)
    if values.size < 3:
        return 0.0
    returns = np.diff(values) / values[:-1]
    std = returns.std(ddof=1)
    return 0.0 if std == 0 or not math.isfinite(std) else float(returns.mean() / std * math.sqrt(bars_per_year))


def max_drawdown(equity: list[float] | np.ndarray) -> float:
    """Largest fractional fall from a running peak."""
    values = np.asarray(equity, dtype=float)
    if values.size == 0:
        return 0.0
    peaks = np.maximum.accumulate(values)
    return float(np.max(1.0 - values / peaks))


def summarise(stats: RunStats, config: FluxtradeConfig) -> RunSummary:
    bars_per_year = 365 * 86400 / config.data.timeframe_seconds
    curve = [stats.initial_cash, *stats.equity]
    return RunSummary(
        run_id=stats.run_id,
        cycles=len(stats.equity),
        orders=sum(stats.orders_by_status.values()),
        fills=stats.fills,
        fees=stats.fees,
        initial_equity=stats.initial_cash,
        final_equity=curve[-1],
        net_pnl=curve[-1] - stats.initial_cash,
        sharpe=annualised_sharpe(curve, bars_per_year),
        max_drawdown=max_drawdown(curve),
        bars_per_year=bars_per_year,
        orders_by_status=stats.orders_by_status,
        orders_by_strategy=stats.orders_by_strategy,
        decisions_by_reason=stats.decisions_by_reason,
        agent_health=stats.agent_health,
        step_ms_p50=stats.step_ms_p50,
    )


def render_markdown(summary: RunSummary) -> str:
    def table(title: str, rows: dict[str, Any]) -> list[str]:
        lines = [f"\n## {title}\n", "| | |", "|---|---:|"]
        lines += [f"| {k} | {v} |" for k, v in sorted(rows.items())] or ["| (none) | |"]
        return lines

    lines = [
        f"# fluxtrade run {summary.run_id}\n",
        "| | |",
        "|---|---:|",
        f"| cycles | {summary.cycles} |",
        f"| orders | {summary.orders} |",
        f"| fills | {summary.fills} |",
        f"| fees | {summary.fees:.8f} |",
        f"| initial equity | {summary.initial_equity:.8f} |",
        f"| final equity | {summary.final_equity:.8f} |",
        f"| net PnL | {summary.net_pnl:+.8f} |",
        f"| Sharpe (annualised, {summary.bars_per_year:.0f} bars/year) | {summary.sharpe:.3f} |",
        f"| max drawdown | {summary.max_drawdown:.4%} |",
    ]
    lines += table("Orders by final status", summary.orders_by_status)
    lines += table("Orders by strategy", summary.orders_by_strategy)
    lines += table("Risk resizes and rejections by reason", summary.decisions_by_reason)
    lines += table("Median step time (ms)", {k: f"{v:.2f}" for k, v in summary.step_ms_p50.items()})
    lines += table(
        "Agent health",
        {k: f"{v['state']} (errors {v['error_count']})" for k, v in summary.agent_health.items()},
    )
    return "\n".join(lines) + "\n"
