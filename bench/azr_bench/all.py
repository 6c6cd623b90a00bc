"""`azr bench all`: every benchmark, each against the baseline it measures in the same run,
summed up in one table that replaces the marked section of docs/benchmarks.md.

Each benchmark runs as its own `azr bench ...` process (as a user would run it, and so that
one's memory or threads never slow the next); its `key=value` lines give the row. The table
names the machine, the date and the exact command of every row.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"
START, END = "<!-- azr bench all: start -->", "<!-- azr bench all: end -->"


@dataclass(frozen=True)
class Benchmark:
    name: str
    args: tuple[str, ...]
    quick_args: tuple[str, ...]
    ours: str            # key of our figure
    baseline: str        # key of the baseline's figure
    unit: str
    higher_is_better: bool = True
    what: str = ""


BENCHMARKS = (
    Benchmark("executor", ("executor",), ("executor", "--repeat", "1", "--rounds", "1", "--sandbox", "gvisor"),
              "gvisor_validations_per_s", "reference_pool_validations_per_s", "validations/s",
              what="gVisor executor vs the reference's unsandboxed process pool"),
    Benchmark("executor-load", ("executor-load",), ("executor-load", "--seconds", "6", "--clients", "6"),
              "load_programs_per_s", "single_programs_per_s", "programs/s",
              what="32 concurrent clients vs one client, same server"),
    Benchmark("rollout", ("rollout",), ("rollout", "--proposals", "2", "--samples", "2", "--max-tokens", "16"),
              "vllm_seeded_tokens_per_s", "transformers_seeded_tokens_per_s", "tokens/s",
              what="vLLM vs transformers generate(), self-play prompts"),
    Benchmark("learner", ("learner",), ("learner", "--shape", "smollm2-135m", "--precision", "float32", "--samples", "4",
                                        "--steps", "1", "--prompt-min", "16", "--prompt-max", "64", "--response-min", "8",
                                        "--response-max", "64", "--seq-len", "128",
                                        "--baseline-batch", "2", "--baseline-tokens", "512", "--baseline", "eager"),
              "learner_tokens_per_s", "baseline_tokens_per_s", "tokens/s",
              what="the learner's packed DeepSpeed update vs a plain PyTorch loop"),
    Benchmark("e2e", ("e2e",), ("e2e", "--steps", "2"), "async_seconds_per_step", "sync_seconds_per_step", "s/step",
              higher_is_better=False, what="asynchronous vs synchronous self-play steps"),
)
CPU_LEARNER_ARGS = ("--shape", "smollm2-135m", "--precision", "float32", "--samples", "16", "--steps", "2",
                    "--prompt-max", "384", "--response-max", "256", "--seq-len", "512", "--baseline-batch", "4",
                    "--baseline-tokens", "8192", "--baseline", "eager")


def machine() -> str:
    cores = os.cpu_count()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    try:
        import torch

        gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    except ImportError:
        gpu = "no GPU"
    return f"{cores} cores, {memory:.0f} GiB, {gpu} ({platform.machine()})"


def figures(output: str) -> dict[str, float]:
    return {k: float(v) for k, v in re.findall(r"\b([a-z_]+)=(-?\d+(?:\.\d+)?)", output)}


def command_for(bench: Benchmark, quick: bool) -> list[str]:
    args = list(bench.quick_args if quick else bench.args)
    if bench.name == "learner" and not quick and not _has_gpu():
        args += CPU_LEARNER_ARGS  # the GPU shapes would take hours here
    return ["azr", "bench", *args]


def _has_gpu() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def run_one(bench: Benchmark, quick: bool, log_dir: Path) -> dict:
    command = command_for(bench, quick)
    print(f"== {bench.name}: {' '.join(command)}", flush=True)
    result = subprocess.run([sys.executable, "-m", "azr_launcher.cli", *command[1:]], capture_output=True, text=True)
    (log_dir / f"{bench.name}.log").write_text(result.stdout + result.stderr)
    found = figures(result.stdout)
    row = {"name": bench.name, "command": " ".join(command), "what": bench.what, "unit": bench.unit,
           "ok": result.returncode == 0 and bench.ours in found and bench.baseline in found}
    if row["ok"]:
        ours, baseline = found[bench.ours], found[bench.baseline]
        row.update(ours=ours, baseline=baseline,
                   ratio=(ours / baseline) if bench.higher_is_better else (baseline / ours))
        print(f"   ours {ours:,.1f} {bench.unit}, baseline {baseline:,.1f}, {row['ratio']:.2f}x", flush=True)
    else:
        row["error"] = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        print(f"   failed (exit {result.returncode}): {row['error'][0]}", flush=True)
    return row


def table(rows: list[dict], host: str, date: str) -> str:
    lines = [START, "",
             f"Last `azr bench all` run: {date}, on {host}. Ratios are ours over the baseline "
             "(for seconds per step, the baseline's over ours): above 1 is better.", "",
             "| benchmark | ours | baseline | ratio | what | command |", "|---|---|---|---|---|---|"]
    for r in rows:
        if r["ok"]:
            lines.append(f"| {r['name']} | {r['ours']:,.1f} {r['unit']} | {r['baseline']:,.1f} {r['unit']} | "
                         f"**{r['ratio']:.2f}x** | {r['what']} | `{r['command']}` |")
        else:
            lines.append(f"| {r['name']} | failed | | | {r['what']} | `{r['command']}`: {r['error'][0]} |")
    return "\n".join(lines + ["", END])


def write_docs(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if START in text and END in text:
        text = text[:text.index(START)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n## All benchmarks at once (`azr bench all`)\n\n" + section + "\n"
    path.write_text(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--only", help="comma-separated subset: " + ", ".join(b.name for b in BENCHMARKS))
    parser.add_argument("--quick", action="store_true", help="tiny settings: checks the plumbing, not the speed")
    parser.add_argument("--docs", type=Path, default=DOCS, help="the Markdown file whose marked section gets the table")
    parser.add_argument("--logs", type=Path, default=Path("bench-logs"), help="each benchmark's full output")


def run(args: argparse.Namespace) -> int:
    chosen = [b for b in BENCHMARKS if not args.only or b.name in args.only.split(",")]
    unknown = set(args.only.split(",")) - {b.name for b in BENCHMARKS} if args.only else set()
    if unknown:
        print(f"azr bench all: unknown benchmark(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    args.logs.mkdir(parents=True, exist_ok=True)
    rows = [run_one(b, args.quick, args.logs) for b in chosen]
    host, date = machine(), datetime.date.today().isoformat()
    section = table(rows, host, date)
    write_docs(args.docs, section)
    print(section)
    return 0 if all(r["ok"] for r in rows) else 1
