"""`azr run -f RUN.yaml [--steps N] [--run-dir DIR]`: the whole system on this machine, with a
live view of the run and a summary at the end."""

from __future__ import annotations

import argparse
import logging
import math
import signal
import time
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from azr.metrics import ROLES, TASK_TYPES, task_types_in
from azr.spec import SpecError


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--file", required=True, help="the SelfPlayRun (examples/selfplayrun-cpu.yaml on a laptop)")
    parser.add_argument("--steps", type=int, help="total steps (overrides training.steps)")
    parser.add_argument("--run-dir", help="where everything goes (default: runs/<metadata.name>); reuse it to resume")
    parser.add_argument("--plain", action="store_true", help="log lines instead of the live display")


def _fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def example_lines(examples: list[dict], width: int = 100) -> list[str]:
    """One line per task type: a task the model proposed that was valid, else why one was not,
    then how one answer was graded."""
    def short(text) -> str:
        flat = " ".join(str(text).split())
        return flat if len(flat) <= width else flat[:width - 3] + "..."

    lines = []
    for t in TASK_TYPES:
        mine = [e for e in examples if e["type"] == t]
        valid = next((e for e in mine if e["kind"] == "valid"), None)
        rejected = next((e for e in mine if e["kind"] == "rejected"), None)
        graded = next((e for e in mine if e["kind"] in ("correct", "wrong")), None)
        if valid and "failing" in valid:  # bug repair: the variant and a test it fails
            test = valid["failing"][0] if valid["failing"] else ["?", "?", "?"]
            shown = f"{valid.get('program', '')}  f({test[0]}) returns {test[2]}, not {test[1]}"
            lines.append(f"{t} proposed: {short(shown)}")
        elif valid:
            shown = valid.get("message") or f"{valid.get('program', '')}  on {valid.get('input')} -> {valid.get('output')}"
            lines.append(f"{t} proposed: {short(shown)}")
        elif rejected:
            lines.append(f"{t} rejected: {short(rejected.get('reason', ''))}")
        if graded:
            lines.append(f"{t} answer {graded['kind']}: {short(graded.get('answer') or graded.get('response') or '')}")
    return lines


def last_examples(run_dir) -> tuple[int, list[dict]]:
    """The newest step's examples of what the model wrote (examples.jsonl): (step, examples)."""
    from azr_launcher.runner import read_jsonl

    records = read_jsonl(run_dir, "examples.jsonl")
    return (records[-1]["step"], records[-1]["examples"]) if records else (0, [])


def live_view(run, status, waiting: list[str] | None, started: float, examples: list[dict] | None = None) -> Group:
    header = Table.grid(padding=(0, 2))
    elapsed = time.monotonic() - started
    services = "  ".join(f"{s.role}:{'up' if s.alive() else 'down'}" + (f" (restarted {s.restarts}x)" if s.restarts else "")
                         for s in run.services.values())
    header.add_row(Text(f"azr run {run.run.metadata.name}", style="bold"), Text(f"{elapsed:,.0f} s"), Text(services, style="dim"))
    if waiting:
        return Group(header, Text(f"starting: waiting for {', '.join(waiting)} to be healthy ...", style="yellow"))
    if status is None:
        return Group(header, Text("the learner is starting ...", style="yellow"))
    m = dict(status.metrics)
    line = Table.grid(padding=(0, 2))
    line.add_row(f"step {status.step}/{status.total_steps}", f"phase: [bold]{status.phase}[/]", f"policy v{status.policy_version}",
                 f"last step {_fmt(m.get('step_seconds'), 0)} s")
    table = Table(title=None, show_edge=False, pad_edge=False)
    table.add_column("")
    # Code I/O's three columns always (a status's metrics may be partial mid-step), others once reported.
    shown = [t for t in TASK_TYPES if t in TASK_TYPES[:3] or t in task_types_in([m])]
    for t in shown:
        table.add_column(t, justify="right")
    table.add_row("reward propose", *[_fmt(m.get(f"reward.{t}.propose")) for t in shown])
    table.add_row("reward solve", *[_fmt(m.get(f"reward.{t}.solve")) for t in shown])
    table.add_row("valid proposals", *[_fmt(m.get(f"valid_rate.{t}")) for t in shown])
    table.add_row("solve accuracy", *[_fmt(m.get(f"accuracy.{t}")) for t in shown])
    table.add_row("buffer", *[_fmt(m.get(f"buffer.{t}"), 0) for t in shown])
    if not examples:
        return Group(header, line, table)
    return Group(header, line, table, Text("last step, as the model wrote it:", style="bold"),
                 *[Text(x, style="dim") for x in example_lines(examples)])


