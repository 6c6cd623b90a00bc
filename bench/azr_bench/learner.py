"""`azr bench learner`: the learner's training throughput against a plain PyTorch loop.

Ours: `Policy.train`, the learner's own update (DeepSpeed, ZeRO stage and precision as given,
one optimizer step per mini-batch) on RL-shaped batches: prompts and responses of random,
uneven lengths, packed into micro-batches without padding. Only real tokens are counted.
Old log-probs come from the "engine" (`training.oldLogProbs: engine`), so the timed work is
the update itself, as in the baseline.

Baseline, in the same process: a plain PyTorch training loop (bf16 autocast over fp32
weights, SDPA, fused AdamW, optionally torch.compile) on padded fixed-length batches of
`--seq-len` tokens, every token counted.

Models are shaped like Qwen2.5-0.5B / 1.5B (random initialisation from the config: the
figures are about throughput, not quality); `smollm2-135m` is a small shape for CPU smoke runs.
MFU counts 6 N + 12 L d S FLOPs per token (N parameters, L layers, width d, S the sequence
length), the convention of the issue's reference figures, against the card's dense bf16 peak.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

SHAPES = {
    "qwen2.5-0.5b": {"hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
                     "num_key_value_heads": 2, "vocab_size": 151936, "tie_word_embeddings": True},
    "qwen2.5-1.5b": {"hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28, "num_attention_heads": 12,
                     "num_key_value_heads": 2, "vocab_size": 151936, "tie_word_embeddings": True},
    "smollm2-135m": {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
                     "num_key_value_heads": 3, "vocab_size": 49152, "tie_word_embeddings": True},
}
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0}  # dense, SXM


def make_config(shape: str):
    from transformers import Qwen2Config

    return Qwen2Config(**SHAPES[shape], max_position_embeddings=32768, rope_theta=1_000_000.0, rms_norm_eps=1e-6,
                       use_cache=False, torch_dtype="bfloat16")


def parameters(config) -> int:
    d, f, layers, vocab = config.hidden_size, config.intermediate_size, config.num_hidden_layers, config.vocab_size
    kv = d // config.num_attention_heads * config.num_key_value_heads
    attention = d * d * 2 + d * kv * 2 + d + 2 * kv  # q, o, k, v and their biases
    return vocab * d * (1 if config.tie_word_embeddings else 2) + layers * (attention + 3 * d * f + 2 * d) + d


def flops(config, lengths: list[int]) -> float:
    """Training FLOPs of sequences of these lengths: 6 N per token plus attention, 12 L d S."""
    n = parameters(config)
    return sum(length * (6 * n + 12 * config.num_hidden_layers * config.hidden_size * length) for length in lengths)


def rl_samples(rng: random.Random, count: int, vocab: int, prompt: tuple[int, int], response: tuple[int, int]):
    """Self-play-shaped samples: uneven prompt lengths and long-tailed response lengths."""
    from azr.selfplay import Sample
    from azr.tasks import Role, TaskType

    samples = []
    for _ in range(count):
        p = rng.randint(*prompt)
        r = min(response[1], max(response[0], int(rng.lognormvariate(0, 0.8) * (response[0] + response[1]) / 4)))
        samples.append(Sample(TaskType.DEDUCTION, Role.SOLVE, tuple(rng.randrange(vocab) for _ in range(p)),
                              tuple(rng.randrange(vocab) for _ in range(r)), tuple(-1.0 for _ in range(r)), 0,
                              1.0, advantage=rng.choice((-1.0, 1.0))))
    return samples


def _sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def bench_learner(model_dir: str, config, args: argparse.Namespace) -> dict:
    from azr.spec import TrainingSpec
    from azr_learner.policy import Policy

    training = TrainingSpec(zero_stage=args.zero_stage, precision=args.precision, mini_batches=1, old_log_probs="engine",
                            micro_batch_tokens=args.micro_batch_tokens, learning_rate=1e-6)
    policy = Policy(model_dir, training)
    if policy.rank != 0:  # under torchrun: take part in every update rank 0 drives
        policy.follow()
        return {}
    rng = random.Random(0)
    batches = [rl_samples(rng, args.samples, config.vocab_size, (args.prompt_min, args.prompt_max),
                          (args.response_min, args.response_max)) for _ in range(args.steps + 1)]
    policy.train(batches[0], 0, seed=0)  # warm-up: allocator, kernels
    _sync()
    start = time.perf_counter()
    for k, batch in enumerate(batches[1:], 1):
        policy.train(batch, 0, seed=k)
    _sync()
    seconds = time.perf_counter() - start
    policy.stop_followers()
    lengths = [len(s.prompt_ids) + len(s.response_ids) for b in batches[1:] for s in b]
    return {"tokens": sum(lengths), "seconds": seconds, "flops": flops(config, lengths), "ranks": policy.world,
            "mean_length": statistics.fmean(lengths), "max_memory_gib": _max_memory()}


def bench_baseline(config, args: argparse.Namespace, compiled: bool) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", dtype=torch.float32).to(device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6, fused=device == "cuda")
    step_fn = torch.compile(model) if compiled else model
    tokens_per_batch = args.baseline_batch * args.seq_len

    def step():
        ids = torch.randint(config.vocab_size, (args.baseline_batch, args.seq_len), device=device)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=args.precision == "bfloat16"):
            loss = step_fn(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(3):  # warm-up (and compilation)
        step()
    _sync()
    steps = max(1, int(args.baseline_tokens // tokens_per_batch))
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync()
    seconds = time.perf_counter() - start
    result = {"tokens": steps * tokens_per_batch, "seconds": seconds,
              "flops": flops(config, [args.seq_len] * (steps * args.baseline_batch)), "max_memory_gib": _max_memory()}
    return result


def _release() -> None:
    """Free what the last measurement held, so the next one starts from an empty card."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _max_memory() -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")


