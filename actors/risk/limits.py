"""Pre-trade risk: turns target weights into orders that fit every limit, or says why not.

**Sizing.** A full-conviction position is a fraction of equity: the smallest of
``max_position_fraction`` and, when the agent knows the market (a :class:`RiskView`), the sizers
of ``risk.sizing`` (all in :mod:`actors.risk.sizing`):

* *ATR stop*: the size that loses ``risk_per_trade`` of equity at a stop ``stop_atr_multiple``
  ATRs away;
* *volatility target*: the size whose annualised volatility is ``target_volatility``;
* *capped Kelly*: half the Kelly fraction of the signal's paper record, capped at ``kelly_cap``;

each multiplied by the flux scale ``1 - (1 - flux_floor) * flux``, then by the entropy scale of
the symbol's recent returns. ``target quantity = weight * fraction * equity / price``.

**Limits.** The book's historical CVaR at 99% (per bar, at target weights) above
``max_cvar_99`` scales every target down by the same factor. Each symbol's order then meets the
checks in a fixed order, and every clip or refusal is written down as a :class:`RiskDecision`:

1. halt (coordinator command or circuit breaker): nothing goes out;
2. drawdown kill switch (latched): only orders that reduce a position, if flattening is on;
3. daily loss limit: only orders that reduce a position;
4. stop loss and take profit, ``stop_loss_atr`` / ``take_profit_atr`` ATRs from the average
   cost: the position is closed, and the symbol may not be re-entered for
   ``stop_cooldown_bars`` bars;
5. no shorting unless allowed; 6. per-symbol position limit; 7. order notional limit;
8. gross exposure, 9. net exposure and 10. correlation-weighted exposure
   ``sqrt(x' R x)`` (unknown correlations count as 1) for orders that add exposure;
11. cash (spot: no borrowing, with a buffer for the next bar's move);
12. minimum order notional, and a dead band against churn. A leftover position too small to
    close ("dust", below the minimum notional) is left alone rather than refused every cycle.

Orders that reduce exposure are planned first, so they free room for the rest. Sizing notes
(which sizer bound, entropy scaling, CVaR scaling) reach the ledger only with an order they
shaped, so the summary counts the resizes that mattered.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from actors.risk.sizing import fixed_fraction_size, flux_scale, volatility_target_fraction
from actors.risk.view import RiskView, book_risk
from cycle.config import ExecutionConfig, RiskConfig
from cycle.messages import (
    AccountState,
    Order,
    OrderIntent,
    OrderType,
    RiskDecision,
    RiskOutcome,
    Side,
    StrategyDecision,
    TargetPosition,
)

CASH_PRICE_BUFFER = 0.02
TOLERANCE = 1e-12
STOP_REASONS = ("stop loss", "take profit")

Clip = Callable[[str, float, float], None]


@dataclass
class _Plan:
    symbol: str
    price: float
    held: float
    pending: float
    target: float
    strategy: str
    notes: list[RiskDecision] = field(default_factory=list)
    exit_reason: str = ""

    @property
    def current(self) -> float:
        return self.held + self.pending

    @property
    def reduces(self) -> bool:
        return abs(self.target) < abs(self.current) and self.target * self.current >= 0


@dataclass
class _Book:
    """What the orders planned so far have used of each book-level limit."""

    equity: float
    gross: float
    net: float
    cash: float
    exposures: dict[str, float]

    def apply(self, plan: _Plan, change: float) -> None:
        before = plan.current * plan.price
        after = (plan.current + change) * plan.price
        self.gross += abs(after) - abs(before)
        self.net += after - before
        self.exposures[plan.symbol] = after / self.equity
        if change > 0:
            self.cash -= change * plan.price * (1 + CASH_PRICE_BUFFER)


def pending_quantities(open_orders: tuple[Order, ...]) -> dict[str, float]:
    """Signed quantity still on order per symbol; counted so a new order never doubles it."""
    pending: dict[str, float] = {}
    for order in open_orders:
        signed = order.request.side.sign * order.remaining
        pending[order.request.symbol] = pending.get(order.request.symbol, 0.0) + signed
    return pending


def full_size(
    symbol: str, price: float, equity: float, flux: float, risk: RiskConfig, view: RiskView | None
) -> tuple[float, str, float]:
    """Fraction of equity a full-conviction position may take, the sizer that bound it, and
    the entropy scale applied on top.

    Returns:
        ``(fraction, sizer, entropy_scale)`` where ``sizer`` is ``"position limit"`` when no
        sizer was tighter than the plain limit.
    """
    scale = flux_scale(min(max(flux, 0.0), 1.0), flux_floor=risk.flux_floor)
    candidates = {"position limit": risk.max_position_fraction * scale}
    info = view.symbols.get(symbol) if view is not None else None
    if info is None or risk.max_position_fraction <= 0:
        return candidates["position limit"], "position limit", 1.0
    flux = min(max(flux, 0.0), 1.0)
    if "atr_stop" in risk.sizing and math.isfinite(info.atr) and info.atr > 0:
        quantity = fixed_fraction_size(
            equity=equity, price=price, atr=info.atr, flux=flux,
            risk_fraction=risk.risk_per_trade, atr_multiple=risk.stop_atr_multiple,
            flux_floor=risk.flux_floor,
        )
        candidates["ATR stop"] = quantity * price / equity
    if "vol_target" in risk.sizing and math.isfinite(info.volatility) and info.volatility > 0:
        assert view is not None
        candidates["volatility target"] = volatility_target_fraction(
            realized_vol=info.volatility, target_vol=risk.target_volatility,
            bars_per_year=view.bars_per_year, flux=flux, flux_floor=risk.flux_floor,
        )
    if "kelly" in risk.sizing and info.kelly is not None:
        candidates["Kelly"] = info.kelly * scale
    sizer = min(candidates, key=lambda k: candidates[k])
    return candidates[sizer] * info.entropy_scale, sizer, info.entropy_scale


def plan_orders(
    *,
    cycle: int,
    decision: StrategyDecision | None,
    account: AccountState,
    prices: dict[str, float],
    open_orders: tuple[Order, ...],
    risk: RiskConfig,
    execution: ExecutionConfig,
    flux: float,
    kill_switch: bool,
    halted: bool,
    halt_reason: str = "",
    view: RiskView | None = None,
) -> RiskOutcome:
    """The orders that may go out this cycle, and a decision for everything clipped or refused.

    Args:
        view: Market risk inputs (ATR, volatility, Kelly, entropy, correlations, returns); None
            sizes by the position limit alone and skips the checks that need market data.
    """
    decisions: list[RiskDecision] = []
    intents: list[OrderIntent] = []
    equity = account.equity
    kill_switch = kill_switch or account.drawdown >= risk.max_drawdown
    targets = dict(decision.targets) if decision else {}
    if halted:
        reason = f"halted: {halt_reason}"
        decisions.extend(RiskDecision(symbol=s, action="halted", reason=reason) for s in targets)
        return RiskOutcome(
            cycle=cycle, intents=(), decisions=tuple(decisions), kill_switch=kill_switch
        )
    if equity <= 0:
        decisions.extend(
            RiskDecision(symbol=s, action="rejected", reason="equity is not positive")
            for s in targets
        )
        return RiskOutcome(cycle=cycle, intents=(), decisions=tuple(decisions), kill_switch=True)

    pending = pending_quantities(open_orders)
    plans = _plans(targets, account, prices, pending, risk, flux, kill_switch, view)
    planned = {p.symbol for p in plans}
    others = {s: pos for s, pos in account.positions.items() if s not in planned}
    book = _Book(
        equity=equity,
        gross=sum(abs(p.current) * p.price for p in plans)
        + sum(abs(pos.quantity) * pos.mark for pos in others.values()),
        net=sum(p.current * p.price for p in plans)
        + sum(pos.quantity * pos.mark for pos in others.values()),
        cash=account.cash - sum(max(p.pending, 0.0) * p.price for p in plans),
        exposures={p.symbol: p.current * p.price / equity for p in plans}
        | {s: pos.quantity * pos.mark / equity for s, pos in others.items()},
    )
    _limit_cvar(plans, others, equity, risk, view)
    for plan in sorted(plans, key=lambda p: not p.reduces):
        intent, notes = _check(plan, risk, execution, book, kill_switch, account.daily_loss, view)
        if intent is None:
            decisions.extend(notes)
            continue
        decisions.extend(plan.notes + notes)
        book.apply(plan, intent.side.sign * intent.quantity)
        intents.append(intent)
    return RiskOutcome(
        cycle=cycle, intents=tuple(intents), decisions=tuple(decisions), kill_switch=kill_switch
    )


def _plans(
    targets: dict[str, TargetPosition],
    account: AccountState,
    prices: dict[str, float],
    pending: dict[str, float],
    risk: RiskConfig,
    flux: float,
    kill_switch: bool,
    view: RiskView | None,
) -> list[_Plan]:
    """One plan per symbol with a target, a position to flatten, or a stop or target hit."""
    equity = account.equity
    symbols = set(targets) | set(account.positions if kill_switch or view else ())
    plans = []
    for symbol in sorted(symbols):
        price = prices.get(symbol)
        if price is None or not math.isfinite(price) or price <= 0:
            continue
        wish = targets.get(symbol)
        exit_reason, exit_detail = _stop_or_target(symbol, price, account, risk, view)
        if wish is None and not (kill_switch or exit_reason):
            continue
        weight = 0.0 if wish is None else wish.weight
        fraction, sizer, entropy = full_size(symbol, price, equity, flux, risk, view)
        plan = _Plan(
            symbol=symbol, price=price, held=account.quantity(symbol),
            pending=pending.get(symbol, 0.0), target=weight * fraction * equity / price,
            strategy=_strategy_of(wish), exit_reason=exit_reason,
        )
        if weight and sizer != "position limit":
            plan.notes.append(_sizing_note(symbol, sizer, weight, risk, flux, fraction))
        if weight and entropy < 1.0:
            plan.notes.append(RiskDecision(
                symbol=symbol, action="resized", reason="entropy scaling",
                detail={"scale": entropy},
            ))
        if exit_reason:
            plan.notes.append(RiskDecision(
                symbol=symbol, action="resized", reason=exit_reason, detail=exit_detail
            ))
            plan.target = 0.0
        plans.append(plan)
    return plans


def _strategy_of(wish: TargetPosition | None) -> str:
    """The strategy an order is attributed to: the target's dominant one, else the largest
    contribution; "risk" for an order risk makes on its own (a stop, the kill switch)."""
    if wish is None:
        return "risk"
    if wish.dominant:
        return wish.dominant
    contributions = wish.contributions
    return max(contributions, key=lambda k: abs(contributions[k]), default="blend")


def _sizing_note(
    symbol: str, sizer: str, weight: float, risk: RiskConfig, flux: float, fraction: float
) -> RiskDecision:
    """Why a position is smaller than the plain limit allows: which sizer bound it."""
    plain = risk.max_position_fraction * flux_scale(
        min(max(flux, 0.0), 1.0), flux_floor=risk.flux_floor
    )
    return RiskDecision(
        symbol=symbol, action="resized", reason=f"sizing: {sizer}",
        detail={"wanted_fraction": weight * plain, "allowed_fraction": weight * fraction},
    )


def _stop_or_target(
    symbol: str, price: float, account: AccountState, risk: RiskConfig, view: RiskView | None
) -> tuple[str, dict[str, float | str]]:
    """"stop loss" or "take profit" when the price has crossed one, with the levels."""
    position = account.positions.get(symbol)
    info = view.symbols.get(symbol) if view is not None else None
    if position is None or position.quantity == 0 or info is None:
        return "", {}
    if not (math.isfinite(info.atr) and info.atr > 0 and position.average_cost > 0):
        return "", {}
    side = math.copysign(1.0, position.quantity)
    move = side * (price - position.average_cost) / info.atr
    detail: dict[str, float | str] = {
        "entry": position.average_cost, "price": price, "atr": info.atr, "atr_move": move,
    }
    if risk.stop_loss_atr > 0 and move <= -risk.stop_loss_atr:
        return STOP_REASONS[0], detail
    if risk.take_profit_atr > 0 and move >= risk.take_profit_atr:
        return STOP_REASONS[1], detail
    return "", {}


def _limit_cvar(
    plans: list[_Plan],
    others: dict[str, Any],
    equity: float,
    risk: RiskConfig,
    view: RiskView | None,
) -> None:
    """Scale every target so the target book's historical CVaR 99% stays within the limit.

    Historical CVaR of a linear book is positively homogeneous: halving every weight halves it,
    so one factor brings the book exactly to the limit. Positions without a plan stay as held.
    """
    if risk.max_cvar_99 is None or view is None:
        return
    weights = {p.symbol: p.target * p.price / equity for p in plans}
    weights |= {s: pos.quantity * pos.mark / equity for s, pos in others.items()}
    cvar = book_risk(weights, view).get("cvar_hist_99", 0.0)
    if cvar <= risk.max_cvar_99:
        return
    scale = risk.max_cvar_99 / cvar
    for plan in plans:
        if plan.target:
            plan.target *= scale
            plan.notes.append(RiskDecision(
                symbol=plan.symbol, action="resized", reason="CVaR 99% limit",
                detail={"cvar_99": cvar, "limit": risk.max_cvar_99, "scale": scale},
            ))


def _check(
    plan: _Plan,
    risk: RiskConfig,
    execution: ExecutionConfig,
    book: _Book,
    kill_switch: bool,
    daily_loss: float,
    view: RiskView | None,
) -> tuple[OrderIntent | None, list[RiskDecision]]:
    notes: list[RiskDecision] = []
    symbol, price, equity = plan.symbol, plan.price, book.equity
    allowance = risk.max_position_fraction * equity

    def refuse(reason: str, **detail: float | str) -> tuple[None, list[RiskDecision]]:
        notes.append(RiskDecision(symbol=symbol, action="rejected", reason=reason, detail=detail))
        return None, notes

    def resize(reason: str, new_target: float) -> None:
        notes.append(
            RiskDecision(
                symbol=symbol, action="resized", reason=reason,
                detail={"wanted": plan.target, "allowed": new_target},
            )
        )
        plan.target = new_target

    def clip(reason: str, wanted: float, allowed: float) -> None:
        notes.append(RiskDecision(symbol=symbol, action="resized", reason=reason,
                                  detail={"wanted": wanted, "allowed": allowed}))

    if kill_switch:
        if not risk.kill_switch_flatten:
            return refuse("kill switch: drawdown limit crossed, trading halted")
        if plan.target != 0.0:
            resize("kill switch: drawdown limit crossed, flattening", 0.0)
    elif daily_loss >= risk.daily_loss_limit and not plan.reduces:
        return refuse("daily loss limit reached: only reducing orders", daily_loss=daily_loss)
    info = view.symbols.get(symbol) if view is not None else None
    if info is not None and info.cooldown > 0 and not plan.reduces:
        return refuse("stop cooldown: no re-entry yet", bars_left=float(info.cooldown))
    if not risk.allow_short and plan.target < 0:
        resize("shorting not allowed", 0.0)
    limit_quantity = risk.max_position_fraction * equity / price
    if abs(plan.target) > limit_quantity * (1 + TOLERANCE):
        resize("position limit", math.copysign(limit_quantity, plan.target))

    delta = plan.target - plan.current
    notional = abs(delta) * price
    reducing = abs(plan.current + delta) < abs(plan.current) and plan.target * plan.current >= 0
    if plan.target != 0.0 and notional < risk.rebalance_threshold * allowance:
        return None, notes
    max_order = risk.max_order_notional_fraction * equity
    if notional > max_order:
        delta = math.copysign(max_order / price, delta)
        clip("order notional limit", notional, max_order)
    if not reducing:
        room = risk.max_gross_exposure * equity - book.gross
        growth = (abs(plan.current + delta) - abs(plan.current)) * price
        if growth > room:
            if room <= 0:
                return refuse("gross exposure limit", gross=book.gross,
                              limit=risk.max_gross_exposure * equity)
            delta = math.copysign(abs(delta) * room / growth, delta)
            clip("gross exposure limit", growth, room)
        delta, problem = _net_room(delta, price, book, risk, clip)
        if problem:
            return refuse(problem, net=book.net, limit=risk.max_net_exposure * equity)
        if view is not None:
            delta, problem = _correlated_room(delta, plan, book, risk, view, clip)
            if problem:
                return refuse(problem)
    if delta > 0:
        affordable = max(book.cash, 0.0) / (price * (1 + CASH_PRICE_BUFFER))
        if delta > affordable:
            if affordable <= 0:
                return refuse("insufficient cash", cash=book.cash)
            clip("insufficient cash", delta, affordable)
            delta = affordable
    if abs(delta) * price < risk.min_order_notional or delta == 0.0:
        if plan.target == 0.0 and abs(plan.current) * price < risk.min_order_notional:
            return None, notes
        if abs(delta) > 0:
            return refuse("below minimum order notional", notional=abs(delta) * price)
        return None, notes
    side = Side.BUY if delta > 0 else Side.SELL
    limit_price = None
    order_type = OrderType(execution.order_type)
    if order_type is OrderType.LIMIT:
        offset = execution.limit_offset_bps / 1e4
        limit_price = price * (1 - offset) if side is Side.BUY else price * (1 + offset)
    if kill_switch:
        reason = "flatten on kill switch"
    elif plan.exit_reason:
        reason = f"{plan.exit_reason}: close {plan.current:.6g}"
    else:
        reason = f"rebalance toward {plan.target:.6g}"
    return (
        OrderIntent(
            symbol=symbol, side=side, quantity=abs(delta), order_type=order_type,
            limit_price=limit_price, strategy=plan.strategy, reason=reason,
        ),
        notes,
    )


def _net_room(
    delta: float, price: float, book: _Book, risk: RiskConfig, clip: Clip
) -> tuple[float, str]:
    """Shrink an order so the net exposure ends within its limit, unless it moves toward zero."""
    change = delta * price
    limit = risk.max_net_exposure * book.equity
    after = book.net + change
    if abs(after) <= limit * (1 + TOLERANCE) or abs(after) <= abs(book.net):
        return delta, ""
    room = limit - math.copysign(1.0, change) * book.net
    if room <= 0:
        return 0.0, "net exposure limit"
    clip("net exposure limit", abs(change), room)
    return math.copysign(room / price, delta), ""


def _correlated_room(
    delta: float, plan: _Plan, book: _Book, risk: RiskConfig, view: RiskView, clip: Clip
) -> tuple[float, str]:
    """Shrink an order so ``sqrt(x' R x)`` of the book stays within its limit.

    With ``x`` the exposures (fractions of equity) and ``d`` the order's change of symbol ``k``,
    ``f(d) = x'Rx + 2 d (Rx)_k + d^2``; the largest ``|d|`` in the order's direction with
    ``f(d) <= L^2`` is ``-s b + sqrt(b^2 + L^2 - c)`` (``s`` the direction, ``b = (Rx)_k``,
    ``c = x'Rx``). A book already beyond the limit may only trade so ``f`` does not grow.
    """
    x = dict(book.exposures)
    k = plan.symbol
    x.setdefault(k, 0.0)
    d = delta * plan.price / book.equity
    b = sum(view.corr(k, j) * xj for j, xj in x.items())
    c = sum(x[i] * x[j] * view.corr(i, j) for i in x for j in x)
    limit = risk.max_correlated_exposure
    after = c + 2 * d * b + d * d
    if after <= max(limit * limit, c) * (1 + TOLERANCE) + TOLERANCE:
        return delta, ""
    s = math.copysign(1.0, d)
    if c >= limit * limit:
        allowed = max(-2 * s * b, 0.0)
    else:
        allowed = -s * b + math.sqrt(max(b * b + limit * limit - c, 0.0))
    allowed = min(allowed, abs(d))
    if allowed <= TOLERANCE:
        return 0.0, "correlated exposure limit"
    clip("correlated exposure limit", abs(d), allowed)
    return math.copysign(allowed * book.equity / plan.price, delta), ""
