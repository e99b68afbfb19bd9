"""What the risk agent knows about the market, kept by the agent itself, bar by bar.

Risk is a critical agent and must not depend on an optional one, so it keeps its own incremental
ATR and realised volatility per symbol (the ``*State`` twins of the intelligence indicators, so
the numbers equal the vectorised ones), an aligned history of closes for correlations, VaR and
entropy, and the *paper record* of the composer's targets for the Kelly sizer.

The paper record: at every bar where the previous target weight was not zero, the return a unit
position in the target's direction earned, ``sign(w[t-1]) * r[t]``. Its mean over variance is the
continuous Kelly fraction of the signal. It is a record of the signal, not of fills, so it keeps
learning while the desk is flat and a losing spell can never lock the sizer at zero for good.

:meth:`RiskTracker.view` freezes all of it into a :class:`RiskView` for the pure
:func:`actors.risk.limits.plan_orders`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from actors.intelligence.correlation import correlation_matrix
from actors.intelligence.indicators import ATRState, RealizedVolState
from actors.risk.portfolio_risk import (
    entropy_exposure_scale,
    historical_cvar,
    historical_var,
    parametric_cvar,
    parametric_var,
    return_entropy,
)
from actors.risk.sizing import kelly_fraction_from_moments
from cycle.config import RiskConfig
from cycle.messages import AccountState, StrategyDecision, ValidatedFrame

CONFIDENCES = (0.95, 0.99)


@dataclass(frozen=True)
class SymbolRisk:
    """Per-symbol inputs of sizing and stops; NaN or None where not yet known.

    Attributes:
        atr: Average true range in price units.
        volatility: Standard deviation of per-bar log returns.
        kelly: Capped half-Kelly fraction of equity from the paper record (before flux); None
            while the record is shorter than ``kelly_min_history``.
        entropy_scale: Exposure multiplier from the entropy of recent returns, in [floor, 1].
        cooldown: Bars left during which a stopped-out symbol may not be re-entered.
    """

    atr: float = math.nan
    volatility: float = math.nan
    kelly: float | None = None
    entropy_scale: float = 1.0
    cooldown: int = 0


@dataclass(frozen=True)
class RiskView:
    """A frozen snapshot of market risk inputs for one cycle.

    Attributes:
        symbols: Per-symbol inputs.
        correlation: Known pairwise correlations of log returns (a missing pair is unknown).
        returns: Simple returns, shape ``(bars, symbols)`` in ``order``; rows with any gap are
            dropped, so a portfolio return is never built from a partly invented bar.
        order: Column order of ``returns``.
        bars_per_year: For annualising the volatility target.
    """

    symbols: dict[str, SymbolRisk]
    correlation: dict[str, dict[str, float]] = field(default_factory=dict)
    returns: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    order: tuple[str, ...] = ()
    bars_per_year: float = 105_120.0

    def corr(self, a: str, b: str) -> float:
        """Correlation of two symbols; 1 for the same symbol and, conservatively, when unknown."""
        if a == b:
            return 1.0
        value = self.correlation.get(a, {}).get(b, math.nan)
        return 1.0 if math.isnan(value) else value


def book_risk(weights: Mapping[str, float], view: RiskView) -> dict[str, float]:
    """Historical and parametric VaR and CVaR at 95% and 99% of a book, per bar.

    Args:
        weights: Signed position value per symbol as a fraction of equity.
        view: Supplies the aligned return history.

    Returns:
        ``{"var_hist_95": ..., "cvar_param_99": ...}`` as positive loss fractions of equity;
        empty when fewer than 20 complete bars exist or the book holds nothing.
    """
    if view.returns.shape[0] < 20 or not any(weights.get(s, 0.0) for s in view.order):
        return {}
    w = np.array([weights.get(s, 0.0) for s in view.order])
    portfolio = view.returns @ w
    out: dict[str, float] = {}
    for confidence in CONFIDENCES:
        level = round(confidence * 100)
        out[f"var_hist_{level}"] = historical_var(portfolio, confidence)
        out[f"cvar_hist_{level}"] = historical_cvar(portfolio, confidence)
        out[f"var_param_{level}"] = parametric_var(portfolio, confidence)
        out[f"cvar_param_{level}"] = parametric_cvar(portfolio, confidence)
    return out


def exposures(account: AccountState) -> dict[str, float]:
    """Signed position value per symbol as a fraction of equity (empty at zero equity)."""
    if account.equity <= 0:
        return {}
    return {s: p.market_value / account.equity for s, p in account.positions.items()}


def correlated_exposure(exposures: Mapping[str, float], view: RiskView) -> float:
    """``sqrt(x' R x)`` of signed exposures ``x`` (fractions of equity) under correlations ``R``.

    It equals the gross exposure of one symbol, the net exposure of perfectly correlated ones and
    the root sum of squares of independent ones: the exposure the book *behaves* like. Unknown
    correlations count as 1.
    """
    names = [s for s, x in exposures.items() if x]
    total = sum(exposures[a] * exposures[b] * view.corr(a, b) for a in names for b in names)
    return math.sqrt(max(total, 0.0))


class RiskTracker:
    """Incremental per-symbol risk inputs, snapshot-able for agent restarts."""

    def __init__(self, risk: RiskConfig, symbols: Sequence[str], bars_per_year: float) -> None:
        self.risk = risk
        self.symbols = list(symbols)
        self.bars_per_year = bars_per_year
        self.atr = {s: ATRState(risk.atr_period) for s in self.symbols}
        self.vol = {s: RealizedVolState(risk.volatility_window) for s in self.symbols}
        keep = max(risk.var_window, risk.correlation_window, risk.entropy_window) + 1
        self.closes: deque[tuple[float, ...]] = deque(maxlen=keep)
        self.record = {s: deque(maxlen=risk.kelly_window) for s in self.symbols}
        self.last_target: dict[str, float] = {}
        self.last_close: dict[str, float] = {}
        self.cooldown: dict[str, int] = {}
        self.readings: dict[str, tuple[float, float]] = {}

    def update(self, frame: ValidatedFrame) -> None:
        """Fold in this cycle's bars: ATR, volatility, the close row and the paper record."""
        for symbol in list(self.cooldown):
            self.cooldown[symbol] -= 1
            if self.cooldown[symbol] <= 0:
                del self.cooldown[symbol]
        for symbol, bar in frame.bars.items():
            atr = self.atr[symbol].update(bar.high, bar.low, bar.close)
            vol = self.vol[symbol].update(bar.close)
            self.readings[symbol] = (atr, vol)
            previous = self.last_close.get(symbol)
            weight = self.last_target.get(symbol, 0.0)
            if previous and weight:
                self.record[symbol].append(math.copysign(1.0, weight) * (bar.close / previous - 1))
            self.last_close[symbol] = bar.close
        self.closes.append(
            tuple(frame.bars[s].close if s in frame.bars else math.nan for s in self.symbols)
        )

    def remember(self, decision: StrategyDecision | None, frame: ValidatedFrame) -> None:
        """Keep this cycle's targets; a symbol without a target (or a bar) counts as flat."""
        targets = decision.targets if decision else {}
        self.last_target = {s: targets[s].weight for s in frame.bars if s in targets}

    def stopped(self, symbol: str) -> None:
        """Start the re-entry cooldown of a symbol whose stop loss or take profit fired."""
        if self.risk.stop_cooldown_bars:
            self.cooldown[symbol] = self.risk.stop_cooldown_bars

    def view(self) -> RiskView:
        """Freeze today's inputs for :func:`actors.risk.limits.plan_orders`."""
        risk = self.risk
        closes = np.array(self.closes, dtype=float).reshape(-1, len(self.symbols))
        returns = closes[1:] / closes[:-1] - 1.0
        symbols: dict[str, SymbolRisk] = {}
        for column, symbol in enumerate(self.symbols):
            atr, vol = self.readings.get(symbol, (math.nan, math.nan))
            symbols[symbol] = SymbolRisk(
                atr=atr, volatility=vol, kelly=self._kelly(symbol),
                entropy_scale=self._entropy_scale(returns[:, column]),
                cooldown=self.cooldown.get(symbol, 0),
            )
        correlation: dict[str, dict[str, float]] = {}
        if len(closes) > risk.correlation_window and len(self.symbols) > 1:
            recent = closes[-(risk.correlation_window + 1) :]
            matrix = correlation_matrix(recent, risk.correlation_window, self.symbols)
            correlation = {
                a: {b: float(v) for b, v in row.items() if a != b and math.isfinite(v)}
                for a, row in matrix.iterrows()
            }
        recent_returns = returns[-risk.var_window :]
        complete = recent_returns[np.isfinite(recent_returns).all(axis=1)]
        return RiskView(
            symbols=symbols, correlation=correlation, returns=complete,
            order=tuple(self.symbols), bars_per_year=self.bars_per_year,
        )

    def _kelly(self, symbol: str) -> float | None:
        record = self.record[symbol]
        if len(record) < self.risk.kelly_min_history:
            return None
        values = np.fromiter(record, float)
        variance = float(values.var(ddof=1))
        if not variance > 0:
            return None
        return kelly_fraction_from_moments(
            mean_return=float(values.mean()), variance=variance, flux=0.0, cap=self.risk.kelly_cap
        )

    def _entropy_scale(self, returns: np.ndarray) -> float:
        recent = returns[-self.risk.entropy_window :]
        recent = recent[np.isfinite(recent)]
        if recent.size < self.risk.entropy_window:
            return 1.0
        entropy = return_entropy(recent)
        return entropy_exposure_scale(
            entropy, floor=self.risk.entropy_floor, knee=self.risk.entropy_knee
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "atr": {s: a.snapshot() for s, a in self.atr.items()},
            "vol": {s: v.snapshot() for s, v in self.vol.items()},
            "closes": [[_enc(x) for x in row] for row in self.closes],
            "record": {s: list(r) for s, r in self.record.items()},
            "last_target": dict(self.last_target),
            "last_close": dict(self.last_close),
            "cooldown": dict(self.cooldown),
            "readings": {s: [_enc(a), _enc(v)] for s, (a, v) in self.readings.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.atr = {s: ATRState.restore(a) for s, a in state["atr"].items()}
        self.vol = {s: RealizedVolState.restore(v) for s, v in state["vol"].items()}
        self.closes.clear()
        self.closes.extend(tuple(_dec(x) for x in row) for row in state["closes"])
        for symbol, values in state["record"].items():
            self.record[symbol].clear()
            self.record[symbol].extend(values)
        self.last_target = dict(state["last_target"])
        self.last_close = dict(state["last_close"])
        self.cooldown = {s: int(n) for s, n in state["cooldown"].items()}
        self.readings = {s: (_dec(a), _dec(v)) for s, (a, v) in state["readings"].items()}


def _enc(x: float) -> float | None:
    return None if math.isnan(x) else x


def _dec(x: float | None) -> float:
    return math.nan if x is None else float(x)
