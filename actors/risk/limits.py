"""Pre-trade risk: turns target weights into orders that fit every limit, or says why not.

Each symbol's wish becomes ``target quantity = weight * max_position_fraction * equity * scale /
price`` (``scale`` shrinks with flux); the order is the difference from what is held and already
on order. The order then meets the limits in a fixed order, and every clip or refusal is written
down as a :class:`RiskDecision`:

1. halt (coordinator command or circuit breaker): nothing goes out;
2. drawdown kill switch (latched): only orders that reduce a position, if flattening is on;
3. daily loss limit: only orders that reduce a position;
4. no shorting unless allowed; 5. per-symbol position limit; 6. order notional limit;
7. gross exposure limit; 8. cash (spot: no borrowing, with a buffer for the next bar's move);
9. minimum order notional, and a dead band against churn.

Orders that reduce exposure are planned first, so they free room for the rest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
)

CASH_PRICE_BUFFER = 0.02
FLUX_SIZE_REDUCTION = 0.5


@dataclass
class _Plan:
    symbol: str
    price: float
    held: float
    pending: float
    target: float
    strategy: str

    @property
    def current(self) -> float:
        return self.held + self.pending

    @property
    def reduces(self) -> bool:
        return abs(self.target) < abs(self.current) and self.target * self.current >= 0


def pending_quantities(open_orders: tuple[Order, ...]) -> dict[str, float]:
    """Signed quantity still on order per symbol; counted so a new order never doubles it."""
    pending: dict[str, float] = {}
    for order in open_orders:
        signed = order.request.side.sign * order.remaining
        pending[order.request.symbol] = pending.get(order.request.symbol, 0.0) + signed
    return pending


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
) -> RiskOutcome:
    """The orders that may go out this cycle, and a decision for everything clipped or refused."""
    decisions: list[RiskDecision] = []
    intents: list[OrderIntent] = []
    equity = account.equity
    kill_switch = kill_switch or account.drawdown >= risk.max_drawdown
    targets = dict(decision.targets) if decision else {}
    if halted:
        decisions.extend(
            RiskDecision(symbol=s, action="halted", reason=f"halted: {halt_reason}") for s in targets
        )
        return RiskOutcome(cycle=cycle, intents=(), decisions=tuple(decisions), kill_switch=kill_switch)
    if equity <= 0:
        decisions.extend(
            RiskDecision(symbol=s, action="rejected", reason="equity is not positive") for s in targets
        )
        return RiskOutcome(cycle=cycle, intents=(), decisions=tuple(decisions), kill_switch=True)

    allowance = risk.max_position_fraction * equity
    scale = 1.0 - FLUX_SIZE_REDUCTION * min(max(flux, 0.0), 1.0)
    pending = pending_quantities(open_orders)
    symbols = set(targets) | ({s for s in account.positions} if kill_switch else set())
    plans = []
    for symbol in sorted(symbols):
        price = prices.get(symbol)
        if price is None or not math.isfinite(price) or price <= 0:
            continue
        wish = targets.get(symbol)
        weight = 0.0 if wish is None else wish.weight
        strategy = "blend" if wish is None else max(wish.contributions, key=lambda k: abs(wish.contributions[k]), default="blend")
        plans.append(
            _Plan(
                symbol=symbol,
                price=price,
                held=account.quantity(symbol),
                pending=pending.get(symbol, 0.0),
                target=weight * allowance * scale / price,
                strategy=strategy,
            )
        )

    gross = sum(abs(p.current) * p.price for p in plans) + sum(
        abs(pos.quantity) * pos.mark for s, pos in account.positions.items() if s not in {p.symbol for p in plans}
    )
    cash = account.cash - sum(max(p.pending, 0.0) * p.price for p in plans)
    for plan in sorted(plans, key=lambda p: not p.reduces):
        intent, notes = _check(plan, risk, execution, equity, allowance, gross, cash, kill_switch, account.daily_loss)
        decisions.extend(notes)
        if intent is None:
            continue
        change = intent.side.sign * intent.quantity
        gross += (abs(plan.current + change) - abs(plan.current)) * plan.price
        if intent.side is Side.BUY:
            cash -= intent.quantity * plan.price * (1 + CASH_PRICE_BUFFER)
        intents.append(intent)
    return RiskOutcome(cycle=cycle, intents=tuple(intents), decisions=tuple(decisions), kill_switch=kill_switch)


def _check(
    plan: _Plan,
    risk: RiskConfig,
    execution: ExecutionConfig,
    equity: float,
    allowance: float,
    gross: float,
    cash: float,
    kill_switch: bool,
    daily_loss: float,
) -> tuple[OrderIntent | None, list[RiskDecision]]:
    notes: list[RiskDecision] = []
    symbol, price = plan.symbol, plan.price

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

    if kill_switch:
        if not risk.kill_switch_flatten:
            return refuse("kill switch: drawdown limit crossed, trading halted")
        if plan.target != 0.0:
            resize("kill switch: drawdown limit crossed, flattening", 0.0)
    elif daily_loss >= risk.daily_loss_limit and not plan.reduces:
        return refuse("daily loss limit reached: only reducing orders", daily_loss=daily_loss)
    if not risk.allow_short and plan.target < 0:
        resize("shorting not allowed", 0.0)
    limit_quantity = risk.max_position_fraction * equity / price
    if abs(plan.target) > limit_quantity * (1 + 1e-12):
        resize("position limit", math.copysign(limit_quantity, plan.target))

    delta = plan.target - plan.current
    notional = abs(delta) * price
    reducing = abs(plan.current + delta) < abs(plan.current) and plan.target * plan.current >= 0
    if plan.target != 0.0 and notional < risk.rebalance_threshold * allowance:
        return None, notes
    max_order = risk.max_order_notional_fraction * equity
    if notional > max_order:
        delta = math.copysign(max_order / price, delta)
        notes.append(RiskDecision(symbol=symbol, action="resized", reason="order notional limit",
                                  detail={"wanted": notional, "allowed": max_order}))
    if not reducing:
        room = risk.max_gross_exposure * equity - gross
        growth = (abs(plan.current + delta) - abs(plan.current)) * price
        if growth > room:
            if room <= 0:
                return refuse("gross exposure limit", gross=gross, limit=risk.max_gross_exposure * equity)
            delta = math.copysign(abs(delta) * room / growth, delta)
            notes.append(RiskDecision(symbol=symbol, action="resized", reason="gross exposure limit",
                                      detail={"wanted": growth, "allowed": room}))
    if delta > 0:
        affordable = max(cash, 0.0) / (price * (1 + CASH_PRICE_BUFFER))
        if delta > affordable:
            if affordable <= 0:
                return refuse("insufficient cash", cash=cash)
            notes.append(RiskDecision(symbol=symbol, action="resized", reason="insufficient cash",
                                      detail={"wanted": delta, "allowed": affordable}))
            delta = affordable
    if abs(delta) * price < risk.min_order_notional or delta == 0.0:
        if abs(delta) > 0:
            return refuse("below minimum order notional", notional=abs(delta) * price)
        return None, notes
    side = Side.BUY if delta > 0 else Side.SELL
    limit_price = None
    order_type = OrderType(execution.order_type)
    if order_type is OrderType.LIMIT:
        offset = execution.limit_offset_bps / 1e4
        limit_price = price * (1 - offset) if side is Side.BUY else price * (1 + offset)
    reason = "flatten on kill switch" if kill_switch else f"rebalance toward {plan.target:.6g}"
    return (
        OrderIntent(
            symbol=symbol, side=side, quantity=abs(delta), order_type=order_type,
            limit_price=limit_price, strategy=plan.strategy, reason=reason,
        ),
        notes,
    )
