"""The ledger: SQLite in WAL mode, the desk's memory of record.

Orders, fills, positions, equity, risk decisions, cycle reports, events and agent snapshots are
written here *before* the step that produced them is acknowledged. Writes are idempotent (orders
upsert by client order id, fills insert-or-ignore by fill id), so a retried write never doubles a
row, and each :meth:`Ledger.record` is one transaction: a batch lands whole or not at all.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import Field

from cycle.accounting import AccountState
from cycle.messages import Fill, Frozen, Order, RiskDecision
from cycle.report import RunStats

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, config_hash TEXT NOT NULL, started_at TEXT NOT NULL,
    config TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
    run_id TEXT NOT NULL, client_order_id TEXT NOT NULL, cycle INTEGER NOT NULL,
    symbol TEXT NOT NULL, side TEXT NOT NULL, order_type TEXT NOT NULL, quantity REAL NOT NULL,
    limit_price REAL, strategy TEXT NOT NULL, status TEXT NOT NULL, broker TEXT,
    broker_order_id TEXT, filled_quantity REAL NOT NULL, average_price REAL NOT NULL,
    fees REAL NOT NULL, reason TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (run_id, client_order_id)
);
CREATE TABLE IF NOT EXISTS order_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, client_order_id TEXT NOT NULL,
    status TEXT NOT NULL, reason TEXT NOT NULL, at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS fills (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, fill_id TEXT NOT NULL,
    client_order_id TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL,
    quantity REAL NOT NULL, price REAL NOT NULL, fee REAL NOT NULL, broker TEXT NOT NULL,
    liquidity TEXT NOT NULL, reference_price REAL NOT NULL, slippage_bps REAL NOT NULL,
    latency_ms REAL NOT NULL, timestamp TEXT NOT NULL, UNIQUE (run_id, fill_id)
);
CREATE TABLE IF NOT EXISTS equity (
    run_id TEXT NOT NULL, cycle INTEGER NOT NULL, timestamp TEXT, cash REAL NOT NULL,
    equity REAL NOT NULL, peak_equity REAL NOT NULL, realised_pnl REAL NOT NULL,
    fees_paid REAL NOT NULL, PRIMARY KEY (run_id, cycle)
);
CREATE TABLE IF NOT EXISTS positions (
    run_id TEXT NOT NULL, cycle INTEGER NOT NULL, symbol TEXT NOT NULL, quantity REAL NOT NULL,
    average_cost REAL NOT NULL, mark REAL NOT NULL, PRIMARY KEY (run_id, cycle, symbol)
);
CREATE TABLE IF NOT EXISTS risk_decisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, cycle INTEGER NOT NULL,
    symbol TEXT NOT NULL, action TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cycle_reports (
    run_id TEXT NOT NULL, cycle INTEGER NOT NULL, report TEXT NOT NULL,
    PRIMARY KEY (run_id, cycle)
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, cycle INTEGER NOT NULL,
    kind TEXT NOT NULL, payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    run_id TEXT NOT NULL, agent TEXT NOT NULL, cycle INTEGER NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (run_id, agent)
);
CREATE TABLE IF NOT EXISTS trainer_observations (
    run_id TEXT NOT NULL, cycle INTEGER NOT NULL, outcome TEXT NOT NULL,
    PRIMARY KEY (run_id, cycle)
);
CREATE TABLE IF NOT EXISTS trainer_sessions (
    run_id TEXT NOT NULL, session_id TEXT NOT NULL, seq INTEGER NOT NULL, agent TEXT NOT NULL,
    mode TEXT NOT NULL, outcome TEXT NOT NULL, cycle INTEGER NOT NULL,
    score_before REAL, score_after REAL, live_effect REAL, record TEXT NOT NULL,
    PRIMARY KEY (run_id, session_id)
);
CREATE TABLE IF NOT EXISTS trainer_versions (
    run_id TEXT NOT NULL, agent TEXT NOT NULL, version INTEGER NOT NULL,
    session_id TEXT, created_at TEXT NOT NULL, params TEXT NOT NULL,
    applied TEXT NOT NULL DEFAULT 'pending', PRIMARY KEY (run_id, agent, version)
);
CREATE TABLE IF NOT EXISTS trainer_active (
    run_id TEXT NOT NULL, agent TEXT NOT NULL, version INTEGER NOT NULL,
    history TEXT NOT NULL, PRIMARY KEY (run_id, agent)
);
CREATE TABLE IF NOT EXISTS trainer_deployments (
    run_id TEXT NOT NULL, deployment_id TEXT NOT NULL, agent TEXT NOT NULL,
    version INTEGER NOT NULL, command TEXT NOT NULL, created_at TEXT NOT NULL,
    acked_at TEXT, ok INTEGER, error TEXT, PRIMARY KEY (run_id, deployment_id)
);
CREATE TABLE IF NOT EXISTS trainer_state (
    run_id TEXT NOT NULL, key TEXT NOT NULL, state TEXT NOT NULL, PRIMARY KEY (run_id, key)
);
"""
"""The ``trainer_*`` tables belong to the agent trainer (``actors/trainer/store.py``), the only
writer of them; they live in the ledger so one file holds everything a run did and learnt."""


