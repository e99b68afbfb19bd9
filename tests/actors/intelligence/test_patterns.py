"""Tests for actors.intelligence.patterns."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings

from actors.intelligence import patterns as pat
from tests.actors.intelligence.test_indicators import (
    REAL_DATA,
    Bars,
    assert_nan_equal,
    bars_with_changed_future,
    load_bars,
)


def _bars(*rows: tuple[float, float, float, float]) -> tuple[np.ndarray, ...]:
    """(open, high, low, close) rows -> four column arrays."""
    o, h, lo, c = (np.array(col, dtype=np.float64) for col in zip(*rows, strict=True))
    return o, h, lo, c


def test_doji_needs_a_tiny_body_and_a_real_range() -> None:
    o, h, lo, c = _bars(
        (10.0, 11.0, 9.0, 10.1),  # body 0.1 of range 2: doji
        (10.0, 11.0, 9.0, 10.5),  # body 0.5 of 2: not
        (10.0, 10.0, 10.0, 10.0),  # no range: nothing traded, not a doji
    )
    assert pat.doji(o, h, lo, c).tolist() == [True, False, False]


def test_hammer_and_shooting_star_are_mirror_shapes() -> None:
    o, h, lo, c = _bars(
        (10.0, 10.6, 8.0, 10.5),  # lower shadow 2.0 >= 2 * body 0.5, upper 0.1 of 2.6: hammer
        (10.5, 13.0, 9.9, 10.0),  # upper shadow 2.5 >= 2 * 0.5, lower 0.1: shooting star
        (10.0, 11.0, 9.0, 10.9),  # large body: neither
    )
    assert pat.hammer(o, h, lo, c).tolist() == [True, False, False]
    assert pat.shooting_star(o, h, lo, c).tolist() == [False, True, False]
    # Flipping prices upside down turns each hammer into a shooting star.
    assert_nan_equal(pat.shooting_star(-o, -lo, -h, -c), pat.hammer(o, h, lo, c))


def test_engulfing_patterns() -> None:
    o, h, lo, c = _bars(
        (10.0, 10.2, 9.4, 9.5),  # down bar
        (9.4, 10.4, 9.3, 10.3),  # up bar engulfing it: bullish engulfing
        (10.4, 10.5, 9.1, 9.2),  # down bar engulfing the up bar: bearish engulfing
        (9.2, 9.4, 9.0, 9.3),  # small up bar: nothing
    )
    assert pat.bullish_engulfing(o, h, lo, c).tolist() == [False, True, False, False]
    assert pat.bearish_engulfing(o, h, lo, c).tolist() == [False, False, True, False]


def test_equal_bodies_do_not_engulf() -> None:
    o, h, lo, c = _bars((10.0, 10.1, 8.9, 9.0), (9.0, 10.1, 8.9, 10.0))
    assert not pat.bullish_engulfing(o, h, lo, c).any()


def test_inside_bar() -> None:
    high = np.array([12.0, 11.5, 11.5, 13.0])
    low = np.array([9.0, 9.5, 9.5, 8.0])
    # Bar 2 equals bar 1's range (not strictly inside), bar 3 is an outside bar.
    assert pat.inside_bar(high, low).tolist() == [False, True, False, False]


def test_candlestick_patterns_bundles_every_mask() -> None:
    bars = load_bars(REAL_DATA[0])
    found = pat.candlestick_patterns(bars["open"], bars["high"], bars["low"], bars["close"])
    assert set(found) == {
        "doji",
        "hammer",
        "shooting_star",
        "bullish_engulfing",
        "bearish_engulfing",
        "inside_bar",
    }
    for name, mask in found.items():
        assert mask.dtype == np.bool_ and mask.shape == bars["close"].shape
        assert 0 < mask.sum() < mask.size, name  # real data has some, but not everywhere
    assert_nan_equal(found["inside_bar"], pat.inside_bar(bars["high"], bars["low"]))
    assert not (found["bullish_engulfing"] & found["bearish_engulfing"]).any()


def test_breakout_uses_the_channel_before_the_bar() -> None:
    high = np.array([10.0, 11.0, 10.5, 10.8, 11.5, 10.0, 9.0])
    low = np.array([9.0, 9.5, 9.8, 9.9, 10.2, 9.1, 8.5])
    close = np.array([9.5, 10.8, 10.0, 10.5, 11.2, 9.9, 8.8])
    # n=3, prior channel at t=4 is bars 1..3: high 11.0 -> 11.2 breaks up.
    # t=5: 9.9 stays inside bars 2..4 (9.8 .. 11.5), although bar 5's own low is 9.1.
    # t=6: prior lows of bars 3..5 = min(9.9, 10.2, 9.1) = 9.1 -> 8.8 breaks down.
    got = pat.breakout(high, low, close, 3)
    assert got.dtype == np.int8
    assert got.tolist() == [0, 0, 0, 0, 1, 0, -1]


def test_breakout_volume_confirmation_filters_thin_moves() -> None:
    high = np.array([10.0, 10.0, 10.0, 11.0, 10.0, 10.0, 12.0])
    low = np.array([9.0, 9.0, 9.0, 9.5, 9.5, 9.5, 10.0])
    close = np.array([9.5, 9.5, 9.5, 10.5, 9.8, 9.8, 11.5])
    volume = np.array([100.0, 100.0, 100.0, 120.0, 100.0, 100.0, 300.0])
    assert pat.breakout(high, low, close, 3).tolist() == [0, 0, 0, 1, 0, 0, 1]
    # t=3: 120 < 1.5 * mean(100, 100, 100); t=6: 300 >= 1.5 * mean(120, 100, 100).
    confirmed = pat.breakout(high, low, close, 3, volume=volume, volume_factor=1.5)
    assert confirmed.tolist() == [0, 0, 0, 0, 0, 0, 1]


def test_breakout_rejects_misaligned_volume() -> None:
    with pytest.raises(ValueError, match="equal lengths"):
        pat.breakout([1.0, 2.0], [1.0, 2.0], [1.0, 2.0], 1, volume=[1.0])


def test_breakout_on_real_data_is_rare_and_volume_is_stricter() -> None:
    bars = load_bars(REAL_DATA[1])
    plain = pat.breakout(bars["high"], bars["low"], bars["close"], 20)
    strict = pat.breakout(bars["high"], bars["low"], bars["close"], 20, volume=bars["volume"])
    assert 0 < np.count_nonzero(strict) < np.count_nonzero(plain) < 0.2 * plain.size
    assert np.all((strict == 0) | (strict == plain))  # volume only removes signals


PATTERN_FUNCTIONS: dict[str, Callable[[Bars], Any]] = {
    "doji": lambda b: pat.doji(b["open"], b["high"], b["low"], b["close"]),
    "hammer": lambda b: pat.hammer(b["open"], b["high"], b["low"], b["close"]),
    "shooting_star": lambda b: pat.shooting_star(b["open"], b["high"], b["low"], b["close"]),
    "bullish_engulfing": lambda b: pat.bullish_engulfing(
        b["open"], b["high"], b["low"], b["close"]
    ),
    "bearish_engulfing": lambda b: pat.bearish_engulfing(
        b["open"], b["high"], b["low"], b["close"]
    ),
    "inside_bar": lambda b: pat.inside_bar(b["high"], b["low"]),
    "breakout": lambda b: pat.breakout(b["high"], b["low"], b["close"], 3),
    "breakout_volume": lambda b: pat.breakout(
        b["high"], b["low"], b["close"], 3, volume=b["volume"], volume_factor=1.2
    ),
}


@pytest.mark.parametrize("name", sorted(PATTERN_FUNCTIONS))
@settings(max_examples=40, deadline=None)
@given(case=bars_with_changed_future())
def test_no_look_ahead(name: str, case: tuple[Bars, Bars, int]) -> None:
    bars, changed, t = case
    before = PATTERN_FUNCTIONS[name](bars)
    after = PATTERN_FUNCTIONS[name](changed)
    assert before.shape == after.shape == bars["close"].shape
    assert_nan_equal(after[: t + 1], before[: t + 1])
