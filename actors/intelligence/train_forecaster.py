"""Train the intelligence forecaster on bundled OHLCV CSVs and save its weights.

Example::

    python -m actors.intelligence.train_forecaster \\
        --data data/freqtrade_ETH_BTC-5m.csv data/freqtrade_LTC_BTC-5m.csv \\
               data/freqtrade_ADA_BTC-5m.csv \\
        --out runs/forecaster.pt

Prints the :class:`TrainReport` summary (test accuracy next to the naive baselines), the wall
time, and the measured inference latency of one window and of one batch over all symbols, so
the figures that decide whether the model is worth running in a cycle come from one command.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
from loguru import logger

from actors.intelligence.forecaster import OHLCV_COLUMNS, Forecaster, ForecasterConfig
from cycle.errors import DataValidationError

_log = logger.bind(agent_id="intelligence")


def symbol_from_path(path: Path) -> str:
    """``data/freqtrade_ETH_BTC-5m.csv`` -> ``ETH_BTC-5m``: a readable key for the report."""
    return path.stem.removeprefix("freqtrade_")


def read_ohlcv_csv(path: Path) -> pd.DataFrame:
    """Read a ``timestamp,open,high,low,close,volume`` CSV with UTC-aware timestamps."""
    frame = pd.read_csv(path)
    missing = [c for c in ("timestamp", *OHLCV_COLUMNS) if c not in frame.columns]
    if missing:
        raise DataValidationError(str(path), f"missing columns {missing}")
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    return frame.sort_values("timestamp", kind="stable").reset_index(drop=True)


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median wall milliseconds of ``fn()`` after a few warm-up calls."""
    for _ in range(5):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    defaults = ForecasterConfig()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", nargs="+", type=Path, required=True, help="OHLCV CSV files")
    p.add_argument("--out", type=Path, required=True, help="where to save the weights (.pt)")
    p.add_argument("--model-kind", choices=("gru", "transformer"), default=defaults.model_kind)
    p.add_argument("--window", type=int, default=defaults.window)
    p.add_argument("--hidden-size", type=int, default=defaults.hidden_size)
    p.add_argument("--num-layers", type=int, default=defaults.num_layers)
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--threads", type=int, default=defaults.num_threads)
    p.add_argument("--max-seconds", type=float, default=defaults.max_train_seconds)
    p.add_argument(
        "--config-json", type=str, default=None, help="extra ForecasterConfig fields as JSON"
    )
    p.add_argument("--report-json", type=Path, default=None, help="also write the report here")
    p.add_argument("--verbose", action="store_true", help="log every epoch's validation loss")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None, *, configure_logging: bool = True) -> int:
    """Train, print the report and timings, save; returns the process exit code.

    Args:
        argv: Command-line arguments without the program name; ``None`` reads ``sys.argv``.
        configure_logging: Replace loguru's sinks with one stderr sink at INFO (DEBUG with
            ``--verbose``); callers embedding the CLI, such as tests, pass False.
    """
    args = _parse(argv)
    if configure_logging:
        logger.remove()
        logger.add(sys.stderr, level="DEBUG" if args.verbose else "INFO")
    overrides = json.loads(args.config_json) if args.config_json else {}
    config = ForecasterConfig(
        model_kind=args.model_kind,
        window=args.window,
        hidden_size=args.hidden_size,
        num_layers=args.num_layers,
        epochs=args.epochs,
        seed=args.seed,
        num_threads=args.threads,
        max_train_seconds=args.max_seconds,
        **overrides,
    )
    wall_start = time.perf_counter()
    frames = {symbol_from_path(p): read_ohlcv_csv(p) for p in args.data}
    forecaster = Forecaster(config)
    report = forecaster.fit(frames)
    saved = forecaster.save(args.out)
    wall = time.perf_counter() - wall_start

    tails = {s: f.iloc[-forecaster.required_bars :] for s, f in frames.items()}
    first_symbol, first_tail = next(iter(tails.items()))
    single_ms = _median_ms(lambda: forecaster.predict_proba(first_tail), 300)
    batch_ms = _median_ms(lambda: forecaster.predict_batch(tails), 300)

    print(report.summary())
    print(f"config: {config.model_dump_json()}")
    print(f"wall time (read + fit + save): {wall:.1f} s; fit: {report.seconds:.1f} s")
    print(
        f"inference: predict_proba({first_symbol}) {single_ms:.3f} ms/window (median of 300); "
        f"predict_batch({len(tails)} symbols) {batch_ms:.3f} ms"
    )
    print(f"saved: {saved}")
    if args.report_json:
        args.report_json.parent.mkdir(parents=True, exist_ok=True)
        args.report_json.write_text(report.model_dump_json(indent=2))
    _log.info("forecaster CLI done in {:.1f}s", wall)
    return 0


if __name__ == "__main__":
    sys.exit(main())
