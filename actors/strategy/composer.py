"""The composer: picks and weighs strategies by regime, account state and risk limits.

Per symbol and cycle, every strategy votes ``(weight, confidence)``. The composer then

1. **picks**: a strategy that cannot speak (the forecaster without weights, or any strategy
   still inside its warm-up, which does not vote) is left out, and a strategy whose declared
   regimes exclude the symbol's current regime counts at ``off_regime_factor`` of its weight
   (0 leaves it out). While the regime is still warming up every strategy counts in full:
   there is no evidence against any of them yet;
2. **weighs**: the target is the mean of the votes weighted by ``learner weight x regime
   factor``; its confidence is the agreement of the votes (|weighted sum| / weighted sum of
   magnitudes) times their weighted mean confidence, so five strategies split two against three
   give a small, unsure target;
3. **adapts to the account**: targets shrink linearly with the drawdown (to ``drawdown_floor``
   at ``risk.max_drawdown``) and with the day's loss (to the same floor at
   ``risk.daily_loss_limit``), so a desk that is losing trades smaller before the kill switch or
   the daily limit has to step in;
4. **fits the risk limits**: shorts are dropped when shorting is off, and when the wished book
   would exceed ``risk.max_gross_exposure`` or ``risk.max_net_exposure`` all targets are scaled
   by the same factor, so each symbol keeps its share instead of the first one in the queue
   taking the whole budget. The risk agent still checks every order; this only asks for a book
   that can fit.

The strategy with the largest contribution in the direction of the target is its ``dominant``
strategy, and the order that results carries its name. A position going flat is attributed to
the strategy that last drove it, so the run summary can say which strategies traded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from actors.strategy.library import Strategy
from cycle.config import RiskConfig
from cycle.messages import AccountState, TargetPosition

WARMING_UP = "warming_up"


def blend(
    signals: dict[str, float], weights: dict[str, float], factors: dict[str, float]
) -> tuple[float, float]:
    """Weighted mean of strategy signals and an agreement-based confidence in [0, 1]."""
    total = sum(weights[n] * factors[n] for n in signals)
    if total <= 0:
        return 0.0, 0.0
    target = sum(weights[n] * factors[n] * s for n, s in signals.items()) / total
    magnitude = sum(weights[n] * abs(s) for n, s in signals.items())
    agreement = abs(sum(weights[n] * s for n, s in signals.items()))
    confidence = agreement / magnitude if magnitude else 0.0
    return max(-1.0, min(1.0, target)), min(1.0, confidence)


@dataclass(frozen=True)
class Vote:
    """One strategy's view of one symbol: a weight in [-1, 1] and a confidence in [0, 1]."""

    weight: float
    confidence: float


@dataclass(frozen=True)
class Composed:
    """The composer's answer for one symbol before the book-level scaling."""

    weight: float
    confidence: float
    contributions: dict[str, float]
    dominant: str
    factors: dict[str, float]


