"""Results of the Tune jobs in SQLite: one table per run, and an index of runs.

Meta-agent runs are listed in ``meta_runs`` (settings, decision, chosen candidate) and each has
its own table ``meta_<run_id>`` with a row per candidate: its config hash, class and parameters,
training and validation metrics, and its rank. Retry searches are listed in ``retry_runs`` with a
table ``retry_<run_id>`` of every trial; ``retry_applied`` records each schedule handed to a
RetryHandler. A table per run keeps a run's rows together and lets an old run be dropped whole.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cycle.config import PROJECT_ROOT

DEFAULT_DB = PROJECT_ROOT / "runs" / "tuning.sqlite"
RUN_ID = re.compile(r"^[A-Za-z0-9_]{1,64}$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta_runs (
    run_id TEXT PRIMARY KEY, started_at TEXT NOT NULL, finished_at TEXT NOT NULL,
    symbols TEXT NOT NULL, candidates INTEGER NOT NULL, settings TEXT NOT NULL,
    metric TEXT NOT NULL, chosen_hash TEXT, chosen TEXT, accepted INTEGER NOT NULL,
    reason TEXT NOT NULL, train_score REAL, validation_score REAL, confidence REAL,
    rank_correlation REAL NOT NULL, wall_s REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS retry_runs (
    run_id TEXT NOT NULL, broker TEXT NOT NULL, started_at TEXT NOT NULL, model TEXT NOT NULL,
    best_params TEXT NOT NULL, fill_rate REAL NOT NULL, added_latency_s REAL NOT NULL,
    score REAL NOT NULL, baseline TEXT NOT NULL, trials INTEGER NOT NULL,
    PRIMARY KEY (run_id, broker)
);
CREATE TABLE IF NOT EXISTS retry_applied (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, broker TEXT NOT NULL,
    params TEXT NOT NULL, applied_at TEXT NOT NULL
);
"""


def check_run_id(run_id: str) -> str:
    """A run id is part of a table name, so it is restricted to letters, digits and '_'."""
    if not RUN_ID.match(run_id):
        raise ValueError(f"run id {run_id!r}: use 1-64 letters, digits or '_'")
    return run_id


class ResultStore:
    """One SQLite file holding every Tune job's results."""

    def __init__(self, path: str | Path = DEFAULT_DB) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path)
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def _table(self, prefix: str, run_id: str, columns: Sequence[tuple[str, str]],
               rows: Iterable[Sequence[Any]]) -> str:
        table = f"{prefix}_{check_run_id(run_id)}"
        spec = ", ".join(f"{name} {kind}" for name, kind in columns)
        marks = ", ".join("?" for _ in columns)
        with self._db:
            self._db.execute(f"DROP TABLE IF EXISTS {table}")
            self._db.execute(f"CREATE TABLE {table} ({spec})")
            self._db.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
        return table

    def save_meta_run(self, summary: Mapping[str, Any],
                      candidates: Sequence[Mapping[str, Any]]) -> str:
        """Write a meta-agent run: its summary row and its candidate table; returns the table."""
        columns = [(name, _sql_type(candidates[0][name])) for name in candidates[0]]
        table = self._table("meta", summary["run_id"], columns,
                            ([row[name] for name, _ in columns] for row in candidates))
        names = list(summary)
        with self._db:
            self._db.execute(
                f"INSERT OR REPLACE INTO meta_runs ({', '.join(names)}) "
                f"VALUES ({', '.join('?' for _ in names)})",
                [summary[n] for n in names],
            )
        return table

    def save_retry_run(self, run_id: str, broker: str, summary: Mapping[str, Any],
                       trials: Sequence[Mapping[str, Any]]) -> str:
        """Write one broker's retry search: its summary row and its trial table."""
        columns = [(name, _sql_type(trials[0][name])) for name in trials[0]]
        table = self._table("retry", f"{run_id}_{_ident(broker)}", columns,
                            ([row[name] for name, _ in columns] for row in trials))
        names = ["run_id", "broker", *summary]
        with self._db:
            self._db.execute(
                f"INSERT OR REPLACE INTO retry_runs ({', '.join(names)}) "
                f"VALUES ({', '.join('?' for _ in names)})",
                [run_id, broker, *summary.values()],
            )
        return table

    def record_applied(self, run_id: str, broker: str, params: Mapping[str, Any],
                       at: str) -> None:
        with self._db:
            self._db.execute(
                "INSERT INTO retry_applied (run_id, broker, params, applied_at) VALUES (?,?,?,?)",
                (run_id, broker, json.dumps(params, sort_keys=True), at),
            )

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._db.execute(sql, params).fetchall()


def _ident(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def _sql_type(value: Any) -> str:
    if isinstance(value, bool | int):
        return "INTEGER"
    if isinstance(value, float):
        return "REAL"
    return "TEXT"
