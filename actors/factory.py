"""The only place where ``ray.remote`` options live.

Every agent is a named actor in the run's namespace (``<role>``; pool members
``broker:<name>:<i>``; the ``coordinator``), so the dashboard lists each by role and a restarted
coordinator finds them again with ``ray.get_actor``. Restart limits and CPU shares come from the
config. Task retries stay at 0: an order is never re-sent by Ray behind the desk's back.
"""

from __future__ import annotations

from typing import Any

import ray

from actors.adapters.pool import BrokerMember, member_id
from actors.shell import AgentActor
from cycle.config import ROLES, FluxtradeConfig

HEALTH_GROUP = {"health": 1}


def _actor_class(role: str) -> Any:
    """A subclass per role, so the dashboard shows e.g. ``ExecutionActor`` rather than a shell."""
    name = "".join(part.capitalize() for part in role.split("_")) + "Actor"
    return type(name, (AgentActor,), {})


def create_agents(config: FluxtradeConfig) -> dict[str, Any]:
    """Start every agent and broker pool member; returns handles by actor name."""
    handles: dict[str, Any] = {}
    namespace = config.ray.namespace
    for broker in config.brokers:
        options = config.agents.options_for("broker")
        for index in range(broker.pool_size):
            name = member_id(broker.name, index)
            handles[name] = (
                ray.remote(BrokerMember)
                .options(
                    name=name,
                    namespace=namespace,
                    max_restarts=options.max_restarts,
                    max_task_retries=0,
                    num_cpus=options.num_cpus,
                    resources=options.resources,
                    max_concurrency=broker.max_in_flight,
                )
                .remote(config, broker.name, index)
            )
    for role in ROLES:
        options = config.agents.options_for(role)
        handles[role] = (
            ray.remote(concurrency_groups=HEALTH_GROUP)(_actor_class(role))
            .options(
                name=role,
                namespace=namespace,
                max_restarts=options.max_restarts,
                max_task_retries=0,
                num_cpus=options.num_cpus,
                resources=options.resources,
            )
            .remote(role, config, role)
        )
    return handles


def create_coordinator(config: FluxtradeConfig, run_id: str) -> Any:
    from actors.coordinator import Coordinator

    options = config.agents.options_for("coordinator")
    return (
        ray.remote(concurrency_groups=HEALTH_GROUP)(Coordinator)
        .options(
            name="coordinator",
            namespace=config.ray.namespace,
            max_restarts=options.max_restarts,
            max_task_retries=0,
            num_cpus=options.num_cpus,
            resources=options.resources,
        )
        .remote(config, run_id)
    )


def destroy(handles: dict[str, Any]) -> None:
    """Stop actors for good (no restart); used at the end of a run."""
    for handle in handles.values():
        ray.kill(handle, no_restart=True)
