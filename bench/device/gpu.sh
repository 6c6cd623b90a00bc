#!/usr/bin/env bash
# On the lent GPU machine (no network, 10 minutes a command, /tmp kept while it stays warm):
# the steps of a GPU session, each one `run` call. Results go to $OUT.
#
#   bash bench/device/gpu.sh stash                 keep this call's carried parts (bench/device/pack.sh)
#   bash bench/device/gpu.sh smoke                 unpack, convert the model, a CUDA kernel, then the
#                                                  Generator contract tests on GPU vLLM (generate,
#                                                  log-probs, per-prompt seeds, in-place reload,
#                                                  weights by broadcast over gloo)
#   bash bench/device/gpu.sh rollout [ARGS]        azr bench rollout: vLLM against transformers
#   bash bench/device/gpu.sh segment SECONDS [SPEC]  azr run until done or SECONDS, then Ctrl-C
#                                                  (the next segment resumes from the checkpoint)
#   bash bench/device/gpu.sh weight-sync SECONDS [SPEC [MODE]]  the preset with weightSync disk, then
#                                                  nccl, SECONDS each (sync or async MODE): seconds.sync
#                                                  and step times of both (issue 20; two cards: engine
#                                                  and learner each on its own)
#   bash bench/device/gpu.sh eval NAME [MODEL]     HumanEval and the held-out code-reasoning set
#   bash bench/device/gpu.sh learn start MINUTES [HELDOUT]  bench/device/learn.sh in the background:
#                                                  rollout, eval before, train, eval after, all
#                                                  done MINUTES after this machine's first call
#   bash bench/device/gpu.sh learn wait SECONDS    follow it (returns when it is done or after
#                                                  SECONDS); its files come back as learn.tgz
#
# Each step sources bench/device/setup.sh, which unpacks whatever bundle is complete.
set -u
source bench/device/setup.sh || exit 1
RUN_DIR=/tmp/azr-run
azr() { python3 -m azr_launcher.cli "$@"; }

# The machine's first call: the clock that `learn start MINUTES` counts from.
[ -f /tmp/azr-first-call ] || date +%s > /tmp/azr-first-call

case "${1:-}" in
  stash)
    nvidia-smi -L
    ;;
  learn)
    learn=/tmp/azr-learn
    case "${2:-}" in
      start)
        deadline=$(( $(cat /tmp/azr-first-call) + ${3:?minutes} * 60 ))
        # A copy of the checkout of its own: a later call refreshes the working tree under it.
        rm -rf /tmp/azr-src && mkdir -p /tmp/azr-src $learn
        tar -c --exclude='./.carry/*.[0-9][0-9]' --exclude=./.git . | tar -x -C /tmp/azr-src
        (cd /tmp/azr-src && setsid nohup bash -c "source bench/device/setup.sh && exec bash bench/device/learn.sh $deadline ${4:-}" \
           > $learn/pipeline.log 2>&1 < /dev/null &)
        sleep 20; cat $learn/pipeline.log
        ;;
      wait)
        end=$(( $(date +%s) + ${3:?seconds} ))
        while [ "$(date +%s)" -lt "$end" ] && [ ! -f $learn/finished ]; do sleep 5; done
        cat $learn/phases.txt; tail -n 5 $learn/train.log 2>/dev/null; nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv
        (cd $learn && tar czf $OUT/learn.tgz --ignore-failed-read phases.txt pipeline.log rollout.txt eval-*.json eval-*.jsonl eval-*.txt \
           train.log run/metrics.jsonl run/examples.jsonl run/spec.yaml run/logs) 2>/dev/null
        ls -la $OUT
        ;;
      *) echo "usage: $0 learn start MINUTES [HELDOUT] | learn wait SECONDS" >&2; exit 2 ;;
    esac
    ;;
  smoke)
    python3 -c "import torch; x = torch.randn(4096, 4096, device='cuda', dtype=torch.bfloat16); print(torch.__version__, torch.cuda.get_device_name(), float((x @ x).float().abs().mean()))" || exit 1
    python3 -c "import vllm, deepspeed, grpc, google.protobuf; print('vllm', vllm.__version__, 'deepspeed', deepspeed.__version__, 'grpc', grpc.__version__, 'protobuf', google.protobuf.__version__)" || exit 1
    python3 -c "from azr_models.resolve import ensure_embedded_model; print(ensure_embedded_model())" || exit 1
    # The weight broadcast over gloo: NCCL cannot put the test's rank 0 and the engine on one
    # card, so this checks vLLM's side of the transfer on CUDA (docs/weight-sync.md).
    AZR_WEIGHT_TRANSFER_BACKEND=gloo python3 -m pytest -p no:cacheprovider -q tests/generation/test_generator_service.py \
      tests/generation/test_weight_broadcast.py 2>&1 | tee $OUT/smoke-pytest.txt
    mkdir -p $OUT/logs && cp /tmp/pytest-of-root/pytest-*/vllm*/proposer.log $OUT/logs/ 2>/dev/null
    ;;
  rollout)
    shift
    azr bench rollout "$@" 2>&1 | grep -v "^\s*$" | tee $OUT/rollout.txt
    ;;
  segment)
    seconds=$2 spec=${3:-examples/selfplayrun-1gpu.yaml}
    started=$(date +%s)
    timeout -s INT -k 90 "$seconds" python3 -m azr_launcher.cli run -f "$spec" --run-dir $RUN_DIR --plain > $OUT/segment.log 2>&1
    echo "azr run exit $? after $(( $(date +%s) - started )) s"
    tail -n 30 $OUT/segment.log
    cp $RUN_DIR/metrics.jsonl $RUN_DIR/spec.yaml $OUT/ 2>/dev/null
    tar czf $OUT/logs.tgz -C $RUN_DIR logs
    ls $RUN_DIR/checkpoints
    ;;
  weight-sync)
    # The same preset twice in one call, weightSync disk (the baseline) then nccl, each for
    # SECONDS; on a machine of two cards `azr run` puts the engine and the learner on one each.
    seconds=$2 spec=${3:-examples/selfplayrun-1gpu.yaml} mode=${4:-sync}
    for sync in disk nccl; do
      python3 -c "import sys, yaml; s = yaml.safe_load(open(sys.argv[1])); t = s['spec']['training']
