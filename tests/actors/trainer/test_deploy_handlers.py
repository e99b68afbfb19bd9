"""``trainer.deploy`` in the agents that run trained versions: strategy (forecaster), conditions,
adapters. Each applies a version exactly, refuses a bad one without changing, survives a restart,
and a rollback through the whole desk restores the earlier version exactly."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from actors.adapters.agent import AdaptersAgent
from actors.adapters.learning import Recommendation, RetryParams
from actors.adapters.learning.intelligence import AvoidWindow
from actors.adapters.pool import LocalPool
from actors.base import Agent
from actors.conditions.agent import ConditionsAgent
from actors.conditions.regime import RegimeThresholds
from actors.intelligence.forecaster import DEFAULT_MODEL_PATH, Forecaster, load_forecaster
from actors.intelligence.train_forecaster import read_ohlcv_csv
from actors.strategy.agent import StrategyAgent
from actors.strategy.library import OHLCV, Ensemble, ForecasterStrategy
from actors.trainer.trainer import TrainerAgent
from cycle.config import PROJECT_ROOT, FluxtradeConfig
from cycle.messages import (
    TRAINER_DEPLOY_TOPIC,
    AgentMessage,
    Bar,
    DeployCommand,
    MessageKind,
    ValidatedFrame,
)
from tests.actors.trainer.helpers import trainer_config
from tests.actors.trainer.test_cycle_with_trainer import desk

ETH = PROJECT_ROOT / "data" / "freqtrade_ETH_BTC-5m.csv"


def command(agent: str, version: int, params: dict[str, Any], replaces: int = 0,
            kind: str = "deploy") -> DeployCommand:
    return DeployCommand(
        deployment_id=uuid.uuid4().hex, agent=agent, target_role=agent, version=version,
        kind=kind, params=params, replaces=replaces,
    )


def send(agent: Agent, deploy: DeployCommand) -> AgentMessage:
    return agent.handle(AgentMessage(
        kind=MessageKind.COMMAND, topic=TRAINER_DEPLOY_TOPIC, sender="trainer",
        payload=deploy.model_dump(mode="json"),
    ))


@pytest.fixture(scope="module")
def tuned_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped forecaster fine-tuned on recent ETH bars: a real re-trained version."""
    shipped = load_forecaster(DEFAULT_MODEL_PATH)
    assert isinstance(shipped, Forecaster)
    eth = read_ohlcv_csv(ETH)
    tuned = shipped.fine_tuned({"ETH_BTC": eth.iloc[-1500:]}, epochs=2, learning_rate=5e-3)
    return tuned.save(tmp_path_factory.mktemp("models") / "tuned.pt")


@pytest.fixture
def engine(tmp_path: Path) -> StrategyAgent:
    """A fresh strategy engine of the default desk (the full strategy library)."""
    agent = StrategyAgent(trainer_config(tmp_path))
    agent.initialize()
    return agent


def forecaster_readers(agent: StrategyAgent) -> list[ForecasterStrategy]:
    readers = []
    for strategy in agent.strategies.values():
        if isinstance(strategy, ForecasterStrategy):
            readers.append(strategy)
        elif isinstance(strategy, Ensemble):
            readers.append(strategy.forecaster)
    return readers


def eth_window(bars: int) -> OHLCV:
    frame = read_ohlcv_csv(ETH).iloc[-bars:]
    return OHLCV.from_rows(
        list(frame[["open", "high", "low", "close", "volume"]].itertuples(index=False))
    )


# --------------------------------------------------------------------------------------------
# the strategy engine: the forecaster
# --------------------------------------------------------------------------------------------


def test_strategy_engine_trades_a_deployed_forecaster_and_rolls_back_exactly(
    engine: StrategyAgent, tuned_model: Path
) -> None:
    agent = engine
    window = eth_window(300)
    shipped = [r.probabilities(window)[-1] for r in forecaster_readers(agent)]
    expected = Forecaster.load(tuned_model).predict_series(
        {k: getattr(window, k) for k in ("open", "high", "low", "close", "volume")}
    )[-1]

    deployed = send(agent, command("forecaster", 1, {"artifact": str(tuned_model)}))
    again = send(agent, DeployCommand.model_validate(
        agent.forecaster_deployment.model_dump(mode="json")
    ))
    readers = forecaster_readers(agent)
    assert deployed.ok and deployed.payload["strategies"] == ["forecaster", "ensemble"]
    assert again.ok and again.payload == {"version": 1, "artifact": str(tuned_model)}
    assert len(readers) == 2 and readers[0].model is readers[1].model
    assert [r.probabilities(window)[-1] for r in readers] == [expected, expected]
    assert expected != shipped[0]

    rollback = send(agent, command(
        "forecaster", 0, {"artifact": str(PROJECT_ROOT / DEFAULT_MODEL_PATH)}, 1, "rollback"
    ))
    assert rollback.ok
    assert [r.probabilities(window)[-1] for r in forecaster_readers(agent)] == shipped

    empty = send(agent, command("forecaster", 2, {"artifact": None}))
    assert empty.ok
    assert agent.strategies["forecaster"].unavailable == "forecaster version 2 has no model"
    assert agent.strategies["forecaster"].latest(window) == (0.0, 0.0)
    assert agent.strategies["ensemble"].forecaster.model is None


