# Proposer and solver on GPUs: vLLM (its CUDA build of torch comes with it).
# Build with `bash docker/build.sh inference` on a machine that can fetch the CUDA wheels.
# Ubuntu 22.04's python3 is 3.10; the deadsnakes-free way to 3.11 is Ubuntu 22.04's own
# python3.11 package (universe), with a C compiler for Triton's kernels.
ARG BASE=nvidia/cuda:12.8.1-runtime-ubuntu22.04
FROM ${BASE} AS build
ARG WHEELS=build/docker/inference
RUN apt-get update && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
    && rm -rf /var/lib/apt/lists/*
COPY ${WHEELS} /wheels
RUN python3.11 -m venv /opt/azr && /opt/azr/bin/pip install -q --no-index --find-links /wheels "azr[vllm]" \
    && /opt/azr/bin/pip install -q --no-index --no-deps /wheels/models/*.whl

FROM ${BASE}
RUN apt-get update && apt-get install -y --no-install-recommends python3.11 python3.11-dev gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/azr /opt/azr
ENV PATH=/opt/azr/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 AZR_CACHE_DIR=/cache HOME=/cache
USER 65532:65532
WORKDIR /cache
ENTRYPOINT ["azr"]
CMD ["serve", "proposer", "--address", "[::]:50061"]
