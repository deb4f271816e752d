#!/usr/bin/env bash
# Installs the DICOM servers and tools the integration tests talk to:
# Orthanc with its DICOMweb plugin, dcmtk and dicom3tools (dciodvfy).
# Does nothing when they are already there.
set -euo pipefail

need=()
command -v Orthanc >/dev/null || need+=(orthanc)
ls /usr/share/orthanc/plugins/libOrthancDicomWeb.so >/dev/null 2>&1 || need+=(orthanc-dicomweb)
command -v storescu >/dev/null || need+=(dcmtk)
command -v dciodvfy >/dev/null || need+=(dicom3tools)

if [ ${#need[@]} -gt 0 ]; then
  echo "Installing ${need[*]} with apt-get"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
