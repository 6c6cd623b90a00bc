"""`azr report RUN_DIR`: PNG charts of a run and one self-contained HTML page.

Writes into RUN_DIR/report/: rewards.png (per type and role), format_errors.png (share of
responses that could not be parsed, per type and role), valid_rate.png, solve_rate.png
(solve accuracy and mean s-bar per type), buffers.png, phases.png (seconds per phase and step),
and RUN_DIR/report.html with every chart embedded (no external files or network).
"""

from __future__ import annotations

import argparse
import base64
import html
import math
import sys
from pathlib import Path

from azr.metrics import ROLES, STEP_PHASES, TASK_TYPES, task_types_in

COLOURS = {"deduction": "#1f77b4", "abduction": "#d62728", "induction": "#2ca02c", "repair": "#9467bd"}


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a run directory (holds metrics.jsonl)")


def _series(steps: list[dict], key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for m in steps:
        v = m.get(key)
        if isinstance(v, int | float) and math.isfinite(v):
            xs.append(m["step"])
            ys.append(float(v))
    return xs, ys


def _figure(title: str, ylabel: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    return fig, ax


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _plot_per_type(ax, lines: list[dict], prefix: str) -> None:
    """One curve per task type of the metric `<prefix>.<type>`."""
    for t in task_types_in(lines):
        xs, ys = _series(lines, f"{prefix}.{t}")
        ax.plot(xs, ys, marker="o", ms=3, color=COLOURS[t], label=t)


def _plot_per_type_and_role(ax, lines: list[dict], prefix: str, ylim: tuple[float, float]) -> None:
    """One curve per task type and role of `<prefix>.<type>.<role>` (proposer dashed)."""
    for t in task_types_in(lines):
        for role, style in zip(ROLES, ("--", "-")):
            xs, ys = _series(lines, f"{prefix}.{t}.{role}")
            ax.plot(xs, ys, style, marker="o", ms=3, color=COLOURS[t], label=f"{t} {role}")
    ax.set_ylim(*ylim)
    ax.legend(fontsize=7, ncol=3)


def charts(metrics: list[dict], out: Path) -> list[tuple[str, Path]]:
    out.mkdir(parents=True, exist_ok=True)
    steps = [m for m in metrics if m.get("step", 0) > 0]
    made = []

    fig, ax = _figure("Reward per task type and role", "mean reward")
    _plot_per_type_and_role(ax, steps, "reward", ylim=(-1.05, 1.05))
    made.append(("Rewards", _save(fig, out / "rewards.png")))

    fig, ax = _figure("Format errors", "share of responses")
    _plot_per_type_and_role(ax, steps, "format_error", ylim=(-0.02, 1.02))
    made.append(("Format errors", _save(fig, out / "format_errors.png")))

    fig, ax = _figure("Valid-proposal rate", "share of proposals")
    _plot_per_type(ax, steps, "valid_rate")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7)
    made.append(("Valid proposals", _save(fig, out / "valid_rate.png")))

    fig, ax = _figure("Solve rates", "share solved")
    for t in task_types_in(steps):
        xs, ys = _series(steps, f"accuracy.{t}")
        ax.plot(xs, ys, marker="o", ms=3, color=COLOURS[t], label=f"{t} accuracy")
        xs, ys = _series(steps, f"s_bar.{t}")
        ax.plot(xs, ys, ":", marker="x", ms=3, color=COLOURS[t], label=f"{t} mean s-bar")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7, ncol=2)
    made.append(("Solve rates", _save(fig, out / "solve_rate.png")))

    fig, ax = _figure("Buffer sizes", "tasks")
    _plot_per_type(ax, metrics, "buffer")  # the seeding line (step 0) included
    ax.legend(fontsize=7)
    made.append(("Buffers", _save(fig, out / "buffers.png")))

    fig, ax = _figure("Seconds per phase", "seconds")
    bottoms = [0.0] * len(steps)
    xs = [m["step"] for m in steps]
    for phase in (p.value for p in STEP_PHASES):
        values = [float(m.get(f"seconds.{phase}") or 0.0) for m in steps]
        if any(values):
            ax.bar(xs, values, bottom=bottoms, label=phase)
            bottoms = [b + v for b, v in zip(bottoms, values)]
    ax.legend(fontsize=7, ncol=4)
    made.append(("Time per phase", _save(fig, out / "phases.png")))
    return made


def _summary_rows(metrics: list[dict]) -> list[tuple[str, str, str]]:
    steps = [m for m in metrics if m.get("step", 0) > 0]
    if not steps:
        return []

    def fmt(v):
        return "-" if not isinstance(v, int | float) or not math.isfinite(v) else f"{v:.3g}"

    types = task_types_in(steps)
    keys = [f"reward.{t}.{r}" for t in types for r in ROLES] + [f"valid_rate.{t}" for t in types] + \
           [f"accuracy.{t}" for t in types] + ["step_seconds"]
    return [(k, fmt(steps[0].get(k)), fmt(steps[-1].get(k))) for k in keys]


