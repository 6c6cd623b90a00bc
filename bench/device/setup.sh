#!/usr/bin/env bash
# On the GPU machine (no network): collect the carried parts of bench/device/pack.sh's
# bundles, unpack each bundle into /tmp/site once all its parts have arrived (one part per
# call; /tmp stays while the machine is warm), and make this checkout importable without
# building it. Usage: source bench/device/setup.sh
#
# A call carries `.carry/MANIFEST` and one or two parts, e.g. carry: [".carry/MANIFEST",
# ".carry/runtime.tar.xz.00"]; what a call unpacked stays for the calls after it.
tmp=${AZR_DEVICE_TMP:-/tmp}
mkdir -p "$tmp/carry" "$tmp/site"
if [ -f .carry/MANIFEST ]; then
  for part in .carry/*.[0-9][0-9]; do
    [ -f "$part" ] && cp "$part" "$tmp/carry"/
  done
  while read -r name sum parts; do
    [ -f "$tmp/carry/$name.unpacked" ] && continue
    have=$(ls "$tmp/carry/$name".[0-9][0-9] 2>/dev/null | wc -l)
    if [ "$have" -lt "$parts" ]; then
      echo "setup: $name has $have of $parts parts"
      continue
    fi
    # The joined stream is checked before anything of it is unpacked.
    got=$(cat "$tmp/carry/$name".[0-9][0-9] | sha256sum | cut -c1-64)
    if [ "$got" != "$sum" ]; then
      echo "setup: $name: sha256 $got, expected $sum (parts of different packs?); run bench/device/pack.sh again" >&2
      rm -f "$tmp/carry/$name".[0-9][0-9]
      return 1 2>/dev/null || exit 1
    fi
    if ! cat "$tmp/carry/$name".[0-9][0-9] | python3 -c "
import sys, tarfile
with tarfile.open(fileobj=sys.stdin.buffer, mode='r|*') as tar:
    tar.extractall(sys.argv[1], **({'filter': 'tar'} if hasattr(tarfile, 'tar_filter') else {}))" "$tmp"; then
      echo "setup: $name could not be unpacked" >&2
      return 1 2>/dev/null || exit 1
    fi
    rm -f "$tmp/carry/$name".[0-9][0-9]
    touch "$tmp/carry/$name.unpacked"
    echo "setup: $name unpacked into $tmp/site"
  done < .carry/MANIFEST
fi
# Single wheels carried beside the bundles replace what the bundles hold (a quick fix, or a
# package tried out before it joins requirements.txt).
if ls .carry/wheels/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$tmp/site" .carry/wheels/*.whl \
    || { echo "setup: the wheels in .carry/wheels did not install" >&2; return 1 2>/dev/null || exit 1; }
fi
# The checkout's packages, each folder its import name (pyproject's package-dir): their parents.
pkgs=""
for parent in . protos services/rpc services/executor services/models services/generation services/proposer services/solver \
              services/learner operator launcher bench; do
  pkgs="$pkgs$PWD/$parent:"
done
# Offline, no telemetry; vLLM's FlashInfer sampler and DeepGEMM are not carried (PyTorch's
# sampler and the CUTLASS/Triton GEMMs serve instead).
export PYTHONPATH="$pkgs$tmp/site" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false \
       VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 HF_HUB_OFFLINE=1 VLLM_USE_FLASHINFER_SAMPLER=0 VLLM_USE_DEEP_GEMM=0
