from __future__ import annotations

import pytest

from cycle.config import load_config, parse_config
from cycle.errors import ConfigError
from tests.conftest import DEFAULT_CONFIG


def test_default_config_parses_into_frozen_models() -> None:
    config = load_config(DEFAULT_CONFIG)
    assert config.symbols == ["ETH/BTC", "LTC/BTC", "ADA/BTC"]
    assert [b.name for b in config.brokers] == ["paper_fast", "paper_cheap"]
    with pytest.raises(ValueError):
        config.run.seed = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"risk": {"max_drawdown": 1.5}}, "risk.max_drawdown: Input should be less than or equal to 1"),
        ({"risk": {"max_drawdonw": 0.1}}, "risk.max_drawdonw: Extra inputs are not permitted"),
        ({"brokers": [{"name": "x", "taker_fee": 1.0}]}, "brokers.0.taker_fee: Input should be less than 1"),
        ({"brokers": [{"name": "x", "pool_size": 0}]}, "brokers.0.pool_size: Input should be greater than 0"),
        ({"symbols": ["FOO/BTC"]}, "symbols: unknown symbol(s) ['FOO/BTC']"),
        ({"symbols": []}, "symbols: List should have at least 1 item"),
        ({"strategies": [{"name": "a", "class": "not a path"}]}, "strategies.0.class: String should match"),
        ({"data": {"files": {"ETH/BTC": "nope.csv"}}, "symbols": ["ETH/BTC"]}, "no such file"),
        ({"agents": {"overrides": {"trader": {"max_restarts": 1}}}}, "unknown agent role(s) ['trader']"),
    ],
)
def test_bad_config_names_the_field_and_the_problem(override: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(DEFAULT_CONFIG, override)
    assert message in str(caught.value)


def test_config_file_that_is_not_a_mapping_is_refused(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(path)


def test_content_hash_changes_with_any_setting_and_only_then() -> None:
    config = load_config(DEFAULT_CONFIG)
    same = load_config(DEFAULT_CONFIG)
    other = load_config(DEFAULT_CONFIG, {"run": {"seed": 8}})
    assert config.content_hash() == same.content_hash()
    assert config.content_hash() != other.content_hash()


def test_with_symbols_validates_again() -> None:
    config = load_config(DEFAULT_CONFIG)
    assert config.with_symbols(["ETH/BTC"]).symbols == ["ETH/BTC"]
    with pytest.raises(ConfigError, match="unknown symbol"):
        config.with_symbols(["DOGE/BTC"])
    with pytest.raises(ConfigError):
        parse_config({"symbols": ["ETH/BTC"]})
