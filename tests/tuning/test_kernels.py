"""The sweep's kernels against the live strategy code, and the sweep against single backtests."""

from __future__ import annotations

import numpy as np
import pytest

from actors.strategy.library import Ensemble, ForecasterStrategy, Momentum, SMACrossover
from tuning.backtest import BacktestSettings, backtest, combine
from tuning.candidates import Candidate, class_path
from tuning.data import load_symbol
from tuning.kernels import KERNELS, GenericKernel, kernel_for
from tuning.metrics import METRIC_NAMES
from tuning.sweep import evaluate_candidates

PARAMS = {
    SMACrossover: [
        {"fast": 5, "slow": 20, "full_gap": 0.005}, {"fast": 5, "slow": 20, "full_gap": 1e-9},
        {"fast": 12, "slow": 48, "full_gap": 0.002}, {"fast": 30, "slow": 200, "full_gap": 0.02},
    ],
    Momentum: [
        {"lookback": 6, "threshold": 0.25}, {"lookback": 6, "threshold": 2.0},
        {"lookback": 36, "threshold": 1.0}, {"lookback": 199, "threshold": 3.0},
    ],
    ForecasterStrategy: [
        {"threshold": 0.0, "full_edge": 0.05}, {"threshold": 0.05, "full_edge": 0.3},
    ],
    Ensemble: [
        {"ml_weight": 0.0, "agreement_bonus": 0.5}, {"ml_weight": 0.7, "agreement_bonus": 0.0,
                                                     "ml_threshold": 0.05, "ml_full_edge": 0.2},
    ],
}


def test_every_kernel_is_listed_here() -> None:
    assert set(KERNELS) == set(PARAMS)


@pytest.mark.parametrize("symbol", ["ETH/BTC", "BTC/USDT"])
@pytest.mark.parametrize("cls", list(PARAMS), ids=lambda c: c.__name__)
def test_kernel_rows_equal_the_live_strategy_weights(cls: type, symbol: str) -> None:
    bars = load_symbol(symbol).bars
    params = [cls.Params.model_validate(p) for p in PARAMS[cls]]
    rows = kernel_for(cls, bars).rows(params)
    for row, p in zip(rows, PARAMS[cls], strict=True):
        live = cls("live", p).weights(bars, 0.0)
        np.testing.assert_allclose(row, live, rtol=0, atol=1e-12)
    assert np.abs(rows).max() > 0.1


def test_generic_kernel_is_the_live_code_for_classes_without_a_kernel() -> None:
    from actors.strategy.library import DonchianBreakout

    bars = load_symbol("ETH/BTC").bars
    assert isinstance(kernel_for(DonchianBreakout, bars), GenericKernel)
    p = {"channel": 30, "exit_channel": 10}
    row = kernel_for(DonchianBreakout, bars).rows([DonchianBreakout.Params.model_validate(p)])[0]
    np.testing.assert_array_equal(row, DonchianBreakout("d", p).weights(bars, 0.0))


@pytest.mark.parametrize("allow_short", [False, True])
def test_sweep_metrics_equal_single_backtests_of_the_live_strategies(allow_short: bool) -> None:
    candles = load_symbol("ETH/BTC")
    costs = BacktestSettings(fee_bps=10, slippage_bps=2, weight_step=0.1, allow_short=allow_short)
    candidates = [
        Candidate(class_path=class_path(cls), params=p)
        for cls in (SMACrossover, Momentum) for p in PARAMS[cls]
    ]
    swept = combine(evaluate_candidates(candidates, candles, costs), candles.bar_seconds)
    for i, candidate in enumerate(candidates):
        single = backtest(candidate.build(), candles, costs).metrics.as_dict()
        for name in (*METRIC_NAMES, "final_equity"):
            assert swept[name][i] == pytest.approx(single[name], rel=1e-12, abs=1e-12), name
    assert swept["trades"].max() > 20
