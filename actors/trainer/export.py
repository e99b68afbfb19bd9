"""Export of training data and training sessions to CSV or Parquet.

Four tables, one file each, in long ("tidy") form so they load straight into pandas, a
spreadsheet or a notebook:

* ``training_strategy_pnl``: cycle, market time, strategy, paper PnL and ensemble weight;
* ``training_broker_calls``: every broker outcome the trainer learnt from;
* ``training_sessions``: every session with its scores, versions and outcome (parameters as
  JSON text);
* ``training_versions``: every stored version of every agent, with its parameters as JSON text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import pandas as pd

from actors.trainer.store import ModelVersion
from cycle.messages import CycleOutcome, TrainingSession

Format = Literal["csv", "parquet"]


def training_frames(
    outcomes: Sequence[CycleOutcome],
    sessions: Sequence[TrainingSession],
    versions: Sequence[ModelVersion],
) -> dict[str, pd.DataFrame]:
    """The four export tables as DataFrames, keyed by file stem."""
    pnl = pd.DataFrame(
        [
            {
                "cycle": o.cycle,
                "market_time": o.market_time.isoformat() if o.market_time else None,
                "strategy": name,
                "pnl": value,
                "weight": o.weights.get(name),
            }
            for o in outcomes
            for name, value in o.strategy_pnl.items()
        ],
        columns=["cycle", "market_time", "strategy", "pnl", "weight"],
    )
    calls = pd.DataFrame(
        [
            {"cycle": o.cycle, **c.model_dump(mode="json")}
            for o in outcomes
            for c in o.broker_calls
        ],
        columns=["cycle", "broker", "at", "success", "latency_ms", "slippage_bps", "fee",
                 "error_type"],
    )
    session_rows = []
    for s in sessions:
        row = s.model_dump(mode="json")
        row["params_before"] = json.dumps(row["params_before"])
        row["params_after"] = json.dumps(row["params_after"])
        session_rows.append(row)
    session_frame = pd.DataFrame(
        session_rows, columns=list(TrainingSession.model_fields)
    )
    version_frame = pd.DataFrame(
        [{**v.model_dump(), "params": json.dumps(v.params)} for v in versions],
        columns=list(ModelVersion.model_fields),
    )
    return {
        "training_strategy_pnl": pnl,
        "training_broker_calls": calls,
        "training_sessions": session_frame,
        "training_versions": version_frame,
    }


def export_training(
    folder: Path,
    fmt: Format,
    outcomes: Sequence[CycleOutcome],
    sessions: Sequence[TrainingSession],
    versions: Sequence[ModelVersion],
) -> list[Path]:
    """Write the four tables to ``folder`` as CSV or Parquet; returns the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, frame in training_frames(outcomes, sessions, versions).items():
        path = folder / f"{stem}.{fmt}"
        if fmt == "csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
        paths.append(path)
    return paths
