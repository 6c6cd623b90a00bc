"""Inference engines behind one small interface: vLLM (CPU or CUDA build) and transformers.

An engine takes token-id prompts, each with its own sampling parameters and n, and returns
n completions per prompt with their token ids and the log-probability of every sampled token
under the policy that produced it (none when `Sampling.logprobs` is off). Weight loading is
the server's business (it validates the files first); engines only apply them.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

from azr.selfplay import Sampling

log = logging.getLogger(__name__)


@dataclass
class Completion:
    """What an engine returns for one sequence. The service adds the prompt's token ids and the
    policy version, and self-play receives that as `azr.selfplay.Generation`."""

    text: str
    token_ids: list[int]
    logprobs: list[float]
    finish_reason: str  # "stop" or "length"


@dataclass(frozen=True)
class Broadcast:
    """One policy version arriving by broadcast (`azr_generation.weight_transfer`)."""

    group: str            # the learner's group; a new one is joined before receiving
    master_address: str
    master_port: int
    world_size: int
    rank_offset: int
    names: tuple[str, ...]
    dtypes: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]


class Engine(abc.ABC):
    name: str
    tokenizer: object
    transfer_backend = ""  # the broadcast backend it receives with; "" loads from disk only
    transfer_ranks = 0     # its workers: the ranks it takes in the learner's group
    transfer_group = ""    # the learner's group it has joined

    @abc.abstractmethod
    def generate(self, prompts: list[list[int]], sampling: list[Sampling]) -> list[list[Completion]]:
        """One list of `sampling[i].n` completions per prompt."""

    @abc.abstractmethod
    def load_weights(self, folder: Path) -> None:
        """Apply weights already checked against the model (names, shapes)."""

    def close(self) -> None:  # noqa: B027 - engines without resources need nothing here
        return None


def cuda_available() -> bool:
    """Whether a GPU is there, asked of NVML: CUDA stays uninitialised in this process, so
    vLLM may still fork its engine process (a child forked after CUDA started cannot use it)."""
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    import torch

    return torch.cuda.is_available()


def resolve_dtype(dtype: str) -> str:
    """The engine's dtype: `auto` resolved for this machine (`DType.resolved`)."""
    from azr.spec import DType

    return DType(dtype).resolved(on_gpu=cuda_available()).value


def default_memory_fraction(on_gpu: bool) -> float:
    """The share of memory vLLM reserves, weights and KV cache included. A GPU serving alone
    keeps vLLM's 0.9; on the CPU backend the share is of the machine's RAM, which the learner,
    the executor and the OS need too."""
    return float(os.environ.get("AZR_VLLM_MEMORY_FRACTION", "0.9" if on_gpu else "0.3"))


def cpu_memory_utilization(fraction: float) -> float:
    """`fraction` of the machine's RAM as vLLM's CPU backend reads it: a share of the memory of
    the NUMA node it runs on (within a cgroup limit, when there is one). Some VMs report a node
    smaller than the machine (20.2 of 23.5 GiB on one dev machine), where the preset's 0.2 then
    left the KV cache no room at all; the same bytes are a larger share of such a node."""
    import psutil
    from vllm.utils.cpu_resource_utils import get_allowed_cpu_list, get_cgroup_memory_limit, get_memory_node_info

    machine = psutil.virtual_memory().total
    limit = get_cgroup_memory_limit()
    if limit is not None:
        machine = min(machine, limit)
    node = get_memory_node_info(get_allowed_cpu_list()[0].numa_node).total_memory
    return min(0.95, fraction * machine / node)


def cpu_scheduling(max_model_len: int) -> dict:
    """A prompt prefilled over several steps has its sampled token thrown away, and vLLM then
    rewinds a seeded request's generator, which a CPU generator cannot do: the whole batch
    fails ("CPU Generator does not use offset"). Self-play requests are all seeded, so on CPU
    every prompt is prefilled in one step. CUDA generators rewind: GPUs keep vLLM's
    scheduling (chunked prefill; on cards of 70 GB and more, up to 1,024 sequences a step)."""
    return {"enable_chunked_prefill": False, "max_num_batched_tokens": max(max_model_len, 4096)}


