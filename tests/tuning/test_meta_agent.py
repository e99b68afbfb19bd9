"""The meta-agent on Ray Tune (small grid, shared local Ray): same numbers as one process."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from actors.strategy.library import Momentum, SMACrossover
from tuning.backtest import STAT_NAMES, BacktestSettings
from tuning.candidates import generate
from tuning.data import load_symbol
from tuning.meta_agent import MetaAgentManager, MetaAgentSettings, TuneProgress
from tuning.results import ResultStore
from tuning.sweep import evaluate_candidates
from tuning.walkforward import SelectionPolicy, select, walk_forward, windows_of

COSTS = BacktestSettings(fee_bps=10, slippage_bps=2, weight_step=0.1)
POLICY = SelectionPolicy(min_trades=5)


def test_tune_trials_reproduce_the_one_process_evaluation_and_persist_it(
    ray_session, tmp_path
) -> None:
    candidates = generate(16, classes=[SMACrossover, Momentum], max_warmup=200)
    series = [load_symbol("ETH/BTC").slice(0, 3000), load_symbol("LTC/BTC").slice(0, 3000)]
    settings = MetaAgentSettings(
        files={c.symbol: "unused" for c in series}, batch_size=7, max_warmup=200,
        backtest=COSTS, policy=POLICY,
    )
    lines: list[str] = []
    store = ResultStore(tmp_path / "tuning.sqlite")
    run = MetaAgentManager(settings, store, out=lines.append).evaluate(
        "test_meta", candidates, series
    )

    windows = [windows_of(walk_forward(len(c), 4, 0.7, start=200)) for c in series]
    parts = [evaluate_candidates(candidates, c, COSTS, w) for c, w in zip(series, windows,
                                                                            strict=True)]
    stats = {n: np.concatenate([p[n] for p in parts], axis=1) for n in STAT_NAMES}
    expected = select(stats, 4, POLICY, 300)
    assert len(candidates) == 30 and run.trials == math.ceil(30 / 7)
    np.testing.assert_array_equal(run.selection.train["sharpe"], expected.train["sharpe"])
    np.testing.assert_array_equal(run.selection.validation["trades"],
                                  expected.validation["trades"])
    assert run.selection.chosen == expected.chosen
    assert [line.split(" |")[0] for line in lines] == [f"trials {i}/5" for i in range(1, 6)]
    assert "candidates 30/30" in lines[-1] and "ETA 0.0 s" in lines[-1]
    best = float(np.max(expected.train["sharpe"][expected.eligible]))
    assert f"best so far (train sharpe) {best:.2f} " in lines[-1]

    rows = store.query("SELECT rank, config_hash, params, selected, train_sharpe, val_sharpe "
                       "FROM meta_test_meta ORDER BY rank")
    assert len(rows) == 30 and run.table == "meta_test_meta"
    by_hash = {c.config_hash(): c for c in candidates}
    assert {r[1] for r in rows} == set(by_hash)
    top = rows[0]
    assert json.loads(top[2]) == by_hash[top[1]].params and top[3] == 1
    assert top[4] == pytest.approx(expected.train["sharpe"][expected.chosen])
    [(accepted, reason, chosen_hash)] = store.query(
        "SELECT accepted, reason, chosen_hash FROM meta_runs WHERE run_id = 'test_meta'"
    )
    assert (bool(accepted), reason, chosen_hash) == (expected.accepted, expected.reason, top[1])
    assert "rank  config hash" in run.report() and top[1] in run.report()


def test_progress_reports_trials_best_so_far_and_time_left() -> None:
    lines: list[str] = []
    progress = TuneProgress(trials=4, candidates=40, metric="sharpe", out=lines.append)
    progress.update({"count": 10, "best_train": 1.5, "best_label": "A"})
    progress.update({"count": 10, "best_train": None, "best_label": "B"})
    progress.update({"count": 10, "best_train": 0.5, "best_label": "C"})
    assert lines[0].startswith("trials 1/4 | candidates 10/40 | best so far (train sharpe) 1.50 A")
    assert "best so far (train sharpe) 1.50 A" in lines[2] and "ETA" in lines[2]
