"""The whole desk on the shared local Ray: 200 cycles of the default config on the bundled data."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from actors.factory import create_desk, destroy
from cycle.config import FluxtradeConfig
from tests.conftest import make_config
from tests.invariants import check_run

pytestmark = pytest.mark.ray


@dataclass
class Desk:
    config: FluxtradeConfig
    run_id: str
    coordinator: Any
    handles: dict[str, Any]

    def run(self, cycles: int) -> list[Any]:
        """Queue the cycles on the coordinator (it runs them in order) and gather once."""
        import ray

        return ray.get([self.coordinator.run_cycle.remote() for _ in range(cycles)])


@pytest.fixture
def desk(ray_session, tmp_path) -> Iterator[Desk]:
    config = make_config(tmp_path)
    run_id = f"test-{uuid.uuid4().hex[:6]}"
    handles = create_desk(config, run_id)
    coordinator = handles["coordinator"]
    ray_session.get(coordinator.start.remote())
    yield Desk(config, run_id, coordinator, handles)
    destroy(handles)


def test_default_config_runs_200_cycles_with_every_invariant(desk: Desk, ray_session) -> None:
    reports = desk.run(200)
    summary = ray_session.get(desk.coordinator.shutdown.remote())

    assert [r.cycle for r in reports] == list(range(1, 201))
    assert all(r.outcome == "ok" for r in reports), {r.cycle: r.degraded for r in reports if r.degraded}
    numbers = check_run(desk.config.ledger.resolved(), desk.run_id, desk.config.run.initial_cash)
    assert numbers["cycles"] == 200
    assert numbers["fills"] > 0
    assert summary.cycles == 200
    assert summary.orders == numbers["orders"]
    assert summary.fills == numbers["fills"]
    assert summary.net_pnl == pytest.approx(numbers["net_pnl"], abs=1e-15)
    assert summary.final_equity == pytest.approx(reports[-1].equity, abs=1e-15)
    assert set(summary.agent_health) == set(desk.handles) - {"coordinator"} - {
        n for n in desk.handles if n.startswith("broker:")
    }


def test_killed_agent_returns_with_its_snapshot_and_the_run_completes(desk: Desk, ray_session) -> None:
    desk.run(100)
    before = ray_session.get(desk.handles["execution"].snapshot.remote())
    ray_session.kill(desk.handles["execution"], no_restart=False)

    reports = desk.run(100)
    status = ray_session.get(desk.coordinator.status.remote())
    ray_session.get(desk.coordinator.shutdown.remote())

    assert status["restarts"] == {"execution": 1}
    db = sqlite3.connect(desk.config.ledger.resolved())
    restarts = db.execute(
        "SELECT payload FROM events WHERE run_id=? AND kind='agent_restarted'", (desk.run_id,)
    ).fetchall()
    assert any('"restored": true' in p and '"role": "execution"' in p for (p,) in restarts)
    portfolio_after_restore = before["agent"]["portfolio"]
    first_equity_after = db.execute(
        "SELECT cash FROM equity WHERE run_id=? AND cycle=100", (desk.run_id,)
    ).fetchone()[0]
    assert portfolio_after_restore["cash"] == first_equity_after
    booked = {c for (c,) in db.execute("SELECT cycle FROM equity WHERE run_id=?", (desk.run_id,))}
    unbooked = set(range(1, 201)) - booked
    assert all("execution" in reports[c - 101].degraded for c in unbooked)
    assert len(unbooked) <= 2
    check_run(desk.config.ledger.resolved(), desk.run_id, desk.config.run.initial_cash)


def test_commands_pause_resume_halt_and_status(desk: Desk, ray_session) -> None:
    desk.run(60)
    ray_session.get(desk.coordinator.pause.remote())
    assert desk.run(3) == [None, None, None]
    assert ray_session.get(desk.coordinator.status.remote())["paused"] is True
    ray_session.get(desk.coordinator.resume.remote())
    ray_session.get(desk.coordinator.halt.remote("test halt"))
    halted = desk.run(10)
    status = ray_session.get(desk.coordinator.status.remote())
    assert status["halted"] and status["halt_reason"] == "test halt" and status["cycle"] == 70
    assert all(r.outcome == "halted" and r.orders_sent == 0 and r.open_orders == 0 for r in halted)
    ray_session.get(desk.coordinator.resume.remote())
    assert desk.run(1)[0].outcome == "ok"
    ray_session.get(desk.coordinator.shutdown.remote())
    check_run(desk.config.ledger.resolved(), desk.run_id, desk.config.run.initial_cash)
