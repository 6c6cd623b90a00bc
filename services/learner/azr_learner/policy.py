"""The policy being trained: a causal LM inside a DeepSpeed engine, updated with TRR++.

One update (docs/method.md, part 5): the step's responses are shuffled and split into
`miniBatches` mini-batches, one optimizer step each. Within a mini-batch every rank takes
every world-th response, packs its share into micro-batches of at most `microBatchTokens`
tokens (several sequences in one row, positions restarting at 0, attention kept within each
sequence: no padding), and accumulates gradients; DeepSpeed averages them across ranks and
steps. Each micro-batch divides its loss sums by the token count of the whole mini-batch
(times the world size, undoing DeepSpeed's average), so the result is the exact token-mean
however the responses fall on ranks and micro-batches.

Ranks: rank 0 drives the loop and calls these methods; the other ranks run `follow()`,
which receives each call from rank 0 and takes its part in it.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from azr.selfplay import Sample
from azr.spec import DType, OldLogProbs, TrainingSpec
from azr.tasks import Role, TaskType
from azr_learner.attention import packed
from azr_learner.attention import register as packed_attention
from azr_learner.loss import ppo_clip_loss, token_log_probs

log = logging.getLogger(__name__)

TORCH_DTYPES = {DType.FLOAT32: torch.float32, DType.BFLOAT16: torch.bfloat16, DType.FLOAT16: torch.float16}


# --- packing (pure) ----------------------------------------------------------------------------------

def pack(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Group sequence indexes into micro-batches of at most `budget` tokens, longest first
    (first-fit decreasing). A sequence longer than the budget gets a micro-batch of its own."""
    bins: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for b, free in enumerate(room):
            if lengths[i] <= free:
                bins[b].append(i)
                room[b] -= lengths[i]
                break
        else:
            bins.append([i])
            room.append(budget - lengths[i])
    return bins


@dataclass
class Packed:
    """Sequences laid end to end in one row, and where their response tokens are predicted."""

    input_ids: torch.Tensor       # [1, T]
    position_ids: torch.Tensor    # [1, T], restarting at 0 for every sequence
    predict_at: torch.Tensor      # [N] positions whose logits predict a response token
    targets: torch.Tensor         # [N] those response tokens
    old_log_probs: torch.Tensor   # [N]
    advantages: torch.Tensor      # [N] each response's advantage, on each of its tokens
    lengths: tuple[int, ...]      # of the sequences, in row order


def pack_row(samples: Sequence[Sample], old_log_probs: Sequence[Sequence[float]]) -> Packed:
    ids, positions, predict_at, targets, old, adv, lengths = [], [], [], [], [], [], []
    for s, lp in zip(samples, old_log_probs):
        start, prompt, response = len(ids), list(s.prompt_ids), list(s.response_ids)
        ids += prompt + response
        positions += range(len(prompt) + len(response))
        # logits at position p predict the token at p + 1
        predict_at += range(start + len(prompt) - 1, start + len(prompt) + len(response) - 1)
        targets += response
        old += list(lp)
        adv += [s.advantage] * len(response)
        lengths.append(len(prompt) + len(response))
    long = torch.long
    return Packed(torch.tensor([ids], dtype=long), torch.tensor([positions], dtype=long), torch.tensor(predict_at, dtype=long),
                  torch.tensor(targets, dtype=long), torch.tensor(old, dtype=torch.float32), torch.tensor(adv, dtype=torch.float32),
                  tuple(lengths))


# A one-token stand-in for ranks with nothing left to do in a collective round (weight 0).
_PAD_SAMPLE = Sample(TaskType.DEDUCTION, Role.SOLVE, (0,), (0,), (0.0,), 0, 0.0)


# --- distributed set-up --------------------------------------------------------------------------------

