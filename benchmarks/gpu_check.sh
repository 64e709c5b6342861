#!/usr/bin/env bash
# GPU check, under 5 minutes on a machine with an NVIDIA GPU and this repository: shows the
# devices, trains the tutorial's cnn for 2 epochs on each GPU backend it finds (JAX, PyTorch),
# runs the speedrun recipe on the GPU (both targets), and prints per-epoch times and errors,
# then a Markdown summary (benchmarks/gpu_summary.py).
#
# Usage (from anywhere):  bash benchmarks/gpu_check.sh [--with-best]
#   --with-best   also train the `best` recipe once (seed 7, its registered epochs): minutes, not seconds
#
# Environment:
#   MNISTLAB_DATA   MNIST folder (default: ../shared/data/mnist beside the repo, else download)
#   GPU_PYTHON      the Python to run (default python3). The check uses the repository's own
#                   source (src/ on PYTHONPATH), so only Keras and a GPU backend must be there.
#   GPU_WHEELS      a folder of wheels to install first, offline (pip --no-index --target), for
#                   a machine with JAX/PyTorch but no Keras and no network.
#   GPU_BACKENDS    backends to try (default "jax torch"); those that see no GPU are skipped.
#   GPU_CHECK_OUT   folder for the run folders, the log and gpu_check.md (default: a temp dir).
#   GPU_CHECK_DRY   set to 1 to rehearse on a machine without a GPU: backends on the CPU count,
#                   and every training uses 1,000 images (checks the script, measures nothing).
# Where Python cannot import Keras and no GPU_WHEELS is given, the script makes a venv
# (.venv-gpu) and installs mnistlab with jax[cuda12] from PyPI.
#
# TensorFlow is not needed: without it, affine augmentation (the 99.5% speedrun, `best`) runs
# through mnistlab's numpy warps instead of the tf.data pipeline.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
WITH_BEST=0
for argument in "$@"; do
    case "$argument" in
        --with-best) WITH_BEST=1 ;;
        *) echo "gpu_check.sh: unknown argument '$argument' (only --with-best)" >&2; exit 2 ;;
    esac
done
RESULTS="${GPU_CHECK_OUT:-$(mktemp -d)}"
mkdir -p "$RESULTS"
PYTHON="${GPU_PYTHON:-python3}"
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
START=$(date +%s)

echo "== devices"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "nvidia-smi not found"
nproc | sed 's/^/CPU cores: /'

echo "== environment"
if [ -n "${GPU_WHEELS:-}" ]; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$RESULTS/site" "$GPU_WHEELS"/*.whl
    export PYTHONPATH="$RESULTS/site${PYTHONPATH:+:$PYTHONPATH}"
fi
BACKEND_LIST=(${GPU_BACKENDS:-jax torch})
if ! KERAS_BACKEND=${BACKEND_LIST[0]} "$PYTHON" -c "import keras" 2>/dev/null; then
    VENV="$REPO/.venv-gpu"
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet -e . "jax[cuda12]"
    PYTHON="$VENV/bin/python"
fi
export PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}"
if [ -z "${MNISTLAB_DATA:-}" ] && [ -d "$REPO/../shared/data/mnist" ]; then
    export MNISTLAB_DATA="$REPO/../shared/data/mnist"
fi
"$PYTHON" --version

BACKENDS=()
for backend in "${BACKEND_LIST[@]}"; do
    if KERAS_BACKEND=$backend "$PYTHON" - "$backend" <<'EOF'
import os, sys
backend = sys.argv[1]
try:
    if backend == "jax":
        import jax
        devices, on_gpu, version = jax.devices(), jax.default_backend() == "gpu", jax.__version__
    elif backend == "torch":
        import torch
        on_gpu = torch.cuda.is_available()
        devices = [torch.cuda.get_device_name(0)] if on_gpu else ["cpu"]
        version = torch.__version__
    else:
        raise SystemExit(f"{backend}: not a GPU backend this check knows (jax, torch)")
except ImportError as error:
    raise SystemExit(f"{backend}: not installed ({error})")
import keras
print(f"{backend} {version}, keras {keras.__version__}: {devices}")
dry = os.environ.get("GPU_CHECK_DRY") == "1"
raise SystemExit(0 if on_gpu or dry else f"{backend}: no GPU visible, skipped")
EOF
    then BACKENDS+=("$backend"); fi
done
if [ ${#BACKENDS[@]} -eq 0 ]; then
    echo "No backend sees a GPU: check the driver (nvidia-smi) and the GPU builds of jax/torch." >&2
    exit 1
fi
FIRST="${BACKENDS[0]}"
SMALL=()
[ "${GPU_CHECK_DRY:-}" = 1 ] && SMALL=(--train-size 1000)

for backend in "${BACKENDS[@]}"; do
    echo "== cnn, 2 epochs on $backend (tutorial settings: batch 200, Adam, test set as validation)"
    "$PYTHON" -m mnistlab train cnn --epochs 2 --val-size 0 --verbose 2 --backend "$backend" \
        --out "$RESULTS/cnn-$backend" "${SMALL[@]}"
done

for target in 99.0 99.5; do
    seeds=5
    [ "$target" = "99.5" ] && seeds=2  # 4 epochs each: two seeds keep the check short
    echo "== speedrun --target $target, $seeds seeds, on $FIRST"
    "$PYTHON" -m mnistlab speedrun --target "$target" --seeds "$seeds" --backend "$FIRST" \
        --out "$RESULTS/speedrun-$target" --json "$RESULTS/speedrun-$target.json" "${SMALL[@]}"
done

if [ "$WITH_BEST" = 1 ]; then
    echo "== best, its registered recipe (1,000 images held out for validation), seed 7, on $FIRST"
    "$PYTHON" -m mnistlab train best --seed 7 --verbose 2 --backend "$FIRST" --out "$RESULTS/best-$FIRST" \
        "${SMALL[@]}" ${SMALL:+--val-size 200}
    "$PYTHON" -m mnistlab evaluate "$RESULTS/best-$FIRST" --backend "$FIRST"
fi

echo "== summary ($(($(date +%s) - START)) s so far)"
"$PYTHON" "$REPO/benchmarks/gpu_summary.py" "$RESULTS" | tee "$RESULTS/gpu_check.md"
echo "== done in $(($(date +%s) - START)) s; run folders and gpu_check.md in $RESULTS"
