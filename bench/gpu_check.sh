#!/usr/bin/env bash
# The prepared GPU check: one call on a machine with a CUDA device, about 8 minutes on one H200.
#
#   1. the environment (torch, CUDA, GPU) -> $OUT/env.txt
#   R. bf16 roofline (bench/gpu_roofline.py): samples/s at N = 1, 4, 16 in the GPU setup (batched students, bf16,
#      torch.compile, data resident on the device, no host sync in the step) and the fraction of the bf16 GEMM
#      peak measured in the same process; the 2M samples/s goal at N = 16 -> $OUT/roofline-$DEVICE.json
#      (first, so a short device lease still gets the headline numbers; GPU_CHECK_ROOFLINE_ARGS adds arguments)
#   2. the CUDA tests: tests/test_devices.py and the CUDA batch iterator (pytest -m gpu) -> $OUT/pytest_gpu.log
#   3. training throughput on the device, loop vs batched students, N = 1, 2, 4, 10, against the GEMM peak
#      measured in the same process (bench/bench_train.py) -> $OUT/train-cuda.json
#   4. one run trained by several processes (torchrun, --parallel data and ensemble) against one process
#      (bench/parallel_check.py): NCCL with one process per GPU when there is more than one GPU, skipped with a
#      message on one GPU; gloo with 2 processes in CPU mode -> $OUT/parallel-$DEVICE.json
#   5. the `quick` preset end to end on the device (9 runs of MovieLens-100K, spectra, results, figures) with its
#      wall time per step -> $OUT/quick-reproduce.log, $OUT/quick-results.md
#
# The device machine cannot reach PyPI and lacks two dependencies (omegaconf and its parser runtime); bring them
# as wheels, and bring the processed MovieLens-100K (data/, 5.5 MB, prepared here by `make demo` or
# `collapse-lab data prepare movielens-100k`). In the repository root, once:
#
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl omegaconf==2.3.0 antlr4-python3-runtime==4.9.3
#
# (antlr4-python3-runtime ships only an sdist: build its wheel with `pip wheel --no-deps -w .whl
# antlr4-python3-runtime==4.9.3`, it is pure Python.) Then, with the device tool:
#
#   run(command="bash bench/gpu_check.sh", carry=[".whl", "data"], timeout_s=540)
#
# Environment: OUT (where results go; default /tmp/gpu_check), GPU_CHECK_DEVICE (default cuda; `cpu` runs the
# same steps here to check the script), GPU_CHECK_BENCH_ARGS (extra bench_train.py arguments),
# GPU_CHECK_QUICK=0 skips step 5, GPU_CHECK_QUICK_ARGS adds grid overrides to it (e.g. "n=1 max_epochs=1" for a
# one-run smoke test of the script), GPU_CHECK_STEPS (default "roofline tests throughput parallel quick": the
# steps to run; tests/test_bench_gpu_check.py runs "roofline" in CPU mode with tiny sizes). Every step runs even
# when an earlier one fails; the exit code is the number of failed steps.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}
failed=0
STEPS=" ${GPU_CHECK_STEPS:-roofline tests throughput parallel quick} "
step() { echo "== $1 ($(date -u +%T))"; }
want() { [[ "$STEPS" == *" $1 "* ]]; }

step "environment"
"$PY" - >"$OUT/env.txt" 2>&1 <<'EOF'
import platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda)
print("cuda available", torch.cuda.is_available())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("gpu", p.name, f"{p.total_memory / 2**30:.0f} GiB", "SMs", p.multi_processor_count)
import collapse_lab, omegaconf
print("collapse_lab", collapse_lab.__version__, "omegaconf", omegaconf.__version__)
EOF
status=$?
cat "$OUT/env.txt"
if [ $status -ne 0 ]; then
    echo "the environment is incomplete (see above): bring the wheels named at the top of this script" >&2
    exit 99
fi

if want roofline; then
    step "bf16 roofline on $DEVICE: N = 1, 4, 16"
    # shellcheck disable=SC2086
    timeout 420 "$PY" bench/gpu_roofline.py --device "$DEVICE" --json-out "$OUT/roofline-$DEVICE.json" \
        ${GPU_CHECK_ROOFLINE_ARGS:-} 2>&1 | tee "$OUT/roofline-$DEVICE.log" || failed=$((failed + 1))
fi

if want tests; then
step "CUDA tests"
if [ "$DEVICE" = cuda ]; then marker=gpu; else marker="not gpu"; fi
"$PY" -m pytest -q -p no:cacheprovider -o addopts="" -m "$marker" tests/test_devices.py tests/test_data_batches.py \
    2>&1 | tee "$OUT/pytest_gpu.log" || failed=$((failed + 1))
fi

if want throughput; then
step "training throughput on $DEVICE"
# shellcheck disable=SC2086
"$PY" bench/bench_train.py --device "$DEVICE" --json-out "$OUT/train-$DEVICE.json" ${GPU_CHECK_BENCH_ARGS:-} \
    2>&1 | tail -n 30 || failed=$((failed + 1))
fi

if want parallel; then
step "one run on several processes ($DEVICE)"
if [ "$DEVICE" = cuda ]; then
    gpus=$("$PY" -c "import torch; print(torch.cuda.device_count())")
else
    gpus=2  # gloo processes on the CPU
fi
if [ "$gpus" -gt 1 ]; then
    "$PY" bench/parallel_check.py --device "$DEVICE" --nproc "$gpus" --json-out "$OUT/parallel-$DEVICE.json" \
        2>&1 | tail -n 30 || failed=$((failed + 1))
else
    echo "skipped: one GPU; multi-process training needs two or more (torchrun --nproc_per_node=G)"
fi
fi

if want quick && [ "${GPU_CHECK_QUICK:-1}" != 0 ]; then
    step "quick preset on $DEVICE"
    work=$(mktemp -d)
    # shellcheck disable=SC2086
    "$PY" -m collapse_lab reproduce --preset quick --device "$DEVICE" --out "$work/quick" --figures "$work/figures" \
        ${GPU_CHECK_QUICK_ARGS:-} 2>&1 | tee "$OUT/quick-reproduce.log" || failed=$((failed + 1))
    cp "$work/quick/results.md" "$OUT/quick-results.md" 2>/dev/null || failed=$((failed + 1))
fi
step "done: $failed step(s) failed"
exit "$failed"
