# Proposer and solver: vLLM on GPUs (the CUDA build of torch comes with vllm).
FROM nvidia/cuda:12.8.1-runtime-ubuntu24.04
RUN apt-get update && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3-pip \
    && rm -rf /var/lib/apt/lists/* && python3.11 -m venv /opt/azr
ENV PATH=/opt/azr/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 AZR_CACHE_DIR=/cache HOME=/cache
WORKDIR /src
COPY pyproject.toml README.md ./
COPY azr ./azr
COPY services ./services
COPY launcher ./launcher
COPY operator/azr_operator ./operator/azr_operator
COPY bench ./bench
RUN pip install ".[vllm]" && rm -rf /src
USER 65532:65532
WORKDIR /cache
ENTRYPOINT ["azr"]
CMD ["serve", "proposer", "--address", "0.0.0.0:50061"]
