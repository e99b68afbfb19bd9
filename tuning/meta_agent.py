"""The meta-agent manager: which strategy agent trades, chosen by walk-forward backtests on Tune.

Candidates are every strategy class of the library times a grid of its parameters
(:mod:`tuning.candidates`, over a thousand). Ray Tune runs the evaluation across the cluster's
CPUs: each trial backtests a *batch* of candidates (seconds of work, so Tune's per-trial overhead
is amortised) on every symbol, and the price series are put in the object store once
(``tune.with_parameters``). Selection is walk-forward (:mod:`tuning.walkforward`): ranked on the
training windows, judged on the validation windows after them; a candidate that does not hold up
out of sample is refused, and the engine keeps what it trades.

Each run is written to SQLite (:mod:`tuning.results`: a table per run, a row per candidate with
its config hash) and printed as a ranked table. An accepted choice becomes a
:class:`~cycle.messages.StrategySwap` that the coordinator applies between cycles.

    python -m tuning.meta_agent [--address auto] [--config FILE] [--metric sharpe] [--apply]
                                [--watch]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from loguru import logger
from pydantic import BaseModel, ConfigDict, PositiveInt

from cycle.config import PROJECT_ROOT, FluxtradeConfig, load_config
from cycle.messages import StrategySwap
from tuning.backtest import STAT_NAMES, BacktestSettings, FloatArray, Window, combine
from tuning.candidates import Candidate, generate
from tuning.data import Candles, load_candles
from tuning.metrics import METRIC_NAMES
from tuning.results import DEFAULT_DB, ResultStore
from tuning.sweep import evaluate_candidates
from tuning.walkforward import Selection, SelectionPolicy, select, walk_forward, windows_of

log = logger.bind(agent_id="meta_agent")

DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "default.yaml"
TRIALS_PER_CPU = 4
"""Batches per CPU: enough for Tune to balance uneven batches, few enough to amortise each
(bench/tune_efficiency.py: 0.79 parallel efficiency with 4, 0.74-0.75 with 8)."""


class MetaAgentSettings(BaseModel):
    """What one meta-agent run evaluates and how it judges.

    Attributes:
        files: Price file per symbol; every symbol is backtested and the windows are pooled.
        per_class: Grid points per strategy class (see :func:`tuning.candidates.generate`).
        batch_size: Candidates per Tune trial (default: about four trials per CPU).
        max_warmup: Longest warm-up a candidate may need: the live engine's ``history_bars``.
        backtest: Costs and rules of the backtests.
        policy: Walk-forward folds, metric and acceptance thresholds.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    files: dict[str, str]
    per_class: PositiveInt = 600
    batch_size: PositiveInt | None = None
    max_warmup: PositiveInt = 500
    backtest: BacktestSettings = BacktestSettings()
    policy: SelectionPolicy = SelectionPolicy()

    @classmethod
    def from_config(cls, config: FluxtradeConfig, **overrides: Any) -> MetaAgentSettings:
        """Settings that mirror the desk: its symbols, its first broker's costs, its limits."""
        broker = min(config.brokers, key=lambda b: b.priority)
        values: dict[str, Any] = {
            "files": {s: str(config.data.path_of(s)) for s in config.symbols},
            "max_warmup": config.data.history_bars,
            "backtest": BacktestSettings(
                fee_bps=broker.taker_fee * 1e4,
                slippage_bps=broker.slippage_bps,
                allow_short=config.risk.allow_short,
                weight_step=config.risk.rebalance_threshold,
            ),
        }
        values.update(overrides)
        return cls(**values)


