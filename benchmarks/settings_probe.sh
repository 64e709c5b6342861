#!/usr/bin/env bash
# Compares TensorFlow compile settings for mnistlab's training against the plain Keras script,
# 3 epochs of 12,000 images (the first is warm-up), each in its own process, 2 rounds.
# This is the measurement behind train.FAST_SETTINGS; logs in benchmarks/results/probe_*.log.
# Usage: MNISTLAB_DATA=../shared/data/mnist bash benchmarks/settings_probe.sh [--xla]
set -u
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONPATH="$PWD/src" KERAS_BACKEND=tensorflow
C="--epochs 3 --train-images 12000 --val-images 2000"
show='import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); print([round(x,2) for x in d["epoch_seconds"]], round(d.get("fit_seconds",0),2), d.get("val_accuracy"))'
W="python benchmarks/speed.py --worker --backend tensorflow $C"
for r in 1 2; do
  for m in cnn larger_cnn; do
    echo "== $m det r$r"; $W --model "$m" --set jit_compile=false --set steps_per_execution=1 | python -c "$show"
    echo "== $m nondet r$r"; $W --model "$m" --set jit_compile=false --set steps_per_execution=1 --nondeterministic | python -c "$show"
    if [ "${1:-}" = "--xla" ]; then
      echo "== $m nondet-xla r$r"; $W --model "$m" --set jit_compile=true --nondeterministic | python -c "$show"
    fi
    echo "== $m det-spe20 r$r"; $W --model "$m" --set jit_compile=false --set steps_per_execution=20 | python -c "$show"
    echo "== $m plain r$r"; python benchmarks/plain/keras_tutorial.py --model "$m" $C | python -c "$show"
  done
done
