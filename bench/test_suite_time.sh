#!/usr/bin/env bash
# Wall-clock time of the README's test command on a fresh clone, for comparing commits in
# one sitting (run them back to back; the machine's load matters more than anything):
#
#   bench/test_suite_time.sh f111d8d HEAD          # each commit: clone, npm ci, time it
#
# For each commit: a clone of this repository in a temp dir, `npm ci` in tests/js if it
# exists (not timed: .ci/run does it before the README command), then the README's
# command, timed, from the venv's creation to pytest's end. Prints one line per commit
# (seconds, pytest's summary line, the load average at the start and the end); the
# clones and logs stay in the printed directory.
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="$(mktemp -d -t jobctl-suite-time-XXXX)"
echo "clones and logs: $out"
for rev in "$@"; do
  sha="$(git -C "$repo" rev-parse --short "$rev")" || exit 2
  dir="$out/$sha"
  git clone -q "$repo" "$dir" && git -C "$dir" checkout -q "$sha" || exit 2
  if [ -f "$dir/tests/js/package-lock.json" ]; then
    (cd "$dir/tests/js" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
  load_start="$(cut -d' ' -f1-3 /proc/loadavg)"
  start=$(date +%s.%N)
  (cd "$dir" && python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' \
    && .venv/bin/pytest) >"$dir.log" 2>&1
  rc=$?
  end=$(date +%s.%N)
  summary="$(grep -E '^=+ .*(passed|failed).* in ' "$dir.log" | tail -1 | tr -d '=')"
  printf '%s  %6.0f s  rc=%s  load %s -> %s  %s\n' "$sha" "$(echo "$end - $start" | bc)" \
    "$rc" "$load_start" "$(cut -d' ' -f1-3 /proc/loadavg)" "$summary"
done
