"""One self-play step's data: propose, validate, estimate learnability, insert, solve, check,
reward (docs/method.md, part 2), and the seeding pass (section 6).

This is the method without the machinery: the proposer, the solver and the executor are
anything with the small `Generator` and `Executor` interfaces below (gRPC clients in the
learner). The result of a step is a `StepRollout`: the trained responses with their rewards
and TRR++ advantages, the step's metrics, and the state to checkpoint.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from azr.advantages import trr_advantages
from azr.buffers import TaskBuffers, rng_state_from_json, rng_state_to_json
from azr.domains import Proposed, Rejected, TaskDomain, build_domains, proposals_for
from azr.domains.codeio import CodeIO
from azr.jobs import CheckJob, Executor
from azr.metrics import Phase, StepOutcomes, clip
from azr.parsing import ProposalError, parse_response, proposal_text
from azr.prompts import Prompt
from azr.rewards import proposer_reward, solve_rate, solver_reward
from azr.spec import MethodSpec
from azr.tasks import IDENTITY_TRIPLET, Role, Task, TaskType

log = logging.getLogger(__name__)


# --- what the services must offer ----------------------------------------------------------------

@dataclass(frozen=True)
class Generation:
    """One sampled response and what produced it."""

    text: str
    prompt_ids: tuple[int, ...]
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]   # the engine's log p of each sampled token
    version: int                  # the policy version that sampled it


@dataclass(frozen=True)
class Sampling:
    """How to sample: what self-play asks of a Generator, and what an engine is handed per
    prompt (the one class for both)."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 256
    seed: int | None = None  # None: unseeded (faster on GPU vLLM, which seeds request by request)
    logprobs: bool = True    # False when the learner recomputes them anyway
    n: int = 1               # responses per prompt


class Generator(Protocol):
    def generate(self, prompts: Sequence[Prompt], sampling: Sampling) -> list[list[Generation]]:
        """`sampling.n` generations per prompt, in prompt order."""
        ...


# --- what a step produces ------------------------------------------------------------------------

@dataclass
class Sample:
    """One trained response: its tokens, its reward, and its TRR++ advantage."""

    task_type: TaskType
    role: Role
    prompt_ids: tuple[int, ...]
    response_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    version: int
    reward: float
    advantage: float = 0.0


@dataclass
class StepRollout:
    step: int
    samples: list[Sample]
    metrics: dict[str, float]
    state: dict[str, Any]          # the self-play state after this step, for the checkpoint
    examples: list[dict] = field(default_factory=list)  # a few proposals and answers, as the model wrote them


class Interrupted(Exception):
    """A stop was requested between two service calls; the step is abandoned."""


# --- the step ------------------------------------------------------------------------------------

@dataclass
class _Graded:
    well_formatted: bool
    correct: bool


