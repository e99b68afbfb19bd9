"""Search each broker's retry schedule on Ray Tune against a failure model fitted from its logs.

**The failure model** (:func:`fit_failure_model`) is read from the broker's JSON-lines log
(:class:`~actors.adapters.learning.logs.BrokerLogger`): every response and error, with its time,
latency and error type. Per hour of the day it estimates the probability that a call fails and
the mix of error types (both shrunk towards the broker's overall numbers where an hour has few
calls), and the log-normal latency of a successful call. The failure probability is measured on
calls that follow a success, so failures inside an outage are not counted twice (once as
failures, once as persistence); per error type, the log-normal latency
of a failed call and how long failures persist. Persistence is what makes retry timing matter:
after a failure of type ``e``, a call ``g`` seconds later fails with probability
``1 - (1 - p_hour) * (1 - exp(-g / tau_e))`` (an outage still on, or a fresh failure), and
``tau_e`` is fitted by maximum likelihood on consecutive calls in the log. Error types that are
not :class:`~cycle.errors.TemporaryError` (an invalid order, no funds) are never retried.

**The simulation** (:func:`simulate_orders`) places many orders at once, vectorised in numpy,
exactly as :meth:`RetryHandler.place` does: send; on a temporary error, back off by
:func:`~actors.adapters.learning.retry.backoff_delay` (same formula, same jitter), look the
order up by client order id (a read, except after a rate limit, which proves the venue never saw
it), send again, until the retries or the deadline run out. An order *fills* when an attempt
succeeds within the deadline. Draws are fixed by a seed, so every schedule meets the same
failures (common random numbers) and differences between schedules are not noise.

**The search** maximises ``fill rate - latency_weight * added latency / deadline``: the share of
orders filled within the deadline first, then the least time spent on failed attempts, back-offs
and look-ups. Ray Tune samples base delay, multiplier, max retries, max delay and jitter; each
trial simulates one schedule on tens of thousands of orders. The best schedule is applied to a
:class:`~actors.adapters.learning.retry.RetryHandler` (with ``max_elapsed_s`` = the deadline,
since a retry after it is useless) and recorded with its model in SQLite.

    python -m tuning.retry_search [--logs DIR] [--deadline-s 30] [--samples 200] [--apply]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from loguru import logger
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt

from actors.adapters.learning.logs import BrokerEvent, BrokerLogger, LogRecord, read_logs
from actors.adapters.learning.retry import MAX_RETRIES_CAP, RetryHandler, RetryParams
from cycle import errors
from cycle.config import PROJECT_ROOT
from tuning.results import DEFAULT_DB, ResultStore

log = logger.bind(agent_id="retry_search")

PRIOR_CALLS = 20.0
"""Weight, in calls, of the broker-wide estimate in each hour's estimate."""
TAU_GRID = np.geomspace(0.01, 3600.0, 241)
"""Candidate persistence times (seconds) for the maximum-likelihood fit."""


