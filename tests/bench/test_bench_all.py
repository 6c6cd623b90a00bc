"""`azr bench all`: its table (pure), and a real quick run of two benchmarks into a docs file."""

import subprocess
import sys

import pytest

from azr_bench.all import END, START, figures, table, write_docs


def test_figures_table_and_docs_section(tmp_path):
    assert figures("x_per_s=12.5  3.1x reference\nasync_over_sync=1.40 wrong=0") == {
        "x_per_s": 12.5, "async_over_sync": 1.4, "wrong": 0.0}
    rows = [{"name": "e2e", "ok": True, "ours": 100.0, "baseline": 140.0, "ratio": 1.4, "unit": "s/step",
             "what": "async vs sync", "command": "azr bench e2e"},
            {"name": "rollout", "ok": False, "error": ["vLLM did not start"], "unit": "tokens/s", "what": "",
             "command": "azr bench rollout"}]
    section = table(rows, "2 cores", "2026-11-27")
    assert "**1.40x**" in section and "`azr bench e2e`" in section and "vLLM did not start" in section
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\nkept\n")
    write_docs(docs, section)
    write_docs(docs, section.replace("1.40x", "1.50x"))  # a second run replaces the section
    text = docs.read_text()
    assert text.count(START) == 1 and text.count(END) == 1 and "1.50x" in text and "1.40x" not in text
    assert text.startswith("# Benchmarks\n\nkept\n")


@pytest.mark.slow
def test_a_quick_run_writes_measured_rows(tmp_path):
    docs = tmp_path / "benchmarks.md"
    result = subprocess.run([sys.executable, "-m", "azr_launcher.cli", "bench", "all", "--quick", "--only", "executor,learner",
                             "--docs", str(docs), "--logs", str(tmp_path / "logs")],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = [line for line in docs.read_text().splitlines() if line.startswith("| executor") or line.startswith("| learner")]
    assert len(rows) == 2 and all("x** |" in row and "`azr bench " in row for row in rows), rows
    assert (tmp_path / "logs" / "executor.log").read_text()
