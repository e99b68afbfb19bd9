"""The front door: parse arguments and config once, connect Ray, start the agents, run the cycle.

Exit status: 0 on success or Ctrl-C (the current cycle finishes, agents snapshot, the ledger is
flushed), 1 on a fatal error, 2 on bad input (config, arguments, unknown symbols). With a bad
config nothing starts.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import uuid
from pathlib import Path
from types import FrameType

from loguru import logger
from ray.exceptions import RayError

from cycle.config import PROJECT_ROOT, FluxtradeConfig, load_config
from cycle.errors import ConfigError, FluxtradeError

DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "default.yaml"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="run_cycle.py", description=__doc__.splitlines()[0])
    parser.add_argument("--address", default=None, help="'auto', 'host:port', or none to start a local Ray")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="YAML config file")
    parser.add_argument("--cycles", type=int, default=None, help="cycles to run (default: until the data ends)")
    parser.add_argument("--symbols", default=None, help="comma-separated symbols, e.g. ETH/BTC,LTC/BTC")
    parser.add_argument("--run-id", default=None, help="resume this run id (default: a new run)")
    parser.add_argument("--quiet", action="store_true", help="no progress line per cycle")
    args = parser.parse_args(argv)
    if args.cycles is not None and args.cycles <= 0:
        parser.error("--cycles must be positive")
    return args


def prepare(args: argparse.Namespace) -> FluxtradeConfig:
    """Validate everything a user gave before anything starts; raises ConfigError."""
    overrides = {}
    if args.symbols:
        overrides["symbols"] = [s.strip() for s in args.symbols.split(",") if s.strip()]
    config = load_config(args.config, overrides)
    if args.cycles is not None:
        config = config.model_copy(update={"run": config.run.model_copy(update={"cycles": args.cycles})})
    from actors.strategy.agent import load_strategy

    for strategy in config.strategies:
        load_strategy(strategy)
    return config


def connect(config: FluxtradeConfig, address: str | None) -> None:
    import ray

    project = str(PROJECT_ROOT)
    runtime_env = {"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [project, os.environ.get("PYTHONPATH")]))}}
    if address is None:
        ray.init(
            address="local",
            namespace=config.ray.namespace,
            num_cpus=config.ray.num_cpus,
            include_dashboard=config.ray.include_dashboard,
            runtime_env=runtime_env,
            log_to_driver=False,
        )
    else:
        ray.init(address=address, namespace=config.ray.namespace, runtime_env=runtime_env, log_to_driver=False)


class StopFlag:
    """Ctrl-C sets the flag; the loop finishes the cycle in flight and then stops cleanly."""

    def __init__(self) -> None:
        self.stop = False
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.stop:
            raise KeyboardInterrupt
        self.stop = True
        print("\nstopping after this cycle (Ctrl-C again to abort)", file=sys.stderr, flush=True)


def run(config: FluxtradeConfig, run_id: str, quiet: bool) -> int:
    import ray

    from actors.factory import create_desk, destroy

    flag = StopFlag()
    handles = create_desk(config, run_id)
    coordinator = handles["coordinator"]
    try:
        resumed = ray.get(coordinator.start.remote())
        print(f"run {run_id}{' (resumed)' if resumed else ''}: {', '.join(config.symbols)}", flush=True)
        cycles = 0
        while not flag.stop and (config.run.cycles is None or cycles < config.run.cycles):
            started = time.perf_counter()
            report = ray.get(coordinator.run_cycle.remote())
            if report is None:
                status = ray.get(coordinator.status.remote())
                if status["exhausted"]:
                    break
                time.sleep(0.2)
                continue
            cycles += 1
            if not quiet:
                print(report.progress_line(), flush=True)
            wait = config.run.cycle_interval_s - (time.perf_counter() - started)
            if wait > 0:
                time.sleep(wait)
        summary = ray.get(coordinator.shutdown.remote())
    finally:
        destroy(handles)
    if summary is not None:
        print_summary(summary, config)
    return 0


def print_summary(summary, config: FluxtradeConfig) -> None:  # noqa: ANN001 - RunSummary
    print(
        f"\nsummary: {summary.cycles} cycles | {summary.orders} orders | {summary.fills} fills"
        f" | fees {summary.fees:.8f} {config.run.quote_currency}"
        f" | net PnL {summary.net_pnl:+.8f} {config.run.quote_currency}"
        f" | Sharpe {summary.sharpe:.2f} | max drawdown {summary.max_drawdown:.2%}"
    )
    print("orders by status: " + ", ".join(f"{k} {v}" for k, v in sorted(summary.orders_by_status.items())))
    print("orders by strategy: " + ", ".join(f"{k} {v}" for k, v in sorted(summary.orders_by_strategy.items())))
    if summary.decisions_by_reason:
        print("risk: " + "; ".join(f"{k} x{v}" for k, v in sorted(summary.decisions_by_reason.items())))
    health = ", ".join(f"{role} {h['state']}" for role, h in sorted(summary.agent_health.items()))
    print(f"agents: {health}")
    print(f"report: {config.report.resolved()}/summary.md  ledger: {config.ledger.resolved()}")


def main(argv: list[str] | None = None) -> int:
    logger.remove()
    logger.add(sys.stderr, level=os.environ.get("FLUXTRADE_LOG_LEVEL", "WARNING"))
    args = parse_args(argv)
    try:
        config = prepare(args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    run_id = args.run_id or f"{config.run.name}-{uuid.uuid4().hex[:8]}"
    try:
        connect(config, args.address)
        return run(config, run_id, args.quiet)
    except KeyboardInterrupt:
        print("aborted", file=sys.stderr)
        return 1
    except FluxtradeError as error:
        print(f"fatal: {error}", file=sys.stderr)
        return 1
    except RayError as error:
        print(f"fatal: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    except ConnectionError as error:
        print(f"fatal: cannot reach Ray at {args.address}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