class FailureModel(BaseModel):
    """One broker's failures and latencies by hour and error type (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    broker: str
    calls: int
    hour_weights: list[float] = Field(min_length=24, max_length=24)
    failure_rate: list[float] = Field(min_length=24, max_length=24)
    error_types: list[str]
    retriable: list[bool]
    error_mix: list[list[float]]
    persistence_s: list[float]
    ok_latency_mu: list[float] = Field(min_length=24, max_length=24)
    ok_latency_sigma: list[float] = Field(min_length=24, max_length=24)
    error_latency_mu: list[float]
    error_latency_sigma: list[float]


def _retriable(error_type: str) -> bool:
    cls = getattr(errors, error_type, None)
    return isinstance(cls, type) and issubclass(cls, errors.TemporaryError)


def _lognormal(latencies_ms: np.ndarray) -> tuple[float, float]:
    logs = np.log(np.maximum(latencies_ms, 1e-3) / 1000.0)
    return float(logs.mean()), float(logs.std(ddof=1)) if logs.size > 1 else 0.0


def _fit_persistence(gaps: np.ndarray, failed: np.ndarray, base: np.ndarray) -> float:
    """Maximum-likelihood ``tau`` of ``P(fail) = 1 - (1 - base) (1 - exp(-gap / tau))``."""
    if gaps.size == 0:
        return float(TAU_GRID[0])
    on = np.exp(-gaps[None, :] / TAU_GRID[:, None])
    p = np.clip(1.0 - (1.0 - base[None, :]) * (1.0 - on), 1e-12, 1 - 1e-12)
    loglik = np.where(failed[None, :], np.log(p), np.log1p(-p)).sum(axis=1)
    return float(TAU_GRID[int(np.argmax(loglik))])


def fit_failure_model(records: Sequence[LogRecord], broker: str) -> FailureModel:
    """Fit one broker's failure model from its log records (responses and errors)."""
    calls = sorted(
        (r for r in records
         if r.broker == broker and r.event in (BrokerEvent.RESPONSE, BrokerEvent.ERROR)),
        key=lambda r: r.timestamp,
    )
    if len(calls) < 2:
        raise ValueError(f"{broker}: {len(calls)} calls in the log; a model needs more")
    hours = np.array([r.timestamp.astimezone(UTC).hour for r in calls])
    failed = np.array([not r.success for r in calls])
    latency = np.array([r.latency_ms or 0.0 for r in calls])
    stamps = np.array([r.timestamp.timestamp() for r in calls])
    types = sorted({r.error_type or "unknown" for r in calls if not r.success})
    kind = np.array([types.index(r.error_type or "unknown") if not r.success else -1
                     for r in calls])
    count = np.bincount(hours, minlength=24).astype(float)
    fresh = np.concatenate(([True], ~failed[:-1]))
    overall = failed[fresh].mean()
    rate = (
        np.bincount(hours[fresh], weights=failed[fresh], minlength=24) + PRIOR_CALLS * overall
    ) / (np.bincount(hours[fresh], minlength=24) + PRIOR_CALLS)
    overall_mix = np.array([(kind == e).sum() for e in range(len(types))], dtype=float)
    overall_mix = overall_mix / max(overall_mix.sum(), 1.0)
    mix = []
    for h in range(24):
        here = np.array([((kind == e) & (hours == h)).sum() for e in range(len(types))], float)
        mixed = here + PRIOR_CALLS * overall_mix
        mix.append((mixed / mixed.sum()).tolist() if mixed.sum() else overall_mix.tolist())
    ok_all = _lognormal(latency[~failed]) if (~failed).any() else (math.log(0.05), 0.0)
    mu, sigma = [], []
    for h in range(24):
        sample = latency[~failed & (hours == h)]
        weight = sample.size / (sample.size + PRIOR_CALLS)
        fit = _lognormal(sample) if sample.size > 1 else ok_all
        mu.append(weight * fit[0] + (1 - weight) * ok_all[0])
        sigma.append(weight * fit[1] + (1 - weight) * ok_all[1])
    err_mu, err_sigma, persistence = [], [], []
    after = np.flatnonzero(failed[:-1])
    for e in range(len(types)):
        fit = _lognormal(latency[kind == e]) if (kind == e).sum() > 1 else ok_all
        err_mu.append(fit[0])
        err_sigma.append(fit[1])
        pairs = after[kind[after] == e]
        gaps = stamps[pairs + 1] - latency[pairs + 1] / 1000.0 - stamps[pairs]
        persistence.append(_fit_persistence(
            np.maximum(gaps, 0.0), failed[pairs + 1], rate[hours[pairs + 1]]
        ))
    return FailureModel(
        broker=broker, calls=len(calls), hour_weights=(count / count.sum()).tolist(),
        failure_rate=rate.tolist(), error_types=types,
        retriable=[_retriable(t) for t in types], error_mix=mix, persistence_s=persistence,
        ok_latency_mu=mu, ok_latency_sigma=sigma, error_latency_mu=err_mu,
        error_latency_sigma=err_sigma,
    )


