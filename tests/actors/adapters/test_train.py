"""The training command: simulated order flow against failure-injected brokers, then learning."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from actors.adapters.agent import AdaptersAgent
from actors.adapters.learning.logs import load_learned
from actors.adapters.pool import LocalPool
from actors.adapters.train import SCENARIO, main
from tests.conftest import make_config


def test_train_learns_when_each_broker_fails_and_the_agent_starts_from_it(tmp_path: Path) -> None:
    out = tmp_path / "adapters"
    stream = io.StringIO()

    code = main(["--orders", "400", "--out", str(out)], stream=stream)

    text = stream.getvalue()
    learned = load_learned(out / "learned.json")
    flaky, steady, kyc = learned["flaky"], learned["steady"], learned["kyc"]
    assert code == 0
    assert "simulated 400 orders" in text and "0 left open, 0 placed twice" in text
    assert all(f"\n{name}\n" in text for name in ("flaky", "steady", "kyc"))
    assert "retry schedule" in text and "avoid" in text
    assert [(w.start_hour, w.end_hour, w.reason) for w in flaky.recommendation.avoid] == [
        (8, 9, "failures")
    ]
    assert flaky.patterns.error_counts["BrokerUnavailableError"] > 20
    assert kyc.patterns.error_counts["RestrictedSymbolError"] == 1
    assert kyc.patterns.error_counts["APIChangedError"] > 0
    assert steady.recommendation.score > kyc.recommendation.score
    assert steady.recommendation.avoid == ()
    assert json.loads((out / "learned.json").read_text())["brokers"].keys() == {
        "flaky",
        "steady",
        "kyc",
    }

    config = make_config(tmp_path, brokers=SCENARIO, routing={"learned": str(out / "learned.json")})
    agent = AdaptersAgent(config, pool=LocalPool(config))
    agent.initialize()
    assert agent.retry.params("flaky") == flaky.recommendation.retry
    assert agent.intelligence.recommendation("kyc") == kyc.recommendation


def test_train_refuses_a_bad_order_count(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["--orders", "0"])
    assert stop.value.code == 2
    assert "--orders: must be at least 1" in capsys.readouterr().err
