#!/usr/bin/env bash
# The GPU learning run of docs/benchmarks.md, one pipeline on the lent GPU machine:
#
#   1. the rollout benchmark: vLLM against transformers on the run's model (`azr bench rollout --fast`)
#   2. `azr eval` before: HumanEval, the bundled code-reasoning set, and HELDOUT.jsonl if given
#   3. `azr run` of SPEC until DEADLINE leaves time for step 4 (then SIGTERM: the learner checkpoints)
#   4. `azr eval` after, on each checkpoint the run kept (`training.keepCheckpoints`), the same suites
#   (each eval also keeps every reply with its grade: eval-NAME.completions.jsonl)
#
# A `run` call lasts at most 10 minutes and the machine is held at most 30, so the pipeline runs
# in the background of the calls that keep the machine: `gpu.sh learn start DEADLINE [HELDOUT]`
# starts it (in a session of its own, which outlives the call), `gpu.sh learn wait SECONDS`
# follows it. Everything lands in /tmp/azr-learn (the run directory under run/).
#
#   bash bench/device/learn.sh DEADLINE_EPOCH_SECONDS [HELDOUT.jsonl]
#
# Environment: AZR_LEARN_SPEC (default examples/selfplayrun-1gpu-qwen.yaml), AZR_LEARN_ROLLOUT=0
# skips step 1, AZR_LEARN_RESERVE seconds kept for step 4 (default 420: three checkpoints), AZR_LEARN_EVAL_ARGS more
# `azr eval` arguments (a dry run on a CPU: "--limit 2 --max-tokens 32").
set -u
deadline=$1 heldout=${2:-}
spec=${AZR_LEARN_SPEC:-examples/selfplayrun-1gpu-qwen.yaml}
reserve=${AZR_LEARN_RESERVE:-420}
dir=/tmp/azr-learn
mkdir -p "$dir"
rm -f "$dir/finished"
trap 'touch "$dir/finished"' EXIT
azr() { python3 -m azr_launcher.cli "$@"; }
phase() { echo "$(date -u +%FT%TZ) $*" | tee -a "$dir/phases.txt"; }

model=$(python3 -c "import sys; from azr.spec import load_run; print(load_run(sys.argv[1]).spec.model.name)" "$spec") || exit 1
phase "convert $model"
python3 -c "import sys; from azr_models.resolve import resolve_model; print(resolve_model(sys.argv[1]))" "$model" \
  >> "$dir/phases.txt" || { phase "failed: convert"; exit 1; }
suites=(--code-reasoning bench/data/code-reasoning.jsonl)
[ -n "$heldout" ] && suites+=(--code-reasoning "$heldout")
read -r -a eval_args <<< "${AZR_LEARN_EVAL_ARGS:-}"

if [ "${AZR_LEARN_ROLLOUT:-1}" != 0 ]; then
  phase "rollout"
  azr bench rollout --model "$model" --proposals 16 --samples 8 --max-tokens 256 --fast > "$dir/rollout.txt" 2>&1 \
    || phase "failed: rollout (exit $?)"
fi

phase "eval before"
azr eval -f "$spec" --humaneval "${suites[@]}" "${eval_args[@]}" --json "$dir/eval-before.json" \
  --completions "$dir/eval-before.completions.jsonl" > "$dir/eval-before.txt" 2>&1 \
  || { phase "failed: eval before"; exit 1; }

seconds=$(( deadline - $(date +%s) - reserve ))
phase "train for $seconds s"
if [ "$seconds" -gt 120 ]; then
  timeout -s TERM -k 180 "$seconds" python3 -m azr_launcher.cli run -f "$spec" --run-dir "$dir/run" --plain > "$dir/train.log" 2>&1
  phase "train ended (exit $?)"
else
  phase "failed: no time left to train"
  exit 1
fi

for checkpoint in $(ls -d "$dir"/run/checkpoints/step-* 2>/dev/null | sort); do
  name=$(basename "$checkpoint")
  phase "eval after: $name"
  azr eval -f "$spec" --model "$checkpoint/model" --humaneval "${suites[@]}" "${eval_args[@]}" --json "$dir/eval-$name.json" \
    --completions "$dir/eval-$name.completions.jsonl" \
    > "$dir/eval-$name.txt" 2>&1 || { phase "failed: eval after ($name)"; exit 1; }
done
phase "done"
