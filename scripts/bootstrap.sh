#!/usr/bin/env bash
# Creates .venv when missing and installs the pinned dependencies and
# TrialLens itself. Re-running is cheap: it reinstalls only when
# requirements.lock or pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "TrialLens needs Python 3.11 (found $("$PYTHON" --version 2>&1))." >&2
  exit 1
fi

pip_args=(--disable-pip-version-check -q)
[ -d /opt/wheels ] && pip_args+=(--find-links /opt/wheels)

if [ ! -x .venv/bin/python ]; then
  echo "Creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi

stamp=.venv/.triallens-installed
want=$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "Installing pinned dependencies into .venv (first time: a few minutes)"
  .venv/bin/python -m pip install "${pip_args[@]}" --upgrade pip
  .venv/bin/python -m pip install "${pip_args[@]}" torch==2.13.0
  .venv/bin/python -m pip install "${pip_args[@]}" -r requirements.lock
  .venv/bin/python -m pip install "${pip_args[@]}" --no-deps --config-settings editable_mode=compat -e .
  echo "$want" >"$stamp"
fi