class VllmEngine(Engine):
    """vLLM's offline engine: continuous batching, prefix caching of shared prompt parts,
    one prompt shared across its n samples. `memory_fraction` is the share of the GPU, or on
    CPU of RAM, that it takes (weights and KV cache)."""

    name = "vllm"

    def __init__(self, model: str, dtype: str = "float32", max_model_len: int = 4096, seed: int = 0,
                 memory_fraction: float | None = None, broadcast: bool = False):
        from vllm import LLM

        from azr_generation.weight_transfer import VLLM_BACKENDS, backend_for

        on_gpu = cuda_available()
        if on_gpu:
            # Whatever touched CUDA in this process before (a caller's torch code), the engine
            # process must not be forked from it.
            os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
        fraction = memory_fraction or default_memory_fraction(on_gpu)
        transfer = {}
        if broadcast:
            self.transfer_backend = backend_for(on_gpu)
            transfer = {"weight_transfer_config": {"backend": VLLM_BACKENDS[self.transfer_backend]}}
        self.llm = LLM(model=model, dtype=dtype, max_model_len=max_model_len, enable_prefix_caching=True, seed=seed,
                       gpu_memory_utilization=fraction if on_gpu else cpu_memory_utilization(fraction),
                       **({} if on_gpu else cpu_scheduling(max_model_len)), **transfer,
                       worker_extension_cls="azr_generation.vllm_worker.WeightReloadExtension")
        parallel = self.llm.llm_engine.vllm_config.parallel_config
        self.transfer_ranks = parallel.world_size * parallel.data_parallel_size if broadcast else 0
        self._group = ""  # the learner's group the workers have joined
        self.tokenizer = self.llm.get_tokenizer()

    def generate(self, prompts, sampling):
        from vllm import SamplingParams

        # No incremental detokenizing: vLLM would decode every sequence at every step, and only
        # the final text is needed, which one batch decode at the end gives.
        params = [SamplingParams(n=s.n, temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens,
                                 seed=s.seed, logprobs=0 if s.logprobs else None, detokenize=False) for s in sampling]
        outputs = self.llm.generate([{"prompt_token_ids": p} for p in prompts], sampling_params=params, use_tqdm=False)
        flat = [c for output in outputs for c in output.outputs]
        texts = iter(self.tokenizer.batch_decode([list(c.token_ids) for c in flat], skip_special_tokens=True))
        results = []
        for output in outputs:
            group = []
            for c in output.outputs:
                logprobs = [step[token].logprob for step, token in zip(c.logprobs or [], c.token_ids)]
                group.append(Completion(next(texts), list(c.token_ids), logprobs, "length" if c.finish_reason == "length" else "stop"))
            results.append(group)
        return results

    def load_weights(self, folder: Path) -> None:
        self.llm.collective_rpc("azr_reload_weights", kwargs={"weights_path": str(folder)})
        self.llm.reset_prefix_cache()  # cached prompt states belong to the old weights

    def receive_weights(self, broadcast: Broadcast) -> None:
        """vLLM's weight-transfer calls on every worker, as its RL examples make them: join the
        learner's group when it is new, then start, receive (while the learner broadcasts) and
        finish a layerwise reload."""
        if broadcast.group != self._group:
            self._group = ""
            self.llm.collective_rpc("init_weight_transfer_engine", kwargs={"init_info": {
                "master_address": broadcast.master_address, "master_port": broadcast.master_port,
                "rank_offset": broadcast.rank_offset, "world_size": broadcast.world_size}})
            self._group = broadcast.group
        self.llm.collective_rpc("start_weight_update")
        try:
            self.llm.collective_rpc("update_weights", kwargs={"update_info": {
                "names": list(broadcast.names), "dtype_names": list(broadcast.dtypes),
                "shapes": [list(shape) for shape in broadcast.shapes]}})
        except BaseException:
            self._group = ""  # the group is out of step with the learner: join afresh next time
            raise
        self.llm.collective_rpc("finish_weight_update")
        self.llm.collective_rpc("azr_refresh_lm_head")
        self.llm.reset_prefix_cache()

    @property
    def transfer_group(self) -> str:
        return self._group

    def close(self) -> None:
        import gc

        self.llm.llm_engine.engine_core.shutdown()
        del self.llm
        gc.collect()