def evaluate_batch(
    config: dict[str, Any],
    *,
    series: Sequence[Candles],
    windows: Sequence[Sequence[Window]],
    candidates: Sequence[Candidate],
    batch_size: int,
    settings: BacktestSettings,
    policy: SelectionPolicy,
) -> None:
    """One Tune trial: backtest candidates ``[first, first + batch_size)`` on every series.

    Reports the window statistics of the batch, its best training score (the progress display's
    "best so far") and the CPU seconds it took.
    """
    from ray import tune

    cpu_started = time.process_time()
    first = config["first"]
    batch = candidates[first : first + batch_size]
    count = len(batch)
    parts = [
        evaluate_candidates(batch, c, settings, w) for c, w in zip(series, windows, strict=True)
    ]
    stats = {name: np.concatenate([p[name] for p in parts], axis=1) for name in STAT_NAMES}
    train = combine(stats, series[0].bar_seconds, range(0, stats["bars"].shape[1], 2))
    score = np.where(train["trades"] >= policy.min_trades, train[policy.metric], -np.inf)
    best = int(np.argmax(np.nan_to_num(score, nan=-np.inf)))
    tune.report({
        "best_train": float(score[best]) if np.isfinite(score[best]) else None,
        "best_label": batch[best].label(),
        "first": first,
        "count": count,
        "cpu_s": time.process_time() - cpu_started,
        "stats": {name: value.tolist() for name, value in stats.items()},
    })


class TuneProgress:
    """Progress of a run as Tune reports trials: trials done, best so far, time left.

    Built lazily as a ``ray.tune.Callback`` subclass (see :func:`progress_callback`) so that this
    module imports without Ray.
    """

    def __init__(self, trials: int, candidates: int, metric: str,
                 out: Callable[[str], None] = print) -> None:
        self.trials, self.candidates, self.metric, self.out = trials, candidates, metric, out
        self.started = time.monotonic()
        self.done = 0
        self.evaluated = 0
        self.best: tuple[float, str] | None = None

    def update(self, result: dict[str, Any]) -> str:
        """Count one finished trial and return (and print) the progress line."""
        self.done += 1
        self.evaluated += int(result["count"])
        score = result.get("best_train")
        if score is not None and (self.best is None or score > self.best[0]):
            self.best = (float(score), str(result["best_label"]))
        elapsed = time.monotonic() - self.started
        left = elapsed / self.done * (self.trials - self.done)
        best = (f"{self.best[0]:.2f} {self.best[1]}" if self.best else "none yet")
        line = (
            f"trials {self.done}/{self.trials} | candidates {self.evaluated:,}/{self.candidates:,}"
            f" | best so far (train {self.metric}) {best} | {elapsed:.1f} s elapsed"
            f" | ETA {left:.1f} s"
        )
        self.out(line)
        return line


def progress_callback(progress: TuneProgress) -> Any:
    """A ``ray.tune.Callback`` that feeds each trial result to ``progress``."""
    from ray import tune

    class _Callback(tune.Callback):
        def on_trial_result(self, iteration: int, trials: list, trial: Any,
                            result: dict[str, Any], **info: Any) -> None:
            progress.update(result)

    return _Callback()


def run_trials(
    candidates: Sequence[Candidate],
    series: Sequence[Candles],
    windows: Sequence[Sequence[Window]],
    settings: MetaAgentSettings,
    run_id: str,
    out: Callable[[str], None] = print,
) -> tuple[dict[str, FloatArray], int, float]:
    """Evaluate every candidate on Ray Tune.

    Returns:
        The window statistics, the number of trials and the CPU seconds the trials used.

    Ray must be initialised (locally or against a cluster). The price series and the candidate
    list travel once through the object store; each trial is a slice of the candidate list.
    """
    import ray
    from ray import tune

    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    size = settings.batch_size or max(1, math.ceil(len(candidates) / (TRIALS_PER_CPU * cpus)))
    slices = [
        (first, min(size, len(candidates) - first)) for first in range(0, len(candidates), size)
    ]
    progress = TuneProgress(len(slices), len(candidates), settings.policy.metric, out)
    trainable = tune.with_resources(
        tune.with_parameters(
            evaluate_batch, series=list(series), windows=[list(w) for w in windows],
            candidates=list(candidates), batch_size=size, settings=settings.backtest,
            policy=settings.policy,
        ),
        {"cpu": 1},
    )
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # The run's results go to tuning.results; Tune's own JSON/CSV/TensorBoard copies of every
    # trial's statistics would only cost the driver CPU the trials need.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    tuner = tune.Tuner(
        trainable,
        param_space={"first": tune.grid_search([first for first, _ in slices])},
        tune_config=tune.TuneConfig(reuse_actors=True),
        run_config=tune.RunConfig(
            name=run_id,
            storage_path=str(Path(tempfile.gettempdir()) / "fluxtrade-tune"),
            verbose=0,
            callbacks=[progress_callback(progress)],
        ),
    )
    grid = tuner.fit()
    columns = sum(len(w) for w in windows)
    stats = {name: np.full((len(candidates), columns), np.nan) for name in STAT_NAMES}
    cpu = 0.0
    for result in grid:
        if result.error is not None:
            raise RuntimeError(f"trial {result.config} failed: {result.error}") from result.error
        first, count = result.metrics["first"], result.metrics["count"]
        cpu += result.metrics["cpu_s"]
        for name in STAT_NAMES:
            stats[name][first : first + count] = np.asarray(result.metrics["stats"][name])
    return stats, len(slices), cpu


