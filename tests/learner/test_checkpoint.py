"""Checkpoints are written atomically: a failure at any point leaves the previous one intact."""

import errno

import pytest

from azr_learner.checkpoint import CheckpointError, latest_checkpoint, read_state, write_checkpoint


class FilePolicy:
    """Writes small files where the real policy writes weights and optimizer state."""

    def __init__(self, fail_at: str | None = None):
        self.fail_at = fail_at

    def _write(self, folder, what):
        if self.fail_at == what:
            raise OSError(errno.ENOSPC, "No space left on device")
        folder.mkdir(parents=True)
        (folder / f"{what}.bin").write_bytes(b"x" * 100)

    def save_weights(self, folder):
        self._write(folder, "weights")

    def save_optimizer(self, folder):
        self._write(folder, "optimizer")


def test_checkpoints_rotate_and_latest_names_the_newest(tmp_path):
    for step in (1, 2, 3):
        write_checkpoint(FilePolicy(), tmp_path, step, {"policy_version": step, "selfplay": {"n": step}}, keep=2)
    assert latest_checkpoint(tmp_path).name == "step-000003"
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest", "step-000002", "step-000003"]
    state = read_state(latest_checkpoint(tmp_path))
    assert state["step"] == 3 and state["selfplay"] == {"n": 3} and "cpu" in state["torch_rng"]


@pytest.mark.parametrize("fail_at", ["weights", "optimizer"])
def test_a_full_disk_leaves_the_previous_checkpoint_intact(tmp_path, fail_at):
    write_checkpoint(FilePolicy(), tmp_path, 1, {"policy_version": 1, "selfplay": {}})
    before = (tmp_path / "checkpoints" / "step-000001" / "state.json").read_text()
    with pytest.raises(CheckpointError) as failure:
        write_checkpoint(FilePolicy(fail_at=fail_at), tmp_path, 2, {"policy_version": 2, "selfplay": {}})
    message = str(failure.value)
    assert "step-000002" in message and "No space left" in message and "step-000001" in message and "intact" in message
    assert latest_checkpoint(tmp_path).name == "step-000001"
    assert (tmp_path / "checkpoints" / "step-000001" / "state.json").read_text() == before
    assert not list((tmp_path / "checkpoints").glob("*.partial"))


def test_an_unwritable_checkpoint_directory_is_a_clear_error(tmp_path):
    (tmp_path / "checkpoints").write_text("a file where the folder should be")
    with pytest.raises(CheckpointError, match="cannot write checkpoint"):
        write_checkpoint(FilePolicy(), tmp_path, 1, {"policy_version": 1, "selfplay": {}})


def test_a_dangling_latest_pointer_is_reported(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "latest").write_text("step-000009")
    with pytest.raises(CheckpointError, match="not a complete checkpoint"):
        latest_checkpoint(tmp_path)