def card() -> tuple[str, float | None]:
    import torch

    if not torch.cuda.is_available():
        return "cpu", None
    name = torch.cuda.get_device_name()
    peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    return name, peak


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shape", choices=sorted(SHAPES), default="qwen2.5-0.5b")
    parser.add_argument("--zero-stage", type=int, default=2)
    parser.add_argument("--precision", choices=["bfloat16", "float32"], default="bfloat16")
    parser.add_argument("--micro-batch-tokens", type=int, default=32768,
                        help="the learner's packed micro-batch (the 1.5B shape peaks at 130 GiB with 32768: "
                             "an H200 fits it, an 80 GB card needs 16384)")
    parser.add_argument("--samples", type=int, default=128, help="responses per update (one optimizer step)")
    parser.add_argument("--steps", type=int, default=5, help="timed updates after one warm-up")
    parser.add_argument("--prompt-min", type=int, default=256)
    parser.add_argument("--prompt-max", type=int, default=768)
    parser.add_argument("--response-min", type=int, default=32)
    parser.add_argument("--response-max", type=int, default=2048)
    parser.add_argument("--seq-len", type=int, default=2048, help="the baseline's fixed length")
    parser.add_argument("--baseline-batch", type=int, default=8, help="the baseline's sequences per step")
    parser.add_argument("--baseline-tokens", type=float, default=4e5, help="tokens the baseline times")
    parser.add_argument("--baseline", choices=["eager", "compiled", "both", "none"], default="both",
                        help="none: the learner alone (variants measured beside an earlier baseline on the same card)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--ranks", type=int, default=1,
                        help="N > 1: the learner alone on 1 and on N ranks (torchrun, NCCL on GPUs, gloo on CPUs), "
                             "the same samples; tokens/s and MFU per card of each, and their ratio")


FORWARDED = ("shape", "zero_stage", "precision", "micro_batch_tokens", "samples", "steps", "prompt_min", "prompt_max",
             "response_min", "response_max")


