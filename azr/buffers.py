"""The three task buffers, reference sampling, solve batches and their checkpoint form (docs/method.md, part 6)."""

from __future__ import annotations

import enum
import random
from collections import deque
from collections.abc import Iterable
from typing import Any

from azr.tasks import IDENTITY_TRIPLET, STEP_ORDER, TASK_CLASSES, Task, TaskType, Triplet

REFERENCE_CAPACITY = 16_384


class Eviction(str, enum.Enum):
    OLDEST = "oldest"  # [project] a full buffer forgets its oldest task
    NONE = "none"      # the reference: a full buffer drops the newest


class TaskBuffer:
    """One task type's buffer: append-only up to `capacity`, then evict per `eviction`."""

    def __init__(self, task_type: TaskType, capacity: int = REFERENCE_CAPACITY, eviction: Eviction = Eviction.OLDEST):
        if capacity < 1:
            raise ValueError(f"buffer capacity must be positive, got {capacity}")
        self.task_type = task_type
        self.capacity = capacity
        self.eviction = Eviction(eviction)
        self._tasks: deque[Task] = deque()
        self.recent: list[Task] = []   # tasks inserted during the step being built
        self.previous: list[Task] = []  # tasks inserted during the previous step

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self):
        return iter(self._tasks)

    def insert(self, tasks: Iterable[Task]) -> int:
        """Insert valid tasks whatever their reward; returns how many were kept."""
        kept = 0
        for task in tasks:
            self._check_kind(task)
            if len(self._tasks) >= self.capacity:
                if self.eviction is Eviction.NONE:
                    continue
                self._tasks.popleft()
            self._tasks.append(task)
            self.recent.append(task)
            kept += 1
        return kept

    def sample(self, k: int, rng: random.Random) -> list[Task]:
        """Up to k tasks, uniformly without replacement."""
        return rng.sample(list(self._tasks), min(k, len(self._tasks)))

    def end_step(self) -> None:
        self.previous, self.recent = self.recent, []

    def _check_kind(self, task: Task) -> None:
        expected = TASK_CLASSES[self.task_type]
        if not isinstance(task, expected):
            raise TypeError(f"{self.task_type.value} buffer takes {expected.__name__}, got {type(task).__name__}")

    def to_dict(self) -> dict[str, Any]:
        return {"task_type": self.task_type.value, "capacity": self.capacity, "eviction": self.eviction.value,
                "tasks": [t.to_dict() for t in self._tasks],
                "recent": [t.to_dict() for t in self.recent],
                "previous": [t.to_dict() for t in self.previous]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskBuffer:
        buffer = cls(TaskType(data["task_type"]), data["capacity"], Eviction(data["eviction"]))
        kind: Any = TASK_CLASSES[buffer.task_type]
        buffer._tasks.extend(kind.from_dict(t) for t in data["tasks"])
        buffer.recent = [kind.from_dict(t) for t in data["recent"]]
        buffer.previous = [kind.from_dict(t) for t in data["previous"]]
        return buffer


class TaskBuffers:
    """One buffer per task type of one run (a disabled domain's stays empty)."""

    def __init__(self, capacity: int = REFERENCE_CAPACITY, eviction: Eviction = Eviction.OLDEST):
        self.buffers = {t: TaskBuffer(t, capacity, eviction) for t in TaskType}

    def __getitem__(self, task_type: TaskType) -> TaskBuffer:
        return self.buffers[task_type]

    def sizes(self) -> dict[str, int]:
        return {t.value: len(b) for t, b in self.buffers.items()}

    def references(self, task_type: TaskType, k: int, rng: random.Random) -> list[Task]:
        """Reference tasks for a proposer prompt.

        Deduction/abduction: K = min(k, |buffer|) triplets of that type, uniformly without
        replacement; the identity triplet while the buffer is empty. Induction: one program,
        as a triplet, from the union of the deduction and abduction buffers.
        """
        if task_type is TaskType.INDUCTION:
            pool = self.seed_programs()
            return [rng.choice(pool)] if pool else [IDENTITY_TRIPLET]
        chosen = self.buffers[task_type].sample(k, rng)
        return chosen or [IDENTITY_TRIPLET]

    def seed_programs(self) -> list[Triplet]:
        return [t for tt in (TaskType.DEDUCTION, TaskType.ABDUCTION) for t in self.buffers[tt]]  # type: ignore[misc]

    def solve_batch(self, task_type: TaskType, size: int, rng: random.Random) -> list[Task]:
        """The previous step's new tasks first, then uniform samples from the whole buffer."""
        buffer = self.buffers[task_type]
        batch = list(buffer.previous[:size])
        if len(batch) < size and len(buffer):
            pool = list(buffer)
            missing = size - len(batch)
            batch += rng.sample(pool, missing) if missing <= len(pool) else rng.choices(pool, k=missing)
        return batch

    def insert_seed_triplets(self, triplets: Iterable[Triplet]) -> None:
        """Seeding: deduction and abduction start from the same triplets."""
        triplets = list(triplets)
        self.buffers[TaskType.DEDUCTION].insert(triplets)
        self.buffers[TaskType.ABDUCTION].insert(triplets)

    def is_seeded(self, target: int) -> bool:
        """True once every buffer seeding fills (deduction, abduction, induction) holds `target`
        tasks (or is full). Bug repair's starts empty: its tasks are made from induction's."""
        return all(len(self.buffers[t]) >= min(target, self.buffers[t].capacity) for t in STEP_ORDER)

    def end_step(self) -> None:
        for buffer in self.buffers.values():
            buffer.end_step()

    def to_dict(self) -> dict[str, Any]:
        return {t.value: b.to_dict() for t, b in self.buffers.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskBuffers:
        buffers = cls()  # a checkpoint from before a task type existed has no buffer for it: it starts empty
        buffers.buffers.update({TaskType(k): TaskBuffer.from_dict(v) for k, v in data.items()})
        return buffers


def rng_state_to_json(rng: random.Random) -> list[Any]:
    version, state, gauss = rng.getstate()
    return [version, list(state), gauss]


def rng_state_from_json(data: list[Any]) -> random.Random:
    rng = random.Random()
    rng.setstate((data[0], tuple(data[1]), data[2]))
    return rng
