# The executor: no torch, no vLLM. Runs as non-root with a read-only root; in the cluster its pod
# runs under the gVisor RuntimeClass, and its workers are rlimited processes inside.
# Build with `bash docker/build.sh executor` (it makes the wheelhouse WHEELS).
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE} AS build
ARG WHEELS=build/docker/executor
COPY ${WHEELS} /wheels
RUN python3 -m venv /opt/azr && /opt/azr/bin/pip install -q --no-index --find-links /wheels "azr[executor]"

FROM ${BASE}
COPY --from=build /opt/azr /opt/azr
ENV PATH=/opt/azr/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 AZR_CACHE_DIR=/cache HOME=/cache
USER 65532:65532
WORKDIR /cache
ENTRYPOINT ["azr"]
CMD ["serve", "executor", "--address", "[::]:50051"]
