# The operator: Kopf and lightkube, nothing of the method's engines.
# Build with `bash docker/build.sh operator` (it makes the wheelhouse WHEELS).
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE} AS build
ARG WHEELS=build/docker/operator
COPY ${WHEELS} /wheels
RUN python3 -m venv /opt/azr && /opt/azr/bin/pip install -q --no-index --find-links /wheels "azr[operator]"

FROM ${BASE}
COPY --from=build /opt/azr /opt/azr
ENV PATH=/opt/azr/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin PYTHONDONTWRITEBYTECODE=1
USER 65532:65532
ENTRYPOINT ["kopf", "run", "--standalone", "--liveness=http://0.0.0.0:8080/healthz", "-m", "azr_operator.handlers"]
