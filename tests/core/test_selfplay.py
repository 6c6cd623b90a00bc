"""The self-play step's bookkeeping (azr.selfplay), with scripted services.

The real services are exercised end to end in tests/learner; here the proposer and solver
answer from a script and the executor is a small literal interpreter, so each rule of
docs/method.md, part 2 can be checked exactly.
"""

from __future__ import annotations

import math

import pytest

from azr.jobs import Validation, Verdict
from azr.literals import parse_arguments, parse_literal, strict_equal
from azr.metrics import json_safe
from azr.programs import ErrorKind
from azr.rewards import FORMAT_ERROR, INVALID_PROPOSAL, SOLVER_CORRECT, SOLVER_WRONG
from azr.selfplay import Generation, SelfPlay, assign_advantages, drop_stale
from azr.spec import MethodSpec
from azr.tasks import GROUPS, IDENTITY_TRIPLET, Role, TaskType

# Programs the scripted executor "runs": name -> python function of literal arguments.
PROGRAMS = {
    "def f(x):\n    return x + 1": lambda x: x + 1,
    "def f(s):\n    return s[::-1]": lambda s: s[::-1],
    "def f(x):\n    return x": lambda x: x,
}
INC, REV, _ = PROGRAMS


def _propose(program: str, arg: str) -> str:
    return f"plan</think>\n<answer>\n```python\n{program}\n```\n```input\n{arg}\n```\n</answer>"


def _induction() -> str:
    inputs = "\n".join(f"```input\n{k}\n```" for k in range(10))
    return f"plan</think>\n<answer>{inputs}\n```message\nAdds one.\n```</answer>"


class ScriptedModel:
    """Answers each prompt by its first line of instruction; records every call."""

    def __init__(self, version: int = 0, solve_right: bool = True):
        self.version, self.solve_right, self.calls = version, solve_right, []

    def _answer(self, text: str) -> str:
        if "Design" in text:
            return _propose(INC, "41") if "predicting the output" in text else _propose(REV, "'abc'")
        if "Write exactly" in text:
            return _induction()
        reverses = "s[::-1]" in text
        if "Predict the output" in text:
            right = "'cba'" if reverses else "42"
            return f"r</think><answer>{right}</answer>" if self.solve_right else "r</think><answer>0</answer>"
        if "Find an input" in text:
            right = "'abc'" if reverses else "41"
            return f"r</think><answer>{right}</answer>" if self.solve_right else "no tags at all"
        return f"r</think><answer>```python\n{INC}\n```</answer>"

    def generate(self, prompts, sampling):
        n = sampling.n
        self.calls.append((len(prompts), n, sampling.seed))
        self.samplings = getattr(self, "samplings", []) + [sampling]
        out = []
        for p in prompts:
            text = self._answer(p.messages[-1].content)
            out.append([Generation(text, (1, 2, 3), tuple(range(4 + k)), (-0.5,) * (4 + k), self.version) for k in range(n)])
        return out


class LiteralExecutor:
    def __init__(self):
        self.validated = 0

    def _run(self, program: str, arg_text: str, fail=None):
        try:
            return PROGRAMS[program](*parse_arguments(arg_text))
        except Exception:  # the real executor's verdict: invalid, or wrong
            return fail

    def validate(self, jobs):
        self.validated += len(jobs)
        results = []
        for job in jobs:
            failed = object()
            outputs = [self._run(job.program, i, failed) for i in job.inputs] if job.program in PROGRAMS else [failed]
            ok = all(o is not failed for o in outputs)
            results.append(Validation(ok, tuple(map(repr, outputs))) if ok else
                           Validation(False, error_kind=ErrorKind.RUNTIME, error_message="raised"))
        return results

    def check(self, jobs):
        out = []
        for j in jobs:
            if j.task_type is TaskType.DEDUCTION:
                out.append(strict_equal(parse_literal(j.answer), parse_literal(j.gold_output)))
            elif j.task_type is TaskType.ABDUCTION:
                out.append(strict_equal(self._run(j.program, j.answer), parse_literal(j.gold_output)))
            else:
                ok = j.answer.strip() in PROGRAMS and all(
                    strict_equal(PROGRAMS[j.answer.strip()](*parse_arguments(i)), parse_literal(o))
                    for i, o in zip(j.hidden_inputs, j.hidden_outputs))
                out.append(ok)
        return [Verdict(ok) if ok else Verdict(False, ErrorKind.WRONG_ANSWER) for ok in out]