KINDS = ("valid", "rejected", "correct", "wrong")


def read_examples(run_dir: Path) -> list[dict]:
    """examples.jsonl: per step, a few proposals (valid, rejected with the reason) and graded answers."""
    from azr_launcher.runner import read_jsonl

    return read_jsonl(run_dir, "examples.jsonl")


def _example_html(example: dict) -> str:
    def code(text) -> str:
        return f"<pre>{html.escape(str(text))}</pre>" if text not in (None, "") else ""

    kind = example["kind"]
    task = example.get("task", example)
    if "pairs" in task:
        shown = code(task.get("message", "")) + code("\n".join(f"{i}  ->  {o}" for i, o in task["pairs"]))
    else:
        shown = code(task.get("program", "")) + (code(f"input:  {task['input']}\noutput: {task['output']}") if "input" in task else "")
    if kind == "rejected":
        body = f"<p class='reason'>{html.escape(example.get('reason') or 'rejected')}</p>" + code(example.get("response"))
    elif kind == "valid":
        body = shown
    else:
        answer = example.get("answer")
        body = shown + (f"<p>answer{'' if example.get('formatted') else ' (badly formatted)'}:</p>" + code(answer)
                        if answer else "<p>no answer could be read from:</p>" + code(example.get("response")))
    return f"<div class='example {kind}'><h4>{html.escape(example['type'])}: {kind}</h4>{body}</div>"


def _examples_section(run_dir: Path) -> str:
    records = [r for r in read_examples(run_dir) if r.get("examples")]
    if not records:
        return ""
    parts = []
    for record in ([records[0], records[-1]] if len(records) > 1 else records):
        ordered = sorted(record["examples"], key=lambda e: (TASK_TYPES.index(e["type"]), KINDS.index(e["kind"])))
        cards = "\n".join(_example_html(e) for e in ordered)
        parts.append(f"<h3>Step {record['step']}</h3><div class='examples'>{cards}</div>")
    return "<h2>What the model wrote</h2>\n<p>A few proposals (valid, and rejected with the reason) and " \
           "graded answers of the first and the last step. Source: examples.jsonl.</p>\n" + "\n".join(parts)


def write_report(run_dir: Path) -> Path:
    from azr_launcher.runner import read_metrics

    run_dir = Path(run_dir)
    metrics = read_metrics(run_dir)
    if not metrics:
        raise FileNotFoundError(f"{run_dir / 'metrics.jsonl'}: no metrics yet")
    made = charts(metrics, run_dir / "report")
    steps = [m for m in metrics if m.get("step", 0) > 0]
    figures = "\n".join(
        f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}">'
        f"<figcaption>{html.escape(title)}</figcaption></figure>" for title, path in made)
    rows = "\n".join(f"<tr><td>{html.escape(k)}</td><td>{a}</td><td>{b}</td></tr>" for k, a, b in _summary_rows(metrics))
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>azr report: {html.escape(run_dir.name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1500px; color: #222; }}
.charts {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(min(640px, 100%), 1fr)); gap: 1rem; }}
.examples {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(min(420px, 100%), 1fr)); gap: 0.8rem; }}
.example {{ border: 1px solid #ddd; border-left: 6px solid #999; padding: 0.3rem 0.8rem; overflow-x: auto; }}
.example.valid, .example.correct {{ border-left-color: #2a9d4b; }} .example.rejected, .example.wrong {{ border-left-color: #c0392b; }}
.example h4 {{ margin: 0.3rem 0; }} .reason {{ color: #c0392b; font-weight: 600; }}
pre {{ background: #f6f6f6; padding: 0.4rem; white-space: pre-wrap; word-break: break-word; margin: 0.3rem 0; }}
figure {{ margin: 0; }} img {{ width: 100%; border: 1px solid #ddd; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ddd; padding: 0.2rem 0.6rem; text-align: right; }}
td:first-child {{ text-align: left; }}
</style></head><body>
<h1>azr report: {html.escape(run_dir.name)}</h1>
<p>{len(steps)} steps; {len(metrics) - len(steps)} seeding line(s). Source: metrics.jsonl.</p>
<h2>Summary: first and last step</h2>
<table><tr><th>metric</th><th>first step</th><th>last step</th></tr>
{rows}
</table>
<h2>Curves</h2>
<div class="charts">
{figures}
</div>
{_examples_section(run_dir)}
</body></html>
"""
    path = run_dir / "report.html"
    path.write_text(page)
    return path


def run_report(args: argparse.Namespace) -> int:
    try:
        path = write_report(Path(args.run_dir))
    except FileNotFoundError as exc:
        print(f"azr report: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0