@dataclass
class SelfPlay:
    method: MethodSpec
    proposer: Generator
    solver: Generator
    executor: Executor
    seed: int = 0
    engine_logprobs: bool = True  # whether the learner uses the engine's log-probs (docs/learner.md)
    on_phase: Callable[[str], None] = lambda phase: None
    should_stop: Callable[[], bool] = lambda: False
    buffers: TaskBuffers = field(init=False)
    rng: random.Random = field(init=False)
    domains: list[TaskDomain] = field(init=False)
    _code_io: CodeIO = field(init=False)  # seeding proposes code I/O tasks whatever the domains
    _outcomes: StepOutcomes = field(init=False, default_factory=StepOutcomes)
    _calls: int = field(init=False, default=0)
    _step: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.buffers = TaskBuffers(self.method.buffer_capacity, self.method.buffer_eviction)
        self.rng = random.Random(self.seed)
        self.domains = build_domains(self.method)
        self._code_io = CodeIO.from_method(self.method)

    @property
    def task_types(self) -> list[TaskType]:
        """The enabled task types, in the order a step visits them."""
        return [t for domain in self.domains for t in domain.task_types]

    # -- state -------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"buffers": self.buffers.to_dict(), "rng": rng_state_to_json(self.rng)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buffers = TaskBuffers.from_dict(state["buffers"])
        self.rng = rng_state_from_json(state["rng"])

    # -- plumbing ----------------------------------------------------------------------------------

    @contextmanager
    def _phase(self, phase: Phase):
        if self.should_stop():
            raise Interrupted(f"stopped before {phase.value}")
        self.on_phase(phase.value)
        start = time.perf_counter()
        try:
            yield
        finally:
            self._outcomes.seconds[phase.value] += time.perf_counter() - start

    def _sampling(self, n: int) -> Sampling:
        # One seed per generation call, derived from (run seed, step, call): a resumed step
        # samples exactly what the interrupted one would have.
        self._calls += 1
        m = self.method
        seed = (self.seed * 1_000_003 + self._step * 10_007 + self._calls) % 2**31
        return Sampling(m.temperature, m.top_p, m.max_response_tokens, seed=seed if m.seeded_sampling else None,
                        logprobs=self.engine_logprobs, n=n)

    def _generate(self, generator: Generator, prompts: list[Prompt], n: int) -> list[list[Generation]]:
        if not prompts:
            return []
        groups = generator.generate(prompts, self._sampling(n))
        self._outcomes.tokens_generated += sum(len(g.token_ids) for group in groups for g in group)
        return groups

    # -- propose and validate ----------------------------------------------------------------------

    def _propose(self, domain: TaskDomain, task_type: TaskType, count: int
                 ) -> tuple[list[Generation], list[Task | None], list[bool]]:
        """`count` proposals: each response, the valid task it defines (or None), its format verdict."""
        with self._phase(Phase.PROPOSE):
            references = [domain.references(task_type, self.buffers, self.rng) for _ in range(count)]
            prompts = [domain.propose_prompt(task_type, refs) for refs in references]
            responses = [group[0] for group in self._generate(self.proposer, prompts, 1)]
        proposed: list[Proposed | None] = []
        formatted = []
        reasons = ["" for _ in responses]  # why a proposal defines no task, for the run's examples
        for k, (response, refs) in enumerate(zip(responses, references)):
            verdict = parse_response(response.text, fallback=self.method.answer_fallback)
            formatted.append(verdict.well_formatted)
            text = proposal_text(response.text, verdict, self.method.answer_fallback)
            try:
                proposed.append(domain.parse(task_type, text or "", refs))
            except (ProposalError, Rejected) as exc:
                proposed.append(None)
                reasons[k] = f"parse: {exc}" if text else "parse: no answer found"
        with self._phase(Phase.VALIDATE):
            todo = [(k, p) for k, p in enumerate(proposed) if p is not None]
            results = self.executor.validate([p.job for _, p in todo]) if todo else []
        tasks: list[Task | None] = [None] * count
        for (k, p), result in zip(todo, results):
            if not result.valid:
                reasons[k] = f"validation: {result.error_message or 'not a valid task'}"
                continue
            try:
                tasks[k] = domain.task(task_type, p, result)
            except Rejected as exc:
                reasons[k] = f"validation: {exc}"
        for response, task, reason in zip(responses, tasks, reasons):
            if task is None:
                self._outcomes.example("rejected", task_type, reason=reason, response=clip(response.text))
            else:
                self._outcomes.example("valid", task_type, **domain.example_fields(task))
        return responses, tasks, formatted

    # -- solve and check -----------------------------------------------------------------------------

    def _solve(self, domain: TaskDomain, task_type: TaskType, tasks: list[Task], n: int, phase: Phase
               ) -> list[list[tuple[Generation, _Graded]]]:
        """n answers per task, graded. A response whose answer cannot be extracted is wrong."""
        with self._phase(phase):
            prompts: list[Prompt] = [domain.solve_prompt(task_type, t) for t in tasks]
            groups = self._generate(self.solver, prompts, n)
        jobs: list[CheckJob] = []
        owners: list[tuple[int, int]] = []
        verdicts: list[list[tuple[Generation, _Graded]]] = []
        first_answers: list[str] = []
        for i, (task, group) in enumerate(zip(tasks, groups)):
            row = []
            for k, response in enumerate(group):
                parsed = parse_response(response.text, fallback=self.method.answer_fallback)
                row.append((response, _Graded(parsed.well_formatted, False)))
                job = domain.check_job(task_type, task, parsed.answer) if parsed.answer is not None else None
                if job is not None:
                    jobs.append(job)
                    owners.append((i, k))
                if k == 0:
                    first_answers.append(job.answer if job is not None else "")
            verdicts.append(row)
        with self._phase(Phase.CHECK):
            checked = self.executor.check(jobs) if jobs else []
        for (i, k), verdict in zip(owners, checked):
            verdicts[i][k][1].correct = verdict.correct
        if phase is Phase.SOLVE:
            for task, row, answer in zip(tasks, verdicts, first_answers):
                response, graded = row[0]
                self._outcomes.example("correct" if graded.correct else "wrong", task_type,
                                       task=domain.example_fields(task), answer=clip(answer) if answer else None,
                                       formatted=graded.well_formatted, response=None if answer else clip(response.text))
        return verdicts

    # -- one step ----------------------------------------------------------------------------------

    def collect(self, step: int) -> StepRollout:
        """docs/method.md, part 2, for each task type in order, and the rewards. The TRR++
        advantages are left to the trainer (`assign_advantages`), which computes them once, over
        the samples it keeps."""
        self._step, self._calls, self._outcomes = step, 0, StepOutcomes()
        m, out = self.method, self._outcomes
        started = time.time()
        samples: list[Sample] = []
        for domain, task_type in ((d, t) for d in self.domains for t in d.task_types):
            count = proposals_for(domain, m.proposals_per_type)
            responses, tasks, formatted = self._propose(domain, task_type, count)
            valid = [t for t in tasks if t is not None]
            out.proposals[task_type] += len(tasks)
            out.valid[task_type] += len(valid)
            # Learnability: n solver answers per valid task; never trained on.
            mc = self._solve(domain, task_type, valid, m.monte_carlo_samples, Phase.MONTE_CARLO)
            s_bars = iter([solve_rate([g.correct for _, g in row]) for row in mc])
            self.buffers[task_type].insert(valid)
            for response, task, ok in zip(responses, tasks, formatted):
                s_bar = next(s_bars) if task is not None else None
                if s_bar is not None:
                    out.s_bars[task_type].append(s_bar)
                reward = proposer_reward(ok, task is not None, s_bar, m.proposer_extreme_reward)
                samples.append(self._sample(task_type, Role.PROPOSE, response, reward))
                out.record(task_type, Role.PROPOSE, reward, ok)
            batch = self.buffers.solve_batch(task_type, count, self.rng)
            for row in self._solve(domain, task_type, batch, 1, Phase.SOLVE):
                response, graded = row[0]
                reward = solver_reward(graded.well_formatted, graded.correct)
                samples.append(self._sample(task_type, Role.SOLVE, response, reward))
                out.record(task_type, Role.SOLVE, reward, graded.well_formatted)
                out.correct[task_type].append(graded.correct)
        self.buffers.end_step()
        metrics = {**out.to_metrics(self.buffers.sizes(), self.task_types), "time.rollout_start": started, "time.rollout_end": time.time()}
        return StepRollout(step, samples, metrics, self.state_dict(), out.examples)

    @staticmethod
    def _sample(task_type: TaskType, role: Role, g: Generation, reward: float) -> Sample:
        return Sample(task_type, role, g.prompt_ids, g.token_ids, g.logprobs, g.version, reward)

    # -- seeding -----------------------------------------------------------------------------------

    def seed_buffers(self) -> dict[str, float]:
        """A no-update pass of the base model proposes tasks until every buffer holds S of them
        (docs/method.md, part 6): deduction proposals fill the deduction and abduction buffers with the
        same triplets, then induction proposals on those programs fill the induction buffer.

        Gives up after `seedMaxRounds` rounds per kind; a buffer still empty then starts from the
        identity triplet (deduction, abduction), or stays empty (induction) and its solver group
        waits for the first valid induction proposal.
        """
        self._step, self._calls, self._outcomes = 0, 0, StepOutcomes()
        m, target = self.method, self.method.seed_tasks
        self.on_phase(Phase.SEEDING.value)
        start = time.perf_counter()
        for task_type, buffer_type in ((TaskType.DEDUCTION, TaskType.DEDUCTION), (TaskType.INDUCTION, TaskType.INDUCTION)):
            for _ in range(m.seed_max_rounds):
                missing = target - len(self.buffers[buffer_type])
                if missing <= 0:
                    break
                _, tasks, _ = self._propose(self._code_io, task_type, m.proposals_per_type)
                valid = [t for t in tasks if t is not None][:missing]
                if task_type is TaskType.DEDUCTION:
                    self.buffers.insert_seed_triplets(valid)  # type: ignore[arg-type]
                else:
                    self.buffers[TaskType.INDUCTION].insert(valid)
            if len(self.buffers[buffer_type]) < target:
                log.warning("seeding: only %d of %d valid %s tasks after %d rounds", len(self.buffers[buffer_type]),
                            target, task_type.value, m.seed_max_rounds)
        if not len(self.buffers[TaskType.DEDUCTION]):
            self.buffers.insert_seed_triplets([IDENTITY_TRIPLET])
        self.buffers.end_step()
        self.buffers.end_step()  # seed tasks are not "the previous step's new tasks"
        metrics = {f"buffer.{k}": float(v) for k, v in self.buffers.sizes().items()}
        metrics["seconds.seeding"] = time.perf_counter() - start
        metrics["tokens_generated"] = float(self._outcomes.tokens_generated)
        return metrics


def assign_advantages(samples: list[Sample], weighting) -> None:
    """TRR++: normalise rewards within each (type, role) group (docs/method.md, part 5), for the
    task types of every enabled domain alike."""
    groups: dict[tuple[TaskType, Role], list[Sample]] = {}
    for s in samples:
        groups.setdefault((s.task_type, s.role), []).append(s)
    advantages = trr_advantages({g: [s.reward for s in ss] for g, ss in groups.items()},
                                {g: [max(1, len(s.response_ids)) for s in ss] for g, ss in groups.items()}, weighting)
    for group, members in groups.items():
        for s, a in zip(members, advantages[group]):
            s.advantage = a


def drop_stale(samples: list[Sample], policy_version: int, max_lag: int) -> tuple[list[Sample], int]:
    """Asynchronous mode: keep samples at most `max_lag` versions behind the policy being updated."""
    kept = [s for s in samples if policy_version - s.version <= max_lag]
    return kept, len(samples) - len(kept)
