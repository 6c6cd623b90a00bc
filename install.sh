#!/usr/bin/env bash
# Installs azr into ./.venv: gVisor's runsc (Debian), PyTorch 2.13.0 (CPU build), then the
# project with the extras this machine runs. Re-running it is safe.
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
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[test]"
echo "installed: $(.venv/bin/azr --version)"
