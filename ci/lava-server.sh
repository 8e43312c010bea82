#!/bin/bash
# A LAVA server with one QEMU worker on this machine, for orch's `--target lava+URL` path:
# PostgreSQL, lava-server (gunicorn on 127.0.0.1:8000, the scheduler), lava-worker, a user
# with a token, the qemu device type and one device. Debian 12, as root; no systemd needed
# (services are started here, in this order, as their unit files do).
#   ci/lava-server.sh start   prints LAVA_URL=... LAVA_USER=... LAVA_TOKEN=... (eval it)
#   ci/lava-server.sh stop    stops what start started (by the pids it wrote; PostgreSQL
#                             only if start started it)
# State (pids, logs, the token): $ORCH_LAVA_SERVER (default /var/tmp/orch-lava-server).
set -euo pipefail
STATE=${ORCH_LAVA_SERVER:-/var/tmp/orch-lava-server}
PORT=${ORCH_LAVA_PORT:-8000}
URL="http://127.0.0.1:$PORT"
WORKER=orch-worker
DEVICE=orch-qemu-01
USER_NAME=orch
# Debian's interpreter, whatever python3 comes first in PATH (under pytest or an activated
# virtualenv, that one has no Django: lava-server's postinst would fail).
PY=/usr/bin/python3

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

start_bg() {  # NAME CMD...: start CMD detached, its pid in $STATE/NAME.pid
  local name=$1; shift
  if [ -f "$STATE/$name.pid" ] && kill -0 "$(cat "$STATE/$name.pid")" 2>/dev/null; then
    return
  fi
  setsid "$@" > "$STATE/$name.out" 2>&1 < /dev/null &
  echo $! > "$STATE/$name.pid"
}

stop() {
  for name in worker scheduler gunicorn; do
    if [ -f "$STATE/$name.pid" ]; then
      kill -- "-$(cat "$STATE/$name.pid")" 2>/dev/null || true
      rm -f "$STATE/$name.pid"
    fi
  done
  if [ -f "$STATE/postgres.started" ]; then  # a PostgreSQL that was running stays so
    pg_ctlcluster "$(cat "$STATE/postgres.started")" main stop > /dev/null 2>&1 || true
    rm -f "$STATE/postgres.started"
  fi
}

start() {
  export DEBIAN_FRONTEND=noninteractive
  mkdir -p "$STATE"
  # 1. PostgreSQL first: lava-server's postinst creates its database only when it answers.
  installed postgresql || { apt-get update -q; apt-get install -y -q postgresql; }
  local ver
  ver=$(pg_lsclusters -h | awk 'NR==1 {print $1}')
  if ! pg_isready -q 2>/dev/null; then  # started here: stop stops it again
    pg_ctlcluster "$ver" main start > /dev/null 2>&1 || true
    echo "$ver" > "$STATE/postgres.started"
  fi
  for _ in $(seq 60); do pg_isready -q && break; sleep 1; done
  # 2. The server and the dispatcher.
  if ! installed lava-server; then
    apt-get install -y -q lava-server lava-dispatcher
  else
    # The database settings and the schema (what the package's postinst did at install).
    if ! "$PY" /usr/share/lava-server/postinst.py --config --db > "$STATE/postinst.out" 2>&1; then
      tail -20 "$STATE/postinst.out" >&2
      echo "ci/lava-server.sh: lava-server's postinst failed (log: $STATE/postinst.out)" >&2
      exit 1
    fi
  fi
  # 3. gunicorn (lava-server-gunicorn.service), 4. the scheduler (lava-scheduler.service).
  start_bg gunicorn gunicorn3 lava_server.wsgi --bind "127.0.0.1:$PORT" -u lavaserver \
    -g lavaserver --worker-class eventlet --workers 2 --log-file "$STATE/gunicorn.log"
  start_bg scheduler lava-server manage lava-scheduler --log-file "$STATE/scheduler.log"
  local up="import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)"
  for _ in $(seq 120); do
    "$PY" -c "$up" "$URL/api/v0.2/" 2>/dev/null && break
    sleep 1
  done
  "$PY" -c "$up" "$URL/api/v0.2/"
  # Users, tokens, the worker, the device (each about a second).
  local manage="lava-server manage"
  $manage users list 2>/dev/null | grep -qw "$USER_NAME" ||
    $manage users add "$USER_NAME" --superuser --staff --passwd "$USER_NAME" > /dev/null
  if [ ! -s "$STATE/token" ]; then
    $manage tokens add --user "$USER_NAME" > "$STATE/token"
  fi
  if [ ! -s "$STATE/worker-token" ]; then
    { $manage workers add "$WORKER" 2>/dev/null ||
      $manage workers details "$WORKER"; } | awk 'tolower($0) ~ /token/ {print $NF}' \
      > "$STATE/worker-token"
  fi
  $manage device-types add qemu > /dev/null 2>&1 || true
  # The stock qemu template ignores cpu and machine on x86_64 and always adds -net user:
  # the job's context decides here, and the guest has no network (as under lava-run).
  cat > "/etc/lava-server/dispatcher-config/devices/$DEVICE.jinja2" <<'DEV'
{% extends 'qemu.jinja2' %}
{% block qemu_options %}
          - -cpu {{ cpu|default('max') }}
          - -machine {{ machine|default('virt') }}
          - -nographic
          - -nic none
          - -m {{ memory|default(1024) }}
          - -monitor none
{% if extra_options %}
          extra: {{ extra_options }}
{% endif %}
{% endblock qemu_options -%}
DEV
  $manage devices list 2>/dev/null | grep -qw "$DEVICE" ||
    $manage devices add --device-type qemu --worker "$WORKER" "$DEVICE" > /dev/null
  $manage devices update --health GOOD "$DEVICE" > /dev/null 2>&1 || true
  # 5. The worker (lava-worker.service).
  start_bg worker lava-worker --url "$URL/" --token "$(cat "$STATE/worker-token")" \
    --name "$WORKER" --log-file "$STATE/worker.log"
  echo "LAVA_URL=$URL LAVA_USER=$USER_NAME LAVA_TOKEN=$(cat "$STATE/token")"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "ci/lava-server.sh: start or stop" >&2; exit 2 ;;
esac