METHOD = MethodSpec(proposals_per_type=3, references=2, monte_carlo_samples=4, seed_tasks=2, seed_max_rounds=2,
                    max_response_tokens=64)


def make(model=None, executor=None, method=METHOD):
    model = model or ScriptedModel()
    return SelfPlay(method, model, model, executor or LiteralExecutor(), seed=7), model


def test_seeding_fills_every_buffer_then_a_step_trains_all_six_groups():
    play, model = make()
    seeding = play.seed_buffers()
    sizes = play.buffers.sizes()
    assert sizes["deduction"] == sizes["abduction"] == 2 and sizes["induction"] == 2
    assert seeding["buffer.induction"] == 2
    assert all(not b.previous for b in play.buffers.buffers.values())  # seed tasks are not last step's tasks
    rollout = play.collect(1)
    groups = {(s.task_type, s.role) for s in rollout.samples}
    assert groups == set(GROUPS)
    assert all(s.reward == SOLVER_CORRECT for s in rollout.samples if s.role is Role.SOLVE and s.task_type is not TaskType.INDUCTION)
    assert all(sum(1 for s in rollout.samples if (s.task_type, s.role) == g) == 3 for g in GROUPS)
    # Every valid proposal is solved by every Monte-Carlo sample here: s-bar = 1, the extreme reward 0.
    assert rollout.metrics["s_bar.deduction"] == 1.0 and rollout.metrics["valid_rate.abduction"] == 1.0
    assert all(s.reward == 0.0 for s in rollout.samples if s.role is Role.PROPOSE and s.task_type is not TaskType.INDUCTION)
    # Induction proposals on the reversing program fail on integer inputs: invalid, -1.
    assert {s.reward for s in rollout.samples if s.role is Role.PROPOSE and s.task_type is TaskType.INDUCTION} <= {0.0, -1.0}
    assert rollout.metrics["buffer.deduction"] == 2 + 3
    assign_advantages(rollout.samples, play.method.advantage_weighting)  # the trainer's, once per step
    for group in GROUPS:
        members = [s for s in rollout.samples if (s.task_type, s.role) == group]
        assert abs(sum(s.advantage for s in members)) < 1e-9  # TRR++: zero mean within each group
        if len({s.reward for s in members}) == 1:
            assert all(s.advantage == 0.0 for s in members)  # equal rewards: no signal, and no division by zero
    assert rollout.metrics["time.rollout_end"] >= rollout.metrics["time.rollout_start"]


def test_rewards_follow_the_spec_table_and_advantages_are_normalised_per_group():
    play, model = make(ScriptedModel(solve_right=False))
    play.seed_buffers()
    rollout = play.collect(1)
    solve = {t: [s.reward for s in rollout.samples if s.task_type is t and s.role is Role.SOLVE] for t in TaskType}
    assert solve[TaskType.DEDUCTION] == [SOLVER_WRONG] * 3      # well formatted, wrong
    assert solve[TaskType.ABDUCTION] == [FORMAT_ERROR] * 3      # no tags: a format error even if parseable
    assert rollout.metrics["format_error.abduction.solve"] == 1.0
    assert rollout.metrics["accuracy.deduction"] == 0.0
    # s-bar = 0 for deduction proposals (never solved): the extreme reward again.
    assert rollout.metrics["s_bar.deduction"] == 0.0


def test_invalid_proposals_earn_minus_one_and_are_not_inserted():
    class Broken(ScriptedModel):
        def _answer(self, text):
            return "r</think><answer>```python\ndef f(:\n```\n```input\n1\n```</answer>" if "Design" in text else super()._answer(text)

    play, _ = make(Broken())
    play.buffers.insert_seed_triplets([IDENTITY_TRIPLET])
    before = play.buffers.sizes()
    rollout = play.collect(1)
    proposals = [s for s in rollout.samples if s.role is Role.PROPOSE and s.task_type is not TaskType.INDUCTION]
    assert [s.reward for s in proposals] == [INVALID_PROPOSAL] * 6
    assert play.buffers.sizes()["deduction"] == before["deduction"]
    assert rollout.metrics["valid_rate.deduction"] == 0.0
    assert math.isnan(rollout.metrics["s_bar.deduction"]) and json_safe(rollout.metrics)["s_bar.deduction"] is None


