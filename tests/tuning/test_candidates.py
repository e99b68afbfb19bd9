"""Candidate grids come from each strategy class's own parameter ranges."""

from __future__ import annotations

from collections import Counter
from typing import ClassVar

import numpy as np
from pydantic import Field

from actors.strategy.library import OHLCV, Momentum, SMACrossover, Strategy, StrategyParams
from tuning.candidates import Candidate, axis, class_path, generate, grid_for, strategy_classes


class ToyParams(StrategyParams):
    window: int = Field(10, ge=2)
    level: float = Field(0.5, gt=0.0)


class Toy(Strategy):
    """A strategy the tuner has never heard of."""

    style = "swing"
    regimes = frozenset({"ranging"})
    Params = ToyParams
    param_ranges: ClassVar[dict[str, tuple[float, float]]] = {
        "window": (2, 64), "level": (0.25, 0.95),
    }

    @property
    def warmup(self) -> int:
        return self.params.window

    def weights(self, bars: OHLCV, flux: float = 0.0) -> np.ndarray:
        return np.zeros(len(bars))


def test_the_library_yields_over_a_thousand_candidates_across_its_classes() -> None:
    candidates = generate(600, max_warmup=500)
    per_class = Counter(c.class_name for c in candidates)
    assert len(candidates) >= 1000
    assert per_class["SMACrossover"] == 594 and per_class["Momentum"] == 625
    assert set(per_class) == {cls.__name__ for cls in strategy_classes()}
    assert len({c.config_hash() for c in candidates}) == len(candidates)


def test_a_new_strategy_class_gets_a_grid_from_its_ranges() -> None:
    grid = grid_for(Toy, per_class=64)
    assert len(grid) == 64
    assert sorted({c.params["window"] for c in grid}) == [2, 3, 5, 9, 14, 24, 39, 64]
    assert sorted({c.params["level"] for c in grid}) == [0.25, 0.35, 0.45, 0.55, 0.65, 0.75,
                                                         0.85, 0.95]
    assert generate(64, classes=[Toy, Momentum])[0].class_path == class_path(Toy)


def test_invalid_combinations_and_long_warmups_are_dropped() -> None:
    grid = grid_for(SMACrossover, per_class=125, max_warmup=100)
    assert all(c.params["fast"] < c.params["slow"] <= 100 for c in grid)
    assert len(grid) == 70


def test_axis_is_geometric_for_wide_ranges_and_linear_for_narrow_ones() -> None:
    assert axis(int, 3, 48, 5) == [3, 6, 12, 24, 48]
    assert axis(float, 0.25, 3.0, 3) == [0.25, 0.866025, 3.0]
    assert axis(float, 0.0, 1.0, 3) == [0.0, 0.5, 1.0]


def test_config_hash_depends_on_class_and_params_only() -> None:
    a = Candidate(class_path=class_path(SMACrossover), params={"fast": 5, "slow": 20})
    b = Candidate(class_path=class_path(SMACrossover), params={"slow": 20, "fast": 5})
    c = Candidate(class_path=class_path(SMACrossover), params={"fast": 5, "slow": 21})
    assert a.config_hash() == b.config_hash() != c.config_hash()
    spec = a.strategy_config()
    assert spec.class_path == "actors.strategy.library:SMACrossover"
    assert spec.params == {"fast": 5, "slow": 20}
    assert a.build().warmup == 20
