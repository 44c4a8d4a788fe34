#!/usr/bin/env bash
# tools/bench_scaling renders a fixed run (bench/testdata/scaling.json) and
# the table says what the runs say: the median of each cell per wall second
# and per CPU-second, pollux over tokio for both, min-max; a cell whose
# pollux runs all failed reads "failed" and the failures are listed; a run
# without CPU time leaves the per-CPU median and its ratio out ("-").
# Arguments: tools/bench_scaling, the run.
set -euo pipefail
tool=$1 run=$2
json=${TEST_TMPDIR:-$(mktemp -d)}/scaling.json
cp "$run" "$json"
python3 "$tool" report "$json"
out=${json%.json}.md

fail=0
expect() {  # a line that must be in the table, as a fixed string
  grep -qF -- "$1" "$out" || { echo "FAIL: missing: $1"; fail=1; }
}
# spawn_many, 1 worker: pollux 100/300/200 (median 200; CPU 120), tokio 100
# (CPU 60): 2.00x both ways.
expect "| 1 | 200 (120) | 100 (60) | 2.00x (2.00x) | 100-300 | 100-100 |"
expect "| 16 | failed | | | | |"
expect "Failed runs: 3 (spawn_many pollux w=16: timeout;"
# yield_many: the median, not the mean (tokio 2M, 2M, 3M -> 2M).
expect "| 1 | 1.00M (1.00M) | 2.00M (2.00M) | 0.50x (0.50x) | 1.00M-1.00M | 2.00M-3.00M |"
expect "| 16 | 8.00M (4.00M) | 4.00M (1.00M) | 2.00x (4.00x) | 8.00M-8.00M | 4.00M-4.00M |"
# http_min, 1 worker: one pollux run without CPU time.
expect "| 1 | 1.00k (-) | 800 (800) | 1.25x (-) | 1.00k-1.20k | 800-800 |"
expect "### http_min (requests per second; per CPU-second in brackets)"
expect "wrk -t4 -c256 for 5 s"
if [ "$fail" -ne 0 ]; then cat "$out"; exit 1; fi
echo "bench_scaling report: every expected row present"
