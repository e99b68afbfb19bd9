from __future__ import annotations

from datetime import UTC, datetime

from cycle.ledger import Ledger, LedgerBatch, LedgerEvent
from cycle.messages import Fill, Order, OrderRequest, OrderStatus, OrderType, RiskDecision, Side

NOW = datetime(2018, 1, 10, tzinfo=UTC)


def make_order() -> Order:
    req = OrderRequest(
        client_order_id="ft-abc123", symbol="ETH/BTC", side=Side.BUY, order_type=OrderType.MARKET,
        quantity=2.0, cycle=3, strategy="momentum", created_at=NOW,
    )
    return Order(request=req, updated_at=NOW)


def make_fill(n: int) -> Fill:
    return Fill(
        fill_id=f"ft-abc123:{n}", client_order_id="ft-abc123", symbol="ETH/BTC", side=Side.BUY,
        quantity=1.0, price=0.1, fee=0.0001, broker="paper", liquidity="taker",
        reference_price=0.1, slippage_bps=0.0, latency_ms=3.0, timestamp=NOW,
    )


def test_ledger_is_in_wal_mode_and_writes_are_idempotent(tmp_path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite")
    assert ledger.query("PRAGMA journal_mode")[0][0] == "wal"
    order = make_order()
    batch = LedgerBatch(run_id="r", cycle=3, orders=(order,), fills=(make_fill(1),))
    ledger.record(batch)
    ledger.record(batch)
    assert ledger.query("SELECT COUNT(*) FROM orders")[0][0] == 1
    assert ledger.query("SELECT COUNT(*) FROM fills")[0][0] == 1
    accepted = order.transition(OrderStatus.ACCEPTED, broker="paper")
    ledger.record(LedgerBatch(run_id="r", cycle=4, orders=(accepted,)))
    assert ledger.query("SELECT status, broker FROM orders")[0] == ("accepted", "paper")
    history = ledger.query("SELECT status FROM order_events ORDER BY seq")
    assert [h[0] for h in history] == ["new", "new", "accepted"]


def test_a_failing_batch_writes_nothing(tmp_path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite")
    ledger._db.execute("CREATE TRIGGER boom BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'x'); END")
    batch = LedgerBatch(
        run_id="r", cycle=1, orders=(make_order(),), events=(LedgerEvent(kind="k"),),
    )
    try:
        ledger.record(batch)
    except Exception:  # noqa: BLE001
        pass
    assert ledger.query("SELECT COUNT(*) FROM orders")[0][0] == 0


def test_snapshots_keep_the_latest_per_agent_and_stats_count(tmp_path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite")
    ledger.start_run("r", "hash", {"run": {"initial_cash": 1.0}}, NOW.isoformat())
    ledger.record(LedgerBatch(run_id="r", cycle=1, snapshots={"risk": {"v": 1}}))
    ledger.record(LedgerBatch(run_id="r", cycle=2, snapshots={"risk": {"v": 2}}, risk_decisions=(
        RiskDecision(symbol="ETH/BTC", action="rejected", reason="gross exposure limit"),
    )))
    assert ledger.latest_snapshots("r") == {"risk": (2, {"v": 2})}
    stats = ledger.run_stats("r")
    assert stats.initial_cash == 1.0
    assert stats.decisions_by_reason == {"rejected: gross exposure limit": 1}
