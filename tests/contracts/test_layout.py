import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from azr.programs import ErrorKind
from azr.tasks import STEP_ORDER

ROOT = Path(__file__).parents[2]
# What the core library may never import: it is the method and the spec, nothing else.
HEAVY = ("grpc", "vllm", "kopf", "torch", "transformers", "deepspeed")
# Imported first by every command and entry point: none of them loads an engine or Kopf (the
# command line not even gRPC; a role's entry point speaks gRPC, its engine loads when it serves).
LIGHT_MODULES = {"azr_launcher.cli": HEAVY, "azr_proposer": HEAVY[1:], "azr_solver": HEAVY[1:]}


def test_stubs_import_and_define_the_services():
    from azr_contracts.v1 import common_pb2, executor_pb2, executor_pb2_grpc, generator_pb2_grpc, learner_pb2_grpc

    assert hasattr(executor_pb2_grpc, "ExecutorStub") and hasattr(generator_pb2_grpc, "GeneratorStub")
    assert hasattr(learner_pb2_grpc, "LearnerStub")
    assert executor_pb2.ValidateItem(inputs=["1"]).inputs == ["1"]
    assert common_pb2.TASK_TYPE_INDUCTION == 3


def test_committed_stubs_are_not_stale():
    result = subprocess.run([sys.executable, str(ROOT / "protos" / "generate.py"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_proto_enums_mirror_the_core_library():
    from azr_contracts.v1 import common_pb2

    proto_kinds = {n for n in common_pb2.ErrorKind.keys() if n != "ERROR_KIND_UNSPECIFIED"}
    assert proto_kinds == {f"ERROR_KIND_{k.name}" for k in ErrorKind if k is not ErrorKind.NONE}
    # The executor grades the three kinds of code I/O answer; other domains' answers are graded
    # as one of them (a bug repair as an induction answer), so the contract does not grow with them.
    proto_types = {n for n in common_pb2.TaskType.keys() if n != "TASK_TYPE_UNSPECIFIED"}
    assert proto_types == {f"TASK_TYPE_{t.name}" for t in STEP_ORDER}


def test_the_whole_core_library_imports_with_network_engine_and_operator_libraries_blocked():
    """Every module of `azr`, found by walking the package (no hand-picked list), imports while
    an import hook refuses grpc, vLLM, Kopf, torch, transformers and DeepSpeed."""
    code = ("import importlib, pkgutil, sys\n"
            f"HEAVY = {HEAVY!r}\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in HEAVY: raise ImportError(f'blocked: {name}')\n"
            "sys.meta_path.insert(0, Block())\n"
            "import azr\n"
            "names = [m.name for m in pkgutil.walk_packages(azr.__path__, 'azr.')]\n"
            "for name in names: importlib.import_module(name)\n"
            "print(' '.join(names))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    walked = set(result.stdout.split())
    assert {"azr.tasks", "azr.literals", "azr.programs", "azr.parsing", "azr.prompts", "azr.rewards", "azr.advantages",
            "azr.buffers", "azr.spec", "azr.metrics", "azr.selfplay"} <= walked, walked


@pytest.mark.parametrize("module", sorted(LIGHT_MODULES))
def test_the_first_imports_of_every_command_stay_light(module):
    code = ("import sys\n"
            f"__import__({module!r})\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {LIGHT_MODULES[module]!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_literal_parser_copied_into_the_sandbox_needs_only_the_standard_library():
    """The executor copies azr/literals.py into the sandbox as a module of its own."""
    import ast

    import azr.literals

    tree = ast.parse(Path(azr.literals.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported


def test_every_folder_of_python_code_is_the_package_it_provides():
    """pyproject's package-dir maps each import name to a folder of that name, and no other
    folder outside tests/ holds Python code (protos/ and bench/device/ hold one script each)."""
    import tomllib

    package_dir = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for name, folder in package_dir.items():
        assert Path(folder).name == name.split(".")[-1], (name, folder)
        assert (ROOT / folder / "__init__.py").is_file(), folder
    folders = {str(p.parent.relative_to(ROOT)) for p in ROOT.rglob("*.py")
               if not {"tests", ".venv", "build", ".git", "__pycache__"} & set(p.relative_to(ROOT).parts)}
    assert folders - set(package_dir.values()) <= {"protos", "bench/device"}, folders - set(package_dir.values())


def test_no_top_level_package_shadows_the_standard_library():
    for name in ("azr", "azr_contracts", "azr_rpc", "azr_executor", "azr_models", "azr_generation", "azr_proposer", "azr_solver",
                 "azr_learner", "azr_launcher", "azr_operator", "azr_bench"):
        assert name not in sys.stdlib_module_names
        importlib.import_module(name)
    import operator
    import sysconfig

    assert Path(operator.__file__).parent == Path(sysconfig.get_paths()["stdlib"])
    # From the repository root too: `python -m ...` puts the current directory first on sys.path,
    # where the design card's `operator/` folder sits; it must not be an importable package.
    root = Path(__file__).resolve().parents[2]
    bare = [sys.executable, "-S", "-m", "platform"]  # -S: no site imports first, as in a fresh venv
    result = subprocess.run(bare, cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_cli_help_lists_the_subcommands():
    out = subprocess.run([sys.executable, "-m", "azr_launcher.cli", "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("run", "report", "eval", "spec", "exec", "serve", "bench"):
        assert command in out


def test_cli_spec_reports_a_bad_field(tmp_path):
    bad = tmp_path / "run.yaml"
    bad.write_text("apiVersion: azr.dev/v1alpha1\nkind: SelfPlayRun\nmetadata: {name: r}\nspec: {method: {references: 0}}\n")
    result = subprocess.run([sys.executable, "-m", "azr_launcher.cli", "spec", "-f", str(bad)], capture_output=True, text=True)
    assert result.returncode == 2 and "spec.method.references" in result.stderr
    ok = subprocess.run([sys.executable, "-m", "azr_launcher.cli", "spec", "-f", str(ROOT / "examples" / "selfplayrun-cpu.yaml")],
                        capture_output=True, text=True, check=True)
    assert "monteCarloSamples: 4" in ok.stdout
