"""The guest's side of a LAVA job: what orch's initramfs carries so that LAVA can drive it.

- `orch.lava=1` on the kernel command line (rootfs.INIT) leaves a login prompt and then a
  shell with the fixed prompt `PROMPT` on the serial console, which is how LAVA talks to a
  guest (dropbear still starts; a LAVA job has no network, so nobody reaches it).
- `TEST_SCRIPT` (installed as `TEST_SCRIPT_PATH`) is the job's test: it runs each selftest
  binary and reports from inside the guest, with the helpers of LAVA's overlay, one
  `lava-test-set` per binary and one `lava-test-case` per KTAP test, then orch's own checks
  (a program without KTAP: kselftest's exit-code verdict; `exit_status`, `timeout`,
  `no_ktap`; `dmesg_clean` from the kernel log since a marker), with the names and verdicts
  orch's SSH path gives (testing/testrun.py). LAVA has no `error` result: orch's errors are
  `unknown`, read back as errors.
- The binary's output is framed on the console (`FRAME` lines), so orch can read a binary's
  own output, exit status and time back from the log, and the part of it written before a
  kernel crash.
"""

from __future__ import annotations

from orchestrator.kernel import problems

PROMPT = "orch-lava# "
LOGIN_PROMPT = "login:"
TEST_SCRIPT_PATH = "/opt/orch/lava-tests"
FRAME = "orch-lava:"  # orch-lava: begin NAME / stderr NAME / end NAME rc=N secs=S

# The console part of INIT (rootfs.py): a login prompt (any user), then a shell, again.
# While the prompt waits, the kernel's messages stay off the console (dmesg keeps them):
# a late boot printk landing inside "login:" ("orch-guest login[ 1.16] input: ...\n: ")
# kept LAVA's auto_login from ever matching it (login-action timed out).
CONSOLE = r"""
case " $(cat /proc/cmdline) " in
  *" orch.lava=1 "*)
    while :; do
      read -r lvl _ < /proc/sys/kernel/printk
      echo 1 > /proc/sys/kernel/printk
      printf '%s login: ' "$(hostname)"
      read -r _user || sleep 1
      echo "$lvl" > /proc/sys/kernel/printk
      PS1='@PROMPT@' HOME=/root setsid cttyhack /bin/sh
    done ;;
esac
""".replace("@PROMPT@", PROMPT)

# KTAP on stdin -> "CASE RESULT" lines, as testing/testrun.py's run_binary names and judges
# them (flat KTAP and one level of indented subtests, named PARENT.SUB).
KTAP_AWK = r"""
function trim(s) { sub(/^[ \t\r]+/, "", s); sub(/[ \t\r]+$/, "", s); return s }
function emit(n, r) { print n " " r; if (r == "fail") failed = 1; ncases++ }
function parse(line, top,   ok, num, rest, h, nm, d, w, st) {
  ok = (line ~ /^ok/)
  sub(/^(not ok|ok)[ \t]+/, "", line)
  num = line; sub(/[^0-9].*$/, "", num)
  rest = substr(line, length(num) + 1)
  sub(/^[ \t]*(-[ \t]*)?/, "", rest)
  h = index(rest, "#")
  if (h) { nm = substr(rest, 1, h - 1); d = substr(rest, h + 1) } else { nm = rest; d = "" }
  nm = trim(nm); gsub(/[ \t]+/, "_", nm); if (nm == "") nm = "test_" num
  d = toupper(trim(d)); split(d, w, /[^A-Z]/)
  if (w[1] == "SKIP") st = "skip"
  else if (w[1] == "TODO" || w[1] == "XFAIL") st = ok ? "pass" : "skip"
  else if (w[1] == "XPASS") st = "fail"
  else if (w[1] == "TIMEOUT" || w[1] == "ERROR") st = "unknown"
  else st = ok ? "pass" : "fail"
  if (!top) { subs[++nsub] = nm " " st; return }
  seen[num + 0] = 1; emit(nm, st)
  for (i = 1; i <= nsub; i++) { split(subs[i], w, " "); emit(nm "." w[1], w[2]) }
  nsub = 0
}
/^[ \t]*K?TAP version [0-9]+/ { ktap = 1; next }
/^1\.\.[0-9]+/ && plan == "" { ktap = 1; plan = $0; sub(/^1\.\./, "", plan); plan = plan + 0
  if (plan == 0) { skipall = 1 }; next }
/^(not ok|ok)[ \t]+[0-9]+/ { ktap = 1; parse($0, 1); next }
/^[ \t]+(not ok|ok)[ \t]+[0-9]+/ { l = $0; sub(/^[ \t]+/, "", l); parse(l, 0); next }
END {
  if (ktap) {
    if (skipall && ncases == 0) emit(name, "skip")
    for (n = 1; n <= plan; n++) if (!(n in seen)) emit("test_" n, "unknown")
    if (hung) emit("timeout", "unknown")
    else if (plan == "" && ncases == 0) emit(name, "unknown")
    else if (rc != 0 && rc != 2 && rc != 4 && !failed) emit("exit_status", "unknown")
  } else if (hung) emit("timeout", "unknown")
  else {
    r = "fail"
    if (rc == 0 || rc == 2) r = "pass"; else if (rc == 4) r = "skip"
    else if (rc == 126 || rc == 127 || rc < 0) r = "unknown"
    emit(name, r)
  }
}
"""