def test_strategy_engine_refuses_a_bad_forecaster_and_keeps_its_own(
    engine: StrategyAgent, tmp_path: Path, tuned_model: Path
) -> None:
    agent = engine
    live = agent.strategies["forecaster"].model
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")

    missing = send(agent, command("forecaster", 1, {"artifact": str(tmp_path / "gone.pt")}))
    unreadable = send(agent, command("forecaster", 1, {"artifact": str(garbage)}))
    foreign = send(agent, command("conditions", 1, {"artifact": str(tuned_model)}))

    assert not missing.ok and "no forecaster file at" in missing.error
    assert not unreadable.ok and "unreadable" in unreadable.error
    assert not foreign.ok and "not 'conditions'" in foreign.error
    assert agent.strategies["forecaster"].model is live
    assert agent.forecaster_deployment is None


def test_a_restarted_strategy_engine_trades_the_deployed_forecaster(
    engine: StrategyAgent, tuned_model: Path
) -> None:
    first = engine
    assert send(first, command("forecaster", 3, {"artifact": str(tuned_model)})).ok
    restarted = StrategyAgent(first.config)
    restarted.initialize()
    restarted.load_state_dict(first.state_dict())
    window = eth_window(300)
    assert restarted.forecaster_deployment == first.forecaster_deployment
    assert [r.probabilities(window)[-1] for r in forecaster_readers(restarted)] == [
        r.probabilities(window)[-1] for r in forecaster_readers(first)
    ]


# --------------------------------------------------------------------------------------------
# the conditions agent: regime thresholds
# --------------------------------------------------------------------------------------------


def feed_closes(agent: ConditionsAgent, config: FluxtradeConfig, closes: np.ndarray) -> list:
    symbol = config.symbols[0]
    labels = []
    for cycle, close in enumerate(closes, start=1):
        bar = Bar(symbol=symbol, timestamp=datetime(2026, 1, 1, tzinfo=UTC), open=close,
                  high=close * 1.001, low=close * 0.999, close=close, volume=10.0)
        frame = ValidatedFrame(cycle=cycle, timestamp=bar.timestamp, bars={symbol: bar})
        labels.append(agent.step(frame).by_symbol[symbol].regime)
    return labels


def test_conditions_relabel_with_deployed_thresholds_keeping_their_history(
    tmp_path: Path,
) -> None:
    config = trainer_config(tmp_path)
    rng = np.random.default_rng(3)
    closes = 100 * np.exp(np.cumsum(0.0006 + 0.002 * rng.standard_normal(400)))
    deployed = RegimeThresholds(trend_threshold=1.2, high_vol_pct=97.0)
    live, reference = ConditionsAgent(config), ConditionsAgent(config)
    for agent in (live, reference):
        agent.initialize()
    feed_closes(live, config, closes[:300])
    reference.regimes = {
        s: type(r)(deployed) for s, r in reference.regimes.items()
    }
    feed_closes(reference, config, closes[:300])

    reply = send(live, command("conditions", 1, {"thresholds": deployed.model_dump()}))
    after = feed_closes(live, config, closes[300:])
    expected = feed_closes(reference, config, closes[300:])

    assert reply.ok and live.thresholds == deployed
    assert after == expected and "warming_up" not in after
    restarted = ConditionsAgent(config)
    restarted.initialize()
    restarted.load_state_dict(live.state_dict())
    assert restarted.thresholds == deployed and restarted.deployment == live.deployment


def test_conditions_refuse_thresholds_that_size_their_history(tmp_path: Path) -> None:
    config = trainer_config(tmp_path)
    agent = ConditionsAgent(config)
    agent.initialize()
    resized = send(agent, command("conditions", 1, {"thresholds": {"window": 24}}))
    invalid = send(agent, command("conditions", 1, {"thresholds": {"high_vol_pct": 140}}))
    assert not resized.ok and "'window': (48, 24)" in resized.error
    assert not invalid.ok and "high_vol_pct" in invalid.error
    assert agent.thresholds == RegimeThresholds() and agent.deployment is None


# --------------------------------------------------------------------------------------------
# the adapters agent: broker recommendations
# --------------------------------------------------------------------------------------------


