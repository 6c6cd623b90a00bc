"""`azr serve solver` from the CPU preset: the spec picks the model and the vLLM engine."""

from pathlib import Path

from azr.prompts import solve_prompt
from azr.spec import load_run
from azr.tasks import InductionTask, TaskType
from azr_contracts.convert import prompt_to_proto
from azr_contracts.v1 import generator_pb2, generator_pb2_grpc
from tests.generation.conftest import start_server, stop_server

CPU_PRESET = Path(__file__).parents[2] / "examples" / "selfplayrun-cpu.yaml"


def test_solver_serves_the_cpu_preset(tmp_path):
    model = load_run(CPU_PRESET).spec.model.name
    proc, channel = start_server("solver", tmp_path, "-f", str(CPU_PRESET))
    try:
        stub = generator_pb2_grpc.GeneratorStub(channel)
        status = stub.GetStatus(generator_pb2.GeneratorStatusRequest(), timeout=60)
        assert (status.role, status.engine, status.model, status.ready) == ("solver", "vllm", model, True)
        task = InductionTask("def f(x):\n    return x + 1", "Adds one.", tuple(str(i) for i in range(10)),
                             tuple(str(i + 1) for i in range(10)))
        request = generator_pb2.GenerateRequest(
            prompts=[prompt_to_proto(solve_prompt(task, TaskType.INDUCTION, format_examples=1))], n=4,
            sampling=generator_pb2.SamplingParams(temperature=1.0, top_p=1.0, max_tokens=16, seed=5, has_seed=True))
        reply = stub.Generate(request, timeout=300)
        assert len(reply.completions) == 4 and {c.policy_version for c in reply.completions} == {0}
        assert len({tuple(c.token_ids) for c in reply.completions}) > 1  # n samples, not one copied
    finally:
        stop_server(proc, channel)
