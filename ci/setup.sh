#!/bin/bash
# One-time set-up of a Debian 12 machine for orch, as root: Debian packages and a Python
# virtualenv in .venv with orch installed (editable) and its test dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  git make gcc libc6-dev flex bison bc libelf-dev libssl-dev cpio xz-utils kmod
  ccache rsync python3-venv openssh-client
  qemu-system-x86 qemu-system-arm qemu-utils
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross
  busybox-static dropbear-bin
  linux-source-6.1
)
export DEBIAN_FRONTEND=noninteractive
# Upstream 6.12 (has UFFDIO_MOVE natively): the reference tree, from bookworm-backports.
BACKPORTS=/etc/apt/sources.list.d/orch-backports.sources
if [ ! -e "$BACKPORTS" ] && ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
  cat > "$BACKPORTS" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
PACKAGES+=(linux-source-6.12)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
echo "orch set up: $(.venv/bin/orch --version)"
