#!/usr/bin/env bash
# Installs the given Debian packages when their commands are missing.
# Needs root (CI and the developers' machines run as root); elsewhere it
# only says what is missing.
set -euo pipefail
declare -A cmd_of=([iproute2]=ip [haproxy]=haproxy [iputils-arping]=arping [tcpdump]=tcpdump)
missing=()
for pkg in "$@"; do
  c=${cmd_of[$pkg]:-$pkg}
  command -v "$c" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing packages (install them as root): ${missing[*]}" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
