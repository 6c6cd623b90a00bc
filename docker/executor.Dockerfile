# The executor: no torch, no vLLM. Runs as non-root with a read-only root; in the cluster
# its pod runs under the gVisor RuntimeClass, and its workers are rlimited processes inside.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 AZR_CACHE_DIR=/cache HOME=/cache
WORKDIR /src
COPY pyproject.toml README.md ./
COPY azr ./azr
COPY services ./services
COPY launcher ./launcher
COPY operator/azr_operator ./operator/azr_operator
COPY bench ./bench
RUN pip install ".[executor]" && rm -rf /src
USER 65532:65532
WORKDIR /cache
ENTRYPOINT ["azr"]
CMD ["serve", "executor", "--address", "0.0.0.0:50051"]
