"""gRPC plumbing every azr server and client shares: one place for TLS, message limits, and
how a request that does not even decode is answered.

TLS is optional and mutual. `AZR_TLS_DIR` names a folder laid out like a mounted
`kubernetes.io/tls` Secret (`tls.crt`, `tls.key`, `ca.crt`); when it is set, every server
serves TLS and asks for a client certificate signed by `ca.crt`, and every client presents
`tls.crt`. One certificate serves all of a run's services, so clients check the server's
certificate against one name, `AZR_TLS_SERVER_NAME` (default `azr`), rather than the address
they dial (pod IPs and `dns:///` names change). Without `AZR_TLS_DIR`, plaintext.

Kubelet's gRPC probes cannot speak TLS, so a TLS server can also open a plaintext *status*
port that carries only health (and, for the learner, read-only progress).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

TLS_DIR_ENV = "AZR_TLS_DIR"
TLS_SERVER_NAME_ENV = "AZR_TLS_SERVER_NAME"
DEFAULT_SERVER_NAME = "azr"


@dataclass(frozen=True)
class TLS:
    cert: bytes
    key: bytes
    ca: bytes
    server_name: str = DEFAULT_SERVER_NAME

    @classmethod
    def from_dir(cls, folder: str | Path, server_name: str = DEFAULT_SERVER_NAME) -> TLS:
        folder = Path(folder)
        files = {}
        for name in ("tls.crt", "tls.key", "ca.crt"):
            try:
                files[name] = (folder / name).read_bytes()
            except OSError as exc:
                raise TLSError(f"{TLS_DIR_ENV}={folder}: cannot read {name}: {exc.strerror}") from None
        return cls(files["tls.crt"], files["tls.key"], files["ca.crt"], server_name)

    @classmethod
    def from_env(cls) -> TLS | None:
        folder = os.environ.get(TLS_DIR_ENV)
        if not folder:
            return None
        return cls.from_dir(folder, os.environ.get(TLS_SERVER_NAME_ENV) or DEFAULT_SERVER_NAME)


class TLSError(ValueError):
    """The TLS folder is incomplete or unreadable; the message names the file."""


def add_port(server: grpc.Server, address: str, tls: TLS | None = None) -> int:
    """Bind `address` (TLS when configured); raises OSError if it cannot."""
    if tls is None:
        port = server.add_insecure_port(address)
    else:
        credentials = grpc.ssl_server_credentials([(tls.key, tls.cert)], root_certificates=tls.ca,
                                                  require_client_auth=True)
        port = server.add_secure_port(address, credentials)
    if port == 0:
        raise OSError(f"cannot bind {address}")
    return port


def channel(target: str, tls: TLS | None = None, max_message_bytes: int | None = None,
            round_robin: bool = False) -> grpc.Channel:
    """A client channel to an azr service; TLS when `AZR_TLS_DIR` is set (or `tls` given).

    `round_robin` spreads calls over every address the target resolves to (a `dns:///` name of
    a headless Service: one per ready pod); gRPC's default, pick_first, sends all to one."""
    tls = tls or TLS.from_env()
    options: list[tuple[str, object]] = [("grpc.lb_policy_name", "round_robin")] if round_robin else []
    if max_message_bytes:
        options += [("grpc.max_receive_message_length", max_message_bytes),
                    ("grpc.max_send_message_length", max_message_bytes)]
    if tls is None:
        return grpc.insecure_channel(target, options=options)
    options.append(("grpc.ssl_target_name_override", tls.server_name))
    credentials = grpc.ssl_channel_credentials(root_certificates=tls.ca, private_key=tls.key, certificate_chain=tls.cert)
    return grpc.secure_channel(target, credentials, options=options)


def is_serving(channel_: grpc.Channel, timeout: float = 2.0) -> bool:
    """Whether the server behind `channel_` answers its health check with SERVING."""
    try:
        response = health_pb2_grpc.HealthStub(channel_).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
    except grpc.RpcError:
        return False
    return response.status == health_pb2.HealthCheckResponse.SERVING