# The kernel-log lines that fail a binary's dmesg_clean (kernel/problems.py's table, one
# extended regular expression): grep -E runs it in the LAVA guest, as testing/testrun.py
# does over SSH.
DMESG_PROBLEMS = problems.ERE

TEST_SCRIPT = r"""#!/bin/sh
# orch's LAVA test: lava-tests DIR TIMEOUT BINARY... (see orchestrator/targets/lava/guest.py)
dir=$1; limit=$2; shift 2
problems='@PROBLEMS@'
cd /tmp
for name in "$@"; do
  lava-test-set start "$name"
  mark="orch: begin $name $(cat /proc/sys/kernel/random/uuid 2>/dev/null | cut -c1-12)"
  echo "$mark" > /dev/kmsg
  echo "@FRAME@ begin $name"
  start=$(cut -d' ' -f1 /proc/uptime)
  { timeout -s KILL "$limit" "$dir/$name" 2>"/tmp/$name.err"; echo $? > "/tmp/$name.rc"; } \
    | tee "/tmp/$name.out"
  rc=$(cat "/tmp/$name.rc")
  secs=$(awk -v s="$start" '{ printf "%.2f", $1 - s }' /proc/uptime)
  echo "@FRAME@ stderr $name"
  cat "/tmp/$name.err"
  echo "@FRAME@ end $name rc=$rc secs=$secs"
  hung=$(awk -v r="$rc" -v s="$secs" -v l="$limit" 'BEGIN { print (r == 137 && s >= l - 1) }')
  awk -v name="$name" -v rc="$rc" -v hung="$hung" '@AWK@' "/tmp/$name.out" \
    | while read -r case result; do lava-test-case "$case" --result "$result"; done
  dmesg | awk -v m="$mark" 'f { print } index($0, m) { f = 1 }' > "/tmp/$name.dmesg"
  if grep -Eq "$problems" "/tmp/$name.dmesg"; then
    echo "@FRAME@ dmesg $name: $(grep -E -m1 "$problems" "/tmp/$name.dmesg")"
    lava-test-case dmesg_clean --result fail
  else
    lava-test-case dmesg_clean --result pass
  fi
  lava-test-set stop "$name"
done
""".replace("@PROBLEMS@", DMESG_PROBLEMS).replace("@FRAME@", FRAME) \
    .replace("@AWK@", KTAP_AWK.strip().replace("'", "'\\''"))
