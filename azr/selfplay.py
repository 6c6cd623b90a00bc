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
from azr.metrics import Phase, StepOutcomes, clip
from azr.parsing import ProposalError, parse_proposal, parse_response, proposal_text, solver_answer
from azr.programs import ErrorKind
from azr.prompts import Prompt, propose_prompt, solve_prompt
from azr.rewards import proposer_reward, solve_rate, solver_reward
from azr.spec import MethodSpec
from azr.tasks import IDENTITY_TRIPLET, STEP_ORDER, InductionTask, Role, Task, TaskType, Triplet

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


@dataclass(frozen=True)
class ValidationJob:
    """A proposed program and the inputs to run it on (docs/method.md, part 4)."""

    program: str
    inputs: tuple[str, ...]


@dataclass(frozen=True)
class Validation:
    """Whether a proposal is a valid task; its outputs, one per input, when it is."""

    valid: bool
    outputs: tuple[str, ...] = ()
    error_kind: ErrorKind = ErrorKind.NONE
    error_message: str = ""


@dataclass(frozen=True)
class CheckJob:
    """A solver's answer to one task: the program and gold output for deduction and
    abduction, the hidden pairs for induction."""

    task_type: TaskType
    answer: str
    program: str = ""
    gold_output: str = ""
    hidden_inputs: tuple[str, ...] = ()
    hidden_outputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    """Whether an answer is correct, and why not."""

    correct: bool
    error_kind: ErrorKind = ErrorKind.NONE
    error_message: str = ""


class Executor(Protocol):
    """The sandbox's two questions, answered in order: the executor service's engine, or its
    gRPC client."""

    def validate(self, jobs: Sequence[ValidationJob]) -> list[Validation]:
        ...

    def check(self, jobs: Sequence[CheckJob]) -> list[Verdict]:
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


