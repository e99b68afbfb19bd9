from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from cycle.messages import (
    AgentMessage,
    IllegalTransitionError,
    MessageKind,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    new_client_order_id,
)

NOW = datetime(2018, 1, 10, tzinfo=UTC)


def request(**changes) -> OrderRequest:
    fields = dict(
        client_order_id=new_client_order_id(), symbol="ETH/BTC", side=Side.BUY,
        order_type=OrderType.MARKET, quantity=1.0, cycle=1, strategy="s", created_at=NOW,
    )
    fields.update(changes)
    return OrderRequest(**fields)


def test_order_walks_the_state_machine_to_a_terminal_state() -> None:
    order = Order(request=request(), updated_at=NOW)
    order = order.transition(OrderStatus.ACCEPTED)
    order = order.transition(OrderStatus.PARTIALLY_FILLED, filled_quantity=0.4)
    order = order.transition(OrderStatus.FILLED, filled_quantity=1.0)
    assert order.status.terminal
    with pytest.raises(IllegalTransitionError, match="filled -> cancelled"):
        order.transition(OrderStatus.CANCELLED)


def test_new_order_cannot_jump_to_filled() -> None:
    with pytest.raises(IllegalTransitionError):
        Order(request=request(), updated_at=NOW).transition(OrderStatus.FILLED)


def test_requests_are_validated_at_the_edge() -> None:
    with pytest.raises(ValidationError, match="quantity"):
        request(quantity=-1.0)
    with pytest.raises(ValidationError, match="limit_price: a limit order needs a limit price"):
        request(order_type=OrderType.LIMIT)
    with pytest.raises(ValidationError, match="extra"):
        request(leverage=3)


def test_messages_are_frozen_and_derived_not_mutated() -> None:
    order = Order(request=request(), updated_at=NOW)
    with pytest.raises(ValidationError):
        order.status = OrderStatus.ACCEPTED  # type: ignore[misc]
    accepted = order.transition(OrderStatus.ACCEPTED)
    assert order.status is OrderStatus.NEW and accepted.status is OrderStatus.ACCEPTED


def test_client_order_ids_are_unique() -> None:
    ids = {new_client_order_id() for _ in range(10_000)}
    assert len(ids) == 10_000


def test_reply_links_a_response_to_its_request() -> None:
    ask = AgentMessage(kind=MessageKind.REQUEST, topic="health", sender="coordinator")
    answer = ask.reply("risk", {"ok": 1})
    assert answer.kind is MessageKind.RESPONSE and answer.reply_to == ask.message_id and answer.ok
    failed = ask.reply("risk", error="boom")
    assert not failed.ok and failed.error == "boom"
