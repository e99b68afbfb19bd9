"""Position sizing: fixed-fraction with an ATR stop, volatility targeting, capped Kelly.

Every sizer takes the market ``flux`` (0 calm, 1 turbulent; see
`actors.conditions.regime.MarketFlux`) and multiplies its result by `flux_scale`, so the whole desk
trades smaller when the market is turbulent. ``flux`` is a required argument on purpose: a sizer
called without thinking about market conditions is the bug this module exists to prevent.

The flux curve is linear, ``scale = 1 - (1 - flux_floor) * flux``: 1 at flux 0, ``flux_floor`` at
flux 1, never increasing in flux. Linear because the flux level is already an EMA with a dead-band,
so a steeper curve would only re-amplify what the flux smoothed; the floor is above zero because
flux is a soft signal, and halting trading is the kill switch's decision, not the sizer's.

Arguments are keyword-only: a swapped ``equity`` and ``price`` would size a position off by a
factor of the price, and nothing downstream would notice.
"""

from __future__ import annotations

import math

_DEFAULT_FLUX_FLOOR = 0.25


def _positive(name: str, value: float) -> float:
    """Return ``value`` if it is finite and strictly positive, else raise naming the argument."""
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return value


def _unit_interval(name: str, value: float) -> float:
    """Return ``value`` if it lies in [0, 1], else raise naming the argument."""
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return value


def flux_scale(flux: float, *, flux_floor: float = _DEFAULT_FLUX_FLOOR) -> float:
    """Size multiplier for a market flux level: ``1 - (1 - flux_floor) * flux``.

    Args:
        flux: Market flux level in [0, 1].
        flux_floor: Multiplier at flux 1, in [0, 1].

    Returns:
        The multiplier in [flux_floor, 1].

    Raises:
        ValueError: If ``flux`` or ``flux_floor`` is outside [0, 1].
    """
    _unit_interval("flux", flux)
    _unit_interval("flux_floor", flux_floor)
    return 1.0 - (1.0 - flux_floor) * flux


def fixed_fraction_size(
    *,
    equity: float,
    price: float,
    atr: float,
    flux: float,
    risk_fraction: float = 0.01,
    atr_multiple: float = 2.0,
    max_leverage: float = 1.0,
    flux_floor: float = _DEFAULT_FLUX_FLOOR,
) -> float:
    """Quantity that loses ``risk_fraction`` of equity if a stop ``atr_multiple`` ATRs away is hit.

    ``quantity = risk_fraction * equity / (atr_multiple * atr)``, capped at
    ``max_leverage * equity / price`` (a very quiet market has a tiny ATR and would otherwise ask
    for an unbounded position), then multiplied by `flux_scale`. Sizing from the stop distance
    makes every trade risk the same share of equity whatever the instrument's volatility.

    Args:
        equity: Account equity in quote currency.
        price: Current price in quote currency per base unit.
        atr: Average true range in quote currency (same units as ``price``).
        flux: Market flux level in [0, 1].
        risk_fraction: Share of equity lost at the stop, in (0, 1].
        atr_multiple: Stop distance in ATRs.
        max_leverage: Largest notional as a multiple of equity.
        flux_floor: See `flux_scale`.

    Returns:
        The position quantity in base units.

    Raises:
        ValueError: If an argument is non-positive, not finite or out of range; the message names
            it.
    """
    _positive("equity", equity)
    _positive("price", price)
    _positive("atr", atr)
    _positive("atr_multiple", atr_multiple)
    _positive("max_leverage", max_leverage)
    if not 0.0 < risk_fraction <= 1.0:
        raise ValueError(f"risk_fraction must be in (0, 1], got {risk_fraction!r}")
    scale = flux_scale(flux, flux_floor=flux_floor)
    quantity = risk_fraction * equity / (atr_multiple * atr)
    return min(quantity, max_leverage * equity / price) * scale


def volatility_target_fraction(
    *,
    realized_vol: float,
    target_vol: float,
    bars_per_year: float,
    flux: float,
    max_leverage: float = 1.0,
    flux_floor: float = _DEFAULT_FLUX_FLOOR,
) -> float:
    """Fraction of equity to hold so the position's annualised volatility is ``target_vol``.

    ``fraction = target_vol / (realized_vol * sqrt(bars_per_year))``, capped at ``max_leverage``,
    then multiplied by `flux_scale`. The square-root-of-time annualisation assumes independent
    bar returns; it lets one annual target serve any bar length.

    Args:
        realized_vol: Standard deviation of per-bar returns (not annualised). Zero is rejected:
            it means a frozen feed, and would otherwise ask for maximum leverage.
        target_vol: Target annualised volatility, e.g. 0.2 for 20%.
        bars_per_year: Bars in a year, e.g. 105120 for 5-minute bars of a 24/7 market.
        flux: Market flux level in [0, 1].
        max_leverage: Largest fraction of equity.
        flux_floor: See `flux_scale`.

    Returns:
        The position as a fraction of equity (multiply by equity / price for base units, see
        `fraction_to_quantity`).

    Raises:
        ValueError: If an argument is non-positive, not finite or out of range; the message names
            it.
    """
    _positive("realized_vol", realized_vol)
    _positive("target_vol", target_vol)
    _positive("bars_per_year", bars_per_year)
    _positive("max_leverage", max_leverage)
    scale = flux_scale(flux, flux_floor=flux_floor)
    annualised = realized_vol * math.sqrt(bars_per_year)
    return min(target_vol / annualised, max_leverage) * scale