@dataclass(frozen=True)
class MetaRun:
    """One finished meta-agent run."""

    run_id: str
    candidates: list[Candidate]
    selection: Selection
    symbols: list[str]
    trials: int
    wall_s: float
    table: str = ""

    @property
    def chosen(self) -> Candidate | None:
        index = self.selection.chosen
        return None if index is None else self.candidates[index]

    def swap(self) -> StrategySwap | None:
        """The swap message for the chosen candidate, or None when it was refused."""
        chosen, sel = self.chosen, self.selection
        if chosen is None or not sel.accepted or sel.chosen is None:
            return None
        return StrategySwap(
            run_id=self.run_id,
            config_hash=chosen.config_hash(),
            strategy=chosen.strategy_config(f"meta_{chosen.config_hash()[:8]}"),
            metric=sel.policy.metric,
            train_score=sel.score(sel.chosen, "train"),
            validation_score=sel.score(sel.chosen, "validation"),
            confidence=float(sel.validation["confidence"][sel.chosen]),
            reason=sel.reason,
        )

    def rows(self) -> list[dict[str, Any]]:
        """One row per candidate for the result table, in rank order."""
        sel = self.selection
        rows = []
        for rank, index in enumerate(sel.ranking, start=1):
            candidate = self.candidates[index]
            row: dict[str, Any] = {
                "rank": rank,
                "config_hash": candidate.config_hash(),
                "class_path": candidate.class_path,
                "params": json.dumps(candidate.params, sort_keys=True),
                "eligible": int(sel.eligible[index]),
                "selected": int(index == sel.chosen),
            }
            for part, numbers in (("train", sel.train), ("val", sel.validation)):
                for name in (*METRIC_NAMES, "confidence"):
                    row[f"{part}_{name}"] = float(numbers[name][index])
            rows.append(row)
        return rows

    def report(self, top: int = 15) -> str:
        """The ranked table and the decision, as printed by the command."""
        sel, metric = self.selection, self.selection.policy.metric
        lines = [
            f"meta-agent run {self.run_id}: {len(self.candidates):,} candidates x "
            f"{len(self.symbols)} symbols, {self.trials} Tune trials, {self.wall_s:.1f} s",
            f"ranked by training {metric} (pooled over {sel.policy.folds} walk-forward folds per "
            f"symbol); validation windows were never used for ranking",
            "",
            f"{'rank':>4}  {'config hash':<16}  {'candidate':<58} {'train':>8} {'valid':>8}"
            f" {'trades':>6} {'conf':>5} {'val ret':>8}",
        ]
        for rank, index in enumerate(sel.ranking[:top], start=1):
            label = self.candidates[index].label()
            label = label if len(label) <= 58 else label[:55] + "..."
            lines.append(
                f"{rank:>4}  {self.candidates[index].config_hash():<16}  {label:<58}"
                f" {sel.train[metric][index]:>8.2f} {sel.validation[metric][index]:>8.2f}"
                f" {int(sel.validation['trades'][index]):>6} "
                f"{sel.validation['confidence'][index]:>5.2f}"
                f" {sel.validation['total_return'][index]:>+8.2%}"
            )
        eligible = sel.eligible
        top10 = sel.ranking[: min(10, int(eligible.sum()))]
        lines += [
            "",
            f"validation {metric}: top 10 by training {np.mean(sel.validation[metric][top10]):.2f}"
            f" | median of all eligible {np.median(sel.validation[metric][eligible]):.2f}"
            f" | rank correlation train/validation {sel.rank_correlation:+.2f}"
            if top10.size else "no eligible candidate",
        ]
        chosen = self.chosen
        verdict = "ACCEPTED" if sel.accepted else "REFUSED"
        lines.append(
            f"chosen: {chosen.label() if chosen else 'none'} -> {verdict}: {sel.reason}"
        )
        if self.table:
            lines.append(f"results: table {self.table}")
        return "\n".join(lines)


