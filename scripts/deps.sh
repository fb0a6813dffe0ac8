#!/usr/bin/env bash
# Installs the system packages a purpose needs, only when something is missing.
#   deps.sh test   what `scripts/test.sh` needs
#   deps.sh run    what running the app needs
set -euo pipefail
purpose=${1:-test}

need=()
case "$purpose" in
  test|run) pkgs=(pkg-config libssl-dev) ;;
  *) echo "deps.sh: unknown purpose '$purpose' (test|run)" >&2; exit 2 ;;
esac
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if ((${#need[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "== installing ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
