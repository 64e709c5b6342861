#!/usr/bin/env bash
# GPU check, under 5 minutes on a fresh machine with this repository and an NVIDIA GPU:
# shows the devices, trains the tutorial's cnn for 2 epochs and runs the speedrun recipe on
# the GPU with JAX (Keras's fastest GPU backend for small convnets), printing per-epoch times
# and errors.
#
# Usage (from anywhere):  bash benchmarks/gpu_check.sh
# Environment: MNISTLAB_DATA  MNIST folder (default: the repo's shared data, else download)
#              GPU_VENV       venv to create/use (default .venv-gpu in the repo)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
VENV="${GPU_VENV:-$REPO/.venv-gpu}"
OUT="${OUT:-$(mktemp -d)}"  # run folders go here

echo "== devices"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "nvidia-smi not found"

echo "== environment ($VENV)"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -e . "jax[cuda12]"
export KERAS_BACKEND=jax
python - <<'EOF'
import jax, keras
print("keras", keras.__version__, "backend", keras.backend.backend())
print("jax devices:", jax.devices())
if jax.default_backend() != "gpu":
    raise SystemExit("No GPU visible to JAX: check the driver (nvidia-smi) and jax[cuda12].")
EOF

if [ -z "${MNISTLAB_DATA:-}" ] && [ -d "$REPO/../shared/data/mnist" ]; then
    export MNISTLAB_DATA="$REPO/../shared/data/mnist"
fi

echo "== cnn, 2 epochs (tutorial settings: batch 200, Adam, validation on the test set)"
mnistlab train cnn --epochs 2 --val-size 0 --verbose 2 --out "$OUT/cnn" --backend jax

echo "== speedrun recipe (target 99.0 %), 2 seeds"
mnistlab speedrun --seeds 2 --out "$OUT/speedrun" --backend jax

echo "== per-epoch times and errors"
for history in "$OUT"/cnn/history.csv "$OUT"/speedrun/seed*/history.csv; do
    echo "-- $history"
    python - "$history" <<'EOF'
import csv, sys
for row in csv.DictReader(open(sys.argv[1])):
    error = 100 * (1 - float(row["val_accuracy"]))
    print(f"epoch {row['epoch']}: {float(row['seconds']):.2f} s, test error {error:.2f}%")
EOF
done
echo "== done; run folders in $OUT"