class TransformersEngine(Engine):
    """`model.generate` with left padding; prompts with equal sampling parameters share a batch
    of at most `batch_sequences` sequences (default: 32 on CPU; 256 on a GPU, where a decoding
    step costs about the same for 1 or 256 rows of a small model)."""

    name = "transformers"

    def __init__(self, model: str, dtype: str = "float32", max_model_len: int = 4096, seed: int = 0,
                 batch_sequences: int | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        batch_sequences = batch_sequences or (256 if self.device == "cuda" else 32)
        torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}.get(dtype, "auto")
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype).to(self.device).eval()
        self.max_model_len = max_model_len
        self.batch_sequences = batch_sequences
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) if eos is not None else {self.tokenizer.eos_token_id}
        torch.manual_seed(seed)

    def generate(self, prompts, sampling):
        results: list[list[Completion]] = [[] for _ in prompts]
        # Prompts that differ only in their seed share batches: the batch is seeded with its
        # first prompt's seed, and its rows draw independent samples (deterministic per batch).
        groups: dict[Sampling, list[int]] = {}
        for index, s in enumerate(sampling):
            groups.setdefault(dataclasses.replace(s, seed=None), []).append(index)
        for unseeded, indexes in groups.items():
            # Longest first, so that each batch pads little; n copies of a prompt go together.
            indexes.sort(key=lambda i: -len(prompts[i]))
            per_batch = max(1, self.batch_sequences // unseeded.n)
            for start in range(0, len(indexes), per_batch):
                chunk = indexes[start:start + per_batch]
                params = sampling[chunk[0]]
                for i, group in zip(chunk, self._generate_batch([prompts[i] for i in chunk], params)):
                    results[i] = group
        return results

    def _generate_batch(self, prompts: list[list[int]], params: Sampling) -> list[list[Completion]]:
        torch = self.torch
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, p in enumerate(prompts):
            input_ids[row, width - len(p):] = torch.tensor(p)
            attention[row, width - len(p):] = 1
        if params.seed is not None:
            torch.manual_seed(params.seed)
        greedy = params.temperature <= 0
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids.to(self.device), attention_mask=attention.to(self.device),
                do_sample=not greedy, temperature=None if greedy else params.temperature,
                top_p=None if greedy else params.top_p, top_k=None, max_new_tokens=params.max_tokens,
                num_return_sequences=params.n, pad_token_id=self.pad_id, return_dict_in_generate=True,
                output_logits=params.logprobs)
            generated = out.sequences[:, width:]
            # log p(token) under the model itself (raw logits), as vLLM reports it; one step at a
            # time, on the device: all steps' log-softmaxes at once would be steps x rows x vocab floats.
            token_logprobs = torch.stack([torch.log_softmax(step.float(), dim=-1).gather(-1, generated[:, k, None])[:, 0]
                                          for k, step in enumerate(out.logits)], dim=1).cpu() if params.logprobs else None
            generated = generated.cpu()
        groups = []
        for row in range(len(prompts)):
            group = []
            for k in range(params.n):
                seq = row * params.n + k
                tokens, finish = [], "length"
                for token in generated[seq].tolist():
                    tokens.append(token)
                    if token in self.eos_ids:
                        finish = "stop"
                        break
                logprobs = ([lp if math.isfinite(lp) else -1e9 for lp in token_logprobs[seq, :len(tokens)].tolist()]
                            if token_logprobs is not None else [])
                text = self.tokenizer.decode(tokens, skip_special_tokens=True)
                group.append(Completion(text, tokens, logprobs, finish))
            groups.append(group)
        return groups

    def load_weights(self, folder: Path) -> None:
        from safetensors.torch import load_file

        state = {}
        for file in sorted(folder.glob("*.safetensors")):
            state.update(load_file(file))
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        missing = [k for k in missing if k != "lm_head.weight"]  # tied to the embeddings
        if missing or unexpected:
            raise ValueError(f"weights do not match the model: missing {missing[:3]}, unexpected {unexpected[:3]}")
        if getattr(self.model.config, "tie_word_embeddings", False):
            self.model.tie_weights()


def make_engine(kind: str, model: str, dtype: str = "float32", max_model_len: int = 4096, seed: int = 0,
                memory_fraction: float | None = None, broadcast: bool = False) -> Engine:
    """`broadcast`: also receive weights broadcast by the learner (vLLM only; the transformers
    engine loads from disk, and a learner falls back to disk for a run that has one)."""
    if kind == "vllm":
        return VllmEngine(model, dtype, max_model_len, seed, memory_fraction, broadcast)
    if kind == "transformers":
        if broadcast:
            log.warning("the transformers engine loads weights from disk only: weightSync falls back to disk")
        return TransformersEngine(model, dtype, max_model_len, seed)
    raise ValueError(f"unknown engine {kind!r}: vllm or transformers")
