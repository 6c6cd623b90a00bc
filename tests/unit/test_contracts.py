import importlib
import subprocess
import sys
from pathlib import Path

from azr.programs import ErrorKind
from azr.tasks import TaskType

ROOT = Path(__file__).parents[2]
CORE_MODULES = ["azr.tasks", "azr.literals", "azr.programs", "azr.parsing", "azr.prompts", "azr.rewards",
                "azr.advantages", "azr.buffers", "azr.spec", "azr.cache", "azr.metrics", "azr.selfplay", "azr.topology",
                "azr.serving", "azr.cli"]


def test_stubs_import_and_define_the_services():
    from azr.v1 import common_pb2, executor_pb2, executor_pb2_grpc, generator_pb2_grpc, learner_pb2_grpc

    assert hasattr(executor_pb2_grpc, "ExecutorStub") and hasattr(generator_pb2_grpc, "GeneratorStub")
    assert hasattr(learner_pb2_grpc, "LearnerStub")
    assert executor_pb2.ValidateItem(inputs=["1"]).inputs == ["1"]
    assert common_pb2.TASK_TYPE_INDUCTION == 3


def test_committed_stubs_are_not_stale():
    result = subprocess.run([sys.executable, str(ROOT / "protos" / "generate.py"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_proto_enums_mirror_the_core_library():
    from azr.v1 import common_pb2

    proto_kinds = {n for n in common_pb2.ErrorKind.keys() if n != "ERROR_KIND_UNSPECIFIED"}
    assert proto_kinds == {f"ERROR_KIND_{k.name}" for k in ErrorKind if k is not ErrorKind.NONE}
    proto_types = {n for n in common_pb2.TaskType.keys() if n != "TASK_TYPE_UNSPECIFIED"}
    assert proto_types == {f"TASK_TYPE_{t.name}" for t in TaskType}


def test_core_library_imports_no_network_engine_or_operator_library():
    code = ("import sys\n"
            f"for m in {CORE_MODULES!r}: __import__(m)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'grpc', 'vllm', 'kopf', 'torch', 'transformers', 'deepspeed'})\n"
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_no_top_level_package_shadows_the_standard_library():
    for name in ("azr", "azr_executor", "azr_generation", "azr_learner", "azr_launcher", "azr_operator", "azr_bench"):
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
    out = subprocess.run([sys.executable, "-m", "azr.cli", "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("run", "report", "eval", "spec", "exec", "serve", "bench"):
        assert command in out


def test_cli_spec_reports_a_bad_field(tmp_path):
    bad = tmp_path / "run.yaml"
    bad.write_text("apiVersion: azr.dev/v1alpha1\nkind: SelfPlayRun\nmetadata: {name: r}\nspec: {method: {references: 0}}\n")
    result = subprocess.run([sys.executable, "-m", "azr.cli", "spec", "-f", str(bad)], capture_output=True, text=True)
    assert result.returncode == 2 and "spec.method.references" in result.stderr
    ok = subprocess.run([sys.executable, "-m", "azr.cli", "spec", "-f", str(ROOT / "examples" / "selfplayrun-cpu.yaml")],
                        capture_output=True, text=True, check=True)
    assert "monteCarloSamples: 4" in ok.stdout
