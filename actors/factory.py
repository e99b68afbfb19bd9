"""The only place where ``ray.remote`` options live.

Every agent is a named actor in the run's namespace (``<role>``; pool members
``broker:<name>:<i>``; a broker's shared rate limiter ``limiter:<name>``; the ``coordinator``), so
the dashboard lists each by role and a restarted coordinator finds them again with
``ray.get_actor``. Restart limits and CPU shares come from the config. Task retries stay at 0: an
order is never re-sent by Ray behind the desk's back.
"""

from __future__ import annotations

from typing import Any

import ray

from actors.adapters.limiter import LimiterService, limiter_id
from actors.adapters.member import BrokerMember, member_id
from actors.shell import AgentActor
from cycle.config import ROLES, BrokerConfig, FluxtradeConfig

HEALTH_GROUP = {"health": 1}


def _actor_class(role: str) -> Any:
    """A subclass per role, so the dashboard shows e.g. ``ExecutionActor`` rather than a shell."""
    name = "".join(part.capitalize() for part in role.split("_")) + "Actor"
    return type(name, (AgentActor,), {})


def _options(config: FluxtradeConfig, kind: str, name: str, **extra: Any) -> dict[str, Any]:
    """Options every named actor shares: its name, the namespace, supervision from config, and
    no task retries (Ray never re-sends a call behind the desk's back)."""
    options = config.agents.options_for(kind)
    return {
        "name": name,
        "namespace": config.ray.namespace,
        "max_restarts": options.max_restarts,
        "max_task_retries": 0,
        "num_cpus": options.num_cpus,
        "resources": options.resources,
    } | extra


def create_broker_member(config: FluxtradeConfig, broker: BrokerConfig, index: int) -> Any:
    """Start one pool member: an async actor with up to ``max_in_flight`` calls open.

    Also how a pool replaces a dead member under the same name. Started by the adapters agent, a
    replacement belongs to it and dies with it; the agent's next incarnation starts it again.
    """
    options = _options(
        config, "broker", member_id(broker.name, index), max_concurrency=broker.max_in_flight
    )
    return ray.remote(BrokerMember).options(**options).remote(config, broker.name, index)


def create_limiter(config: FluxtradeConfig, broker: BrokerConfig) -> Any:
    """Start the rate limiter the members of a broker's pool share (it only books slots)."""
    assert broker.rate_limit is not None
    options = _options(config, "broker", limiter_id(broker.name), num_cpus=0)
    return (
        ray.remote(LimiterService)
        .options(**options)
        .remote(broker.rate_limit.requests, broker.rate_limit.window_s)
    )


def create_agents(config: FluxtradeConfig) -> dict[str, Any]:
    """Start every agent, broker pool member and shared limiter; returns handles by actor name."""
    handles: dict[str, Any] = {}
    for broker in config.brokers:
        if broker.rate_limit is not None:
            handles[limiter_id(broker.name)] = create_limiter(config, broker)
        for index in range(broker.pool_size):
            handles[member_id(broker.name, index)] = create_broker_member(config, broker, index)
    for role in ROLES:
        handles[role] = (
            ray.remote(concurrency_groups=HEALTH_GROUP)(_actor_class(role))
            .options(**_options(config, role, role))
            .remote(role, config, role)
        )
    return handles


def create_trainer(config: FluxtradeConfig, run_id: str) -> Any:
    """The agent trainer, named ``trainer``; its loop thread needs the ``io`` group to answer."""
    from actors.trainer.actor import CONCURRENCY_GROUPS, TrainerActor

    return (
        ray.remote(concurrency_groups=CONCURRENCY_GROUPS)(TrainerActor)
        .options(**_options(config, "trainer", "trainer"))
        .remote(config, run_id)
    )


def create_coordinator(config: FluxtradeConfig, run_id: str) -> Any:
    from actors.coordinator import Coordinator

    return (
        ray.remote(concurrency_groups=HEALTH_GROUP)(Coordinator)
        .options(**_options(config, "coordinator", "coordinator"))
        .remote(config, run_id)
    )


def create_desk(config: FluxtradeConfig, run_id: str) -> dict[str, Any]:
    """Every actor of one run: the agents, the trainer when the config turns it on, and the
    coordinator (under ``"coordinator"``); handles by actor name, for :func:`destroy`."""
    handles = create_agents(config)
    if config.trainer.enabled:
        handles["trainer"] = create_trainer(config, run_id)
    handles["coordinator"] = create_coordinator(config, run_id)
    return handles


def destroy(handles: dict[str, Any]) -> None:
    """Stop actors for good (no restart); used at the end of a run."""
    for handle in handles.values():
        ray.kill(handle, no_restart=True)
