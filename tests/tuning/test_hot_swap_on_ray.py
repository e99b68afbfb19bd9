"""The swap through the coordinator actor on the shared local Ray, as ``--apply`` sends it."""

from __future__ import annotations

import json
import sqlite3
import uuid

import pytest

from actors.factory import create_desk, destroy
from cycle.messages import StrategySwap
from tests.conftest import make_config
from tuning.candidates import Candidate

pytestmark = pytest.mark.ray

CHOSEN = Candidate(class_path="actors.strategy.library:SMACrossover",
                   params={"fast": 5, "slow": 20, "full_gap": 0.001})


def test_coordinator_applies_a_requested_swap_before_the_next_cycle(ray_session, tmp_path) -> None:
    config = make_config(tmp_path)
    run_id = f"swap-{uuid.uuid4().hex[:6]}"
    handles = create_desk(config, run_id)
    coordinator = handles["coordinator"]
    try:
        ray_session.get(coordinator.start.remote())
        ray_session.get([coordinator.run_cycle.remote() for _ in range(5)])
        swap = StrategySwap(
            run_id="meta", config_hash=CHOSEN.config_hash(),
            strategy=CHOSEN.strategy_config("meta_sma"), metric="sharpe", train_score=2.0,
            validation_score=1.5, confidence=0.99,
        )
        ray_session.get(coordinator.request_swap.remote(swap))
        status = ray_session.get(coordinator.status.remote())
        assert status["cycle"] == 5 and status["reevaluation_due"] == ""
        reports = ray_session.get([coordinator.run_cycle.remote() for _ in range(2)])
        assert [r.cycle for r in reports] == [6, 7]
        assert set(reports[-1].weights) >= {"meta_sma"}
    finally:
        destroy(handles)
    with sqlite3.connect(config.ledger.resolved()) as db:
        rows = db.execute(
            "SELECT cycle, payload FROM events WHERE run_id = ? AND kind = 'strategy_swap'",
            (run_id,),
        ).fetchall()
    [(cycle, payload)] = rows
    assert cycle == 6
    assert json.loads(payload)["installed"] == "meta_sma"
    assert "sma_crossover" in json.loads(payload)["replaced"]