def _capped_kelly(raw: float, *, cap: float, half_kelly: bool, scale: float) -> float:
    """Apply the no-edge floor, half-Kelly, the cap and the flux scale, in that order.

    A negative Kelly fraction says "take the other side"; that is another strategy's call, so it
    sizes to zero here. The cap applies before the flux scale, so the result never exceeds it.
    """
    fraction = max(raw, 0.0) * (0.5 if half_kelly else 1.0)
    return min(fraction, cap) * scale


def kelly_fraction(
    *,
    win_rate: float,
    payoff_ratio: float,
    flux: float,
    cap: float = 0.25,
    half_kelly: bool = True,
    flux_floor: float = _DEFAULT_FLUX_FLOOR,
) -> float:
    """Capped Kelly fraction of equity for a bet won with ``win_rate`` paying ``payoff_ratio``.

    Full Kelly ``f = p - (1 - p) / b`` maximises long-run log growth only if ``p`` and ``b`` are
    known exactly; estimated from a backtest they are optimistic, and over-betting Kelly is far
    costlier than under-betting it. Hence half-Kelly by default (three quarters of the growth at
    half the volatility) and a hard ``cap``.

    Args:
        win_rate: Probability of a winning trade, in [0, 1].
        payoff_ratio: Average win over average loss (both positive amounts).
        flux: Market flux level in [0, 1].
        cap: Largest fraction of equity returned.
        half_kelly: Halve the Kelly fraction before capping.
        flux_floor: See `flux_scale`.

    Returns:
        The fraction of equity to risk, in [0, cap].

    Raises:
        ValueError: If an argument is out of range; the message names it.
    """
    _unit_interval("win_rate", win_rate)
    _positive("payoff_ratio", payoff_ratio)
    _positive("cap", cap)
    scale = flux_scale(flux, flux_floor=flux_floor)
    raw = win_rate - (1.0 - win_rate) / payoff_ratio
    return _capped_kelly(raw, cap=cap, half_kelly=half_kelly, scale=scale)


def kelly_fraction_from_moments(
    *,
    mean_return: float,
    variance: float,
    flux: float,
    cap: float = 0.25,
    half_kelly: bool = True,
    flux_floor: float = _DEFAULT_FLUX_FLOOR,
) -> float:
    """Capped continuous Kelly fraction ``mean_return / variance`` of a return stream.

    The growth-optimal leverage for small, roughly normal returns. Mean and variance must be of the
    same bar length; the ratio does not depend on which, since both scale linearly with time. Use
    the excess return over the funding rate as ``mean_return`` when funding is not negligible.

    Args:
        mean_return: Mean (excess) return per bar.
        variance: Variance of the return per bar.
        flux: Market flux level in [0, 1].
        cap: Largest fraction of equity returned.
        half_kelly: Halve the Kelly fraction before capping.
        flux_floor: See `flux_scale`.

    Returns:
        The fraction of equity to hold, in [0, cap].

    Raises:
        ValueError: If ``variance`` or ``cap`` is non-positive, ``mean_return`` is not finite or
            ``flux`` is out of range; the message names the argument.
    """
    if not math.isfinite(mean_return):
        raise ValueError(f"mean_return must be finite, got {mean_return!r}")
    _positive("variance", variance)
    _positive("cap", cap)
    scale = flux_scale(flux, flux_floor=flux_floor)
    return _capped_kelly(mean_return / variance, cap=cap, half_kelly=half_kelly, scale=scale)


def fraction_to_quantity(fraction: float, *, equity: float, price: float) -> float:
    """Base-unit quantity of a position worth ``fraction`` of ``equity`` at ``price``.

    Raises:
        ValueError: If ``equity`` or ``price`` is non-positive or ``fraction`` is negative or not
            finite; the message names the argument.
    """
    _positive("equity", equity)
    _positive("price", price)
    if not (math.isfinite(fraction) and fraction >= 0.0):
        raise ValueError(f"fraction must be finite and non-negative, got {fraction!r}")
    return fraction * equity / price