class MetaAgentManager:
    """Runs the selection, records it, and decides whether the engine swaps strategy."""

    def __init__(
        self,
        settings: MetaAgentSettings,
        store: ResultStore | None = None,
        out: Callable[[str], None] = print,
    ) -> None:
        self.settings = settings
        self.store = store
        self.out = out

    def load(self) -> list[Candles]:
        series = [load_candles(path, symbol) for symbol, path in self.settings.files.items()]
        if len({c.bar_seconds for c in series}) != 1:
            raise ValueError("every symbol must have the same bar interval")
        return series

    def evaluate(
        self, run_id: str | None = None, candidates: Sequence[Candidate] | None = None,
        series: Sequence[Candles] | None = None,
    ) -> MetaRun:
        """Generate (or take) candidates, run them on Tune, select, persist; needs Ray up."""
        started = time.monotonic()
        run_id = run_id or f"{datetime.now(UTC):%Y%m%d_%H%M%S}_{uuid.uuid4().hex[:6]}"
        candidates = list(candidates) if candidates is not None else generate(
            self.settings.per_class, max_warmup=self.settings.max_warmup
        )
        series = list(series) if series is not None else self.load()
        policy = self.settings.policy
        start = self.settings.max_warmup
        windows = [
            windows_of(walk_forward(len(c), policy.folds, policy.train_fraction, start=start))
            for c in series
        ]
        stats, trials, _ = run_trials(
            candidates, series, windows, self.settings, run_id, self.out
        )
        selection = select(stats, policy.folds, policy, series[0].bar_seconds)
        run = MetaRun(run_id, candidates, selection, [c.symbol for c in series], trials,
                      time.monotonic() - started)
        if self.store is not None:
            table = self.store.save_meta_run(self._summary(run, started), run.rows())
            run = MetaRun(**{**run.__dict__, "table": table})
        return run

    def watch(
        self,
        status: Callable[[], dict[str, Any]],
        swap: Callable[[StrategySwap], None],
        *,
        poll_s: float = 5.0,
        top: int = 15,
        sleep: Callable[[float], None] = time.sleep,
    ) -> int:
        """Re-evaluate whenever the desk says so, and swap in an accepted choice.

        The coordinator's trigger (every N cycles, live Sharpe below a threshold, or a request
        from the trainer) shows in its status as ``reevaluation_due``; each distinct reason is
        handled once. Returns the number of evaluations when the desk's data is exhausted.
        """
        handled, runs = "", 0
        while True:
            state = status()
            due = state.get("reevaluation_due", "")
            if due and due != handled:
                handled = due
                self.out(f"re-evaluating at the desk's request ({due})")
                run = self.evaluate()
                runs += 1
                self.out(run.report(top))
                choice = run.swap()
                if choice is not None:
                    swap(choice)
                    self.out(f"swap of {choice.strategy.name} sent; applied before next cycle")
            if state.get("exhausted"):
                return runs
            sleep(poll_s)

    def _summary(self, run: MetaRun, started: float) -> dict[str, Any]:
        sel, chosen = run.selection, run.chosen
        index = sel.chosen
        return {
            "run_id": run.run_id,
            "started_at": datetime.fromtimestamp(
                time.time() - (time.monotonic() - started), UTC).isoformat(),
            "finished_at": datetime.now(UTC).isoformat(),
            "symbols": ",".join(run.symbols),
            "candidates": len(run.candidates),
            "settings": self.settings.model_dump_json(),
            "metric": sel.policy.metric,
            "chosen_hash": chosen.config_hash() if chosen else None,
            "chosen": chosen.label() if chosen else None,
            "accepted": int(sel.accepted),
            "reason": sel.reason,
            "train_score": sel.score(index, "train") if index is not None else None,
            "validation_score": sel.score(index, "validation") if index is not None else None,
            "confidence": float(sel.validation["confidence"][index]) if index is not None else None,
            "rank_correlation": sel.rank_correlation,
            "wall_s": run.wall_s,
        }