def recommendation(broker: str, score: float, retries: int) -> Recommendation:
    return Recommendation(
        broker=broker, score=score,
        avoid=(AvoidWindow(weekday=None, start_hour=2, end_hour=4, reason="failures"),),
        retry=RetryParams(max_retries=retries, base_delay_s=0.1, max_delay_s=2.0),
        updated_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_adapters_install_recommendations_and_keep_trained_windows_through_live_learning(
    tmp_path: Path,
) -> None:
    config = trainer_config(tmp_path)
    agent = AdaptersAgent(config, pool=LocalPool(config))
    agent.initialize()
    try:
        advice = {"paper_cheap": recommendation("paper_cheap", 0.9, 5)}
        reply = send(agent, command(
            "adapters", 1, {"recommendations": {b: r.model_dump(mode="json")
                                                for b, r in advice.items()}}
        ))
        installed = agent.intelligence.recommendation("paper_cheap")
        installed_retry = agent.retry.params("paper_cheap")
        agent.tracker.record_response("paper_cheap", 30.0, True, 0.1)
        agent._learn()
        learnt = agent.intelligence.recommendation("paper_cheap")
        restarted = AdaptersAgent(config, pool=LocalPool(config))
        restarted.initialize()
        restarted.load_state_dict(agent.state_dict())
        back = send(agent, command("adapters", 0, {"recommendations": {}}, 1, "rollback"))
        agent._learn()
    finally:
        agent.teardown()

    assert reply.ok and reply.payload == {"version": 1, "brokers": ["paper_cheap"]}
    assert installed == advice["paper_cheap"]
    assert learnt.avoid == advice["paper_cheap"].avoid
    assert installed_retry == advice["paper_cheap"].retry
    assert restarted.trained_avoid == {"paper_cheap": advice["paper_cheap"].avoid}
    assert back.ok and agent.trained_avoid == {}
    assert agent.intelligence.recommendation("paper_cheap").avoid == ()


def test_adapters_refuse_unknown_brokers_and_misfiled_advice(tmp_path: Path) -> None:
    config = trainer_config(tmp_path)
    agent = AdaptersAgent(config, pool=LocalPool(config))
    agent.initialize()
    try:
        ghost = send(agent, command("adapters", 1, {"recommendations": {
            "ghost": recommendation("ghost", 0.5, 1).model_dump(mode="json")
        }}))
        misfiled = send(agent, command("adapters", 1, {"recommendations": {
            "paper_fast": recommendation("paper_cheap", 0.5, 1).model_dump(mode="json")
        }}))
    finally:
        agent.teardown()
    assert not ghost.ok and "unknown brokers ['ghost']" in ghost.error
    assert not misfiled.ok and "['paper_fast']" in misfiled.error
    assert agent.trained_avoid == {} and agent.deployment is None


# --------------------------------------------------------------------------------------------
# the whole desk: trainer -> coordinator -> agents, and rollback
# --------------------------------------------------------------------------------------------


def test_every_trained_agent_applies_deployments_and_rollbacks_through_the_cycle(
    tmp_path: Path, tuned_model: Path
) -> None:
    config = trainer_config(tmp_path, mode="batch")
    trainer_agent = TrainerAgent(config, run_id="run")
    runner, agents = desk(config, trainer_agent)
    trainer = trainer_agent.trainer
    for _ in range(3):
        runner.run_cycle()
    initial = {a: trainer.store.active(a) for a in ("forecaster", "conditions", "adapters")}
    versions = {
        "forecaster": {"artifact": str(tuned_model)},
        "conditions": {"thresholds": RegimeThresholds(trend_threshold=2.6).model_dump()},
        "adapters": {"recommendations": {
            "paper_fast": recommendation("paper_fast", 0.8, 4).model_dump(mode="json")
        }},
    }
    for agent, params in versions.items():
        live, stack = trainer.store.active(agent)
        trainer._deploy(agent, params, None, live, stack)
    reports = [runner.run_cycle() for _ in range(3)]

    assert all(r.outcome == "ok" for r in reports)
    for agent in versions:
        assert trainer.store.version(agent, 1).applied == "applied (deploy)", agent
    assert agents["strategy"].forecaster_deployment.params == versions["forecaster"]
    assert agents["conditions"].thresholds.trend_threshold == 2.6
    assert agents["adapters"].trained_avoid["paper_fast"][0].start_hour == 2

    for agent in versions:
        trainer.rollback(agent)
    reports = [runner.run_cycle() for _ in range(3)]

    assert all(r.outcome == "ok" for r in reports)
    assert {a: trainer.store.active(a) for a in versions} == initial
    assert agents["strategy"].forecaster_deployment.params == trainer.store.version(
        "forecaster", 0).params
    assert agents["conditions"].thresholds == RegimeThresholds()
    assert agents["adapters"].trained_avoid == {}
    trainer_agent.stop()
