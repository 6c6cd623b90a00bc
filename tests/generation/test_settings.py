"""GeneratorSettings.from_spec: the spec for the role, flags on top (pure: no engine)."""

import pytest

from azr.spec import DType, parse_run
from azr_generation.settings import GeneratorSettings

RUN = parse_run({"apiVersion": "azr.dev/v1alpha1", "kind": "SelfPlayRun", "metadata": {"name": "r"},
                 "spec": {"model": {"name": "qwen2.5-coder-0.5b-instruct", "dtype": "bfloat16", "maxModelLen": 4096},
                          "proposer": {"engine": "vllm", "memoryFraction": 0.3},
                          "solver": {"engine": "transformers"}}}, "run.yaml")


def test_each_role_reads_its_own_section_of_the_spec():
    proposer = GeneratorSettings.from_spec(RUN, "proposer")
    solver = GeneratorSettings.from_spec(RUN, "solver")
    assert (proposer.engine, proposer.memory_fraction, solver.engine) == ("vllm", 0.3, "transformers")
    assert proposer.model == solver.model == "qwen2.5-coder-0.5b-instruct" and proposer.dtype is DType.BFLOAT16
    assert proposer.max_model_len == 4096 and proposer.seed == 0


def test_a_given_flag_wins_and_an_absent_one_leaves_the_spec():
    settings = GeneratorSettings.from_spec(RUN, "proposer", {"model": "/models/m", "dtype": "float32", "max_model_len": None})
    assert (settings.model, settings.dtype, settings.max_model_len) == ("/models/m", DType.FLOAT32, 4096)


def test_a_bad_role_or_dtype_is_refused_by_name():
    with pytest.raises(ValueError, match="role"):
        GeneratorSettings.from_spec(RUN, "critic")
    with pytest.raises(ValueError, match="fp32"):
        GeneratorSettings.from_spec(RUN, "solver", {"dtype": "fp32"})


def test_auto_is_resolved_per_machine():
    assert DType.AUTO.resolved(on_gpu=True) is DType.BFLOAT16 and DType.AUTO.resolved(on_gpu=False) is DType.FLOAT32
    assert DType.FLOAT16.resolved(on_gpu=False) is DType.FLOAT16
