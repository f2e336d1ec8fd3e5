#!/usr/bin/env bash
# GPU check (issue 17): on a machine with CUDA, in under 10 minutes, from the repository root:
#     bash benchmarks/gpu_check.sh [REPORT_DIR]      # default: gpu_report/
# 1. the CUDA tests (tests/test_cuda.py) and the training tests on CUDA-capable code paths;
# 2. the benchmark suite on CUDA at the quick budget (benchmarks.run --device cuda --quick);
# 3. a full-MNIST epoch of the AIR architecture (784-500-500-50, batch 100) through fit, ELBO and
#    IWAE-8, float32 and bf16, eager and compiled (CUDA graphs) (benchmarks/gpu_epoch.py).
# Each step has its own time limit, and a failing step does not stop the later ones; the report
# (REPORT_DIR/report.md) says which steps passed.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT="${1:-gpu_report}"
mkdir -p "$OUT"
REPORT="$OUT/report.md"
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'CUDA is not available: run this on a GPU machine')" || exit 1
{
  echo "# GPU check ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
  echo
  echo "- commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | sed 's/^/- GPU: /'
  python -c "import torch, pyro; print(f'- torch {torch.__version__} (CUDA {torch.version.cuda}), pyro {pyro.__version__}')"
  echo
} > "$REPORT"

step() {  # step NAME SECONDS COMMAND...
  local name="$1" limit="$2"; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "- $name: $([ $rc -eq 0 ] && echo passed || echo "FAILED (exit $rc; see $name.log)") in $((SECONDS - t0)) s" >> "$REPORT"
}

step tests 150 python -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_train.py
step benchmarks 180 python -m benchmarks.run --device cuda --quick --out "$OUT/RESULTS_cuda.md" --json "$OUT/results_cuda.json"
step epoch 240 python -m benchmarks.gpu_epoch --device cuda --epochs 2 --out "$OUT/epoch.md"
{
  echo
  [ -f "$OUT/epoch.md" ] && cat "$OUT/epoch.md"
  echo
  echo "Test summary: $(tail -n 1 "$OUT/tests.log")"
  echo "Benchmark report: $OUT/RESULTS_cuda.md"
} >> "$REPORT"
cat "$REPORT"