class RetrySearchSettings(BaseModel):
    """Attributes:
    deadline_s: An order filled later than this counts as not filled.
    orders: Simulated orders per schedule.
    latency_weight: Weight of added latency (as a share of the deadline) against fill rate.
    samples: Schedules Tune tries per broker.
    seed: Seed of the simulated failures (the same for every schedule) and of Tune's sampler.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    deadline_s: PositiveFloat = 30.0
    orders: PositiveInt = 50_000
    latency_weight: float = Field(0.1, ge=0.0)
    samples: PositiveInt = 200
    seed: int = 7


@dataclass(frozen=True)
class RetryOutcome:
    """How a schedule did on the simulated orders."""

    fill_rate: float
    added_latency_s: float
    mean_attempts: float
    score: float


def simulate_orders(
    model: FailureModel, params: RetryParams, settings: RetrySearchSettings
) -> RetryOutcome:
    """Place ``settings.orders`` orders under ``params`` against ``model`` (see module doc)."""
    rng = np.random.default_rng(settings.seed)
    n, attempts = settings.orders, MAX_RETRIES_CAP + 1
    draws = rng.random((5, attempts, n))
    normals = rng.standard_normal((3, attempts, n))
    hour = rng.choice(24, size=n, p=np.asarray(model.hour_weights))
    rate = np.asarray(model.failure_rate)[hour]
    ok_mu = np.asarray(model.ok_latency_mu)[hour]
    ok_sigma = np.asarray(model.ok_latency_sigma)[hour]
    mix = np.cumsum(np.asarray(model.error_mix), axis=1)[hour] if model.error_types else None
    tau = np.asarray(model.persistence_s + [1.0])
    err_mu = np.asarray(model.error_latency_mu + [0.0])
    err_sigma = np.asarray(model.error_latency_sigma + [0.0])
    retriable = np.asarray(model.retriable + [False])
    rate_limited = np.asarray([t == "RateLimitError" for t in model.error_types] + [False])
    deadline = settings.deadline_s
    start = np.zeros(n)
    last_end = np.full(n, -np.inf)
    last_type = np.full(n, -1)
    done = np.zeros(n, dtype=bool)
    filled = np.zeros(n, dtype=bool)
    added = np.zeros(n)
    tries = np.zeros(n)
    for a in range(attempts):
        active = ~done
        if not active.any():
            break
        tries += active
        persist = np.where(
            last_type >= 0, np.exp(-(start - last_end) / tau[last_type]), 0.0
        )
        p_fail = persist + (1.0 - persist) * rate
        fail = active & (draws[0, a] < p_fail)
        success = active & ~fail
        ok_latency = np.exp(ok_mu + ok_sigma * normals[0, a])
        finish = start + ok_latency
        filled |= success & (finish <= deadline)
        added = np.where(success, start, added)
        done |= success
        if mix is None:
            break
        fresh = np.minimum((draws[1, a][:, None] > mix).sum(axis=1), len(model.error_types) - 1)
        kind = np.where((last_type >= 0) & (draws[0, a] < persist), last_type, fresh)
        end = start + np.exp(err_mu[kind] + err_sigma[kind] * normals[1, a])
        capped = np.minimum(params.max_delay_s, params.base_delay_s * params.multiplier**a)
        delay = capped * (1.0 - params.jitter * draws[2, a])
        stop = (a >= params.max_retries) | ~retriable[kind]
        if params.max_elapsed_s is not None:
            stop |= end + delay > params.max_elapsed_s
        quit_ = fail & stop
        done |= quit_
        again = fail & ~stop
        lookup = np.where(rate_limited[kind], 0.0, np.exp(ok_mu + ok_sigma * normals[2, a]))
        start = np.where(again, end + delay + lookup, start)
        last_end = np.where(again, end, last_end)
        last_type = np.where(again, kind, last_type)
    fill_rate = float(filled.mean())
    added_latency = float(added[filled].mean()) if filled.any() else 0.0
    score = fill_rate - settings.latency_weight * added_latency / deadline
    return RetryOutcome(fill_rate, added_latency, float(tries.mean()), score)


def evaluate_schedule(
    config: dict[str, Any], *, models: dict[str, FailureModel], settings: RetrySearchSettings
) -> None:
    """One Tune trial: one broker's schedule on the simulated orders."""
    from ray import tune

    params = schedule(config, settings.deadline_s)
    outcome = simulate_orders(models[config["broker"]], params, settings)
    tune.report({
        "score": outcome.score, "fill_rate": outcome.fill_rate,
        "added_latency_s": outcome.added_latency_s, "mean_attempts": outcome.mean_attempts,
    })


