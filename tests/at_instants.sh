#!/usr/bin/env bash
# The clock-sensitive tests (marker `clock`) again at each chosen instant (YOUHU_TEST_NOW), CLOCK_JOBS
# runs at a time: each pytest process has its own database (youhu_test_<pid>) and its own topics,
# so runs do not see each other. Prints every run's summary in order; fails if any run failed.
set -uo pipefail
cd "$(dirname "$0")/.."
jobs="${CLOCK_JOBS:-2}"
dir=.run/clock
rm -rf "$dir" && mkdir -p "$dir"
i=0
for t in "$@"; do
  i=$((i + 1))
  echo "$i $t"
done | xargs -P "$jobs" -L 1 bash -c '
  YOUHU_TEST_NOW="$1" .venv/bin/python -m pytest -m clock -q -p no:cacheprovider >"'"$dir"'/$0.log" 2>&1
  echo $? >"'"$dir"'/$0.rc"'
failed=0
i=0
for t in "$@"; do
  i=$((i + 1))
  rc="$(cat "$dir/$i.rc" 2>/dev/null || echo 1)"
  echo "== clock-sensitive tests at $t =="
  if [ "$rc" = 0 ]; then tail -n 1 "$dir/$i.log"; else cat "$dir/$i.log"; failed=1; fi
done
exit "$failed"
