# The learner: PyTorch (CUDA) and DeepSpeed; NCCL between ranks.
FROM pytorch/pytorch:2.11.0-cuda12.8-cudnn9-runtime
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 AZR_CACHE_DIR=/cache HOME=/cache
WORKDIR /src
COPY pyproject.toml README.md ./
COPY azr ./azr
COPY services ./services
COPY launcher ./launcher
COPY operator/azr_operator ./operator/azr_operator
COPY bench ./bench
RUN pip install ".[learner,inference]" && rm -rf /src
USER 65532:65532
WORKDIR /cache
ENTRYPOINT ["azr"]
CMD ["serve", "learner", "--help"]
