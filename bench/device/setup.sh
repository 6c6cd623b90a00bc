#!/usr/bin/env bash
# On the GPU machine (no network, no vLLM): install the carried wheels (.whl/, see
# docs/benchmarks.md) and make this checkout importable without building it. A later call on
# the same warm machine may leave .whl/ behind: what is installed in /tmp/site stays.
# Usage: source bench/device/setup.sh
set -e
wheels=$(ls .whl/*.whl 2>/dev/null | xargs -rn1 basename | sort | md5sum)
if ls .whl/*.whl >/dev/null 2>&1 && [ "$wheels" != "$(cat /tmp/site/.wheels 2>/dev/null)" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  echo "$wheels" > /tmp/site/.wheels
fi
mkdir -p /tmp/pkgs
for pair in azr:azr azr_learner:services/learner azr_bench:bench azr_rpc:services/rpc azr_generation:services/generation \
            azr_executor:services/executor azr_launcher:launcher; do
  ln -sfn "$PWD/${pair#*:}" "/tmp/pkgs/${pair%%:*}"
done
export PYTHONPATH=/tmp/pkgs:/tmp/site PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
set +e
