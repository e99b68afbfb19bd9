"""Pools of Ray actors: the fault matrix on real members, a shared limiter actor, a killed member.

Members are started exactly as ``actors/factory.py`` starts them for a run; the adapters agent runs
in the test process with a :class:`RayPool`, as it does inside its own actor.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.adapters.agent import LOST_MEMBER_REASON
from actors.adapters.limiter import limiter_id
from actors.adapters.member import member_id
from actors.adapters.pool import RayPool
from actors.factory import create_broker_member, create_limiter
from cycle.config import FluxtradeConfig
from tests.actors.adapters.desk import (
    Desk,
    FakeClock,
    assert_no_order_lost_or_doubled,
    desk_config,
    max_in_window,
)
from tests.actors.adapters.test_fault_matrix import (
    PATIENT,
    WINDOW,
    errors_at_primary,
    primary_calls,
)

pytestmark = pytest.mark.ray

PATIENT_CALLS = {"call_timeout_s": 5.0}
"""Two cores shared with a Ray session: a member may answer late without being at fault."""

StartPool = Callable[[FluxtradeConfig], RayPool]


@pytest.fixture
def start_pool(ray_session: Any) -> Iterator[StartPool]:
    """Starts a config's members and limiters as the factory does (holding their handles, as a
    run does); kills them, and any replacement found by name, afterwards."""
    configs: list[FluxtradeConfig] = []
    handles: list[Any] = []

    def start(config: FluxtradeConfig) -> RayPool:
        members = []
        for broker in config.brokers:
            if broker.rate_limit is not None:
                handles.append(create_limiter(config, broker))
            members += [create_broker_member(config, broker, i) for i in range(broker.pool_size)]
        ray_session.get([m.incarnation.remote() for m in members])
        handles.extend(members)
        configs.append(config)
        return RayPool(config)

    yield start
    for config in configs:
        names = [limiter_id(b.name) for b in config.brokers]
        names += [member_id(b.name, i) for b in config.brokers for i in range(b.pool_size)]
        for name in names:
            try:
                ray_session.kill(ray_session.get_actor(name, namespace=config.ray.namespace))
            except ValueError:
                continue


def test_fault_matrix_on_ray_keeps_orders_single_paced_and_routed_around(
    tmp_path: Path, start_pool: StartPool
) -> None:
    """A pool of three actors behind one limiter actor; its venue goes down for a while, and
    times out a fifth of the time, executing what it timed out on."""
    primary = {
        "pool_size": 3,
        "rate_limit": {"requests": 10, "window_s": 0.1},
        "failures": {
            "rate_limit": 10,
            "rate_limit_window_s": 0.1,
            "downtime": [WINDOW],
            "timeout_rate": 0.2,
            "hidden_fill_rate": 1.0,
        },
    }
    config = desk_config(tmp_path, primary, routing={**PATIENT, **PATIENT_CALLS})
    desk = Desk(config, start_pool(config), FakeClock())

    desk.run(16)
    desk.drain()

    calls = primary_calls(desk)
    window = range(WINDOW["start"], WINDOW["end"])
    timed_out = {
        r.client_order_id
        for r in desk.journal("primary")
        if r.operation == "submit" and r.error_type == "BrokerTimeoutError"
    }
    assert len(desk.created) == 32
    assert_no_order_lost_or_doubled(desk, desk.venues())
    assert len(calls) > 40 and max_in_window(calls, 0.1) <= 10
    assert errors_at_primary(desk, "RateLimitError") == 0
    assert all(desk.where(c) == "backup" for c, at in desk.sent_at.items() if at in window)
    assert any(desk.where(c) == "primary" for c in timed_out)


def test_killed_member_mid_flight_loses_no_order_and_the_pool_returns_to_its_size(
    tmp_path: Path, start_pool: StartPool, ray_session: Any
) -> None:
    slow = {"latency_ms": 150.0, "latency_jitter_ms": 0.0, "realtime_latency": True}
    config = desk_config(tmp_path, {**slow, "max_in_flight": 4}, backup=slow, routing=PATIENT_CALLS)
    namespace = config.ray.namespace
    desk = Desk(config, start_pool(config), FakeClock())
    victim = member_id("primary", 0)
    before = ray_session.get(
        ray_session.get_actor(victim, namespace=namespace).incarnation.remote()
    )
    desk.step(0)

    def kill_once_orders_are_in_flight() -> None:
        deadline = time.monotonic() + 10
        while not any(m == victim for m in list(desk.agent.owner.values())):
            if time.monotonic() > deadline:
                return
            time.sleep(0.005)
        time.sleep(0.03)
        ray_session.kill(ray_session.get_actor(victim, namespace=namespace), no_restart=True)

    killer = threading.Thread(target=kill_once_orders_are_in_flight)
    killer.start()
    desk.step(8)
    killer.join()
    desk.run(2, orders=0)
    desk.drain()

    after = {
        name: ray_session.get(
            ray_session.get_actor(name, namespace=namespace).incarnation.remote(), timeout=10
        )
        for name in (member_id("primary", 0), member_id("primary", 1))
    }
    journal = desk.journal("primary")
    died = [r for r in journal if r.error_type == "BrokerTimeoutError" and "died" in r.message]
    assert died, "the kill did not hit an order in flight"
    assert after[victim] != before
    assert len(after) == config.brokers[0].pool_size
    assert_no_order_lost_or_doubled(desk, desk.venues())
    outcomes = {o.status.value for o in desk.terminal.values()}
    lost = [o for o in desk.terminal.values() if o.status.value == "cancelled"]
    assert outcomes <= {"filled", "cancelled"}
    assert all(o.reason == LOST_MEMBER_REASON for o in lost)
    assert sum(o.status.value == "filled" for o in desk.terminal.values()) >= 8 - len(lost)
