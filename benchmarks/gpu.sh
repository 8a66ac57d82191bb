#!/usr/bin/env bash
# The GPU benchmarks in one command (JAX with CUDA): the step-time tables of
# benchmarks/step_time.py, the language-model loss path of
# benchmarks/lm_memory.py at real sizes and the language-model example
# (examples/stdlib_lm.py, 3 seeds), written as one markdown file that names
# the device. Paste it into benchmarks/RESULTS.md.
#
#   bash benchmarks/gpu.sh [output.md]        # on a machine with a GPU
#   bash benchmarks/gpu.sh --quick out.md     # tiny sizes; runs on CPU too (for the tests)
#
# The suite never needs a GPU: tests/test_benchmark_scripts.py runs --quick.
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=0
if [ "${1:-}" = "--quick" ]; then QUICK=1; shift; fi
OUTPUT=${1:-gpu_results.md}
PYTHON=${PYTHON:-python3}
export KERAS_BACKEND=jax
DEVICE=$("$PYTHON" -c "import jax; d = jax.devices()[0]; print(d.platform, d.device_kind)")
case "$DEVICE" in
  gpu*|cuda*) ;;
  *) if [ "$QUICK" = 0 ]; then
       echo "benchmarks/gpu.sh needs JAX with a GPU; jax.devices()[0] is '$DEVICE'. Install jax[cuda12] (or run --quick)." >&2
       exit 1
     fi ;;
esac
if ! "$PYTHON" -c "import keras_hub" 2>/dev/null; then
  echo "benchmarks/gpu.sh runs examples/stdlib_lm.py, which needs keras-hub: pip install keras-hub (or pip install -e '.[hub]')." >&2
  exit 1
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
if [ "$QUICK" = 1 ]; then
  STEP=(--quick)
  LM=(--quick)
  EXAMPLE=(--quick --seeds 1 --teacher-store "$TMP/teachers")
else
  # Real sizes for one GPU: the MLPs of the CPU table on 60,000 examples in
  # batches of 1,024; the loss path at a 2,048-token sequence, hidden 1,024,
  # vocabularies up to 262,144 (Gemma 3's).
  STEP=(--examples 60000 --batch-size 1024 --repeats 5)
  LM=(--vocabularies 32768,131072,262144 --sequence 2048 --batch 8 --hidden 1024 --chunk 256 --runs 5)
  # The example's own settings, the ones measured on CPU in the docs.
  EXAMPLE=()
fi
"$PYTHON" benchmarks/step_time.py --backend jax --no-memory "${STEP[@]}" --output "$TMP/step_time.md"
"$PYTHON" benchmarks/lm_memory.py "${LM[@]}" --output "$TMP/lm_memory.md"
"$PYTHON" examples/stdlib_lm.py "${EXAMPLE[@]}" --output "$TMP/stdlib_lm"
{
  echo "## One GPU: $("$PYTHON" -c "import jax; print(jax.devices()[0].device_kind)")"
  echo
  echo "\`bash benchmarks/gpu.sh\` ($(date -u +%Y-%m-%d), JAX $("$PYTHON" -c "import jax; print(jax.__version__)"))."
  echo
  echo "### Epoch time (benchmarks/step_time.py)"
  echo
  cat "$TMP/step_time.md"
  echo
  echo "### Language-model loss path (benchmarks/lm_memory.py)"
  echo
  cat "$TMP/lm_memory.md"
  echo
  echo "### Language-model distillation (examples/stdlib_lm.py)"
  echo
  cat "$TMP/stdlib_lm/results.md"
} > "$OUTPUT"
cat "$OUTPUT"
