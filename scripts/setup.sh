#!/usr/bin/env bash
# Installs what switchover needs on a fresh Debian machine, and nothing when it is all there.
# System packages go through apt-get as root, or `sudo -n apt-get` otherwise; npm packages
# through `npm ci`/`npm install`. Every missing piece that cannot be installed is named.
#
#   bash scripts/setup.sh [--qemu-backports]
# --qemu-backports also unpacks QEMU 10.0 from Debian's bookworm-backports into .cache/qemu-10
# (see fetch_qemu_backports below), beside the system's QEMU 7.2, which stays the default.
set -euo pipefail
cd "$(dirname "$0")/.."

want_backports=no
for arg in "$@"; do
  case "$arg" in
    --qemu-backports) want_backports=yes ;;
    *) echo "setup: unknown option $arg (expected --qemu-backports)" >&2; exit 2 ;;
  esac
done

# tool -> Debian package that provides it
declare -A PKG=(
  [ip]=iproute2 [bridge]=iproute2 [tc]=iproute2 [tcpdump]=tcpdump [ping]=iputils-ping
  [qemu-system-x86_64]=qemu-system-x86 [busybox]=busybox-static [chromium]=chromium
  [cpio]=cpio [nft]=nftables [dpkg-deb]=dpkg [gcc]=gcc
  [tshark]=tshark [dumpcap]=tshark [editcap]=tshark
)
missing=()
for tool in "${!PKG[@]}"; do
  if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ] && [ ! -x "/sbin/$tool" ] && [ ! -x "/bin/$tool" ]; then
    missing+=("${PKG[$tool]}")
  fi
done
# The guest's helper (harness/vm/guest/guest-udp.c) is linked -static: it needs glibc's libc.a.
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] || missing+=(libc6-dev)
# The QEMU guest recipe (harness/vm/guest) fetches Debian's kernel and busybox with
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
# QEMU 10.0 from bookworm-backports, unpacked (never installed) into .cache/qemu-10 and run from
# there by a wrapper that gives it its own firmware (-L) and modules. The system's apt sources
# do not list bookworm-backports and are left alone: apt reads a private configuration with
# the same mirror as /etc/apt/sources.list.d/debian.sources.
fetch_qemu_backports() {
  local dir=.cache/qemu-10 wrapper=.cache/qemu-10/qemu-system-x86_64
  if [ -x "$wrapper" ] && "$wrapper" --version 2>/dev/null | grep -q 'version 10\.0\.'; then return 0; fi
  local mirror
  mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  if [ -z "$mirror" ]; then
    echo "setup: no Debian mirror found in /etc/apt/sources.list.d/debian.sources; cannot fetch QEMU 10.0 from bookworm-backports" >&2
    exit 2
  fi
  rm -rf "$dir" && mkdir -p "$dir/apt/lists/partial" "$dir/apt/cache/archives/partial" "$dir/debs"
  local abs; abs=$(cd "$dir" && pwd)
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror bookworm-backports main" > "$dir/apt/sources.list"
  local apt=(-o "Dir::Etc::SourceList=$abs/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$abs/apt/lists" -o "Dir::Cache=$abs/apt/cache")
  # As root apt would hand the download to its _apt user, who cannot write into the repo.
  if [ "$(id -u)" = 0 ]; then apt+=(-o APT::Sandbox::User=root); fi
  echo "setup: QEMU 10.0: reading bookworm-backports from $mirror through a private apt configuration in $dir/apt (the system's apt sources are not changed)"
  apt-get "${apt[@]}" update -qq || { echo "setup: apt-get update of bookworm-backports from $mirror failed" >&2; exit 2; }
  # The binary, its ROMs and keymaps, its common helpers, and the SeaBIOS it asks for (>> 1.16.3).
  local pkgs=(qemu-system-x86 qemu-system-common qemu-system-data seabios) wanted=() p v
  for p in "${pkgs[@]}"; do
    v=$(apt-cache "${apt[@]}" policy "$p" | awk '/Candidate:/ { print $2 }')
    case "$v" in *bpo12*) wanted+=("$p=$v") ;; *)
      echo "setup: bookworm-backports has no $p (candidate: ${v:-none}); cannot set up QEMU 10.0" >&2; exit 2 ;; esac
  done
  echo "setup: QEMU 10.0: apt-get download ${wanted[*]}"
  (cd "$dir/debs" && apt-get "${apt[@]}" download -qq "${wanted[@]}") || { echo "setup: apt-get download ${wanted[*]} failed" >&2; exit 2; }
  for deb in "$dir"/debs/*.deb; do dpkg-deb -x "$deb" "$dir/root"; done
  # Its shared libraries are bookworm's, the same as the system QEMU 7.2's.
  local unresolved
  unresolved=$(ldd "$dir/root/usr/bin/qemu-system-x86_64" | awk '/not found/ { print $1 }' | tr '\n' ' ')
  if [ -n "$unresolved" ]; then
    echo "setup: QEMU 10.0 needs libraries this machine lacks: $unresolved(apt-get install qemu-system-x86 brings them)" >&2
    exit 2
  fi
  cat > "$wrapper" <<'WRAPPER'
#!/bin/sh
# QEMU 10.0 from Debian bookworm-backports, unpacked here by `scripts/setup.sh --qemu-backports`:
# its own firmware and ROMs first (-L), its own modules, never the system QEMU's.
here=$(dirname "$(readlink -f "$0")")
export QEMU_MODULE_DIR="$here/root/usr/lib/x86_64-linux-gnu/qemu"
exec "$here/root/usr/bin/qemu-system-x86_64" -L "$here/root/usr/share/qemu" -L "$here/root/usr/share/seabios" "$@"
WRAPPER
  chmod +x "$wrapper"
  printf '%s\n' "${wanted[@]}" > "$dir/packages.txt"
  rm -rf "$dir/debs" "$dir/apt/cache"
  echo "setup: QEMU 10.0 ready: $wrapper ($("$wrapper" --version | head -1))"
}
if [ "$want_backports" = yes ]; then fetch_qemu_backports; fi

# Build the TypeScript (also run by `npm install` through `prepare`); cheap when up to date.
npx tsc -p .
