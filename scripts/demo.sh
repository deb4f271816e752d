#!/usr/bin/env bash
# Sets up .venv when missing and runs the main job on the embedded defaults:
# a small synthetic trial is triaged end to end (PACS -> de-identification ->
# model -> RECIST 1.1 -> EDC draft -> audit and trace).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/triallens demo "$@"