class NotServing(RuntimeError):
    """A server exited, or did not come up in time, while we waited for it."""


def wait_serving(channel_: grpc.Channel, seconds: float, process: subprocess.Popen | None = None,
                 poll_s: float = 0.5) -> None:
    """Block until the server behind `channel_` is SERVING; raise NotServing if `process`
    (the server, when we started it) exits first or `seconds` pass."""
    give_up = time.monotonic() + seconds
    while not is_serving(channel_, timeout=min(5.0, seconds)):
        if process is not None and process.poll() is not None:
            raise NotServing(f"the server exited with {process.returncode}")
        if time.monotonic() > give_up:
            raise NotServing(f"not serving after {seconds:.0f} s")
        time.sleep(poll_s)


def server(workers: int, thread_name_prefix: str, max_message_bytes: int,
           maximum_concurrent_rpcs: int | None = None) -> grpc.Server:
    """A server whose messages are capped both ways: a larger one is RESOURCE_EXHAUSTED."""
    return grpc.server(futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix=thread_name_prefix),
                       options=[("grpc.max_receive_message_length", max_message_bytes),
                                ("grpc.max_send_message_length", max_message_bytes)],
                       maximum_concurrent_rpcs=maximum_concurrent_rpcs)


class Malformed:
    """What a request that failed to decode becomes, so the servicer can say INVALID_ARGUMENT
    (gRPC itself would answer INTERNAL, as if the server were at fault)."""

    def __init__(self, error: str):
        self.error = error


def _decoder(message_class) -> Callable[[bytes], object]:
    def decode(data: bytes):
        try:
            return message_class.FromString(data)
        except (DecodeError, RecursionError, ValueError) as exc:
            return Malformed(f"{message_class.DESCRIPTOR.full_name} does not decode: {exc}")
    return decode


def _guarded(behavior: Callable) -> Callable:
    def handle(request, context: grpc.ServicerContext):
        if isinstance(request, Malformed):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.error)
        return behavior(request, context)
    return handle


def add_servicer(server: grpc.Server, servicer, service: ServiceDescriptor) -> None:
    """Register `servicer` for every (unary) method of `service`, as the generated
    `add_*Servicer_to_server` does, but with requests that fail to decode answered
    INVALID_ARGUMENT."""
    handlers = {}
    for method in service.methods:
        request_class = message_factory.GetMessageClass(method.input_type)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            _guarded(getattr(servicer, method.name)), request_deserializer=_decoder(request_class),
            response_serializer=lambda message: message.SerializeToString())
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))


def status_server(address: str, health_servicer: health.HealthServicer,
                  extra: Sequence[tuple[object, ServiceDescriptor]] = ()) -> grpc.Server:
    """A plaintext server with health (and any read-only `extra` services) for probes that
    cannot speak TLS. Started by the caller."""
    status = server(2, "status-rpc", 1 << 20)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, status)
    for servicer, service in extra:
        add_servicer(status, servicer, service)
    add_port(status, address)
    return status



def make_certificates(folder: str | Path, server_name: str = DEFAULT_SERVER_NAME, days: int = 365) -> Path:
    """A private CA and one certificate it signs, for server and client use alike, written as
    `ca.crt`, `tls.crt` and `tls.key` (the layout of a `kubernetes.io/tls` Secret with a CA).
    Enough for a run's services to trust each other and nothing else; production clusters may
    prefer cert-manager, which writes the same three keys."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def certificate(subject: str, key, issuer: str, issuer_key, ca: bool) -> x509.Certificate:
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            builder = (builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(server_name)]), critical=False)
                       .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                                      critical=False))
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate(f"{server_name} CA", ca_key, f"{server_name} CA", ca_key, ca=True)
    leaf = certificate(server_name, key, f"{server_name} CA", ca_key, ca=False)
    pem = serialization.Encoding.PEM
    (folder / "ca.crt").write_bytes(ca.public_bytes(pem))
    (folder / "tls.crt").write_bytes(leaf.public_bytes(pem))
    key_file = folder / "tls.key"
    key_file.touch(mode=0o600)
    key_file.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return folder
