"""Run inside a proposer container (`docker exec -i ... python3 -`): wait for SERVING, then one
Generate and one bad request, printed as one JSON line."""

import json
import sys

import grpc

import azr_rpc as rpc
from azr_contracts.v1 import generator_pb2, generator_pb2_grpc

address = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50061"
channel = grpc.insecure_channel(address)
report = {}
try:
    rpc.wait_serving(channel, 900, poll_s=2)
    report["health"] = "SERVING"
except rpc.NotServing as exc:
    report["health"] = str(exc)
    print(json.dumps(report))
    sys.exit(0)

stub = generator_pb2_grpc.GeneratorStub(channel)
request = generator_pb2.GenerateRequest(
    prompts=[generator_pb2.Prompt(messages=[generator_pb2.ChatMessage(role="user", content="Write a function adding two numbers.")])],
    n=2, sampling=generator_pb2.SamplingParams(temperature=1.0, top_p=1.0, max_tokens=16, seed=7, has_seed=True))
response = stub.Generate(request, timeout=600)
report["completions"] = [[len(c.token_ids), len(c.logprobs), c.text] for c in response.completions]
try:
    stub.Generate(generator_pb2.GenerateRequest(n=1), timeout=30)
except grpc.RpcError as exc:
    report["empty_request"] = [exc.code().name, exc.details()]
print(json.dumps(report))
