"""Sessions, versions, weights and exports survive a restart of the run."""

from __future__ import annotations

import json

import pandas as pd
import yaml

from actors.learner import LearnerAgent
from actors.trainer.__main__ import main
from actors.trainer.trainer import Trainer
from cycle.messages import TrainerBatch
from tests.actors.trainer.helpers import deliver, market, run_ensemble, two_strategy_config


def test_sessions_versions_weights_and_exports_survive_a_restart(tmp_path) -> None:
    config = two_strategy_config(tmp_path)
    learner = LearnerAgent(config)
    learner.initialize()
    first = Trainer(config, "run")
    prices = market(1, 0.3)
    run_ensemble(first, learner, prices, 250)
    before = {
        "sessions": first.store.sessions(),
        "versions": first.store.versions("ensemble"),
        "active": first.store.active("ensemble"),
        "planner": first.planner.state(),
        "outcomes": list(first.outcomes),
    }
    csv_before = first.export(tmp_path / "csv_before", "csv")
    parquet_before = first.export(tmp_path / "pq_before", "parquet")
    snapshot = json.loads(json.dumps(learner.snapshot()))
    first.close()

    second = Trainer(config, "run")
    restarted = LearnerAgent(config)
    restarted.initialize()
    restarted.restore(snapshot, cycle=250)

    assert second.store.sessions() == before["sessions"]
    assert second.store.versions("ensemble") == before["versions"]
    assert second.store.active("ensemble") == before["active"]
    assert second.planner.state() == before["planner"]
    assert second.outcomes == before["outcomes"]
    assert restarted.weights == learner.weights
    assert restarted.weights_version == before["active"][0] >= 2
    csv_after = second.export(tmp_path / "csv_after", "csv")
    parquet_after = second.export(tmp_path / "pq_after", "parquet")
    assert [p.read_bytes() for p in csv_after] == [p.read_bytes() for p in csv_before]
    for old, new in zip(parquet_before, parquet_after, strict=True):
        pd.testing.assert_frame_equal(pd.read_parquet(old), pd.read_parquet(new))

    earlier = second.store.version("ensemble", before["active"][1][-1]).params["weights"]
    second.rollback("ensemble")
    second.record(TrainerBatch(acks=tuple(deliver(second, restarted))))
    assert restarted.weights == earlier
    run_ensemble(second, restarted, prices, 30, first=251)
    assert [o.cycle for o in second.outcomes] == list(range(1, 281))
    assert len(second.store.sessions()) - len(before["sessions"]) >= 2


def test_exports_hold_every_row_in_long_form(tmp_path) -> None:
    config = two_strategy_config(tmp_path)
    learner = LearnerAgent(config)
    learner.initialize()
    trainer = Trainer(config, "run")
    run_ensemble(trainer, learner, market(0, 0.3), 120)

    paths = {p.stem: p for p in trainer.export(fmt="csv")}

    assert paths["training_strategy_pnl"].parent == config.report.resolved() / "training_export"
    pnl = pd.read_csv(paths["training_strategy_pnl"])
    assert len(pnl) == 240 and set(pnl["strategy"]) == {"good", "noise"}
    assert list(pnl.columns) == ["cycle", "market_time", "strategy", "pnl", "weight"]
    sessions = pd.read_csv(paths["training_sessions"])
    assert len(sessions) == len(trainer.store.sessions()) == 12
    assert json.loads(sessions["params_before"][0]) == {"weights": {"good": 0.5, "noise": 0.5}}
    versions = pd.read_csv(paths["training_versions"])
    assert list(versions["version"]) == list(range(len(trainer.store.versions("ensemble"))))
    assert pd.read_csv(paths["training_broker_calls"]).empty


def test_the_command_line_rolls_back_and_exports_from_the_ledger(tmp_path, capsys) -> None:
    config = two_strategy_config(tmp_path)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json", by_alias=True)))
    learner = LearnerAgent(config)
    learner.initialize()
    trainer = Trainer(config, "run")
    run_ensemble(trainer, learner, market(0, 0.3), 150)
    live, stack = trainer.store.active("ensemble")
    trainer.close()

    assert main(["rollback", "--run-id", "run", "--config", str(path)]) == 0
    command = json.loads(capsys.readouterr().out)
    assert (command["kind"], command["version"], command["replaces"]) == (
        "rollback", stack[-1], live,
    )
    assert main(["export", "--run-id", "run", "--config", str(path), "--format", "csv",
                 "--out", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "training_broker_calls.csv", "training_sessions.csv", "training_strategy_pnl.csv",
        "training_versions.csv",
    ]
    capsys.readouterr()
    assert main(["status", "--run-id", "run", "--config", str(path)]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["active_versions"] == {"ensemble": stack[-1]}
    assert status["pending_deployments"] == 1 and status["cycles_observed"] == 150
    assert main(["rollback", "--run-id", "run", "--config", str(path), "--version",
                 str(stack[-1])]) == 1