def compare_ranks(args: argparse.Namespace) -> int:
    """The learner's update on 1 rank, then on `args.ranks` (one process per card), each a
    torchrun of this module; the baselines are single-process and left out."""
    import subprocess
    import sys

    from azr_launcher.runner import free_port

    figures = {}
    for ranks in (1, args.ranks):
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "figures.json"
            forwarded = [f"--{name.replace('_', '-')}={getattr(args, name)}" for name in FORWARDED]
            subprocess.run([sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={ranks}",
                            f"--master-port={free_port()}", "-m", "azr_bench.learner", *forwarded, "--baseline=none",
                            f"--json={out}"], check=True)
            figures[ranks] = json.loads(out.read_text())["results"]["learner (ours)"]
    one, many = figures[1], figures[args.ranks]
    for ranks, r in figures.items():
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a"
        print(f"  learner on {ranks} rank(s) {r['tokens_per_second']:10.0f} tok/s  MFU per card {mfu:>6s}  "
              f"peak memory per card {r['max_memory_gib']:.1f} GiB")
    print(f"ranks_{args.ranks}_over_1={many['tokens_per_second'] / one['tokens_per_second']:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"shape": args.shape, "ranks": figures}, indent=2))
    return 0


def run(args: argparse.Namespace) -> int:
    if args.ranks > 1:
        return compare_ranks(args)
    config = make_config(args.shape)
    name, peak = card()
    results: dict[str, dict] = {}
    world = int(os.environ.get("WORLD_SIZE", "1"))
    modes = {"both": ["eager", "compiled"], "none": []}.get(args.baseline, [args.baseline]) if world == 1 else []
    for mode in modes:
        results[f"baseline ({mode})"] = bench_baseline(config, args, compiled=mode == "compiled")
        _release()
    with tempfile.TemporaryDirectory() as folder:
        import torch
        from transformers import AutoModelForCausalLM

        torch.manual_seed(0)  # every rank of a torchrun starts from the same weights
        AutoModelForCausalLM.from_config(config).save_pretrained(folder)  # random weights, as a checkpoint would be
        _tokenizer_stub(folder)
        results["learner (ours)"] = bench_learner(folder, config, args)
    if not results["learner (ours)"]:  # a follower rank: rank 0 reports
        return 0
    print(f"{args.shape} on {name}: {parameters(config) / 1e9:.2f} B parameters, ZeRO-{args.zero_stage}, {args.precision}, "
          f"learner compile mode {os.environ.get('AZR_LEARNER_COMPILE', 'default')}, micro-batch {args.micro_batch_tokens} tokens")
    for label, r in results.items():
        rate = r["tokens"] / r["seconds"]
        cards = r.get("ranks", 1)  # MFU per card: the FLOPs of every rank against as many peaks
        mfu = f"{100 * r['flops'] / r['seconds'] / 1e12 / peak / cards:.1f}%" if peak else "n/a"
        print(f"  {label:20s} {rate:10.0f} tok/s  MFU {mfu:>6s}  peak memory {r['max_memory_gib']:.1f} GiB")
        r.update(tokens_per_second=rate, mfu=(r["flops"] / r["seconds"] / 1e12 / peak / cards) if peak else None)
    ours = results["learner (ours)"]
    mfu = ours["mfu"] if ours["mfu"] is not None else float("nan")
    baselines = [v for k, v in results.items() if k.startswith("baseline")]
    if not baselines:
        print(f"learner_tokens_per_s={ours['tokens_per_second']:.1f} learner_mfu={mfu:.3f}")
    else:
        best = max(baselines, key=lambda r: r["tokens_per_second"])
        print(f"learner_tokens_per_s={ours['tokens_per_second']:.1f} baseline_tokens_per_s={best['tokens_per_second']:.1f}")
        print(f"learner_over_baseline={ours['tokens_per_second'] / best['tokens_per_second']:.2f} learner_mfu={mfu:.3f}")
    if args.json:
        args.json.write_text(json.dumps({"shape": args.shape, "card": name, "results": results}, indent=2))
    return 0


def _tokenizer_stub(folder: str) -> None:
    """Policy loads a tokenizer beside the weights; any will do for throughput: a byte-level
    one built in place (no download)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel()
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>", eos_token="<unk>").save_pretrained(folder)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


if __name__ == "__main__":  # also runs without the CLI's dependencies (the GPU machine has no gRPC)
    parser = argparse.ArgumentParser(prog="python -m azr_bench.learner", description=__doc__.splitlines()[0])
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args()))