def schedule(config: dict[str, Any], deadline_s: float) -> RetryParams:
    """The RetryParams of a Tune config; retrying past the deadline is pointless, so it caps."""
    return RetryParams(
        max_retries=int(config["max_retries"]), base_delay_s=float(config["base_delay_s"]),
        max_delay_s=float(config["max_delay_s"]), multiplier=float(config["multiplier"]),
        jitter=float(config["jitter"]), max_elapsed_s=deadline_s,
    )


@dataclass(frozen=True)
class BrokerResult:
    broker: str
    model: FailureModel
    best: RetryParams
    outcome: RetryOutcome
    baseline: RetryOutcome
    trials: list[dict[str, Any]]


def search(
    models: dict[str, FailureModel], settings: RetrySearchSettings, run_id: str,
    out: Callable[[str], None] = print,
) -> dict[str, BrokerResult]:
    """Tune every broker's schedule (one Tuner, brokers as a grid axis); Ray must be up."""
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    total = settings.samples * len(models)
    started = time.monotonic()
    best: dict[str, float] = {}
    progress_every = max(1, total // 20)

    class Progress(tune.Callback):
        done = 0

        def on_trial_result(self, iteration: int, trials: list, trial: Any,
                            result: dict[str, Any], **info: Any) -> None:
            Progress.done += 1
            broker = trial.config["broker"]
            best[broker] = max(best.get(broker, -np.inf), result["score"])
            if Progress.done % progress_every and Progress.done != total:
                return
            elapsed = time.monotonic() - started
            left = elapsed / Progress.done * (total - Progress.done)
            scores = ", ".join(f"{b} {s:.4f}" for b, s in sorted(best.items()))
            out(f"trials {Progress.done}/{total} | best so far {scores} | "
                f"{elapsed:.1f} s elapsed | ETA {left:.1f} s")

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    tuner = tune.Tuner(
        tune.with_resources(
            tune.with_parameters(evaluate_schedule, models=models, settings=settings), {"cpu": 1}
        ),
        param_space={
            "broker": tune.grid_search(sorted(models)),
            "base_delay_s": tune.loguniform(0.01, 5.0),
            "multiplier": tune.uniform(1.0, 4.0),
            "max_retries": tune.randint(0, MAX_RETRIES_CAP + 1),
            "max_delay_s": tune.loguniform(0.1, 60.0),
            "jitter": tune.uniform(0.0, 1.0),
        },
        tune_config=tune.TuneConfig(
            num_samples=settings.samples, reuse_actors=True,
            search_alg=BasicVariantGenerator(random_state=settings.seed),
        ),
        run_config=tune.RunConfig(
            name=f"retry_{run_id}",
            storage_path=str(Path(tempfile.gettempdir()) / "fluxtrade-tune"),
            verbose=0, callbacks=[Progress()],
        ),
    )
    grid = tuner.fit()
    trials: dict[str, list[dict[str, Any]]] = {b: [] for b in models}
    for result in grid:
        if result.error is not None:
            raise RuntimeError(f"trial {result.config} failed: {result.error}") from result.error
        config = result.config
        trials[config["broker"]].append({
            **{k: config[k] for k in ("base_delay_s", "multiplier", "max_retries",
                                      "max_delay_s", "jitter")},
            **{k: result.metrics[k] for k in ("score", "fill_rate", "added_latency_s",
                                               "mean_attempts")},
        })
    results = {}
    for broker, rows in trials.items():
        rows.sort(key=lambda r: -r["score"])
        top = rows[0]
        params = schedule(top, settings.deadline_s)
        results[broker] = BrokerResult(
            broker, models[broker], params,
            simulate_orders(models[broker], params, settings),
            simulate_orders(models[broker], RetryParams(), settings), rows,
        )
    return results


def apply(results: dict[str, BrokerResult], handler: RetryHandler, store: ResultStore | None,
          run_id: str) -> None:
    """Give each broker its best schedule and record the hand-over."""
    for broker, result in results.items():
        handler.set_params(broker, result.best)
        if store is not None:
            store.record_applied(run_id, broker, result.best.model_dump(mode="json"),
                                 datetime.now(UTC).isoformat())
        log.info("{}: retry schedule {}", broker, result.best.model_dump())


def record(results: dict[str, BrokerResult], store: ResultStore, run_id: str) -> list[str]:
    """Write each broker's search (summary row and trial table); returns the table names."""
    tables = []
    for broker, r in results.items():
        tables.append(store.save_retry_run(run_id, broker, {
            "started_at": datetime.now(UTC).isoformat(),
            "model": r.model.model_dump_json(),
            "best_params": r.best.model_dump_json(),
            "fill_rate": r.outcome.fill_rate,
            "added_latency_s": r.outcome.added_latency_s,
            "score": r.outcome.score,
            "baseline": json.dumps(r.baseline.__dict__),
            "trials": len(r.trials),
        }, r.trials))
    return tables


def report(results: dict[str, BrokerResult], settings: RetrySearchSettings) -> str:
    """A table per broker: the model's headline numbers, baseline against the best schedule."""
    lines = []
    for broker, r in sorted(results.items()):
        m = r.model
        rate = np.average(m.failure_rate, weights=m.hour_weights)
        worst = int(np.argmax(m.failure_rate))
        lines += [
            f"{broker}: {m.calls:,} calls, failure rate {rate:.1%} (worst hour {worst:02d}h "
            f"{m.failure_rate[worst]:.1%}); persistence "
            + ", ".join(f"{t} {s:.2g}s" for t, s in zip(m.error_types, m.persistence_s,
                                                         strict=True)),
            f"  {'schedule':<12} {'base s':>7} {'mult':>5} {'max s':>6} {'retries':>7}"
            f" {'jitter':>6} {'filled<=' + format(settings.deadline_s, 'g') + 's':>12}"
            f" {'added s':>8} {'tries':>6} {'score':>7}",
        ]
        for name, params, outcome in (("default", RetryParams(), r.baseline),
                                      (f"best of {len(r.trials)}", r.best, r.outcome)):
            lines.append(
                f"  {name:<12} {params.base_delay_s:>7.3f} {params.multiplier:>5.2f}"
                f" {params.max_delay_s:>6.2f} {params.max_retries:>7} {params.jitter:>6.2f}"
                f" {outcome.fill_rate:>12.2%} {outcome.added_latency_s:>8.3f}"
                f" {outcome.mean_attempts:>6.2f} {outcome.score:>7.4f}"
            )
    return "\n".join(lines)


def synthesize_logs(
    folder: Path, broker: str, *, calls: int = 20_000, seed: int = 1,
    failure_rate: float = 0.03, bad_hours: dict[int, float] | None = None,
    persistence_s: dict[str, float] | None = None, mean_gap_s: float = 30.0,
    retry_gap_s: float = 1.0, start: datetime = datetime(2026, 1, 5, tzinfo=UTC),
) -> None:
    """Write a broker log drawn from the model's own form, for tests and demonstrations.

    Calls start ``mean_gap_s`` after the previous one ended on average, and ``retry_gap_s`` after
    a failure (a desk retries); a call fails with its hour's rate, or because an outage begun when
    an earlier failed call ended is still on (it lasts an exponential time with the error type's
    persistence). Records are stamped when the call ends, as the adapters write them.
    """
    rng = np.random.default_rng(seed)
    bad_hours = bad_hours or {}
    persistence_s = persistence_s or {"BrokerTimeoutError": 8.0, "RateLimitError": 2.0,
                                      "NetworkError": 1.0, "InvalidOrderError": 0.01}
    kinds = list(persistence_s)
    shares = np.array([0.45, 0.3, 0.2, 0.05][: len(kinds)])
    shares = shares / shares.sum()
    clock = [start]
    journal = BrokerLogger(folder, clock=lambda: clock[0])
    t = 0.0
    outage_end, outage_kind = -1.0, ""
    kind = ""
    for _ in range(calls):
        t += rng.exponential(retry_gap_s if kind else mean_gap_s)
        hour = (start + timedelta(seconds=t)).hour
        if t < outage_end:
            kind = outage_kind
        elif rng.random() < bad_hours.get(hour, failure_rate):
            kind = kinds[rng.choice(len(kinds), p=shares)]
        else:
            kind = ""
        typical = 2000.0 if "Timeout" in kind else 80.0 if kind else 60.0
        latency = float(np.exp(rng.normal(math.log(typical), 0.3)))
        t += latency / 1000.0
        clock[0] = start + timedelta(seconds=t)
        if kind:
            if t >= outage_end:
                outage_end, outage_kind = t + rng.exponential(persistence_s[kind]), kind
            journal.error(broker, "create_order", latency, getattr(errors, kind)("simulated"))
        else:
            journal.response(broker, "create_order", latency)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tuning.retry_search", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--address", help="Ray address (auto, host:port); default: local Ray")
    parser.add_argument("--logs", default=str(PROJECT_ROOT / "runs" / "report" / "brokers"),
                        help="folder of <broker>.jsonl logs")
    parser.add_argument("--brokers", help="comma-separated brokers (default: every log)")
    parser.add_argument("--demo", action="store_true",
                        help="first write two synthetic broker logs (paper_fast, paper_cheap) "
                             "into --logs, replacing those two")
    parser.add_argument("--deadline-s", type=float, default=30.0)
    parser.add_argument("--orders", type=int, default=50_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--latency-weight", type=float, default=0.1)
    parser.add_argument("--num-cpus", type=int, help="CPUs of the local Ray")
    parser.add_argument("--db", default=str(DEFAULT_DB), help="SQLite file for the results")
    parser.add_argument("--run-id", help="run id (letters, digits, _)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    from tuning.meta_agent import command_line_logging, connect

    args = parse_args(argv)
    command_line_logging()
    folder = Path(args.logs)
    if args.demo:
        for broker in ("paper_fast", "paper_cheap"):
            (folder / f"{broker}.jsonl").unlink(missing_ok=True)
        synthesize_logs(folder, "paper_fast", seed=1, failure_rate=0.02, bad_hours={14: 0.2})
        synthesize_logs(folder, "paper_cheap", seed=2, failure_rate=0.06,
                        persistence_s={"BrokerTimeoutError": 20.0, "RateLimitError": 5.0,
                                       "NetworkError": 2.0, "InvalidOrderError": 0.01})
    records = list(read_logs(folder))
    brokers = args.brokers.split(",") if args.brokers else sorted({r.broker for r in records})
    if not brokers:
        print(f"error: no broker logs in {folder} (run with --demo for synthetic ones)")
        return 2
    models = {b: fit_failure_model(records, b) for b in brokers}
    settings = RetrySearchSettings(deadline_s=args.deadline_s, orders=args.orders,
                                   samples=args.samples, latency_weight=args.latency_weight)
    run_id = args.run_id or f"{datetime.now(UTC):%Y%m%d_%H%M%S}_{uuid.uuid4().hex[:6]}"
    connect(args.address, "fluxtrade", args.num_cpus)
    results = search(models, settings, run_id)
    store = ResultStore(args.db)
    tables = record(results, store, run_id)
    handler = RetryHandler()
    apply(results, handler, store, run_id)
    print(report(results, settings))
    print(f"applied to the RetryHandler and recorded: tables {', '.join(tables)}, retry_applied")
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
