"""Reporter: a JSON line per cycle, and a run summary as JSON and markdown.

The summary is computed from the ledger's own rows (the record of truth), which the coordinator
reads through the ledger agent and hands over; the reporter only renders and writes it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from actors.base import Agent
from cycle.report import CycleReport, RunStats, RunSummary, render_markdown, summarise


class ReporterAgent(Agent):
    role = "reporter"
    operations = frozenset({"step", "summary"})

    def setup(self) -> None:
        self.folder: Path = self.config.report.resolved()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.cycles = 0

    def step(self, report: CycleReport) -> str:
        self.cycles += 1
        line = report.model_dump_json()
        with (self.folder / "cycles.jsonl").open("a") as out:
            out.write(line + "\n")
        return report.progress_line()

    def summary(self, stats: RunStats) -> RunSummary:
        summary = summarise(stats, self.config)
        (self.folder / "summary.json").write_text(json.dumps(summary.model_dump(mode="json"), indent=2))
        (self.folder / "summary.md").write_text(render_markdown(summary))
        return summary

    def state_dict(self) -> dict[str, Any]:
        return {"cycles": self.cycles}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.cycles = state["cycles"]
