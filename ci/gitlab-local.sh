#!/bin/bash
# Run this repository's GitLab pipeline (.gitlab-ci.yml -> ci/gitlab-ci.yml -> the child
# pipeline of the plan) on this machine with gitlab-ci-local, as shell jobs, each job in its
# own copy of the repository (--shell-isolation), as a runner would.
#
#   ci/gitlab-local.sh DIR [VAR=VALUE...]
#
# DIR receives the tracked files as they are in the working tree (committed into a git
# repository of its own there), gitlab-ci-local's state (.gitlab-ci-local/: job copies,
# artifacts, the pipeline cache) and the log (pipeline.log). VAR=VALUE sets a CI variable
# for every job, the child pipeline's too, for example:
#   ORCH_PLAN=configs/plans/smoke.yaml   a smaller plan
#   ORCH_CACHE=$HOME/.cache/orch         this machine's orch cache instead of the
#                                        pipeline's own (its kernels become store hits)
# Running it again on the same DIR starts from the pipeline cache the last run saved.
#
# Exit: 0 every job passed, 1 a job failed, 2 usage, 3 gitlab-ci-local itself failed.
# (gitlab-ci-local 4.60.0 prints a failed child-pipeline job but exits 0: the summary it
# prints is read here.) Needs `ci/setup.sh --ci-tools`.
set -uo pipefail
SRC="$(cd "$(dirname "$0")/.." && pwd)"
TOOLS="${ORCH_CI_TOOLS:-$HOME/.cache/orch-ci-tools}"
GCL="$TOOLS/node_modules/.bin/gitlab-ci-local"

if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then
  sed -n '6p' "$0" | sed 's/^# *//' >&2
  exit 2
fi
DIR="$1"
shift
if [ ! -x "$GCL" ]; then
  echo "ci/gitlab-local.sh: $GCL is missing (run ci/setup.sh --ci-tools)" >&2
  exit 2
fi
for v in "$@"; do
  case "$v" in
    [A-Za-z_]*=*) ;;
    *) echo "ci/gitlab-local.sh: '$v' is not VAR=VALUE" >&2; exit 2 ;;
  esac
done

mkdir -p "$DIR" && DIR="$(cd "$DIR" && pwd)"
# The tracked files as they are now (edits included), like --shell-isolation copies them.
git -C "$SRC" ls-files -z | rsync -a --from0 --ignore-missing-args --files-from=- "$SRC/" "$DIR/"
g=(git -C "$DIR" -c user.name=orch -c user.email=orch@localhost)
[ -d "$DIR/.git" ] || "${g[@]}" init -q -b main
printf '%s\n' /.gitlab-ci-local/ /pipeline.log /.gitlab-ci-local-variables.yml \
  > "$DIR/.git/info/exclude"
"${g[@]}" add -A .
"${g[@]}" commit -q --allow-empty -m "pipeline $(date -u +%FT%TZ)"

# Project variables: gitlab-ci-local hands them to the child pipeline as well. The explicit
# type keeps a value that starts with / from becoming a file variable.
{
  for v in "$@"; do
    name="${v%%=*}" value="${v#*=}"
    printf '%s:\n  type: variable\n  values:\n    "*": %s\n' "$name" \
      "$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$value")"
  done
} > "$DIR/.gitlab-ci-local-variables.yml"

# A fresh pipeline: last run's job directories and artifacts go, its cache stays (what a
# runner starting on a clean machine has). The job directories hold kernel trees, and
# gitlab-ci-local 4.60 walks the project directory at start: left there, it runs out of
# JavaScript heap before the first job.
rm -rf "$DIR/.gitlab-ci-local/builds" "$DIR/.gitlab-ci-local/artifacts" \
  "$DIR/.gitlab-ci-local/output"
start=$(date +%s)
(cd "$DIR" && "$GCL" --force-shell-executor --shell-isolation --no-artifacts-to-source) \
  > "$DIR/pipeline.log" 2>&1
rc=$?
end=$(date +%s)
# The per-job verdicts gitlab-ci-local prints at the end (child jobs as "[trigger] -> job").
summary=$(sed 's/\x1b\[[0-9;]*m//g' "$DIR/pipeline.log" | grep -E '^ (PASS|FAIL|WARN) ' || true)
echo "$summary"
echo "pipeline: $((end - start)) s wall, gitlab-ci-local exit $rc, log $DIR/pipeline.log"
if grep -q '^ FAIL ' <<<"$summary"; then
  exit 1
fi
if [ "$rc" -ne 0 ] || [ -z "$summary" ]; then
  tail -20 "$DIR/pipeline.log" >&2
  exit 3
fi
exit 0
