"""Trainer commands: roll back, export, draw the dashboard, show the status.

Examples::

    python -m actors.trainer rollback --run-id default-1a2b3c4d --agent ensemble
    python -m actors.trainer rollback --run-id default-1a2b3c4d --agent ensemble --version 2
    python -m actors.trainer export --run-id default-1a2b3c4d --format csv --out runs/export
    python -m actors.trainer dashboard --run-id default-1a2b3c4d
    python -m actors.trainer status --run-id default-1a2b3c4d --address auto

With ``--address`` the command goes to the running trainer actor (``trainer`` in the config's
namespace); without it, it works on the ledger directly. An offline rollback is queued in the
ledger like a live one and reaches the agent when the run resumes (``run_cycle.py --run-id``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cycle.config import PROJECT_ROOT, TRAINABLE_AGENTS, FluxtradeConfig, load_config
from cycle.errors import ConfigError


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m actors.trainer", description=__doc__)
    parser.add_argument("command", choices=("rollback", "export", "dashboard", "status"))
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--config", type=Path, default=PROJECT_ROOT / "configs" / "default.yaml")
    parser.add_argument("--address", default=None, help="'auto' or host:port of a running Ray")
    parser.add_argument("--agent", choices=TRAINABLE_AGENTS, default="ensemble")
    parser.add_argument("--version", type=int, default=None, help="rollback: target version")
    parser.add_argument("--format", choices=("csv", "parquet"), default=None)
    parser.add_argument("--out", type=Path, default=None, help="export/dashboard folder")
    return parser.parse_args(argv)


def _live(args: argparse.Namespace, namespace: str) -> Any:
    import ray

    ray.init(address=args.address, namespace=namespace, log_to_driver=False)
    trainer = ray.get_actor("trainer", namespace=namespace)
    if args.command == "rollback":
        return ray.get(trainer.rollback.remote(args.agent, args.version))
    if args.command == "export":
        return ray.get(trainer.export.remote(str(args.out) if args.out else None, args.format))
    if args.command == "dashboard":
        return ray.get(trainer.dashboard.remote(str(args.out) if args.out else None))
    return ray.get(trainer.status.remote())


def _offline(args: argparse.Namespace, config: FluxtradeConfig) -> Any:
    from actors.trainer.trainer import Trainer

    trainer = Trainer(config, args.run_id)
    try:
        if args.command == "rollback":
            return trainer.rollback(args.agent, args.version)
        if args.command == "export":
            return trainer.export(args.out, args.format)
        if args.command == "dashboard":
            return trainer.dashboard(args.out)
        return trainer.status()
    finally:
        trainer.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = load_config(args.config)
        result = _live(args, config.ray.namespace) if args.address else _offline(args, config)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (ValueError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if hasattr(result, "model_dump"):
        print(json.dumps(result.model_dump(mode="json"), indent=2))
    elif isinstance(result, list):
        print("\n".join(str(p) for p in result))
    else:
        print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
