#!/bin/bash
# One-time set-up of a Debian 12 machine for orch, as root: Debian packages and a Python
# virtualenv in .venv with orch installed (editable) and its test dependencies.
#   --venv-only   just the virtualenv (CI jobs that only plan or merge results)
#   --ci-tools    also the tools the tests of ci/ drive, from npm, pinned: gitlab-ci-local
#                 (runs the GitLab pipeline here) and @action-validator/cli (checks the GitHub
#                 workflow), into $ORCH_CI_TOOLS (default ~/.cache/orch-ci-tools), once
#   --lava-server also a LAVA server's packages (lava-server, PostgreSQL: about 5 minutes),
#                 for the slow test of `--target lava+URL` (ci/lava-server.sh starts it)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV_ONLY=0
CI_TOOLS=0
LAVA_SERVER=0
for arg in "$@"; do
  case "$arg" in
    --venv-only) VENV_ONLY=1 ;;
    --ci-tools) CI_TOOLS=1 ;;
    --lava-server) LAVA_SERVER=1 ;;
    *) echo "ci/setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

PACKAGES=(
  git make gcc libc6-dev flex bison bc libelf-dev libssl-dev cpio xz-utils kmod
  ccache rsync python3-venv openssh-client
  qemu-system-x86 qemu-system-arm qemu-utils
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross
  busybox-static dropbear-bin bash-static gdb-multiarch
  linux-source-6.1
  lava-dispatcher  # lava-run: `orch run --target lava` and its slow tests (~3 min cold)
  chromium chromium-driver  # the results page's browser test, driven by selenium
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
if [ "$VENV_ONLY" = 1 ]; then
  PACKAGES=(git python3-venv)
fi
if [ "$LAVA_SERVER" = 1 ]; then
  PACKAGES+=(postgresql lava-server)
fi
if [ "$CI_TOOLS" = 1 ] && ! command -v npm >/dev/null; then
  PACKAGES+=(npm)
fi
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

if [ "$CI_TOOLS" = 1 ]; then
  # Outside the checkout, so a fresh clone (CI) reuses it: re2, a dependency of
  # gitlab-ci-local, compiles for minutes. 4.60.0 is the last release that runs on Node 20.
  TOOLS="${ORCH_CI_TOOLS:-$HOME/.cache/orch-ci-tools}"
  WANT="gitlab-ci-local@4.60.0 @action-validator/cli@0.6.0 @action-validator/core@0.6.0"
  if [ "$(cat "$TOOLS/installed" 2>/dev/null)" != "$WANT" ]; then
    mkdir -p "$TOOLS"
    # shellcheck disable=SC2086
    npm install --prefix "$TOOLS" --no-audit --no-fund --no-save $WANT
    echo "$WANT" > "$TOOLS/installed"
  fi
  echo "CI tools: $("$TOOLS/node_modules/.bin/gitlab-ci-local" --version | tail -1)" \
    "(gitlab-ci-local), action-validator in $TOOLS/node_modules/.bin"
fi
echo "orch set up: $(.venv/bin/orch --version)"
