#!/usr/bin/env bash
# Installs the Debian tools the tests call: dciodvfy (dicom3tools) and docker-compose.
set -eu
need=()
command -v dciodvfy >/dev/null 2>&1 || need+=(dicom3tools)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "note: ${need[*]} not installed (need root + apt-get); the tests that use them will skip" >&2
    exit 0
fi
apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