def task_fields(task: Task) -> dict[str, Any]:
    """A task as an example shows it: the program, and its input/output or its pairs and message."""
    if isinstance(task, InductionTask):
        return {"program": clip(task.program), "message": clip(task.message, 200),
                "pairs": [[i, o] for i, o in zip(task.inputs[:3], task.outputs[:3])]}
    return {"program": clip(task.program), "input": clip(task.input, 200), "output": clip(task.output, 200)}


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
    _outcomes: StepOutcomes = field(init=False, default_factory=StepOutcomes)
    _calls: int = field(init=False, default=0)
    _step: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.buffers = TaskBuffers(self.method.buffer_capacity, self.method.buffer_eviction)
        self.rng = random.Random(self.seed)

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

    def _propose(self, task_type: TaskType, count: int) -> tuple[list[Generation], list[Task | None], list[bool]]:
        """`count` proposals: each response, the valid task it defines (or None), its format verdict."""
        fmt = self.method.format_examples
        with self._phase(Phase.PROPOSE):
            references = [self.buffers.references(task_type, self.method.references, self.rng) for _ in range(count)]
            prompts = [propose_prompt(task_type, refs, fmt, self.method.numbered_inputs) for refs in references]
            responses = [group[0] for group in self._generate(self.proposer, prompts, 1)]
        parsed = []
        reasons = ["" for _ in responses]  # why a proposal defines no task, for the run's examples
        for k, (response, refs) in enumerate(zip(responses, references)):
            verdict = parse_response(response.text, fallback=self.method.answer_fallback)
            text = proposal_text(response.text, verdict, self.method.answer_fallback)
            try:
                proposal = parse_proposal(text or "", task_type)
            except ProposalError as exc:
                proposal, reasons[k] = None, f"parse: {exc}" if text else "parse: no answer found"
            program = refs[0].program if task_type is TaskType.INDUCTION else (proposal.program if proposal else "")
            parsed.append((verdict.well_formatted, proposal, program))
        with self._phase(Phase.VALIDATE):
            todo = [(k, program, proposal.inputs) for k, (_, proposal, program) in enumerate(parsed) if proposal]
            results = self.executor.validate([ValidationJob(program, tuple(inputs)) for _, program, inputs in todo]) if todo else []
        tasks: list[Task | None] = [None] * count
        for (k, program, inputs), result in zip(todo, results):
            if not result.valid:
                reasons[k] = f"validation: {result.error_message or 'not a valid task'}"
                continue
            proposal = parsed[k][1]
            assert proposal is not None
            if task_type is TaskType.INDUCTION:
                tasks[k] = InductionTask(program, proposal.message, tuple(inputs), tuple(result.outputs))
            else:
                tasks[k] = Triplet(program, inputs[0], result.outputs[0])
        for response, task, reason in zip(responses, tasks, reasons):
            if task is None:
                self._outcomes.example("rejected", task_type, reason=reason, response=clip(response.text))
            else:
                self._outcomes.example("valid", task_type, **task_fields(task))
        return responses, tasks, [p[0] for p in parsed]

    # -- solve and check ---------------------------------------------------------------------------

    def _check_jobs(self, task_type: TaskType, task: Task, answers: list[str]) -> list[CheckJob]:
        if task_type is TaskType.INDUCTION:
            assert isinstance(task, InductionTask)
            hidden = task.hidden_pairs
            return [CheckJob(task_type, a, hidden_inputs=tuple(i for i, _ in hidden),
                             hidden_outputs=tuple(o for _, o in hidden)) for a in answers]
        assert isinstance(task, Triplet)
        return [CheckJob(task_type, a, program=task.program, gold_output=task.output) for a in answers]

    def _solve(self, task_type: TaskType, tasks: list[Task], n: int, phase: Phase) -> list[list[tuple[Generation, _Graded]]]:
        """n answers per task, graded. A response whose answer cannot be extracted is wrong."""
        fmt = self.method.format_examples
        with self._phase(phase):
            groups = self._generate(self.solver, [solve_prompt(t, task_type, fmt) for t in tasks], n)
        jobs: list[CheckJob] = []
        owners: list[tuple[int, int]] = []
        verdicts: list[list[tuple[Generation, _Graded]]] = []
        all_answers: list[list[str]] = []
        for i, (task, group) in enumerate(zip(tasks, groups)):
            row = []
            answers = []
            for k, response in enumerate(group):
                parsed = parse_response(response.text, fallback=self.method.answer_fallback)
                row.append((response, _Graded(parsed.well_formatted, False)))
                answer = solver_answer(parsed.answer, task_type) if parsed.answer is not None else ""
                answers.append(answer)
                if answer:
                    jobs += self._check_jobs(task_type, task, [answer])
                    owners.append((i, k))
            verdicts.append(row)
            all_answers.append(answers)
        with self._phase(Phase.CHECK):
            checked = self.executor.check(jobs) if jobs else []
        for (i, k), verdict in zip(owners, checked):
            verdicts[i][k][1].correct = verdict.correct
        if phase is Phase.SOLVE:
            for task, row, answers in zip(tasks, verdicts, all_answers):
                (response, graded), answer = row[0], answers[0]
                self._outcomes.example("correct" if graded.correct else "wrong", task_type, task=task_fields(task),
                                       answer=clip(answer) if answer else None, formatted=graded.well_formatted,
                                       response=None if answer else clip(response.text))
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
        for task_type in STEP_ORDER:
            responses, tasks, formatted = self._propose(task_type, m.proposals_per_type)
            valid = [t for t in tasks if t is not None]
            out.proposals[task_type] += len(tasks)
            out.valid[task_type] += len(valid)
            # Learnability: n solver answers per valid task; never trained on.
            mc = self._solve(task_type, valid, m.monte_carlo_samples, Phase.MONTE_CARLO)
            s_bars = iter([solve_rate([g.correct for _, g in row]) for row in mc])
            self.buffers[task_type].insert(valid)
            for response, task, ok in zip(responses, tasks, formatted):
                s_bar = next(s_bars) if task is not None else None
                if s_bar is not None:
                    out.s_bars[task_type].append(s_bar)
                reward = proposer_reward(ok, task is not None, s_bar, m.proposer_extreme_reward)
                samples.append(self._sample(task_type, Role.PROPOSE, response, reward))
                out.record(task_type, Role.PROPOSE, reward, ok)
            batch = self.buffers.solve_batch(task_type, m.proposals_per_type, self.rng)
            for row in self._solve(task_type, batch, 1, Phase.SOLVE):
                response, graded = row[0]
                reward = solver_reward(graded.well_formatted, graded.correct)
                samples.append(self._sample(task_type, Role.SOLVE, response, reward))
                out.record(task_type, Role.SOLVE, reward, graded.well_formatted)
                out.correct[task_type].append(graded.correct)
        self.buffers.end_step()
        metrics = {**out.to_metrics(self.buffers.sizes()), "time.rollout_start": started, "time.rollout_end": time.time()}
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
                _, tasks, _ = self._propose(task_type, m.proposals_per_type)
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
    """TRR++: normalise rewards within each (type, role) group (docs/method.md, part 5)."""
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