t.update(weightSync=sys.argv[2], mode=sys.argv[3], checkpointEvery=1000); yaml.safe_dump(s, open(sys.argv[4], 'w'))" \
        "$spec" $sync "$mode" /tmp/ws-$sync.yaml
      rm -rf /tmp/ws-$sync
      timeout -s INT -k 60 "$seconds" python3 -m azr_launcher.cli run -f /tmp/ws-$sync.yaml --run-dir /tmp/ws-$sync --plain \
        > $OUT/ws-$sync.log 2>&1
      cp /tmp/ws-$sync/metrics.jsonl $OUT/metrics-$sync.jsonl
      grep -h "cards of their own\|broadcast group\|broadcast failed" /tmp/ws-$sync/logs/*.log $OUT/ws-$sync.log | head -3
    done
    python3 - "$OUT" <<'SUMMARY'
import json, statistics, sys
for sync in ("disk", "nccl"):
    steps = [json.loads(line) for line in open(f"{sys.argv[1]}/metrics-{sync}.jsonl")][1:]
    if steps:
        print(f"{sync}: {len(steps)} steps, seconds.sync median {statistics.median(s['seconds.sync'] for s in steps):.3f}, "
              f"step median {statistics.median(s['step_seconds'] for s in steps):.2f}, "
              f"by broadcast {sum(s.get('sync_broadcast', 0) for s in steps):.0f}")
SUMMARY
    ;;
  eval)
    name=$2 model=${3:-} spec=${4:-examples/selfplayrun-1gpu.yaml}
    azr eval -f "$spec" ${model:+--model $model} 2>&1 | grep -v "^\s*$" | tee $OUT/eval-$name-humaneval.txt
    azr eval -f "$spec" ${model:+--model $model} --code-reasoning bench/data/code-reasoning.jsonl 2>&1 \
      | tee $OUT/eval-$name-code-reasoning.txt
    ;;
  *)
    echo "usage: $0 stash | smoke | rollout [ARGS] | segment SECONDS [SPEC] | weight-sync SECONDS [SPEC [MODE]] | eval NAME [MODEL [SPEC]]" >&2; exit 2 ;;
esac