def summary_table(metrics: list[dict]) -> Table:
    """Rewards per type and role, valid-proposal rate, solve accuracy and step time: first step,
    last step, and the mean over the run."""
    steps = [m for m in metrics if m.get("step", 0) > 0]
    table = Table(title=f"azr run: {len(steps)} steps" if steps else "azr run: no completed step")
    for column in ("metric", "first step", "last step", "mean"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    if not steps:
        return table

    def row(label: str, key: str, digits: int = 2) -> None:
        values = [m.get(key) for m in steps]
        finite = [v for v in values if isinstance(v, int | float) and math.isfinite(v)]
        table.add_row(label, _fmt(values[0], digits), _fmt(values[-1], digits),
                      _fmt(sum(finite) / len(finite), digits) if finite else "-")

    types = task_types_in(steps)
    for t in types:
        for r in ROLES:
            row(f"reward {t} {r}", f"reward.{t}.{r}")
    for t in types:
        row(f"valid proposals {t}", f"valid_rate.{t}")
    for t in types:
        row(f"solve accuracy {t}", f"accuracy.{t}")
    row("step seconds", "step_seconds", 1)
    return table


def run_local(args: argparse.Namespace) -> int:
    from azr_launcher.runner import RunError

    console = Console(stderr=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s azr run %(levelname)s %(message)s")
    run = _open_run(args, console)
    if isinstance(run, int):
        return run
    previous = signal.signal(signal.SIGTERM, lambda *_: run.stopping.set())
    console.print(f"run directory: {run.run_dir}  (logs in {run.run_dir / 'logs'})")
    interrupted, code = False, 0
    try:
        interrupted = _follow(run, console, plain=args.plain)
    except KeyboardInterrupt:
        interrupted = True
    except RunError as exc:
        console.print(f"azr run: {exc}", markup=False, highlight=False)
        code = 1
    finally:
        if interrupted:
            console.print("stopping: the learner checkpoints, then every service stops ...")
        run.shutdown()
        signal.signal(signal.SIGTERM, previous)
    _print_outcome(run, console)
    if interrupted:
        console.print(f"interrupted; `azr run -f {args.file} --run-dir {run.run_dir}` continues from the last checkpoint")
        return 130
    if code == 0:
        console.print(f"done: {run.run_dir}  (azr report {run.run_dir} draws the charts)")
    return code


def _open_run(args: argparse.Namespace, console: Console):
    """The run, ready to start; or the exit status of why it cannot be."""
    from azr_launcher.runner import LocalRun, default_run_dir, which_runsc_missing

    if args.steps is not None and args.steps < 1:
        console.print("azr run: --steps must be at least 1")
        return 2
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(args.file)
    try:
        run = LocalRun(args.file, run_dir, args.steps)
    except SpecError as exc:
        console.print(str(exc), markup=False, highlight=False)
        return 2
    missing = which_runsc_missing(run.run)
    if missing:
        console.print(f"azr run: {missing}")
        return 2
    return run


def _follow(run, console: Console, plain: bool) -> bool:
    """Start the services and show the run until it ends; True when it was told to stop."""
    started = time.monotonic()
    live = None if plain or not console.is_terminal else Live(console=console, refresh_per_second=2, transient=False)
    waiting: list[str] = []
    if live:
        live.start()
    try:
        run.start(on_wait=lambda pending: (waiting.__setitem__(slice(None), pending),
                                           live.update(live_view(run, None, waiting, started)) if live else None))
        last_step, examples = -1, []
        while not run.stopping.is_set():
            if run.supervise_once():
                break
            status = run.status()
            if status is not None and status.step != last_step:
                last_step = status.step
                examples = last_examples(run.run_dir)[1]
                if not live:
                    console.print(f"step {status.step}/{status.total_steps} phase {status.phase} v{status.policy_version}")
                    for text in example_lines(examples):
                        console.print(f"  {text}", markup=False, highlight=False)
            if live:
                live.update(live_view(run, status, None, started, examples))
            time.sleep(1.0)
        return run.stopping.is_set()
    finally:
        if live:
            live.stop()


def _print_outcome(run, console: Console) -> None:
    from azr_launcher.runner import read_metrics

    console.print(summary_table(read_metrics(run.run_dir)))
    step, examples = last_examples(run.run_dir)
    if examples:  # the last step ends the run before the loop above can show it
        console.print(f"step {step}, as the model wrote it:")
        for text in example_lines(examples):
            console.print(f"  {text}", markup=False, highlight=False)

