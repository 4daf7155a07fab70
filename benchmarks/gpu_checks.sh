#!/usr/bin/env bash
# Everything we check on a real CUDA GPU, in one go (a lent GPU machine is held by the minute).
# Usage: OUT=dir bash benchmarks/gpu_checks.sh [steps...]   steps: info tests kernels models compare train
# Data for `train`: NUMBACNN_DATA (default ./.data) must hold fashion-mnist/. Logs go to $OUT.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_checks}; mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 NUMBACNN_DATA=${NUMBACNN_DATA:-$PWD/.data}
PY=${PYTHON:-python3}
steps=${*:-info tests kernels models compare train}
step() { local name=$1 limit=$2; shift 2; echo "=== $name: $*"; local t=$SECONDS
         timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.log"; echo "=== $name: exit ${PIPESTATUS[0]} in $((SECONDS - t)) s"; }
for s in $steps; do case $s in
  info)    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
           $PY -c "import numpy, numba, numba.cuda as c; print('numpy', numpy.__version__, 'numba', numba.__version__, 'cuda', c.is_available())"
           step info 120 $PY -m numbacnn info ;;
  tests)   step tests 300 $PY -m pytest -q -x -p no:cacheprovider tests/test_cuda.py tests/test_contract.py tests/test_bench.py ;;
  kernels) step kernels 240 $PY -m numbacnn bench kernels --device all ;;
  models)  for m in "lenet5 64" "lenet5 256" "resnet20 128"; do set -- $m
             step "model_$1_$2" 180 $PY -m numbacnn bench model "$1" --batch-size "$2" --device cuda; done ;;
  compare) step compare 240 $PY benchmarks/gpu_compare.py --out "$OUT/RESULTS_GPU.md" ;;
  train)   step train 300 $PY -m numbacnn train lenet5 --device cuda --epochs ${EPOCHS:-2} --out "$OUT/run_lenet5" ;;
  *)       echo "unknown step $s" ;;
esac; done
