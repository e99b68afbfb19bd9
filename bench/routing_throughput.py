"""Routing throughput: orders per second through a pool of Ray broker actors, by pool size.

Each member is a paper venue that really waits ``--latency-ms`` per call and takes one order at a
time (``max_in_flight: 1``), so a pool of N members can at best place N orders per latency. The
adapters agent routes one batch of orders (one ``execute``, as a cycle does) through pools of 1,
2, 4 and 8 members. Beside it, in the same run, sequential routing: the same kind of orders sent
one after another to one member, each answer awaited before the next order is sent. The speed-up
is pool orders/s over sequential orders/s; efficiency is speed-up / pool size (1.0 is linear).

    python bench/routing_throughput.py [--orders-per-member 100] [--latency-ms 20] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import ray
from loguru import logger

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors.adapters.agent import AdaptersAgent  # noqa: E402
from actors.adapters.member import member_id  # noqa: E402
from actors.adapters.pool import RayPool  # noqa: E402
from actors.factory import create_broker_member  # noqa: E402
from cycle.config import PROJECT_ROOT, FluxtradeConfig, load_config  # noqa: E402
from cycle.messages import (  # noqa: E402
    ExecutionPlan,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    new_client_order_id,
    utc_now,
)

POOL_SIZES = (1, 2, 4, 8)


def pool_config(size: int, latency_ms: float, folder: Path) -> FluxtradeConfig:
    broker = {
        "name": "bench",
        "pool_size": size,
        "max_in_flight": 1,
        "latency_ms": latency_ms,
        "latency_jitter_ms": 0.0,
        "realtime_latency": True,
    }
    return load_config(
        PROJECT_ROOT / "configs" / "default.yaml",
        {
            "brokers": [broker],
            "routing": {"call_timeout_s": 60.0},
            "report": {"folder": str(folder / f"pool{size}")},
            "ledger": {"path": str(folder / "ledger.sqlite")},
            "ray": {"namespace": f"bench-{uuid.uuid4().hex[:8]}", "step_timeout_s": 600.0},
        },
    )


def new_orders(count: int) -> tuple[Order, ...]:
    now = utc_now()
    return tuple(
        Order(
            request=OrderRequest(
                client_order_id=new_client_order_id("bench"),
                symbol="ETH/BTC",
                side=Side.BUY,
                order_type=OrderType.MARKET,
                quantity=0.1,
                cycle=1,
                strategy="bench",
                created_at=now,
            ),
            updated_at=now,
        )
        for _ in range(count)
    )


def start_members(config: FluxtradeConfig) -> list[Any]:
    broker = config.brokers[0]
    members = [create_broker_member(config, broker, i) for i in range(broker.pool_size)]
    ray.get([m.incarnation.remote() for m in members])
    return members


def sequential(latency_ms: float, orders: int, repeats: int, folder: Path) -> float:
    """Orders/s sending one order at a time to one member, awaiting each answer."""
    config = pool_config(1, latency_ms, folder)
    (member,) = start_members(config)
    rates = []
    try:
        for _ in range(repeats + 1):
            batch = new_orders(orders)
            started = time.perf_counter()
            for order in batch:
                answer = ray.get(member.call.remote("submit", (order.request,), ()))
                assert answer.error is None, answer.error
            rates.append(orders / (time.perf_counter() - started))
    finally:
        ray.kill(member)
    return statistics.median(rates[1:])


def through_pool(size: int, latency_ms: float, orders: int, repeats: int, folder: Path) -> float:
    """Orders/s of one batch routed by the adapters agent through a pool of ``size`` members."""
    config = pool_config(size, latency_ms, folder)
    members = start_members(config)
    agent = AdaptersAgent(config, pool=RayPool(config))
    agent.initialize()
    rates = []
    try:
        for _ in range(repeats + 1):
            plan = ExecutionPlan(cycle=1, new_orders=new_orders(orders), cancels=())
            started = time.perf_counter()
            report = agent.execute(plan)
            rates.append(orders / (time.perf_counter() - started))
            accepted = sum(o.status is OrderStatus.ACCEPTED for o in report.orders)
            assert accepted == orders, f"{orders - accepted} orders not accepted"
    finally:
        agent.shutdown()
        for index in range(size):
            ray.kill(ray.get_actor(member_id("bench", index), namespace=config.ray.namespace))
        del members
    return statistics.median(rates[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders-per-member", type=int, default=100)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(
        address="local",
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(PROJECT_ROOT)}},
    )
    load = os.getloadavg()
    print(
        f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
        f"{args.latency_ms:g} ms per broker call, one order in flight per member, "
        f"{args.orders_per_member} orders per member per batch, median of {args.repeats}"
    )
    with tempfile.TemporaryDirectory() as folder:
        base = sequential(args.latency_ms, args.orders_per_member, args.repeats, Path(folder))
        rows = [
            (
                size,
                through_pool(
                    size, args.latency_ms, args.orders_per_member * size, args.repeats, Path(folder)
                ),
            )
            for size in POOL_SIZES
        ]
    ray.shutdown()
    print()
    print("| pool size | orders/s | speed-up vs sequential | efficiency |")
    print("|---:|---:|---:|---:|")
    print(f"| sequential | {base:.1f} | 1.00 | - |")
    for size, rate in rows:
        speed_up = rate / base
        print(f"| {size} | {rate:.1f} | {speed_up:.2f} | {speed_up / size:.2f} |")
    print(f"\nideal: {1000 / args.latency_ms:.1f} orders/s per member")


if __name__ == "__main__":
    main()
