"""The live view and the summary table of `azr run`, rendered from recorded data."""

from rich.console import Console

from azr_contracts.v1 import learner_pb2
from azr_launcher.local import live_view, summary_table


class FakeService:
    def __init__(self, role, up=True, restarts=0):
        self.role, self._up, self.restarts = role, up, restarts

    def alive(self):
        return self._up


class FakeRun:
    class run:  # noqa: N801 - mimics LocalRun.run.metadata.name
        class metadata:  # noqa: N801
            name = "cpu-tiny"

    services = {"executor": FakeService("executor", restarts=1), "proposer": FakeService("proposer"),
                "learner": FakeService("learner", up=False)}


def render(renderable) -> str:
    console = Console(record=True, width=140)
    console.print(renderable)
    return console.export_text()


def test_live_view_shows_step_phase_and_rates():
    status = learner_pb2.LearnerStatus(step=2, total_steps=4, policy_version=2, phase="monte_carlo",
                                       metrics={"reward.deduction.propose": 0.25, "valid_rate.abduction": 0.5,
                                                "buffer.induction": 7.0, "step_seconds": 81.0})
    text = render(live_view(FakeRun(), status, None, 0.0))
    assert "step 2/4" in text and "monte_carlo" in text and "policy v2" in text
    assert "0.25" in text and "0.50" in text and "7" in text
    assert "executor:up (restarted 1x)" in text and "learner:down" in text
    assert "waiting for executor" in render(live_view(FakeRun(), None, ["executor"], 0.0))


def test_summary_table_gives_first_last_and_mean():
    lines = [{"step": 0, "phase": "seeding"},
             {"step": 1, "reward.deduction.solve": -1.0, "valid_rate.deduction": 0.0, "step_seconds": 100.0},
             {"step": 2, "reward.deduction.solve": 0.0, "valid_rate.deduction": None, "step_seconds": 80.0}]
    text = render(summary_table(lines))
    assert "azr run: 2 steps" in text
    row = next(line for line in text.splitlines() if "reward deduction solve" in line)
    assert "-1.00" in row and "0.00" in row and "-0.50" in row
    row = next(line for line in text.splitlines() if "step seconds" in line)
    assert "100.0" in row and "80.0" in row and "90.0" in row
    assert "no completed step" in render(summary_table([{"step": 0}]))


def test_the_live_view_shows_what_the_model_wrote():
    examples = [
        {"type": "deduction", "kind": "valid", "program": "def f(x):\n    return x + 1", "input": "41", "output": "42"},
        {"type": "deduction", "kind": "wrong", "answer": "0", "task": {}, "formatted": True},
        {"type": "abduction", "kind": "rejected", "reason": "validation: raised", "response": "..."},
        {"type": "induction", "kind": "valid", "message": "Adds one.", "program": "def f(x): ...", "pairs": []},
    ]
    from azr_launcher.local import example_lines

    lines = example_lines(examples)
    assert lines == ["deduction proposed: def f(x): return x + 1 on 41 -> 42", "deduction answer wrong: 0",
                     "abduction rejected: validation: raised", "induction proposed: Adds one."]
    status = learner_pb2.LearnerStatus(step=1, total_steps=2, policy_version=1, phase="propose")
    text = render(live_view(FakeRun(), status, None, 0.0, examples))
    assert "last step, as the model wrote it" in text and "abduction rejected: validation: raised" in text