class Composer:
    """Regime-aware, account-aware and limit-aware weighting of strategy votes.

    Args:
        strategies: The loaded strategies by name (their declared regimes are read).
        risk: The risk limits the book must fit in.
        off_regime_factor: Weight multiplier of a strategy outside its regimes, in [0, 1].
        drawdown_floor: Target multiplier at the drawdown (or daily loss) limit, in [0, 1].
    """

    def __init__(
        self,
        strategies: Mapping[str, Strategy],
        risk: RiskConfig,
        *,
        off_regime_factor: float = 0.25,
        drawdown_floor: float = 0.25,
    ) -> None:
        if not 0.0 <= off_regime_factor <= 1.0 or not 0.0 <= drawdown_floor <= 1.0:
            raise ValueError("off_regime_factor and drawdown_floor must lie in [0, 1]")
        self.strategies = dict(strategies)
        self.risk = risk
        self.off_regime_factor = off_regime_factor
        self.drawdown_floor = drawdown_floor

    def factors(self, regime: str | None) -> dict[str, float]:
        """Regime factor per strategy; 0 for a strategy that cannot speak."""
        out = {}
        for name, strategy in self.strategies.items():
            if strategy.unavailable:
                out[name] = 0.0
            elif regime in (None, WARMING_UP, "") or regime in strategy.regimes:
                out[name] = 1.0
            else:
                out[name] = self.off_regime_factor
        return out

    def compose(
        self, votes: Mapping[str, Vote], weights: Mapping[str, float], regime: str | None
    ) -> Composed:
        """Weighted target, confidence, contributions and dominant strategy of one symbol."""
        factors = self.factors(regime)
        effective = {n: max(weights.get(n, 0.0), 0.0) * factors[n] for n in votes}
        total = sum(effective.values())
        if total <= 0:
            return Composed(0.0, 0.0, {n: 0.0 for n in votes}, "", factors)
        contributions = {n: effective[n] * v.weight / total for n, v in votes.items()}
        target = max(-1.0, min(1.0, sum(contributions.values())))
        magnitude = sum(effective[n] * abs(v.weight) for n, v in votes.items())
        net = abs(sum(effective[n] * v.weight for n, v in votes.items()))
        agreement = net / magnitude if magnitude > 0 else 0.0
        mean_confidence = sum(effective[n] * v.confidence for n, v in votes.items()) / total
        confidence = min(1.0, max(0.0, agreement * mean_confidence))
        dominant = _dominant(contributions, target)
        return Composed(target, confidence, contributions, dominant, factors)

    def account_scale(self, account: AccountState) -> float:
        """Target multiplier from the drawdown and the day's loss, in [drawdown_floor, 1]."""
        worst = max(
            _used(account.drawdown, self.risk.max_drawdown),
            _used(account.daily_loss, self.risk.daily_loss_limit),
        )
        return 1.0 - (1.0 - self.drawdown_floor) * worst

    def fit_book(self, targets: Mapping[str, float]) -> tuple[dict[str, float], str]:
        """Drop shorts if disallowed and scale the book into the gross and net limits.

        Returns:
            The fitted targets and, when they were scaled, the reason ("" otherwise).
        """
        fitted = {
            s: (w if self.risk.allow_short else max(w, 0.0)) for s, w in targets.items()
        }
        size = self.risk.max_position_fraction
        gross = sum(abs(w) for w in fitted.values()) * size
        net = abs(sum(fitted.values())) * size
        scale, reason = 1.0, ""
        if gross > self.risk.max_gross_exposure:
            scale, reason = self.risk.max_gross_exposure / gross, "gross exposure budget"
        if net * scale > self.risk.max_net_exposure:
            scale, reason = self.risk.max_net_exposure / net, "net exposure budget"
        if scale < 1.0:
            fitted = {s: w * scale for s, w in fitted.items()}
        return fitted, reason


def _used(value: float, limit: float) -> float:
    """Share of a limit already used, in [0, 1]; a zero limit counts as fully used."""
    if limit <= 0:
        return 1.0
    return min(max(value / limit, 0.0), 1.0)


def _dominant(contributions: Mapping[str, float], target: float) -> str:
    """The largest contributor in the target's direction ("" when nobody moved it)."""
    if target == 0.0 or math.isnan(target):
        return ""
    direction = math.copysign(1.0, target)
    name, value = max(contributions.items(), key=lambda kv: kv[1] * direction)
    return name if value * direction > 0 else ""


def target_position(
    symbol: str,
    composed: Composed,
    weight: float,
    *,
    regime: str | None,
    owner: str,
    note: str = "",
) -> TargetPosition:
    """The message for one symbol: weight after account and book scaling, with a rationale."""
    dominant = composed.dominant or owner
    parts = [f"regime {regime or 'unknown'}"]
    if dominant:
        parts.append(f"led by {dominant} ({composed.contributions.get(dominant, 0.0):+.2f})")
    if note:
        parts.append(note)
    return TargetPosition(
        symbol=symbol,
        weight=max(-1.0, min(1.0, weight)),
        confidence=composed.confidence,
        contributions=composed.contributions,
        dominant=dominant,
        rationale="; ".join(parts),
    )
