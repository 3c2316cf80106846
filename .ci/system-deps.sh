#!/usr/bin/env bash
# Installs the Debian tools the tests call: dciodvfy (dicom3tools), docker-compose, nginx
# (the server's proxy; Debian puts it in /usr/sbin, off an ordinary user's PATH), chromium
# (a headless screenshot of the run report), podman, podman-compose and mmdebstrap (the
# container images are built and the compose federation run: tests/deployment/test_containers.py)
# and Orthanc with its DICOMweb plugin (the PACS the site's sync, listen and store tests
# talk to; also in /usr/sbin).
set -eu
need=()
command -v dciodvfy >/dev/null 2>&1 || need+=(dicom3tools)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
for tool in podman podman-compose mmdebstrap; do
    command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
command -v Orthanc >/dev/null 2>&1 || [ -x /usr/sbin/Orthanc ] || need+=(orthanc)
[ -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || need+=(orthanc-dicomweb)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "note: ${need[*]} not installed (need root + apt-get); the tests that use them will skip" >&2
    exit 0
fi
if [[ " ${need[*]} " == *" nginx "* || " ${need[*]} " == *" orthanc "* ]] &&
    [ ! -e /usr/sbin/policy-rc.d ]; then
    # MedFleet starts its own nginx for each server, and the tests their own Orthanc on
    # free ports: keep the packages' system-wide services (ports 80, 4242 and 8042) from
    # being started by the install.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
