import json
import random

import pytest

from azr.buffers import Eviction, TaskBuffer, TaskBuffers, rng_state_from_json, rng_state_to_json
from azr.tasks import IDENTITY_TRIPLET, InductionTask, TaskType, Triplet


def _t(n):
    return Triplet(f"def f(x):\n    return x + {n}", "1", str(1 + n))


def _ind(n):
    return InductionTask(_t(n).program, f"adds {n}", tuple(str(i) for i in range(10)), tuple(str(i + n) for i in range(10)))


def test_induction_split_five_visible_five_hidden():
    task = _ind(1)
    assert task.visible_pairs == [(str(i), str(i + 1)) for i in range(5)]
    assert task.hidden_pairs == [(str(i), str(i + 1)) for i in range(5, 10)]
    with pytest.raises(ValueError):
        InductionTask("p", "m", ("1",) * 5, ("1",) * 5)


def test_identity_fallback_while_empty():
    buffers = TaskBuffers()
    rng = random.Random(0)
    assert buffers.references(TaskType.DEDUCTION, 6, rng) == [IDENTITY_TRIPLET]
    assert buffers.references(TaskType.INDUCTION, 6, rng) == [IDENTITY_TRIPLET]
    assert IDENTITY_TRIPLET.input == "'Hello World'" and IDENTITY_TRIPLET.output == "'Hello World'"


def test_references_are_k_distinct_tasks_of_that_type():
    buffers = TaskBuffers()
    buffers[TaskType.DEDUCTION].insert([_t(n) for n in range(10)])
    buffers[TaskType.ABDUCTION].insert([_t(100)])
    refs = buffers.references(TaskType.DEDUCTION, 6, random.Random(1))
    assert len(refs) == 6 and len(set(refs)) == 6 and all(r in list(buffers[TaskType.DEDUCTION]) for r in refs)
    assert buffers.references(TaskType.ABDUCTION, 6, random.Random(1)) == [_t(100)]  # K = min(6, |buffer|)


def test_induction_reference_is_one_program_from_deduction_or_abduction():
    buffers = TaskBuffers()
    buffers[TaskType.DEDUCTION].insert([_t(1)])
    buffers[TaskType.ABDUCTION].insert([_t(2)])
    seen = {buffers.references(TaskType.INDUCTION, 6, random.Random(s))[0] for s in range(30)}
    assert seen == {_t(1), _t(2)}


def test_eviction_oldest_and_reference_none():
    oldest = TaskBuffer(TaskType.DEDUCTION, capacity=3, eviction=Eviction.OLDEST)
    oldest.insert([_t(n) for n in range(5)])
    assert list(oldest) == [_t(2), _t(3), _t(4)]
    none = TaskBuffer(TaskType.DEDUCTION, capacity=3, eviction=Eviction.NONE)
    assert none.insert([_t(n) for n in range(5)]) == 3
    assert list(none) == [_t(0), _t(1), _t(2)]


def test_buffer_takes_only_its_kind_of_task():
    with pytest.raises(TypeError):
        TaskBuffer(TaskType.INDUCTION).insert([_t(1)])
    with pytest.raises(TypeError):
        TaskBuffer(TaskType.DEDUCTION).insert([_ind(1)])


def test_solve_batch_puts_previous_step_tasks_first():
    buffers = TaskBuffers()
    buffer = buffers[TaskType.DEDUCTION]
    buffer.insert([_t(n) for n in range(20)])
    buffers.end_step()
    buffer.insert([_t(100), _t(101)])
    buffers.end_step()                      # step t-1 inserted _t(100), _t(101)
    buffer.insert([_t(200)])                # inserted during step t: not yet "previous"
    batch = buffers.solve_batch(TaskType.DEDUCTION, 6, random.Random(0))
    assert batch[:2] == [_t(100), _t(101)] and len(batch) == 6
    assert all(t in list(buffer) for t in batch)


def test_solve_batch_fills_from_a_small_buffer_with_replacement():
    buffers = TaskBuffers()
    buffers[TaskType.ABDUCTION].insert([_t(1)])
    assert buffers.solve_batch(TaskType.ABDUCTION, 3, random.Random(0)) == [_t(1)] * 3
    assert buffers.solve_batch(TaskType.INDUCTION, 3, random.Random(0)) == []


def test_seeding_fills_deduction_and_abduction_with_the_same_triplets():
    buffers = TaskBuffers()
    buffers.insert_seed_triplets([_t(n) for n in range(4)])
    assert list(buffers[TaskType.DEDUCTION]) == list(buffers[TaskType.ABDUCTION])
    assert not buffers.is_seeded(4)          # induction still empty
    buffers[TaskType.INDUCTION].insert([_ind(n) for n in range(4)])
    assert buffers.is_seeded(4) and not buffers.is_seeded(5)


def test_checkpoint_round_trip_through_json():
    buffers = TaskBuffers(capacity=50, eviction=Eviction.NONE)
    buffers.insert_seed_triplets([_t(n) for n in range(5)])
    buffers[TaskType.INDUCTION].insert([_ind(1)])
    buffers.end_step()
    buffers[TaskType.DEDUCTION].insert([_t(9)])
    restored = TaskBuffers.from_dict(json.loads(json.dumps(buffers.to_dict())))
    for t in TaskType:
        assert list(restored[t]) == list(buffers[t])
        assert restored[t].previous == buffers[t].previous and restored[t].recent == buffers[t].recent
        assert restored[t].capacity == 50 and restored[t].eviction is Eviction.NONE


def test_rng_state_round_trip():
    rng = random.Random(7)
    rng.random()
    clone = rng_state_from_json(json.loads(json.dumps(rng_state_to_json(rng))))
    assert [clone.random() for _ in range(5)] == [rng.random() for _ in range(5)]