def test_seeding_gives_up_and_starts_from_the_identity_triplet():
    class Mute(ScriptedModel):
        def _answer(self, text):
            return "nothing useful"

    play, model = make(Mute())
    play.seed_buffers()
    assert list(play.buffers[TaskType.DEDUCTION]) == [IDENTITY_TRIPLET]
    assert len(play.buffers[TaskType.INDUCTION]) == 0
    assert len(model.calls) == 2 * METHOD.seed_max_rounds  # gave up after the configured rounds, per kind


def test_previous_step_tasks_are_solved_first_and_seeds_are_deterministic():
    play, model = make()
    play.seed_buffers()
    play.collect(1)
    new_deduction = list(play.buffers[TaskType.DEDUCTION].previous)
    assert len(new_deduction) == 3
    state = play.state_dict()
    calls_before = len(model.calls)
    second = play.collect(2)
    seeds_a = [c[2] for c in model.calls[calls_before:]]
    # The same state gives the same step: same sampling seeds, same samples.
    replay, replay_model = make()
    replay.load_state_dict(state)
    again = replay.collect(2)
    assert [c[2] for c in replay_model.calls] == seeds_a
    assert [(s.task_type, s.role, s.reward) for s in again.samples] == [(s.task_type, s.role, s.reward) for s in second.samples]
    assert replay.state_dict() == play.state_dict()


def test_unseeded_sampling_and_recomputed_log_probs_are_asked_of_the_engines():
    method = METHOD.model_copy(update={"seeded_sampling": False})
    model = ScriptedModel()
    play = SelfPlay(method, model, model, LiteralExecutor(), seed=7, engine_logprobs=False)
    play.seed_buffers()
    play.collect(1)
    assert model.samplings and all(s.seed is None and not s.logprobs for s in model.samplings)
    seeded, seeded_model = make()
    seeded.seed_buffers()
    assert all(s.seed is not None and s.logprobs for s in seeded_model.samplings)


def test_a_stop_request_abandons_the_step_between_calls():
    from azr.selfplay import Interrupted

    play, model = make()
    play.seed_buffers()
    stop = {"now": False}
    play.should_stop = lambda: stop["now"]
    original = model.generate

    def generate_then_stop(prompts, sampling):
        stop["now"] = True
        return original(prompts, sampling)

    model.generate = generate_then_stop
    with pytest.raises(Interrupted):
        play.collect(1)


def test_drop_stale_keeps_samples_within_the_lag_bound():
    play, _ = make(ScriptedModel(version=3))
    play.seed_buffers()
    rollout = play.collect(1)
    kept, dropped = drop_stale(rollout.samples, policy_version=4, max_lag=1)
    assert dropped == 0 and len(kept) == len(rollout.samples)
    kept, dropped = drop_stale(rollout.samples, policy_version=5, max_lag=1)
    assert kept == [] and dropped == len(rollout.samples)


def test_a_step_keeps_examples_of_what_the_model_wrote():
    """Valid proposals with their task, rejected ones with the reason, answers with their grade:
    a few of each kind per task type, for the live view and the report."""
    play, _ = make(ScriptedModel(solve_right=False))
    play.seed_buffers()
    examples = play.collect(1).examples
    kinds = {(e["type"], e["kind"]) for e in examples}
    assert ("deduction", "valid") in kinds and ("induction", "rejected") in kinds and ("abduction", "wrong") in kinds
    valid = next(e for e in examples if (e["type"], e["kind"]) == ("deduction", "valid"))
    assert valid["program"] == INC and valid["input"] == "41" and valid["output"] == "42"
    rejected = next(e for e in examples if e["kind"] == "rejected")
    assert rejected["reason"] == "validation: raised" and "```input" in rejected["response"]
    wrong = next(e for e in examples if (e["type"], e["kind"]) == ("deduction", "wrong"))
    assert wrong["answer"] == "0" and wrong["task"]["program"] in PROGRAMS and wrong["formatted"]
    untagged = next(e for e in examples if (e["type"], e["kind"]) == ("abduction", "wrong"))
    assert untagged["answer"] is None and untagged["response"] == "no tags at all"
    for task_type in ("deduction", "abduction", "induction"):
        for kind in ("valid", "rejected", "correct", "wrong"):
            assert sum(1 for e in examples if (e["type"], e["kind"]) == (task_type, kind)) <= 2
