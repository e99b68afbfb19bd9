"""Ledger agent: the one writer of the run's SQLite ledger (see :mod:`cycle.ledger`)."""

from __future__ import annotations

from typing import Any

from actors.base import Agent
from cycle.ledger import Ledger, LedgerBatch
from cycle.report import RunStats


class LedgerAgent(Agent):
    role = "ledger"
    operations = frozenset({"record", "start_run", "latest_snapshots", "run_stats"})

    def setup(self) -> None:
        self.ledger = Ledger(self.config.ledger.resolved())
        self.batches = 0

    def start_run(self, run: dict[str, Any]) -> None:
        self.ledger.start_run(run["run_id"], run["config_hash"], run["config"], run["started_at"])

    def record(self, batch: LedgerBatch) -> int:
        """Write one batch in one transaction; returns how many batches this agent has written."""
        self.ledger.record(batch)
        self.batches += 1
        return self.batches

    def latest_snapshots(self, run_id: str) -> dict[str, tuple[int, dict[str, Any]]]:
        return self.ledger.latest_snapshots(run_id)

    def run_stats(self, run_id: str) -> RunStats:
        return self.ledger.run_stats(run_id)

    def teardown(self) -> None:
        self.ledger.close()

    def extra_metrics(self) -> dict[str, float]:
        return {"batches": float(self.batches)}
