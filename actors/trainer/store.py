"""The trainer's memory in the run's ledger: observations, sessions, versions, deployments.

The trainer is the only writer of the ``trainer_*`` tables (schema in :mod:`cycle.ledger`); it
keeps its own connection to the ledger file (SQLite in WAL mode lets the ledger agent and the
trainer write their own tables side by side; a busy timeout covers the moments they meet).
Everything needed to resume lives here, so sessions, versions with their exact parameters, the
active version of every agent and the adaptive state survive a restart of the run.

Parameters are stored as JSON; Python writes floats with ``repr`` and reads them back exactly,
so a rolled-back version is the very same numbers.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import Field

from cycle.ledger import SCHEMA
from cycle.messages import CycleOutcome, DeployCommand, Frozen, TrainingSession

BUSY_TIMEOUT_S = 30.0


class ModelVersion(Frozen):
    """One stored version of an agent's trained parameters."""

    agent: str
    version: int = Field(ge=0)
    session_id: str | None
    created_at: str
    params: dict[str, Any]
    applied: str


class TrainerStore:
    """Reads and writes the ``trainer_*`` tables of one run; safe across threads."""

    def __init__(self, path: str | Path, run_id: str) -> None:
        self.path = Path(path)
        self.run_id = run_id
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_S
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.RLock()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # observations ---------------------------------------------------------------------------

    def save_outcomes(self, outcomes: Sequence[CycleOutcome]) -> None:
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO trainer_observations VALUES (?,?,?)",
                [(self.run_id, o.cycle, o.model_dump_json()) for o in outcomes],
            )

    def load_outcomes(self) -> list[CycleOutcome]:
        return [
            CycleOutcome.model_validate_json(text)
            for (text,) in self._rows(
                "SELECT outcome FROM trainer_observations WHERE run_id = ? ORDER BY cycle",
                (self.run_id,),
            )
        ]

    # sessions -------------------------------------------------------------------------------

    def save_session(self, session: TrainingSession) -> None:
        with self._transaction() as db:
            seq = db.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM trainer_sessions WHERE run_id = ?",
                (self.run_id,),
            ).fetchone()[0]
            db.execute(
                "INSERT OR REPLACE INTO trainer_sessions VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    self.run_id, session.session_id, seq, session.agent, session.mode.value,
                    session.outcome, session.cycle, session.score_before, session.score_after,
                    session.live_effect, session.model_dump_json(),
                ),
            )

    def set_live_effect(self, session_id: str, effect: float) -> TrainingSession:
        with self._transaction() as db:
            (text,) = db.execute(
                "SELECT record FROM trainer_sessions WHERE run_id = ? AND session_id = ?",
                (self.run_id, session_id),
            ).fetchone()
            session = TrainingSession.model_validate_json(text).model_copy(
                update={"live_effect": effect}
            )
            db.execute(
                "UPDATE trainer_sessions SET live_effect = ?, record = ?"
                " WHERE run_id = ? AND session_id = ?",
                (effect, session.model_dump_json(), self.run_id, session_id),
            )
        return session

    def sessions(self, agent: str | None = None) -> list[TrainingSession]:
        rows = self._rows(
            "SELECT record FROM trainer_sessions WHERE run_id = ? AND (? IS NULL OR agent = ?)"
            " ORDER BY seq",
            (self.run_id, agent, agent),
        )
        return [TrainingSession.model_validate_json(text) for (text,) in rows]

    # versions -------------------------------------------------------------------------------

    def add_version(
        self, agent: str, params: dict[str, Any], session_id: str | None, at: datetime,
        applied: str = "pending",
    ) -> int:
        with self._transaction() as db:
            version = db.execute(
                "SELECT COALESCE(MAX(version) + 1, 0) FROM trainer_versions"
                " WHERE run_id = ? AND agent = ?",
                (self.run_id, agent),
            ).fetchone()[0]
            db.execute(
                "INSERT INTO trainer_versions VALUES (?,?,?,?,?,?,?)",
                (self.run_id, agent, version, session_id, at.isoformat(), json.dumps(params),
                 applied),
            )
        return int(version)

    def version(self, agent: str, version: int) -> ModelVersion:
        rows = self._rows(
            "SELECT version, session_id, created_at, params, applied FROM trainer_versions"
            " WHERE run_id = ? AND agent = ? AND version = ?",
            (self.run_id, agent, version),
        )
        if not rows:
            raise KeyError(f"{agent} has no version {version}")
        number, session_id, created, params, applied = rows[0]
        return ModelVersion(
            agent=agent, version=number, session_id=session_id, created_at=created,
            params=json.loads(params), applied=applied,
        )

    def versions(self, agent: str) -> list[ModelVersion]:
        numbers = self._rows(
            "SELECT version FROM trainer_versions WHERE run_id = ? AND agent = ? ORDER BY version",
            (self.run_id, agent),
        )
        return [self.version(agent, n) for (n,) in numbers]

    def set_applied(self, agent: str, version: int, applied: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE trainer_versions SET applied = ? WHERE run_id = ? AND agent = ?"
                " AND version = ?",
                (applied, self.run_id, agent, version),
            )

    def active(self, agent: str) -> tuple[int, list[int]] | None:
        """The live version of an agent and the versions it replaced (oldest first)."""
        rows = self._rows(
            "SELECT version, history FROM trainer_active WHERE run_id = ? AND agent = ?",
            (self.run_id, agent),
        )
        return (rows[0][0], json.loads(rows[0][1])) if rows else None

    def set_active(self, agent: str, version: int, history: list[int]) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO trainer_active VALUES (?,?,?,?)",
                (self.run_id, agent, version, json.dumps(history)),
            )

    # deployments ----------------------------------------------------------------------------

    def add_deployment(self, command: DeployCommand, at: datetime) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO trainer_deployments VALUES (?,?,?,?,?,?,NULL,NULL,NULL)",
                (self.run_id, command.deployment_id, command.agent, command.version,
                 command.model_dump_json(), at.isoformat()),
            )

    def pending_deployments(self) -> list[DeployCommand]:
        rows = self._rows(
            "SELECT command FROM trainer_deployments WHERE run_id = ? AND acked_at IS NULL"
            " ORDER BY rowid",
            (self.run_id,),
        )
        return [DeployCommand.model_validate_json(text) for (text,) in rows]

    def ack_deployment(
        self, deployment_id: str, ok: bool, error: str | None, at: datetime
    ) -> DeployCommand | None:
        """Record an agent's answer; returns the command if it was still pending."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT command FROM trainer_deployments WHERE run_id = ? AND deployment_id = ?"
                " AND acked_at IS NULL",
                (self.run_id, deployment_id),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE trainer_deployments SET acked_at = ?, ok = ?, error = ?"
                " WHERE run_id = ? AND deployment_id = ?",
                (at.isoformat(), int(ok), error, self.run_id, deployment_id),
            )
        return DeployCommand.model_validate_json(row[0])

    def deployments(self) -> list[tuple[DeployCommand, bool | None, str | None]]:
        rows = self._rows(
            "SELECT command, ok, error FROM trainer_deployments WHERE run_id = ?"
            " ORDER BY rowid",
            (self.run_id,),
        )
        return [
            (DeployCommand.model_validate_json(c), None if ok is None else bool(ok), e)
            for c, ok, e in rows
        ]

    # state ----------------------------------------------------------------------------------

    def save_state(self, key: str, state: dict[str, Any]) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO trainer_state VALUES (?,?,?)",
                (self.run_id, key, json.dumps(state)),
            )

    def load_state(self, key: str) -> dict[str, Any] | None:
        rows = self._rows(
            "SELECT state FROM trainer_state WHERE run_id = ? AND key = ?", (self.run_id, key)
        )
        return json.loads(rows[0][0]) if rows else None

    def close(self) -> None:
        with self._lock:
            self._db.close()
