"""`azr bench e2e`: seconds per self-play step, synchronous against asynchronous mode.

The same SelfPlayRun (the CPU preset by default) runs twice through `azr run`, in fresh run
directories, once with `training.mode: sync` and once with `async` (one-step-off-policy:
`maxPolicyLag` from the spec). Seconds per step are the steady state: the time between the
first and the last step's metrics lines divided by the steps between them, so start-up,
seeding and the first step (which has nothing to overlap with) are left out. Prints
`async_over_sync=<x>`: sync's seconds per step over async's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

DEFAULT_SPEC = Path(__file__).resolve().parents[2] / "examples" / "selfplayrun-cpu.yaml"


def seconds_per_step(metrics_file: Path) -> tuple[float, int]:
    steps = [json.loads(line) for line in metrics_file.read_text().splitlines() if line.strip()]
    trained = [m for m in steps if m.get("step", 0) >= 1]
    if len(trained) < 2:
        raise RuntimeError(f"{metrics_file}: {len(trained)} trained steps, at least 2 are needed")
    return (trained[-1]["time"] - trained[0]["time"]) / (len(trained) - 1), len(trained)


def run_mode(spec: dict, mode: str, steps: int, folder: Path) -> float:
    spec = json.loads(json.dumps(spec))
    spec["metadata"]["name"] = f"{spec['metadata']['name']}-{mode}"
    spec["spec"].setdefault("training", {})["mode"] = mode
    spec_file = folder / f"{mode}.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    run_dir = folder / mode
    start = time.perf_counter()
    with open(folder / f"{mode}.log", "w") as log:
        result = subprocess.run([sys.executable, "-m", "azr_launcher.cli", "run", "-f", str(spec_file), "--steps", str(steps),
                                 "--run-dir", str(run_dir), "--plain"], stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise RuntimeError(f"azr run ({mode}) exited with {result.returncode}; see {folder / f'{mode}.log'}")
    per_step, measured = seconds_per_step(run_dir / "metrics.jsonl")
    print(f"{mode}: {per_step:.1f} s per step over steps 1-{measured} ({time.perf_counter() - start:.0f} s in all)")
    return per_step


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--file", type=Path, default=DEFAULT_SPEC, help="the SelfPlayRun (default: the CPU preset)")
    parser.add_argument("--steps", type=int, default=3, help="steps per mode, at least 2 (default 3)")
    parser.add_argument("--keep", type=Path, help="keep the run directories and logs here")


def run(args: argparse.Namespace) -> int:
    if args.steps < 2:
        print("azr bench e2e: --steps must be at least 2", file=sys.stderr)
        return 2
    spec = yaml.safe_load(args.file.read_text())
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        sync = run_mode(spec, "sync", args.steps, folder)
        asynchronous = run_mode(spec, "async", args.steps, folder)
    print(f"sync_seconds_per_step={sync:.1f} async_seconds_per_step={asynchronous:.1f}")
    print(f"async_over_sync={sync / asynchronous:.2f}")
    return 0
