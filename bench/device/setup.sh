#!/usr/bin/env bash
# On the GPU machine (no network, no vLLM): install the carried wheels (.whl/, see
# docs/benchmarks.md) and make this checkout importable without building it.
# Usage: source bench/device/setup.sh
set -e
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
mkdir -p /tmp/pkgs
for pair in azr:azr azr_learner:services/learner azr_bench:bench azr_rpc:services/rpc azr_generation:services/generation \
            azr_executor:services/executor azr_launcher:launcher; do
  ln -sfn "$PWD/${pair#*:}" "/tmp/pkgs/${pair%%:*}"
done
export PYTHONPATH=/tmp/pkgs:/tmp/site PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
set +e
