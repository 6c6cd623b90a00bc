"""`azr bench rollout`: output tokens per second of the vLLM and transformers engines on the
self-play workload, in one run.

Workload (what one CPU-preset step asks of the engines): proposer prompts for the three task
types, each carrying K reference programs, sampled once; then Monte-Carlo solver prompts,
each sampled n = 8 times. Every prompt is built by the core library, with the preset's
worked format example, so prompts share their first part as they do in training.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from azr.prompts import propose_prompt, solve_prompt
from azr.tasks import InductionTask, TaskType, Triplet

PROGRAMS = Path(__file__).resolve().parents[1] / "data" / "programs.jsonl"


def workload(references: int, proposals: int, samples: int, seed: int = 0):
    """(prompt, n) pairs: proposer prompts (n=1) then solver prompts (n=samples)."""
    rng = random.Random(seed)
    with open(PROGRAMS, encoding="utf-8") as stream:
        pool = [json.loads(line) for line in stream if line.strip()]
    pool = [Triplet(p["program"], p["input"], "?") for p in pool if len(p["program"]) < 400]
    items = []
    for task_type in (TaskType.ABDUCTION, TaskType.DEDUCTION, TaskType.INDUCTION):
        for _ in range(proposals):
            refs = rng.sample(pool, 1 if task_type is TaskType.INDUCTION else references)
            items.append((propose_prompt(task_type, refs, format_examples=1), 1))
    for task_type in (TaskType.ABDUCTION, TaskType.DEDUCTION, TaskType.INDUCTION):
        for _ in range(proposals):
            task = rng.choice(pool)
            if task_type is TaskType.INDUCTION:
                task = InductionTask(task.program, "Computes something from its input.",
                                     tuple(str(i) for i in range(10)), tuple(str(i) for i in range(10)))
            items.append((solve_prompt(task, task_type, format_examples=1), samples))
    return items


def measure(engine, items, max_tokens: int, seed: int, seeded: bool = True, logprobs: bool = True) -> tuple[float, int, float]:
    from azr_contracts.convert import prompt_to_proto
    from azr_generation.engines import Sampling
    from azr_generation.server import render_prompt

    prompts = [render_prompt(engine.tokenizer, prompt_to_proto(p)) for p, _ in items]
    sampling = [Sampling(n=n, temperature=1.0, top_p=1.0, max_tokens=max_tokens, seed=seed + k if seeded else None,
                         logprobs=logprobs) for k, (_, n) in enumerate(items)]
    engine.generate(prompts[:2], [Sampling(n=1, max_tokens=8), Sampling(n=2, max_tokens=8)])  # warm up
    start = time.perf_counter()
    groups = engine.generate(prompts, sampling)
    elapsed = time.perf_counter() - start
    tokens = sum(len(c.token_ids) for g in groups for c in g)
    return tokens / elapsed, tokens, elapsed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--proposals", type=int, default=2, help="proposer prompts per task type (B)")
    parser.add_argument("--references", type=int, default=3, help="reference programs per proposer prompt (K)")
    parser.add_argument("--samples", type=int, default=8, help="Monte-Carlo samples per solver prompt (n)")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--model", default=None, help="an embedded name (default smollm2-135m-instruct), a folder or a hub ID")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", default=None, help="default: auto (bfloat16 on a GPU, float32 on CPU)")
    parser.add_argument("--fast", action="store_true",
                        help="also measure both engines unseeded and without log-probs (seededSampling: false, "
                             "oldLogProbs: recompute)")


def run(args: argparse.Namespace) -> int:
    import torch

    from azr.spec import DEFAULT_MODEL
    from azr_generation.engines import TransformersEngine, VllmEngine, resolve_dtype
    from azr_models.resolve import resolve_model

    model = resolve_model(args.model or DEFAULT_MODEL)
    items = workload(args.references, args.proposals, args.samples, args.seed)
    sequences = sum(n for _, n in items)
    print(f"workload: {len(items)} prompts, {sequences} sequences, max {args.max_tokens} tokens each; model {model}")
    dtype = resolve_dtype(args.dtype or "auto")
    print(f"dtype {dtype}, device {torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu'}")
    modes = [("seeded", True, True)] + ([("fast", False, False)] if args.fast else [])
    rates = {}
    # vLLM first: it sizes its memory reservation from what is free when it starts.
    for name, make in (("vllm", lambda: VllmEngine(model, dtype, 4096, args.seed)),
                       ("transformers", lambda: TransformersEngine(model, dtype, 4096, args.seed))):
        engine = make()
        for mode, seeded, logprobs in modes:
            rate, tokens, elapsed = measure(engine, items, args.max_tokens, args.seed, seeded, logprobs)
            rates[name, mode] = rate
            print(f"{name}_{mode}_tokens_per_s={rate:.1f}  ({tokens} tokens in {elapsed:.1f} s)")
        engine.close()
    for mode, _, _ in modes:
        print(f"vllm_over_transformers_{mode}={rates['vllm', mode] / rates['transformers', mode]:.2f}")
    if args.fast:
        print(f"vllm_fast_over_transformers_seeded={rates['vllm', 'fast'] / rates['transformers', 'seeded']:.2f}")
    return 0
