"""The trainer actor beside a running desk on the shared local Ray, and its clean stop."""

from __future__ import annotations

import json
import sqlite3
import statistics
import uuid

import pytest

from actors.factory import create_desk, destroy
from tests.actors.trainer.helpers import trainer_config

pytestmark = pytest.mark.ray


def test_continuous_loop_trains_beside_the_cycles_and_stops_with_the_run(
    ray_session, tmp_path
) -> None:
    config = trainer_config(tmp_path, agents=["ensemble"], analytics_window=5, alert_drop_se=0.5)
    run_id = f"test-{uuid.uuid4().hex[:6]}"
    handles = create_desk(config, run_id)
    coordinator = handles["coordinator"]
    try:
        ray_session.get(coordinator.start.remote())
        reports = ray_session.get([coordinator.run_cycle.remote() for _ in range(50)])
        running = ray_session.get(handles["trainer"].status.remote())
        desk = ray_session.get(coordinator.status.remote())
        ray_session.get(coordinator.shutdown.remote())
        stopped = ray_session.get(handles["trainer"].status.remote())
        with pytest.raises(ValueError, match="ensemble version 0 is already live"):
            ray_session.get(handles["trainer"].rollback.remote("ensemble", 0))
    finally:
        destroy(handles)

    assert [r.cycle for r in reports] == list(range(1, 51))
    assert all(r.outcome == "ok" for r in reports), {r.cycle: r.degraded for r in reports}
    learn_ms = statistics.median(r.step_ms["learn"] for r in reports[10:])
    assert learn_ms < 25.0
    assert running.loop_alive and running.cycles_observed >= 40
    assert not stopped.loop_alive and stopped.loop_errors == 0
    assert stopped.cycles_observed == 50
    db = sqlite3.connect(config.ledger.resolved())
    sessions = db.execute(
        "SELECT agent, cycle, outcome FROM trainer_sessions WHERE run_id = ? ORDER BY seq",
        (run_id,),
    ).fetchall()
    ensemble = [s for s in sessions if s[0] == "ensemble"]
    assert len(ensemble) >= 4 and ensemble[0][2] == "skipped"
    assert {s[2] for s in ensemble[3:]} <= {"rejected", "deployed"}
    observed = db.execute(
        "SELECT COUNT(*) FROM trainer_observations WHERE run_id = ?", (run_id,)
    ).fetchone()[0]
    assert observed == 50
    assert (config.report.resolved() / "training.html").is_file()
    requested = db.execute(
        "SELECT cycle, payload FROM events WHERE run_id = ? AND kind = ? ORDER BY seq",
        (run_id, "meta_reevaluation_requested"),
    ).fetchall()
    assert requested, "a sensitive alert threshold must have asked for a re-evaluation"
    reason = json.loads(requested[-1][1])["alert"]["reason"]
    assert desk["reevaluation_due"].endswith(f"trainer: {reason}")
