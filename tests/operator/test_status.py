"""The SelfPlayRun status state machine (azr_operator.status)."""

from azr_operator.status import Observed, compute_status

READY = {"executor": (1, 1), "proposer": (1, 1), "learner": (1, 1)}


def conditions(status):
    return {c["type"]: c for c in status["conditions"]}


def test_phases_follow_what_was_observed():
    starting = Observed(1, replicas={"executor": (1, 0), "proposer": (1, 1), "learner": (1, 0)})
    assert compute_status(starting, None, "t0")["phase"] == "Starting"
    running = compute_status(Observed(1, replicas=READY), None, "t0")
    assert running["phase"] == "Running" and running["ready"] == "3/3" and conditions(running)["Ready"]["status"] == "True"
    done = compute_status(Observed(1, replicas=READY, learner={"step": 4, "totalSteps": 4, "phase": "done", "policyVersion": 4}),
                          None, "t0")
    assert done["phase"] == "Complete" and done["progress"]["step"] == 4 and done["progress"]["policyVersion"] == 4
    suspended = compute_status(Observed(2, suspended=True, replicas={r: (0, 0) for r in READY}), None, "t0")
    assert suspended["phase"] == "Suspended" and conditions(suspended)["Suspended"]["status"] == "True"
    assert suspended["observedGeneration"] == 2


def test_a_missing_runtime_class_is_a_clear_condition():
    status = compute_status(Observed(1, runtime_class="gvisor", runtime_class_exists=False, replicas=READY), None, "t0")
    executor = conditions(status)["ExecutorReady"]
    assert status["phase"] == "Pending" and executor["status"] == "False" and executor["reason"] == "RuntimeClassMissing"
    assert "gvisor" in executor["message"]


def test_an_invalid_spec_fails_with_the_field_named():
    status = compute_status(Observed(3, spec_error="spec.training.zeroStage: Input should be 0, 1, 2 or 3 (got 7)"), None, "t0")
    assert status["phase"] == "Failed" and "spec.training.zeroStage" in conditions(status)["Failed"]["message"]


def test_transition_times_change_only_on_transitions():
    first = compute_status(Observed(1, replicas=READY), None, "t0")
    same = compute_status(Observed(1, replicas=READY), first, "t1")
    assert conditions(same)["Ready"]["lastTransitionTime"] == "t0"
    flipped = compute_status(Observed(1, replicas={**READY, "learner": (1, 0)}), same, "t2")
    assert conditions(flipped)["Ready"]["lastTransitionTime"] == "t2"
    assert conditions(flipped)["ExecutorReady"]["lastTransitionTime"] == "t0"
    # Progress survives a poll in which the learner did not answer.
    with_progress = compute_status(Observed(1, replicas=READY, learner={"step": 2, "totalSteps": 9, "phase": "update"}), None, "t0")
    assert compute_status(Observed(1, replicas=READY), with_progress, "t1")["progress"]["step"] == 2


def test_complete_holds_for_its_generation_once_the_learner_is_gone():
    from azr_operator.status import finished_before, learner_done

    done = {"step": 4, "totalSteps": 4, "phase": "done"}
    assert learner_done(done) and not learner_done({**done, "step": 3}) and not learner_done(None)
    first = compute_status(Observed(1, replicas=READY, learner=done, finished=True), None, "t0")
    assert first["phase"] == "Complete" and finished_before(first, 1)
    # Scaled down: no learner answers, and the phase does not fall back to Starting.
    later = compute_status(Observed(1, replicas={r: (0, 0) for r in READY}, finished=finished_before(first, 1)), first, "t1")
    assert later["phase"] == "Complete" and later["progress"]["step"] == 4
    assert conditions(later)["Complete"]["lastTransitionTime"] == "t0"
    # A new generation (say, more steps) runs again.
    assert not finished_before(later, 2)


def test_a_role_that_is_gone_is_removed_from_the_status():
    before = compute_status(Observed(1, replicas={**READY, "solver": (2, 2)}), None, "t0")
    after = compute_status(Observed(2, replicas=READY), before, "t1")  # the solver now shares the proposer's pool
    assert after["replicas"]["solver"] is None  # a null in the merge patch deletes the key
    assert after["replicas"]["proposer"] == {"desired": 1, "ready": 1}
