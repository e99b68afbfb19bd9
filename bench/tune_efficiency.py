"""Parallel efficiency of the meta-agent's evaluation: Ray Tune against one process, in one run.

The work is the meta-agent's own: every candidate of the strategy library (a grid per class,
:func:`tuning.candidates.generate`) backtested on walk-forward windows, here on a chained series of
real 5-minute bars long enough that the work, not Tune's start-up, dominates. It runs twice:

1. in this process, block after block of candidates (:func:`tuning.sweep.evaluate_candidates`);
2. through Ray Tune (:func:`tuning.meta_agent.run_trials`): the series through the object store
   once, each trial a batch of candidates, as many trials at once as Ray has CPUs.

Both wall times include everything the user waits for (Tune's trial start-up and the workers'
imports included; Ray itself is started before the clock). Printed: speed-up = serial / Tune and
parallel efficiency = speed-up / CPUs; the two runs' statistics are checked to be identical. The
CPU seconds spent inside the trials against the one process's say how much of a shortfall is
Tune's own overhead rather than a busy machine.

    python bench/tune_efficiency.py [--address auto] [--bars 50000] [--per-class 600]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tuning.backtest import STAT_NAMES, BacktestSettings  # noqa: E402
from tuning.candidates import generate  # noqa: E402
from tuning.data import chained_series  # noqa: E402
from tuning.meta_agent import MetaAgentSettings, connect, run_trials  # noqa: E402
from tuning.sweep import evaluate_candidates  # noqa: E402
from tuning.walkforward import SelectionPolicy, walk_forward, windows_of  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", help="Ray address (auto, host:port); default: local Ray")
    parser.add_argument("--num-cpus", type=int, help="CPUs of the local Ray (default: all)")
    parser.add_argument("--bars", type=int, default=50_000)
    parser.add_argument("--per-class", type=int, default=600)
    parser.add_argument("--max-warmup", type=int, default=500)
    args = parser.parse_args()

    import ray

    candidates = generate(args.per_class, max_warmup=args.max_warmup)
    series = chained_series(args.bars)
    policy = SelectionPolicy()
    windows = [windows_of(walk_forward(len(series), policy.folds, policy.train_fraction,
                                       start=args.max_warmup))]
    costs = BacktestSettings(fee_bps=10, slippage_bps=2, weight_step=0.1)
    settings = MetaAgentSettings(files={"chained": "chained"}, max_warmup=args.max_warmup,
                                 backtest=costs, policy=policy)
    print(f"{len(candidates):,} candidates x {len(series):,} bars, "
          f"{len(windows[0])} walk-forward windows; load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")

    started, cpu_started = time.perf_counter(), time.process_time()
    serial = evaluate_candidates(candidates, series, costs, windows[0])
    serial_s = time.perf_counter() - started
    serial_cpu = time.process_time() - cpu_started
    print(f"one process: {serial_s:.1f} s wall, {serial_cpu:.1f} s CPU")

    connect(args.address, "fluxtrade-bench", args.num_cpus)
    cpus = int(ray.cluster_resources()["CPU"])
    started = time.perf_counter()
    tuned, trials, trial_cpu = run_trials(candidates, [series], windows, settings,
                                          "tune_efficiency", out=lambda line: print("  " + line))
    tune_s = time.perf_counter() - started
    same = all(np.array_equal(serial[n], tuned[n], equal_nan=True) for n in STAT_NAMES)
    speedup = serial_s / tune_s
    print("\n| candidates | bars | Tune trials | CPUs | one process | Ray Tune | speed-up |"
          " efficiency |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {len(candidates):,} | {len(series):,} | {trials} | {cpus} | {serial_s:.1f} s |"
          f" {tune_s:.1f} s | {speedup:.2f}x | {speedup / cpus:.2f} |")
    print(f"\nidentical statistics from both runs: {same}; goal efficiency >= 0.75: "
          f"{'met' if speedup / cpus >= 0.75 else 'NOT met'}")
    print(f"CPU seconds: one process {serial_cpu:.1f}, inside the Tune trials {trial_cpu:.1f} "
          f"(work efficiency {serial_cpu / trial_cpu:.2f}); wall efficiency also pays for Tune's "
          "start-up, uneven trials and any other load on the machine")
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
