"""What a run writes about its steps, one JSON line each: metrics.jsonl (docs/learner.md lists
the keys) and examples.jsonl (a few proposals, valid and rejected with the reason, and graded
answers, as the model wrote them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

METRICS = "metrics.jsonl"
EXAMPLES = "examples.jsonl"


class RunRecord:
    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)

    def metrics(self, record: dict[str, Any]) -> None:
        self._append(METRICS, record)

    def examples(self, record: dict[str, Any]) -> None:
        self._append(EXAMPLES, record)

    def truncate_after(self, step: int) -> None:
        """A resumed run writes the lines of the steps after its checkpoint again."""
        for name in (METRICS, EXAMPLES):
            path = self.run_dir / name
            if path.exists():
                kept = [line for line in path.read_text().splitlines() if line and json.loads(line).get("step", 0) <= step]
                path.write_text("".join(line + "\n" for line in kept))

    def _append(self, name: str, record: dict[str, Any]) -> None:
        with open(self.run_dir / name, "a") as f:
            f.write(json.dumps(record) + "\n")