class LedgerEvent(Frozen):
    kind: str
    payload: dict[str, Any] = Field(default_factory=dict)


class LedgerBatch(Frozen):
    """Everything one step wants on record, written in a single transaction."""

    run_id: str
    cycle: int = Field(ge=0)
    orders: tuple[Order, ...] = ()
    fills: tuple[Fill, ...] = ()
    account: AccountState | None = None
    risk_decisions: tuple[RiskDecision, ...] = ()
    cycle_report: dict[str, Any] | None = None
    events: tuple[LedgerEvent, ...] = ()
    snapshots: dict[str, dict[str, Any]] = Field(default_factory=dict)


class Ledger:
    """One SQLite file; one writer per process (the ledger agent)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def start_run(self, run_id: str, config_hash: str, config: dict[str, Any], at: str) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO runs VALUES (?, ?, ?, ?)",
            (run_id, config_hash, at, json.dumps(config, sort_keys=True)),
        )

    def record(self, batch: LedgerBatch) -> None:
        """Write a batch in one transaction; idempotent, so a retry never doubles a row."""
        run, cycle = batch.run_id, batch.cycle
        with self._transaction() as db:
            self._write_orders(db, run, batch.orders)
            db.executemany(
                "INSERT OR IGNORE INTO fills (run_id, fill_id, client_order_id, symbol, side,"
                " quantity, price, fee, broker, liquidity, reference_price, slippage_bps,"
                " latency_ms, timestamp) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        run, f.fill_id, f.client_order_id, f.symbol, f.side.value, f.quantity,
                        f.price, f.fee, f.broker, f.liquidity, f.reference_price,
                        f.slippage_bps, f.latency_ms, f.timestamp.isoformat(),
                    )
                    for f in batch.fills
                ],
            )
            if batch.account is not None:
                self._write_account(db, run, batch.account)
            db.executemany(
                "INSERT INTO risk_decisions (run_id, cycle, symbol, action, reason, detail)"
                " VALUES (?,?,?,?,?,?)",
                [
                    (run, cycle, d.symbol, d.action, d.reason, json.dumps(d.detail))
                    for d in batch.risk_decisions
                ],
            )
            if batch.cycle_report is not None:
                db.execute(
                    "INSERT OR REPLACE INTO cycle_reports VALUES (?,?,?)",
                    (run, cycle, json.dumps(batch.cycle_report, default=str)),
                )
            db.executemany(
                "INSERT INTO events (run_id, cycle, kind, payload) VALUES (?,?,?,?)",
                [(run, cycle, e.kind, json.dumps(e.payload, default=str)) for e in batch.events],
            )
            db.executemany(
                "INSERT OR REPLACE INTO snapshots VALUES (?,?,?,?)",
                [
                    (run, agent, cycle, json.dumps(state))
                    for agent, state in batch.snapshots.items()
                ],
            )

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    @staticmethod
    def _write_orders(db: sqlite3.Connection, run: str, orders: Iterable[Order]) -> None:
        rows, events = [], []
        for o in orders:
            r = o.request
            rows.append(
                (
                    run, o.client_order_id, r.cycle, r.symbol, r.side.value, r.order_type.value,
                    r.quantity, r.limit_price, r.strategy, o.status.value, o.broker,
                    o.broker_order_id, o.filled_quantity, o.average_price, o.fees, o.reason,
                    r.created_at.isoformat(), o.updated_at.isoformat(),
                )
            )
            events.append(
                (run, o.client_order_id, o.status.value, o.reason, o.updated_at.isoformat())
            )
        db.executemany(
            "INSERT INTO orders VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT (run_id, client_order_id) DO UPDATE SET status=excluded.status,"
            " broker=excluded.broker, broker_order_id=excluded.broker_order_id,"
            " filled_quantity=excluded.filled_quantity, average_price=excluded.average_price,"
            " fees=excluded.fees, reason=excluded.reason, updated_at=excluded.updated_at",
            rows,
        )
        db.executemany(
            "INSERT INTO order_events (run_id, client_order_id, status, reason, at)"
            " VALUES (?,?,?,?,?)",
            events,
        )

    @staticmethod
    def _write_account(db: sqlite3.Connection, run: str, account: AccountState) -> None:
        stamp = account.timestamp.isoformat() if account.timestamp else None
        db.execute(
            "INSERT OR REPLACE INTO equity VALUES (?,?,?,?,?,?,?,?)",
            (
                run, account.cycle, stamp, account.cash, account.equity, account.peak_equity,
                account.realised_pnl, account.fees_paid,
            ),
        )
        db.executemany(
            "INSERT OR REPLACE INTO positions VALUES (?,?,?,?,?,?)",
            [
                (run, account.cycle, p.symbol, p.quantity, p.average_cost, p.mark)
                for p in account.positions.values()
            ],
        )

    def latest_snapshots(self, run_id: str) -> dict[str, tuple[int, dict[str, Any]]]:
        """The newest snapshot of every agent of a run, for restoring after a restart."""
        rows = self._db.execute(
            "SELECT agent, cycle, state FROM snapshots WHERE run_id = ?", (run_id,)
        ).fetchall()
        return {agent: (cycle, json.loads(state)) for agent, cycle, state in rows}

    def run_stats(self, run_id: str) -> RunStats:
        """The run's equity curve and order, fill, fee and risk-decision counts."""
        initial = self._db.execute(
            "SELECT json_extract(config, '$.run.initial_cash') FROM runs WHERE run_id = ?",
            (run_id,),
        ).fetchone()
        equity = [
            row[0]
            for row in self._db.execute(
                "SELECT equity FROM equity WHERE run_id = ? ORDER BY cycle", (run_id,)
            )
        ]
        fills, fees = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(fee), 0) FROM fills WHERE run_id = ?", (run_id,)
        ).fetchone()

        def counts(sql: str) -> dict[str, int]:
            return {str(k): int(v) for k, v in self._db.execute(sql, (run_id,))}

        return RunStats(
            run_id=run_id,
            initial_cash=initial[0] if initial else 0.0,
            equity=equity,
            orders_by_status=counts(
                "SELECT status, COUNT(*) FROM orders WHERE run_id = ? GROUP BY status"
            ),
            orders_by_strategy=counts(
                "SELECT strategy, COUNT(*) FROM orders WHERE run_id = ? GROUP BY strategy"
            ),
            fills=fills,
            fees=fees,
            decisions_by_reason=counts(
                "SELECT action || ': ' || reason, COUNT(*) FROM risk_decisions WHERE run_id = ?"
                " GROUP BY action, reason"
            ),
        )

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Read-only access for reports and tests."""
        return self._db.execute(sql, params).fetchall()

    def close(self) -> None:
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> sqlite3.Connection:
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
