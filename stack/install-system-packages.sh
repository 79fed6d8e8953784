#!/usr/bin/env bash
# Debian packages the project needs beyond what this kind of machine ships: PostgreSQL's server (the
# stack's database), docker-compose (validates docker-compose.yml; no Docker engine needed), Maven,
# Java and npm.
# Installs only what is missing, and only when we are root; otherwise says what to install.
set -euo pipefail

missing=()
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || command -v postgres >/dev/null || missing+=(postgresql)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v mvn >/dev/null || missing+=(maven)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
# npm fetches the official AsyncAPI JSON Schema (@asyncapi/specs) that the catalog tests validate against.
command -v npm >/dev/null || missing+=(npm)

[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "Missing Debian packages: ${missing[*]} -- install them: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
