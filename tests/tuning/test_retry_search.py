"""The retry search: a failure model fitted from broker logs, simulated orders, Tune, hand-over."""

from __future__ import annotations

import math

import pytest

from actors.adapters.learning.logs import read_logs
from actors.adapters.learning.retry import RetryHandler, RetryParams, backoff_delay
from tuning.results import ResultStore
from tuning.retry_search import (
    FailureModel,
    RetrySearchSettings,
    apply,
    fit_failure_model,
    record,
    search,
    simulate_orders,
    synthesize_logs,
)


def flat_model(rate: float, error: str = "NetworkError", persistence_s: float = 1e-9,
               error_latency_s: float = 1e-9) -> FailureModel:
    """Every hour alike, near-zero latencies: fill rates and delays can be computed by hand."""
    return FailureModel(
        broker="flat", calls=1, hour_weights=[1 / 24] * 24, failure_rate=[rate] * 24,
        error_types=[error], retriable=[error != "InvalidOrderError"], error_mix=[[1.0]] * 24,
        persistence_s=[persistence_s], ok_latency_mu=[-20.0] * 24, ok_latency_sigma=[0.0] * 24,
        error_latency_mu=[math.log(error_latency_s)], error_latency_sigma=[0.0],
    )


def test_the_fit_recovers_the_model_that_wrote_the_log(tmp_path) -> None:
    synthesize_logs(tmp_path, "venue", calls=20_000, seed=1, failure_rate=0.03,
                    bad_hours={14: 0.25})
    model = fit_failure_model(list(read_logs(tmp_path)), "venue")
    assert model.calls == 20_000
    assert model.failure_rate[14] == pytest.approx(0.25, abs=0.04)
    assert sum(model.failure_rate) / 24 == pytest.approx(0.03 + 0.22 / 24, abs=0.01)
    assert model.error_types == [
        "BrokerTimeoutError", "InvalidOrderError", "NetworkError", "RateLimitError"
    ]
    assert model.retriable == [True, False, True, True]
    persistence = dict(zip(model.error_types, model.persistence_s, strict=True))
    assert persistence["BrokerTimeoutError"] == pytest.approx(8.0, rel=0.3)
    assert persistence["NetworkError"] == pytest.approx(1.0, rel=0.4)
    assert persistence["RateLimitError"] == pytest.approx(2.0, rel=0.4)
    assert math.exp(model.error_latency_mu[0]) == pytest.approx(2.0, rel=0.05)  # timeouts ~2 s


@pytest.mark.parametrize("retries", [0, 1, 3])
def test_independent_failures_fill_one_minus_p_to_the_attempts(retries: int) -> None:
    params = RetryParams(max_retries=retries, base_delay_s=0.5, multiplier=3.0, max_delay_s=2.0,
                         jitter=0.0)
    settings = RetrySearchSettings(orders=200_000, deadline_s=100.0, latency_weight=0.0)
    outcome = simulate_orders(flat_model(0.3), params, settings)
    assert outcome.fill_rate == pytest.approx(1 - 0.3 ** (retries + 1), abs=0.003)
    # an order filled on attempt j waited the handler's first j back-off delays
    delays = [backoff_delay(params, a, 0.0) for a in range(retries)]
    weights = [0.3**j * 0.7 for j in range(retries + 1)]
    expected = sum(w * sum(delays[:j]) for j, w in enumerate(weights)) / sum(weights)
    assert outcome.added_latency_s == pytest.approx(expected, rel=0.02, abs=1e-6)


def test_an_error_that_is_not_temporary_is_never_retried() -> None:
    params = RetryParams(max_retries=5, base_delay_s=0.1)
    outcome = simulate_orders(flat_model(0.2, "InvalidOrderError"), params,
                              RetrySearchSettings(orders=100_000))
    assert outcome.fill_rate == pytest.approx(0.8, abs=0.004)
    assert outcome.mean_attempts == 1.0


def test_retries_stop_at_the_deadline() -> None:
    params = RetryParams(max_retries=10, base_delay_s=4.0, multiplier=1.0, jitter=0.0,
                         max_elapsed_s=10.0)
    outcome = simulate_orders(flat_model(0.5), params, RetrySearchSettings(orders=100_000))
    assert outcome.fill_rate == pytest.approx(1 - 0.5**3, abs=0.005)  # tries at 0 s, 4 s, 8 s


def test_against_long_outages_patient_schedules_fill_more() -> None:
    model = flat_model(0.1, "BrokerTimeoutError", persistence_s=10.0, error_latency_s=1.0)
    settings = RetrySearchSettings(orders=50_000, deadline_s=30.0)
    hasty = simulate_orders(model, RetryParams(max_retries=10, base_delay_s=0.01,
                                               multiplier=1.0, jitter=0.0), settings)
    patient = simulate_orders(model, RetryParams(max_retries=5, base_delay_s=2.0,
                                                 multiplier=2.0, jitter=0.0), settings)
    assert patient.fill_rate > hasty.fill_rate + 0.02
    assert hasty.fill_rate < 0.94 < patient.fill_rate


def test_tune_search_beats_the_default_schedule_and_is_applied_and_recorded(
    ray_session, tmp_path
) -> None:
    logs = tmp_path / "logs"
    synthesize_logs(logs, "steady", calls=6_000, seed=3, failure_rate=0.02)
    synthesize_logs(logs, "flaky", calls=6_000, seed=4, failure_rate=0.08,
                    persistence_s={"BrokerTimeoutError": 15.0, "NetworkError": 3.0})
    records = list(read_logs(logs))
    models = {b: fit_failure_model(records, b) for b in ("steady", "flaky")}
    settings = RetrySearchSettings(orders=5_000, samples=12, deadline_s=30.0)
    lines: list[str] = []
    results = search(models, settings, "test_retry", out=lines.append)
    assert lines[-1].startswith("trials 24/24 | best so far flaky ")
    for broker, result in results.items():
        assert len(result.trials) == 12
        assert result.outcome.score == pytest.approx(result.trials[0]["score"], rel=1e-12)
        assert result.outcome.score > result.baseline.score, broker
        assert result.best.max_elapsed_s == 30.0
    handler = RetryHandler()
    store = ResultStore(tmp_path / "tuning.sqlite")
    tables = record(results, store, "test_retry")
    apply(results, handler, store, "test_retry")
    assert handler.params("flaky") == results["flaky"].best
    assert handler.params("steady") == results["steady"].best
    assert sorted(tables) == ["retry_test_retry_flaky", "retry_test_retry_steady"]
    assert store.query("SELECT COUNT(*) FROM retry_test_retry_flaky") == [(12,)]
    assert store.query("SELECT broker FROM retry_applied ORDER BY broker") == [
        ("flaky",), ("steady",)
    ]
    [(fill_rate,)] = store.query("SELECT fill_rate FROM retry_runs WHERE broker = 'flaky'")
    assert fill_rate == results["flaky"].outcome.fill_rate
