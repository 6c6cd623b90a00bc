"""Run inside the executor's container (`docker exec -i ... python3 -`): what the pod is allowed,
and what its server answers, printed as one JSON line."""

import ctypes
import json
import os
import sys

import grpc

import azr_rpc as rpc
from azr_contracts.v1 import common_pb2, executor_pb2, executor_pb2_grpc

address = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051"
report = {"uid": os.getuid(), "gid": os.getgid()}
status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line)
report["cap_eff"] = status["CapEff"].strip()
report["no_new_privs"] = ctypes.CDLL(None, use_errno=True).prctl(39, 0, 0, 0, 0)  # PR_GET_NO_NEW_PRIVS
root = [line.split() for line in open("/proc/mounts") if line.split()[1] == "/"][-1]
report["root_read_only"] = "ro" in root[3].split(",")
report["cache_writable"] = os.access("/cache", os.W_OK)

channel = grpc.insecure_channel(address)
try:
    rpc.wait_serving(channel, 120)
    report["health"] = "SERVING"
except rpc.NotServing as exc:
    report["health"] = str(exc)

stub = executor_pb2_grpc.ExecutorStub(channel)
response = stub.Validate(executor_pb2.ValidateRequest(items=[
    executor_pb2.ValidateItem(id="ok", program="def f(a, b):\n    return a * b", inputs=["6, 7"]),
    executor_pb2.ValidateItem(id="loops", program="def f(x):\n    while True:\n        x += 1", inputs=["1"]),
    executor_pb2.ValidateItem(id="escapes", program="import os\ndef f(x):\n    return os.listdir('/')", inputs=["1"]),
]), timeout=60)
report["validate"] = {r.id: [r.valid, list(r.outputs), common_pb2.ErrorKind.Name(r.error_kind)] for r in response.results}
try:
    stub.Validate(executor_pb2.ValidateRequest(), timeout=10)
except grpc.RpcError as exc:
    report["empty_request"] = [exc.code().name, exc.details()]
print(json.dumps(report))
