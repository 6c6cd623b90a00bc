"""Embedded models from chunk packages: assembled in numeric order, streamed, every part and
the whole hash-checked, renamed into place only when all of it matched."""

import hashlib
import os

import pytest

from azr_models.embedded import EMBEDDED, QWEN25_CODER_05B, EmbeddedModel, Part
from azr_models.resolve import ModelError, assemble_gguf, resolve_model


def _chunk_packages(root, prefix: str, blobs: list[bytes]) -> EmbeddedModel:
    """Packages `{prefix}_part1` ... each holding data/partKK.bin, as the PyPI chunk packages do."""
    for k, blob in enumerate(blobs, start=1):
        data = root / f"{prefix}_part{k}" / "data"
        data.mkdir(parents=True)
        (root / f"{prefix}_part{k}" / "__init__.py").write_text("")
        (data / f"part{k:02d}.bin").write_bytes(blob)
    joined = b"".join(blobs)
    return EmbeddedModel(f"{prefix}-model", f"{prefix}.gguf", f"{prefix}-part", "1.0",
                         parts=tuple(Part(len(b), hashlib.sha256(b).hexdigest()) for b in blobs),
                         sha256=hashlib.sha256(joined).hexdigest(), install=f"pip install {prefix}-part1 ...")


@pytest.fixture
def eleven_parts(tmp_path, monkeypatch):
    """Eleven parts: by folder name part10 and part11 sort before part2."""
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    blobs = [bytes([k]) * (1000 + 37 * k) for k in range(1, 12)]
    return _chunk_packages(tmp_path / "site", "fake", blobs), blobs, tmp_path


def test_parts_join_in_numeric_order_into_the_cache(eleven_parts):
    model, blobs, tmp = eleven_parts
    target = assemble_gguf(model, tmp / "gguf" / model.gguf)
    assert target.read_bytes() == b"".join(blobs)
    assert [p.name for p in target.parent.iterdir()] == [model.gguf]  # no staging file left
    assert assemble_gguf(model, target) == target  # assembled once


def test_a_corrupt_part_names_its_package_and_the_expected_hash(eleven_parts):
    model, _, tmp = eleven_parts
    corrupt = tmp / "site" / "fake_part10" / "data" / "part10.bin"
    corrupt.write_bytes(b"\0" + corrupt.read_bytes()[1:])
    with pytest.raises(ModelError) as info:
        assemble_gguf(model, tmp / "gguf" / model.gguf)
    message = str(info.value)
    assert message.startswith("fake-part10==1.0: part10.bin") and model.parts[9].sha256 in message
    assert "reinstall it (pip install fake-part1 ...)" in message
    assert not list((tmp / "gguf").iterdir())  # nothing half-written stays behind


def test_a_missing_package_says_how_to_install_it(eleven_parts):
    model, _, tmp = eleven_parts
    os.rename(tmp / "site" / "fake_part3", tmp / "site" / "elsewhere")
    with pytest.raises(ModelError, match=r"needs the PyPI package fake-part3==1.0, which is not installed: pip install"):
        assemble_gguf(model, tmp / "gguf" / model.gguf)


def test_the_embedded_table_is_consistent():
    assert set(EMBEDDED) == {"smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"}
    assert QWEN25_CODER_05B.size == 491_400_064 and EMBEDDED["qwen2.5-coder-1.5b-instruct"].size == 1_117_320_768
    assert len(EMBEDDED["qwen2.5-coder-1.5b-instruct"].parts) == 22


def test_the_installed_qwen_parts_assemble_to_the_official_file(tmp_path):
    """./install.sh installs the 0.5B parts; joined they are the Qwen release, byte for byte."""
    target = assemble_gguf(QWEN25_CODER_05B, tmp_path / QWEN25_CODER_05B.gguf)
    assert target.stat().st_size == QWEN25_CODER_05B.size
    with open(target, "rb") as handle:
        assert handle.read(4) == b"GGUF"


def test_embedded_names_resolve_to_converted_folders(model_path):
    assert resolve_model("smollm2-135m-instruct") == str(model_path)