def world() -> tuple[int, int]:
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed() -> None:
    """gloo on CPU (DS_ACCELERATOR=cpu), NCCL on GPUs; a single process is a world of one.
    Ranks started by torchrun or DeepSpeed's launcher find WORLD_SIZE and MASTER_* set."""
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # read when deepspeed is first imported
    import deepspeed

    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if "WORLD_SIZE" not in os.environ and not dist.is_initialized():
        # A world of one needs no rendezvous: an in-process store, where a TCP store would
        # listen on every interface of the machine.
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1")
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
    if not dist.is_initialized():
        deepspeed.init_distributed(dist_backend=backend)
    # DeepSpeed reads the rank from the environment: a group made earlier in this process (by
    # an earlier policy) outlives variables its owner may have put back since.
    for name, value in (("RANK", dist.get_rank()), ("WORLD_SIZE", dist.get_world_size()), ("LOCAL_RANK", dist.get_rank())):
        os.environ.setdefault(name, str(value))


class _ClippingAdamW(torch.optim.AdamW):
    """AdamW that clips the global gradient norm itself and remembers it (ZeRO stage 0).

    With stage 0 DeepSpeed all-reduces before calling the optimizer but does not report the
    norm; ZeRO stages clip and report it themselves, so this is only used for stage 0."""

    def __init__(self, params, max_norm: float, **kw):
        super().__init__(params, **kw)
        self.max_norm = max_norm
        self.last_grad_norm = 0.0

    @torch.no_grad()
    def step(self, closure=None):
        params = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        self.last_grad_norm = float(torch.nn.utils.clip_grad_norm_(params, self.max_norm))
        return super().step(closure)


def _compile(model, mode: str):
    """torch.compile the model's repeated layers (dynamic shapes: every packed row has its own
    length) and the loss's log-softmax, chosen log-prob and entropy over the vocabulary
    (returned). Modes (`AZR_LEARNER_COMPILE`):
      layers     each decoder layer whole (norms, projections, RoPE, residual adds, SwiGLU
                 fused where memory-bound); the varlen attention call stays out of the graph;
      pointwise  only each layer's norms and MLP;
      0          nothing.
    Identical layers share one compiled graph (regional compilation), so compiling costs one
    layer's worth, not the model's."""
    if mode == "0":
        return token_log_probs
    for layer in getattr(getattr(model, "model", None), "layers", []):
        if mode == "layers":
            layer.compile(dynamic=True)
            continue
        for name in ("input_layernorm", "post_attention_layernorm", "mlp"):
            part = getattr(layer, name, None)
            if part is not None:
                part.compile(dynamic=True)
    return torch.compile(token_log_probs, dynamic=True)


COMPILE_MODES = ("layers", "pointwise", "0")


def deepspeed_config(training: TrainingSpec, world: int, precision: DType) -> dict:
    stage = training.zero_stage
    return {
        "train_micro_batch_size_per_gpu": 1,
        "gradient_accumulation_steps": 1,
        "train_batch_size": world,
        "managed_gradient_accumulation": False,  # one step() per mini-batch; micro-batches vary in number
        "gradient_clipping": 0.0 if stage == 0 else training.grad_clip,  # stage 0 clips in _ClippingAdamW
        "zero_optimization": {"stage": stage},
        "bf16": {"enabled": precision is DType.BFLOAT16},
        "fp16": {"enabled": precision is DType.FLOAT16},
        "steps_per_print": 2**31 - 1,
        "wall_clock_breakdown": False,
    }


def _optimizer(model, training: TrainingSpec) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    adam = {"lr": training.learning_rate, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
            "fused": torch.cuda.is_available()}  # one kernel per step on GPUs
    if training.zero_stage == 0:
        return _ClippingAdamW(params, training.grad_clip, **adam)
    return torch.optim.AdamW(params, **adam)


def _frozen(model_path: str, dtype: torch.dtype, device: torch.device):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype, attn_implementation=packed_attention())
    model.config.use_cache = False
    model.requires_grad_(False)
    return model.to(device).eval()


# --- the policy ------------------------------------------------------------------------------------------

