#!/usr/bin/env bash
# The GPU check, in one call of the device tool (one H100 or H200, no TensorFlow, no registry):
#   here:  python benchmarks/gpu_pack.py            # .gpu/: data, float16 HED weights, wheels (< 60 MiB)
#   there: bash benchmarks/gpu_check.sh             # carry [".gpu"], timeout_s 600; prints the table,
#                                                   # writes $OUT/gpu_check.json
# Extra arguments go to benchmarks/gpu_check.py (e.g. --epochs 4 --skip vgg16).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d .gpu/wheels ] || { echo "no .gpu/ here: run python benchmarks/gpu_pack.py first and carry .gpu" >&2; exit 2; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/wheels/*.whl
export PYTHONPATH="$PWD/src:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
export KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
export INSPECTCNN_HED_WEIGHTS="$PWD/.gpu/hed_vgg16_fp16.weights.h5"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
python3 -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)"
python3 benchmarks/gpu_check.py --pack .gpu --out "${OUT:-/tmp}/gpu_check.json" "$@"
