# The operator: Kopf and lightkube, nothing of the method's engines.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY azr ./azr
COPY services ./services
COPY launcher ./launcher
COPY operator/azr_operator ./operator/azr_operator
COPY bench ./bench
RUN pip install ".[operator]" && rm -rf /src
USER 65532:65532
ENTRYPOINT ["kopf", "run", "--standalone", "--liveness=http://0.0.0.0:8080/healthz", "-m", "azr_operator.handlers"]
