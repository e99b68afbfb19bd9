"""The accounting and order-safety invariants every run must keep, checked from the ledger alone."""

from __future__ import annotations

import sqlite3
from pathlib import Path

TERMINAL = {"filled", "cancelled", "rejected"}
SIGN = {"buy": 1.0, "sell": -1.0}


def check_run(ledger_path: Path, run_id: str, initial_cash: float) -> dict[str, float]:
    """Assert the invariants of one run; returns a few numbers for further checks."""
    db = sqlite3.connect(ledger_path)
    orders = db.execute(
        "SELECT client_order_id, status, quantity, filled_quantity, fees FROM orders WHERE run_id=?",
        (run_id,),
    ).fetchall()
    assert orders, "the run sent no order at all"
    not_terminal = [(cid, status) for cid, status, *_ in orders if status not in TERMINAL]
    assert not not_terminal, f"orders left non-terminal: {not_terminal[:5]}"

    created = db.execute(
        "SELECT client_order_id, COUNT(*) FROM order_events WHERE run_id=? AND status='new'"
        " GROUP BY client_order_id",
        (run_id,),
    ).fetchall()
    assert len(created) == len(orders), "an order reached the ledger without its NEW record"
    assert all(count == 1 for _, count in created), "a client order id was issued twice"

    fills = db.execute(
        "SELECT client_order_id, side, quantity, price, fee FROM fills WHERE run_id=? ORDER BY seq",
        (run_id,),
    ).fetchall()
    filled: dict[str, float] = {}
    cash = initial_cash
    for cid, side, quantity, price, fee in fills:
        cash += -(SIGN[side] * quantity * price) - fee
        filled[cid] = filled.get(cid, 0.0) + quantity
    for cid, _, quantity, filled_quantity, _ in orders:
        assert abs(filled.get(cid, 0.0) - filled_quantity) <= 1e-12 * max(quantity, 1.0), cid
        assert filled_quantity <= quantity * (1 + 1e-12), f"{cid} overfilled"

    curve = db.execute(
        "SELECT cycle, cash, equity, realised_pnl, fees_paid FROM equity WHERE run_id=? ORDER BY cycle",
        (run_id,),
    ).fetchall()
    assert curve, "no equity rows"
    for cycle, cycle_cash, equity, _, _ in curve:
        marked = db.execute(
            "SELECT COALESCE(SUM(quantity * mark), 0) FROM positions WHERE run_id=? AND cycle=?",
            (run_id, cycle),
        ).fetchone()[0]
        assert abs(equity - (cycle_cash + marked)) <= 1e-9 * abs(equity), f"identity broken at {cycle}"

    last_cycle, final_cash, final_equity, realised, fees_paid = curve[-1]
    assert final_cash == cash, f"ledger fills give cash {cash!r}, account says {final_cash!r}"
    total_fees = sum(f[4] for f in fills)
    assert abs(fees_paid - total_fees) <= 1e-12 * max(total_fees, 1e-12)
    unrealised = db.execute(
        "SELECT COALESCE(SUM(quantity * (mark - average_cost)), 0) FROM positions"
        " WHERE run_id=? AND cycle=?",
        (run_id, last_cycle),
    ).fetchone()[0]
    net_pnl = final_equity - initial_cash
    assert abs(net_pnl - (realised + unrealised - fees_paid)) <= 1e-9 * initial_cash
    db.close()
    return {"orders": len(orders), "fills": len(fills), "net_pnl": net_pnl, "cycles": len(curve)}
