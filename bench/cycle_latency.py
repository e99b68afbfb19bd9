"""Cycle latency on Ray: wall time p50/p99 and per-step breakdown for 1, 5 and 10 symbols.

Beside it, in the same run, the Ray floor: the round trip of an empty actor call. The ratio
``cycle p50 / (round trips on the critical path x floor)`` says how much of a cycle is the agents'
own work and serialisation rather than Ray's unavoidable hops. The bundled data has three
aligned 5-minute series; 5 and 10 symbols replay them again under aliases (``ETH/BTC~2``...), which
costs every agent the same work as distinct markets would.

For 10 symbols the run also prints each step's p50 and p99 on Ray and, measured the same way
with every agent in this process (the Ray-free runner of the tests), the agents' own work per
step, so a slow step can be told apart from a slow hop. The warm-up is longer than every
strategy's (the EMA and ensemble strategies speak from bar 192), so the measured cycles run the
full library.

    python bench/cycle_latency.py [--cycles 200] [--warmup 250]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import ray

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors.factory import create_desk, destroy  # noqa: E402
from actors.local import LocalGateway, build_local_agents  # noqa: E402
from cycle.config import PROJECT_ROOT, load_config  # noqa: E402
from cycle.steps import STEPS, CycleRunner  # noqa: E402

BASE_FILES = {
    "ETH/BTC": "data/freqtrade_ETH_BTC-5m.csv",
    "LTC/BTC": "data/freqtrade_LTC_BTC-5m.csv",
    "ADA/BTC": "data/freqtrade_ADA_BTC-5m.csv",
}


@ray.remote(num_cpus=0)
class Empty:
    def ping(self) -> None:
        return None


def ray_floor_ms(calls: int = 300) -> float:
    """Median round trip of a synchronous call to an actor that does nothing."""
    actor = Empty.remote()
    ray.get(actor.ping.remote())
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        ray.get(actor.ping.remote())
        samples.append((time.perf_counter() - started) * 1000)
    ray.kill(actor)
    return statistics.median(samples)


def symbols_config(count: int, folder: Path):
    files = {}
    names = list(BASE_FILES)
    for i in range(count):
        base = names[i % len(names)]
        alias = base if i < len(names) else f"{base}~{i // len(names) + 1}"
        files[alias] = BASE_FILES[base]
    return load_config(
        PROJECT_ROOT / "configs" / "default.yaml",
        {
            "data": {"files": files, "timeframe": "5m"},
            "symbols": list(files),
            "ledger": {"path": str(folder / f"ledger-{count}.sqlite")},
            "report": {"folder": str(folder / f"report-{count}")},
            "ray": {"namespace": f"bench-{uuid.uuid4().hex[:6]}", "include_dashboard": False},
        },
    )


def measure(count: int, cycles: int, warmup: int, folder: Path) -> dict:
    config = symbols_config(count, folder)
    handles = create_desk(config, f"bench-{count}")
    coordinator = handles["coordinator"]
    try:
        ray.get(coordinator.start.remote())
        ray.get([coordinator.run_cycle.remote() for _ in range(warmup)])
        reports = ray.get([coordinator.run_cycle.remote() for _ in range(cycles)])
    finally:
        destroy(handles)
    return summary(count, reports)


def summary(count: int, reports: list) -> dict:
    """Cycle and per-step percentiles of a list of cycle reports."""
    durations = np.array([r.duration_ms for r in reports])
    steps = {s: np.array([r.step_ms.get(s, 0.0) for r in reports]) for s in STEPS}
    return {
        "symbols": count,
        "p50": float(np.percentile(durations, 50)),
        "p99": float(np.percentile(durations, 99)),
        "round_trips": statistics.median(r.round_trips for r in reports),
        "steps": {s: float(np.percentile(v, 50)) for s, v in steps.items()},
        "steps_p99": {s: float(np.percentile(v, 99)) for s, v in steps.items()},
        "degraded": sum(1 for r in reports if r.degraded),
    }


def measure_in_process(count: int, cycles: int, warmup: int, folder: Path) -> dict:
    """The same cycles with every agent a plain object in this process: the agents' own work."""
    config = symbols_config(count, folder / "local")
    agents = build_local_agents(config)
    agents["ledger"].start_run({
        "run_id": f"local-{count}", "config_hash": config.content_hash(),
        "config": config.model_dump(mode="json", by_alias=True),
        "started_at": "2026-01-01T00:00:00+00:00",
    })
    runner = CycleRunner(config, LocalGateway(agents), f"local-{count}")
    for _ in range(warmup):
        runner.run_cycle()
    reports = [runner.run_cycle() for _ in range(cycles)]
    runner.cancel_all("end of benchmark")
    return summary(count, reports)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=250)
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(PROJECT_ROOT)}})
    floor = ray_floor_ms()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(n, args.cycles, args.warmup, Path(tmp)) for n in (1, 5, 10)]
        local = measure_in_process(10, args.cycles, args.warmup, Path(tmp))
    print(f"Ray floor (empty actor call, sync round trip): {floor:.2f} ms")
    print(f"{args.cycles} measured cycles after {args.warmup} warm-up cycles, 2 CPUs\n")
    print("| symbols | cycle p50 ms | cycle p99 ms | round trips | floor x trips ms "
          "| p50 / (floor x trips) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        path = r["round_trips"] * floor
        print(f"| {r['symbols']} | {r['p50']:.1f} | {r['p99']:.1f} | {r['round_trips']:.0f} "
              f"| {path:.1f} | {r['p50'] / path:.2f} |")
    print("\nmedian ms per step:\n")
    print("| step | " + " | ".join(f"{r['symbols']} sym" for r in rows) + " |")
    print("|---|" + "---:|" * len(rows))
    for step in STEPS:
        print(f"| {step} | " + " | ".join(f"{r['steps'][step]:.2f}" for r in rows) + " |")
    ten = rows[-1]
    print("\n10 symbols, per step (ms): on Ray, and the agents' own work in one process:\n")
    print("| step | Ray p50 | Ray p99 | share of cycle p50 | in-process p50 | in-process p99 |")
    print("|---|---:|---:|---:|---:|---:|")
    for step in STEPS:
        print(
            f"| {step} | {ten['steps'][step]:.2f} | {ten['steps_p99'][step]:.2f} "
            f"| {ten['steps'][step] / ten['p50']:.0%} | {local['steps'][step]:.2f} "
            f"| {local['steps_p99'][step]:.2f} |"
        )
    print(f"| cycle | {ten['p50']:.2f} | {ten['p99']:.2f} | 100% | {local['p50']:.2f} "
          f"| {local['p99']:.2f} |")
    print("\n(in process, intelligence runs inside sense: the runner submits it there and, on "
          "Ray, gathers it in analyse while conditions and adapters work in parallel)")
    print(f"\ndegraded cycles: {', '.join(str(r['degraded']) for r in rows)}; "
          f"in process: {local['degraded']}")
    ray.shutdown()


if __name__ == "__main__":
    main()
