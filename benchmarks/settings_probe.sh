#!/usr/bin/env bash
# Compares TensorFlow compile settings for mnistlab's training against the plain Keras script,
# 3 epochs of 12,000 images (PROBE_IMAGES; the first epoch is warm-up), each in its own process,
# interleaved rounds.
# This is the measurement behind train.FAST_SETTINGS; logs in benchmarks/results/probe_*.log.
#   det:          op determinism on, 1 step per compiled call
#   nondet:       op determinism off, 1 step per call
#   det-spe20:    op determinism on, 20 steps per call
#   nondet-spe20: op determinism off, 20 steps per call
#   plain:        benchmarks/plain/keras_tutorial.py (model.fit on numpy, Keras's defaults)
#   default:      mnistlab's defaults (20 steps per call, determinism on, oneDNN per network)
#   default-onednn-off: the same with oneDNN's kernels off (TF_ENABLE_ONEDNN_OPTS=0)
#   default-onednn-on: the same with them on (=1; for the MLP mnistlab's default is off)
#   bf16:         mnistlab's defaults with --precision mixed_bfloat16
#   bf16-nondet:  the same with op determinism off
#   default-inter1: mnistlab's defaults with one inter-op thread (TF_NUM_INTEROP_THREADS=1;
#                 TensorFlow's default is one per core, each op's work also split over the cores)
#   plain-onednn: the plain script with oneDNN kernels on (TF_ENABLE_ONEDNN_OPTS=1)
#   plain-onednn-off: the plain script with them off (=0; TensorFlow's default on CPUs without
#                 AVX-512 VNNI or BF16, AVX-VNNI or AMX; on CPUs with them TensorFlow turns them on)
# Usage: MNISTLAB_DATA=../shared/data/mnist bash benchmarks/settings_probe.sh [--xla]
#        (defaults: PROBE_MODELS="cnn larger_cnn", PROBE_ROUNDS=2, PROBE_VARIANTS: all but xla,
#        PROBE_IMAGES=12000 training images an epoch)
#        python benchmarks/probe_summary.py LOG   (medians of the timed epochs per variant)
set -u
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONPATH="$PWD/src" KERAS_BACKEND=tensorflow
C="--epochs 3 --train-images ${PROBE_IMAGES:-12000} --val-images 2000"
show='import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); print([round(x,2) for x in d["epoch_seconds"]], round(d.get("fit_seconds",0),2), d.get("val_accuracy"))'
W="python benchmarks/speed.py --worker --backend tensorflow $C"
probe() {  # probe VARIANT MODEL
  case "$1" in
    det) $W --model "$2" --set jit_compile=false --set steps_per_execution=1 ;;
    nondet) $W --model "$2" --set jit_compile=false --set steps_per_execution=1 --set deterministic=false ;;
    nondet-xla) $W --model "$2" --set jit_compile=true --set deterministic=false ;;
    det-spe20) $W --model "$2" --set jit_compile=false --set steps_per_execution=20 ;;
    nondet-spe20) $W --model "$2" --set jit_compile=false --set steps_per_execution=20 --set deterministic=false ;;
    plain) python benchmarks/plain/keras_tutorial.py --model "$2" $C ;;
    default) $W --model "$2" ;;
    default-inter1) TF_NUM_INTEROP_THREADS=1 $W --model "$2" ;;
    default-onednn-off) TF_ENABLE_ONEDNN_OPTS=0 $W --model "$2" ;;
    default-onednn-on) TF_ENABLE_ONEDNN_OPTS=1 $W --model "$2" ;;
    bf16) $W --model "$2" --set precision=mixed_bfloat16 ;;
    bf16-nondet) $W --model "$2" --set precision=mixed_bfloat16 --set deterministic=false ;;
    plain-onednn) TF_ENABLE_ONEDNN_OPTS=1 python benchmarks/plain/keras_tutorial.py --model "$2" $C ;;
    plain-onednn-off) TF_ENABLE_ONEDNN_OPTS=0 python benchmarks/plain/keras_tutorial.py --model "$2" $C ;;
  esac
}
variants="${PROBE_VARIANTS:-det nondet det-spe20 nondet-spe20 plain}"
if [ "${1:-}" = "--xla" ]; then variants="$variants nondet-xla"; fi
for r in $(seq 1 "${PROBE_ROUNDS:-2}"); do
  for m in ${PROBE_MODELS:-cnn larger_cnn}; do
    for v in $variants; do
      echo "== $m $v r$r"; probe "$v" "$m" | python -c "$show"
    done
  done
done
