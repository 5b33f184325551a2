#!/usr/bin/env bash
# One check of tinyllm on a CUDA GPU: the cuda tests, then the GPU benchmarks.
#
#   PYTHONPATH=. bash benchmarks/gpu_check.sh          # from the repository root
#
# Needs PyTorch (a CUDA build) and tinyllm's dependencies, transformers included (the brief's
# recipe is built from it); no network: nothing is downloaded. Under 8 minutes on an
# H100/H200-class GPU: the tests get at most TESTS_LIMIT seconds, the benchmarks what is left
# of GPU_CHECK_SECONDS (each of their parts has its own limit; one that fails or runs out of
# time is reported and the next one runs).
#
# Every figure goes to ONE file, gpu_check.md (and the same as JSON, gpu_check.json), in $OUT
# when it is set, else in the current directory; pytest's output is saved beside them as
# gpu_check_pytest.log. Exit status: 0 when the tests passed and every benchmark part ran.
# Without a CUDA device it says so and exits 0 at once.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1      # never wait on a network that is not there
PYTHON=${PYTHON:-python}
TOTAL=${GPU_CHECK_SECONDS:-470}                    # seconds for the whole check
TESTS_LIMIT=${TESTS_LIMIT:-200}                    # seconds for the tests
RESULTS=${OUT:-.}

"$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 3)" 2>/dev/null
case $? in
    0) ;;
    3) echo "gpu_check: no CUDA device: skipping"; exit 0 ;;
    *) echo "gpu_check: '$PYTHON' cannot import torch: install PyTorch and tinyllm's dependencies first" >&2
       exit 1 ;;
esac
mkdir -p "$RESULTS"
start=$SECONDS

echo "gpu_check: 1/2 tests: pytest -q -m cuda tests/test_cuda.py (at most ${TESTS_LIMIT}s)"
log="$RESULTS/gpu_check_pytest.log"
timeout -k 10 "$TESTS_LIMIT" "$PYTHON" -m pytest -q -m cuda -p no:cacheprovider \
    tests/test_cuda.py 2>&1 | tee "$log"
tests_rc=${PIPESTATUS[0]}
tests_s=$((SECONDS - start))
[ "$tests_rc" = 124 ] && echo "gpu_check: the tests ran past ${TESTS_LIMIT}s and were stopped" | tee -a "$log"

left=$((TOTAL - (SECONDS - start)))
echo "gpu_check: 2/2 benchmarks: benchmarks/bench_gpu.py (about ${left}s left)"
timeout -k 10 "$((left > 60 ? left : 60))" "$PYTHON" benchmarks/bench_gpu.py --out "$RESULTS" \
    --budget "$((left > 90 ? left - 30 : 60))" \
    --tests-log "$log" --tests-rc "$tests_rc" --tests-seconds "$tests_s"
bench_rc=$?

echo "gpu_check: done in $((SECONDS - start))s: tests exit status $tests_rc, benchmarks $bench_rc;" \
     "figures in $RESULTS/gpu_check.md (and gpu_check.json)"
[ "$tests_rc" = 0 ] && [ "$bench_rc" = 0 ]
