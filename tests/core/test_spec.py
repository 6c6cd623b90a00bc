from pathlib import Path

import pytest
import yaml

from azr.advantages import AdvantageWeighting
from azr.buffers import Eviction
from azr.spec import SelfPlayRun, SpecError, WeightSync, load_run, parse_run

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("selfplayrun-*.yaml"))


def test_there_are_cpu_and_gpu_presets():
    assert {p.name for p in EXAMPLES} >= {"selfplayrun-cpu.yaml", "selfplayrun-gpu.yaml"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_load_and_round_trip(path):
    run = load_run(path)
    again = parse_run(yaml.safe_load(run.to_yaml()))
    assert again == run


def test_defaults_are_the_azr_values():
    spec = parse_run({"apiVersion": "azr.dev/v1alpha1", "kind": "SelfPlayRun", "metadata": {"name": "x"}}).spec
    m, t = spec.method, spec.training
    assert (m.proposals_per_type, m.references, m.monte_carlo_samples) == (64, 6, 8)
    assert (m.temperature, m.top_p, m.max_response_tokens, m.seed_tasks) == (1.0, 1.0, 4096, 256)
    assert (m.buffer_capacity, m.buffer_eviction) == (16_384, Eviction.OLDEST)
    assert m.proposer_extreme_reward == 0.0 and m.advantage_weighting is AdvantageWeighting.SAMPLE
    assert (t.steps, t.learning_rate, t.clip_ratio, t.entropy_coeff, t.mini_batches, t.grad_clip) == (500, 1e-6, 0.2, 0.001, 3, 1.0)
    assert spec.executor.timeout_seconds == 10.0 and spec.executor.memory_mib == 512
    assert m.output_max_chars == 400
    assert t.weight_sync is WeightSync.DISK


def test_cpu_preset_is_sized_for_a_small_machine():
    spec = load_run(next(p for p in EXAMPLES if p.name == "selfplayrun-cpu.yaml")).spec
    assert spec.method.proposals_per_type <= 8 and spec.method.format_examples >= 1
    assert spec.model.dtype.value == "float32" and spec.solver.share_with == "proposer"


@pytest.mark.parametrize("name", ["selfplayrun-1gpu.yaml", "selfplayrun-1gpu-qwen.yaml"])
def test_one_gpu_presets_share_the_card_between_vllm_and_the_learner(name):
    spec = load_run(next(p for p in EXAMPLES if p.name == name)).spec
    assert spec.proposer.engine.value == "vllm" and spec.solver.share_with == "proposer"
    assert spec.proposer.memory_fraction is not None and spec.proposer.memory_fraction <= 0.5
    assert spec.model.dtype.value == "bfloat16" and spec.learner.resources.gpus == 1


def _base(**spec):
    return {"apiVersion": "azr.dev/v1alpha1", "kind": "SelfPlayRun", "metadata": {"name": "r"}, "spec": spec}


@pytest.mark.parametrize("doc, needle", [
    (_base(method={"references": -1}), "spec.method.references: Input should be greater than or equal to 1 (got -1)"),
    (_base(method={"refernces": 3}), "spec.method.refernces: Extra inputs are not permitted"),
    (_base(executor={"sandbox": "docker"}), "spec.executor.sandbox"),
    (_base(training={"zeroStage": 5}), "spec.training.zeroStage"),
    (_base(training={"weightSync": "nvlink"}), "spec.training.weightSync: Input should be 'disk' or 'nccl'"),
    (_base(solver={"shareWith": "learner"}), "spec.solver.shareWith"),
    (_base(proposer={"memoryFraction": 1.5}), "spec.proposer.memoryFraction: Input should be less than or equal to 1"),
    ({**_base(), "kind": "Pod"}, "kind"),
    (_base(learner={"resources": {"memory": "16 GB"}}), "spec.learner.resources.memory"),
    (_base(storage={"size": "lots"}), "spec.storage.size"),
    ({**_base(), "metadata": {"name": "Bad_Name"}}, "metadata.name"),
    ({**_base(), "metadata": {}}, "metadata.name: Field required"),
])
def test_bad_fields_are_named_with_their_value(doc, needle):
    with pytest.raises(SpecError) as info:
        parse_run(doc, "run.yaml")
    assert needle in str(info.value)
    assert str(info.value).startswith("run.yaml: invalid SelfPlayRun")


def test_bad_yaml_names_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: azr.dev/v1alpha1\nspec:\n  method: [\n")
    with pytest.raises(SpecError, match=r"bad.yaml: not valid YAML at line \d+"):
        load_run(bad)
    with pytest.raises(SpecError, match="must be a mapping"):
        parse_run(["a"])
    with pytest.raises(SpecError, match="cannot read"):
        load_run(tmp_path / "missing.yaml")


def test_snake_case_names_work_in_python():
    run = SelfPlayRun(metadata={"name": "py"})
    run.spec.method.monte_carlo_samples = 2
    assert "monteCarloSamples: 2" in run.to_yaml()


def test_partial_resources_take_the_roles_defaults_as_the_crd_does():
    from azr_operator.crd import custom_resource_definition

    spec = parse_run({**_base(executor={"resources": {"cpu": "4"}}, learner={"resources": {"gpus": 1}})}).spec
    assert (spec.executor.resources.cpu, spec.executor.resources.memory) == ("4", "2Gi")
    assert (spec.learner.resources.memory, spec.learner.resources.gpus) == ("16Gi", 1)
    schema = custom_resource_definition()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert schema["properties"]["executor"]["properties"]["resources"]["properties"]["memory"]["default"] == "2Gi"
    assert schema["properties"]["learner"]["properties"]["resources"]["properties"]["memory"]["default"] == "16Gi"