class Policy:
    def __init__(self, model_path: str, training: TrainingSpec, load_from: str | None = None):
        init_distributed()
        import deepspeed
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a bar per save fills the service log

        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.training = training
        self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if torch.cuda.is_available() else torch.device("cpu")
        source = load_from or model_path
        self.tokenizer = AutoTokenizer.from_pretrained(source)
        # fp32 master weights; DeepSpeed casts the module for bf16/fp16 and keeps fp32 in the optimizer.
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32, attn_implementation=packed_attention())
        model.config.use_cache = False
        compile_mode = os.environ.get("AZR_LEARNER_COMPILE", "layers" if torch.cuda.is_available() else "0")
        if compile_mode not in COMPILE_MODES:
            raise ValueError(f"AZR_LEARNER_COMPILE={compile_mode!r}: use one of {', '.join(COMPILE_MODES)}")
        self._token_log_probs = _compile(model, compile_mode)
        precision = training.precision.resolved(on_gpu=torch.cuda.is_available())
        if precision is DType.BFLOAT16 and not torch.cuda.is_available():
            log.warning("bfloat16 training on CPU is slow here; consider training.precision: float32")
        self.engine, self.optimizer, _, _ = deepspeed.initialize(model=model, optimizer=_optimizer(model, training),
                                                                 config=deepspeed_config(training, self.world, precision))
        self.compute_dtype = TORCH_DTYPES.get(precision, torch.float32)
        # The KL penalty's reference: the model the run started from (never a resumed checkpoint),
        # frozen, in the precision the policy computes in.
        self.reference = _frozen(model_path, self.compute_dtype, self.device) if training.kl_coeff > 0 else None

    @property
    def module(self):
        return self.engine.module

    # -- rank coordination -------------------------------------------------------------------------

    def _broadcast(self, command: str, payload: Any = None) -> None:
        if self.world > 1:
            dist.broadcast_object_list([(command, payload)], src=0)

    def follow(self) -> None:
        """Ranks other than 0: take part in every call rank 0 makes, until it stops."""
        commands = {"train": self._train, "save_weights": self._save_weights, "save_optimizer": self._save_optimizer,
                    "load_optimizer": self._load_optimizer, "named_weights": self._named_weights}
        while True:
            box: list[Any] = [None]
            dist.broadcast_object_list(box, src=0)
            command, payload = box[0]
            if command == "stop":
                return
            commands[command](*payload)

    def stop_followers(self) -> None:
        self._broadcast("stop")

    # -- forward ---------------------------------------------------------------------------------

    def _logits(self, row: Packed, model) -> torch.Tensor:
        """[1, N, vocab]: only where a response token is predicted (the prompt's would cost vocab x T memory)."""
        with packed(row.lengths):
            hidden = model.model(input_ids=row.input_ids.to(self.device), position_ids=row.position_ids.to(self.device),
                                 use_cache=False).last_hidden_state
        return model.lm_head(hidden[0, row.predict_at.to(self.device)]).unsqueeze(0)

    def _forward(self, row: Packed) -> tuple[torch.Tensor, torch.Tensor]:
        """log p and entropy of the response tokens of one packed row."""
        return self._token_log_probs(self._logits(row, self.module), row.targets.to(self.device).unsqueeze(0))

    def _reference_log_probs(self, row: Packed) -> torch.Tensor | None:
        """log p under the frozen reference, without the entropy the policy's forward also computes."""
        if self.reference is None:
            return None
        with torch.no_grad():
            log_probs = torch.log_softmax(self._logits(row, self.reference).float(), dim=-1)
            return log_probs.gather(-1, row.targets.to(self.device)[None, :, None]).squeeze(-1)

    @torch.no_grad()
    def log_probs(self, samples: Sequence[Sample]) -> list[list[float]]:
        """log p of every response token under the current weights (this rank's samples)."""
        self.engine.eval()
        out: list[list[float]] = [[] for _ in samples]
        lengths = [len(s.prompt_ids) + len(s.response_ids) for s in samples]
        micros = pack(lengths, self.training.micro_batch_tokens)
        for micro in micros:
            chosen = [samples[i] for i in micro]
            logp, _ = self._forward(pack_row(chosen, [[0.0] * len(s.response_ids) for s in chosen]))
            flat = logp[0].float().cpu().tolist()
            for i in micro:
                n = len(samples[i].response_ids)
                out[i], flat = flat[:n], flat[n:]
        if self.training.zero_stage == 3 and self.world > 1:  # ZeRO-3 gathers parameters in every forward
            rounds = torch.tensor([float(len(micros))])
            dist.all_reduce(rounds, op=dist.ReduceOp.MAX)
            for _ in range(int(rounds.item()) - len(micros)):
                self._forward(pack_row([_PAD_SAMPLE], [[0.0]]))
        return out

    # -- the update --------------------------------------------------------------------------------

    def train(self, samples: Sequence[Sample], version: int, seed: int) -> dict[str, float]:
        """One TRR++ update on the step's samples; every rank takes part. `version` is the
        policy version of these weights (samples of that version get recomputed log-probs)."""
        samples = [s for s in samples if s.response_ids]
        self._broadcast("train", (samples, version, seed))
        return self._train(samples, version, seed)

    def _train(self, samples: list[Sample], version: int, seed: int) -> dict[str, float]:
        t = self.training
        order = list(range(len(samples)))
        random.Random(seed).shuffle(order)
        minis = [order[k::t.mini_batches] for k in range(t.mini_batches)]
        totals = {"loss": 0.0, "policy_loss": 0.0, "entropy": 0.0, "clip_fraction": 0.0, "approx_kl": 0.0}
        if self.reference is not None:
            totals["kl_ref"] = 0.0
        tokens_seen, grad_norms = 0.0, []
        for mini in minis:
            seen = self._accumulate(samples, mini, version, totals)
            if seen is None:  # no response token in this mini-batch on any rank
                continue
            tokens_seen += seen
            self.engine.step()
            norm = self.engine.get_global_grad_norm()
            grad_norms.append(float(norm) if norm is not None else self.optimizer.last_grad_norm
                              if isinstance(self.optimizer, _ClippingAdamW) else float("nan"))
        stats = torch.tensor([tokens_seen] + list(totals.values()), dtype=torch.float64)
        if self.world > 1:
            dist.all_reduce(stats)
        n = max(stats[0].item(), 1.0)
        metrics = {key: stats[1 + k].item() / n for k, key in enumerate(totals)}
        metrics["grad_norm"] = sum(grad_norms) / len(grad_norms) if grad_norms else float("nan")
        metrics["tokens_trained"] = stats[0].item()
        metrics["optimizer_steps"] = float(len(grad_norms))
        return metrics

    def _accumulate(self, samples: list[Sample], mini: list[int], version: int, totals: dict[str, float]) -> float | None:
        """Forward and backward over this rank's share of one mini-batch, gradients accumulated
        for one optimizer step; adds the token-weighted statistics to `totals` and returns the
        tokens trained here (None when the whole mini-batch has none)."""
        t = self.training
        mine = [samples[i] for i in mini[self.rank::self.world]]
        old = self._old_log_probs(mine, version)
        self.engine.train()
        micros = pack([len(s.prompt_ids) + len(s.response_ids) for s in mine], t.micro_batch_tokens)
        counts = torch.tensor([float(sum(len(s.response_ids) for s in mine)), float(len(micros))])
        if self.world > 1:
            dist.all_reduce(counts[:1])                       # response tokens of the whole mini-batch
            dist.all_reduce(counts[1:], op=dist.ReduceOp.MAX)  # every rank runs as many backwards (ZeRO-2 reduces in each)
        global_tokens, rounds = counts[0].item(), int(counts[1].item())
        if global_tokens == 0:
            return None
        seen = 0.0
        for k in range(rounds):
            if k < len(micros):
                row, weight = pack_row([mine[i] for i in micros[k]], [old[i] for i in micros[k]]), 1.0
            else:  # this rank has no more data: a zero-weight pass keeps the collectives in step
                row, weight = pack_row([_PAD_SAMPLE], [[0.0]]), 0.0
            reference = self._reference_log_probs(row)
            logp, entropy = self._forward(row)
            loss, stats = ppo_clip_loss(logp, row.old_log_probs.to(logp.device)[None], row.advantages.to(logp.device)[None],
                                        torch.ones_like(logp), entropy, t.clip_ratio, t.entropy_coeff,
                                        normalizer=global_tokens / self.world, ref_log_probs=reference, kl_coeff=t.kl_coeff)
            self.engine.backward(loss * weight)
            n = float(len(row.targets)) * weight
            seen += n
            for key in totals:
                totals[key] += getattr(stats, key) * n
        return seen

    def _old_log_probs(self, samples: list[Sample], version: int) -> list[list[float]]:
        """The log-probs of the policy that sampled each response: recomputed for responses of
        the current version, the engine's own for older ones (asynchronous mode), or the
        engine's for all (`oldLogProbs: engine`)."""
        engine_lp = [list(s.logprobs) for s in samples]
        if self.training.old_log_probs is OldLogProbs.ENGINE:
            return engine_lp
        current = [i for i, s in enumerate(samples) if s.version == version]
        recomputed = self.log_probs([samples[i] for i in current]) if current else []
        for i, lp in zip(current, recomputed):
            engine_lp[i] = lp
        return engine_lp

    # -- saving ------------------------------------------------------------------------------------

    def save_weights(self, folder: Path) -> Path:
        """The weights as a Hugging Face folder (safetensors, config, tokenizer), written to a
        temporary folder and renamed: a reader never sees a partial folder."""
        self._broadcast("save_weights", (folder,))
        return self._save_weights(folder)

    def _save_weights(self, folder: Path) -> Path:
        folder = Path(folder)
        state = self.engine._zero3_consolidated_16bit_state_dict() if self.training.zero_stage == 3 else None
        if self.rank == 0:
            partial = folder.with_name(folder.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            self.module.save_pretrained(partial, state_dict=state, safe_serialization=True)
            self.tokenizer.save_pretrained(partial)
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(partial, folder)
        if self.world > 1:
            dist.barrier()
        return folder

    def named_weights(self) -> list[tuple[str, torch.Tensor]]:
        """Rank 0: the weights a broadcast sends, named as `save_weights` writes them, a tied
        tensor once (ZeRO-3 gathers them from every rank; other ranks get an empty list)."""
        self._broadcast("named_weights", ())
        return self._named_weights()

    def _named_weights(self) -> list[tuple[str, torch.Tensor]]:
        state = self.engine._zero3_consolidated_16bit_state_dict() if self.training.zero_stage == 3 else None
        if self.rank != 0:
            return []
        if state is None:
            state = self.module.state_dict()
        tied = getattr(self.module.config, "tie_word_embeddings", False)
        seen: set[int] = set()
        weights = []
        for name, tensor in state.items():
            if (tied and name == "lm_head.weight") or tensor.data_ptr() in seen:
                continue
            seen.add(tensor.data_ptr())
            weights.append((name, tensor))
        return weights

    def save_optimizer(self, folder: Path) -> None:
        """DeepSpeed's checkpoint (optimizer state, per rank for ZeRO) under `folder`."""
        self._broadcast("save_optimizer", (folder,))
        self._save_optimizer(folder)

    def _save_optimizer(self, folder: Path) -> None:
        self.engine.save_checkpoint(str(folder), tag="deepspeed", save_latest=False)
        if self.world > 1:
            dist.barrier()  # every rank's part is on disk before rank 0 renames the folder

    def load_optimizer(self, folder: Path) -> None:
        self._broadcast("load_optimizer", (folder,))
        self._load_optimizer(folder)

    def _load_optimizer(self, folder: Path) -> None:
        path, _ = self.engine.load_checkpoint(str(folder), tag="deepspeed", load_module_strict=True,
                                              load_optimizer_states=True, load_lr_scheduler_states=False)
        if path is None:
            raise RuntimeError(f"no DeepSpeed checkpoint in {folder}")
