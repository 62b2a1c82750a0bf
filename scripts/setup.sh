#!/usr/bin/env bash
# Installs what switchover needs on a fresh Debian machine, and nothing when it is all there.
# System packages go through apt-get as root, or `sudo -n apt-get` otherwise; npm packages
# through `npm ci`/`npm install`. Every missing piece that cannot be installed is named.
set -euo pipefail
cd "$(dirname "$0")/.."

# tool -> Debian package that provides it
declare -A PKG=(
  [ip]=iproute2 [bridge]=iproute2 [tc]=iproute2 [tcpdump]=tcpdump [ping]=iputils-ping
  [qemu-system-x86_64]=qemu-system-x86 [busybox]=busybox-static [chromium]=chromium
  [cpio]=cpio [nft]=nftables [dpkg-deb]=dpkg
)
missing=()
for tool in "${!PKG[@]}"; do
  if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ] && [ ! -x "/sbin/$tool" ] && [ ! -x "/bin/$tool" ]; then
    missing+=("${PKG[$tool]}")
  fi
done
# The QEMU guest recipe (fixtures/guest) fetches Debian's kernel and busybox with
# `apt-get download`, which needs package lists.
have_lists() { compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; }
if [ "${#missing[@]}" -gt 0 ] || ! have_lists; then
  pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  if [ "$(id -u)" = 0 ]; then SUDO=(); elif sudo -n true 2>/dev/null; then SUDO=(sudo -n); else
    echo "setup: missing Debian packages: ${pkgs:-none} (package lists present: $(have_lists && echo yes || echo no))" >&2
    echo "setup: not root and passwordless sudo is not available; run: sudo apt-get update && sudo apt-get install -y $pkgs" >&2
    exit 2
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq || { echo "setup: apt-get update failed; install by hand: apt-get install -y $pkgs" >&2; exit 2; }
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: $pkgs"
  # shellcheck disable=SC2086
  "${SUDO[@]}" apt-get install -y -qq $pkgs >/dev/null || {
    echo "setup: apt-get install failed for: $pkgs" >&2; exit 2; }
fi

# npm packages: install when node_modules is absent or older than the lock file.
if [ ! -d node_modules ] || [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages"
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --foreground-scripts >/dev/null; else npm install --no-audit --no-fund >/dev/null; fi
fi
# Build the TypeScript (also run by `npm install` through `prepare`); cheap when up to date.
npx tsc -p .
