"""LearnerSettings.from_spec: where the services are comes from the flags, the rest from the spec."""

import pytest

from azr.spec import parse_run
from azr_learner.settings import LearnerSettings

RUN = parse_run({"apiVersion": "azr.dev/v1alpha1", "kind": "SelfPlayRun", "metadata": {"name": "r"},
                 "spec": {"training": {"steps": 40}}}, "run.yaml")
WHERE = {"run_dir": "/tmp/run", "proposers": ["a:1", "b:1"], "executor": "e:2"}


def test_the_spec_gives_model_and_steps_and_solvers_default_to_the_proposers():
    settings = LearnerSettings.from_spec(RUN, WHERE)
    assert settings.steps == 40 and settings.model == RUN.spec.model.name
    assert settings.solvers == settings.proposers == ("a:1", "b:1") and str(settings.run_dir) == "/tmp/run"


def test_flags_override_and_bad_steps_are_refused():
    settings = LearnerSettings.from_spec(RUN, {**WHERE, "steps": 3, "model": "/m", "solvers": ["s:1"]})
    assert (settings.steps, settings.model, settings.solvers) == (3, "/m", ("s:1",))
    with pytest.raises(ValueError, match="steps: must be at least 1"):
        LearnerSettings.from_spec(RUN, {**WHERE, "steps": 0})