def connect(address: str | None, namespace: str, num_cpus: int | None) -> None:
    """A local Ray (no address) or an existing cluster (``auto`` or ``host:port``)."""
    import ray

    project = str(PROJECT_ROOT)
    path = os.pathsep.join(filter(None, [project, os.environ.get("PYTHONPATH")]))
    runtime_env = {"env_vars": {"PYTHONPATH": path}}
    if address is None:
        ray.init(address="local", namespace=namespace, num_cpus=num_cpus,
                 include_dashboard=False, runtime_env=runtime_env, log_to_driver=False)
    else:
        ray.init(address=address, namespace=namespace, runtime_env=runtime_env,
                 log_to_driver=False)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tuning.meta_agent", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--address", help="Ray address (auto, host:port); default: local Ray")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="desk config (YAML)")
    parser.add_argument("--symbols", help="comma-separated symbols (default: the config's)")
    parser.add_argument("--per-class", type=int, default=600, help="grid points per class")
    parser.add_argument("--batch-size", type=int, help="candidates per Tune trial")
    parser.add_argument("--metric", default="sharpe",
                        choices=["sharpe", "sortino", "calmar", "win_rate"])
    parser.add_argument("--threshold", type=float, help="validation bar (default per metric)")
    parser.add_argument("--min-trades", type=int, default=10)
    parser.add_argument("--min-confidence", type=float, default=0.95)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--train-fraction", type=float, default=0.7)
    parser.add_argument("--num-cpus", type=int, help="CPUs of the local Ray")
    parser.add_argument("--db", default=str(DEFAULT_DB), help="SQLite file for the results")
    parser.add_argument("--run-id", help="run id (letters, digits, _)")
    parser.add_argument("--top", type=int, default=15, help="rows of the ranked table")
    parser.add_argument("--apply", action="store_true",
                        help="send an accepted choice to the running desk's coordinator")
    parser.add_argument("--watch", action="store_true",
                        help="then keep re-evaluating when the desk's coordinator asks (with "
                             "--address and --apply)")
    return parser.parse_args(argv)


def command_line_logging() -> None:
    """Warnings and worse on stderr (``FLUXTRADE_LOG_LEVEL`` overrides): the searches print
    their own progress and tables, which debug lines would bury."""
    logger.remove()
    logger.add(sys.stderr, level=os.environ.get("FLUXTRADE_LOG_LEVEL", "WARNING"))
    logging.getLogger("ray.tune").setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command_line_logging()
    config = load_config(args.config)
    if args.symbols:
        config = config.with_symbols(args.symbols.split(","))
    policy = SelectionPolicy(
        metric=args.metric, threshold=args.threshold, min_trades=args.min_trades,
        min_confidence=args.min_confidence, folds=args.folds, train_fraction=args.train_fraction,
    )
    settings = MetaAgentSettings.from_config(
        config, per_class=args.per_class, batch_size=args.batch_size, policy=policy
    )
    connect(args.address, config.ray.namespace, args.num_cpus)
    store = ResultStore(args.db)
    manager = MetaAgentManager(settings, store)
    run = manager.evaluate(args.run_id)
    print(run.report(args.top))
    swap = run.swap()
    if args.apply or args.watch:
        import ray

        coordinator = ray.get_actor("coordinator", namespace=config.ray.namespace)

        def send(choice: StrategySwap) -> None:
            ray.get(coordinator.request_swap.remote(choice))

        if args.apply and swap is not None:
            send(swap)
            print(f"swap of {swap.strategy.name} sent to the coordinator; applied before the "
                  "next cycle")
        if args.watch:
            manager.watch(lambda: ray.get(coordinator.status.remote()),
                          send if args.apply else lambda choice: None, top=args.top)
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
