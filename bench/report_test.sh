#!/usr/bin/env bash
# tools/bench_report renders a fixed run (bench/testdata/run.json) and the
# report says what the numbers say: medians with min-max, the ratio to the
# right tokio runtime per executor, each target met, short or missing, the
# chart written, no row that restates a constant of the build.
# Arguments: tools/bench_report, bench/targets.json, the run.
set -euo pipefail
report=$1 targets=$2 run=$3
out=${TEST_TMPDIR:-$(mktemp -d)}/report.md
python3 "$report" "$run" --out "$out" --targets "$targets"

fail=0
expect() {  # a line that must be in the report, as a fixed string
  grep -qF -- "$1" "$out" || { echo "FAIL: missing: $1"; fail=1; }
}
refuse() {
  if grep -qF -- "$1" "$out"; then echo "FAIL: unexpected: $1"; fail=1; fi
}
# Median 330 of 300..360 CPU-s; fifo faces current_thread (330 / 200),
# work stealing multi_thread (100 / 125).
expect "| spawn_many | pollux default | 310 (300-320) | 330 | 0.5 | 0.00 | 1000 KiB | 1.55 / 1.65 (vs tokio ct) |"
expect "| spawn_many | pollux executor=work_stealing | 100 (100-100) | 100 | - | - | - KiB | 1.00 / 0.80 (vs tokio mt) |"
# A ratio target is met only outside the noise. Runs that cannot be paired
# by repetition (three of pollux's, one of tokio's) are judged by pollux's
# slowest run over the peer's fastest (300 / 200), which reaches the goal.
expect "| spawn_many: fifo vs tokio current_thread | 1.65x (1.50-1.80; unpaired) | >= 1.50x | met |"
# yield_many: the medians (200 / 120 = 1.67x) reach 1.5x and so does each
# repetition's pair, in the order the runs were recorded (a JSON from
# before tools/bench wrote "rep"): 150 / 100, 200 / 120, 250 / 140. Both
# sped up together; pollux's slowest over tokio's fastest (150 / 140 =
# 1.07x) compares two repetitions, and does not decide.
expect "| yield_many: fifo vs tokio current_thread | 1.67x (1.07-2.50; paired 1.50-1.79) | >= 1.50x | met |"
# chained_spawn: the medians (300 / 105) reach the goal but in repetition 1
# pollux alone was slow (150 / 110 = 1.36x): within noise, not met.
expect "| chained_spawn: fifo vs tokio current_thread | 2.86x (1.36-3.10; paired 1.36-3.00) | >= 1.50x | within noise |"
# mpsc_contended: pollux's repetition 1 failed, so nothing pairs (the
# "rep" of each run says which is which) and the unpaired rule decides.
expect "| mpsc_contended: fifo vs tokio current_thread | 2.10x (2.00-2.20; unpaired) | >= 1.50x | met |"
expect "| spawn_many: work_stealing (2 workers) vs tokio multi_thread | 0.80x (0.80-0.80; unpaired) | >= 1.30x | **short** |"
expect "| ping_pong: fifo vs tokio current_thread | missing | >= 1.50x | n/a |"
expect "| million_timers: pollux vs libuv | 2.00x (2.00-2.00; unpaired) | >= 1.00x | met |"
expect "| million_timers: bytes allocated per sleeping task (task, frame, timer) | 200 B | <= 150 B | **short** |"
expect "| syscalls per HTTP request: io_uring completion engine | 0.20 | <= 0.5 | met |"
expect "| million_timers: peak RSS, pollux vs libuv | 900 vs 1000 KiB | <= libuv | met |"
expect "| http per server CPU-s: fifo vs tokio ct | 1.25x (1.25-1.25; unpaired) | >= 1.15x | met |"
expect "| callgrind instructions per task: pollux vs tokio | 500 vs 900 | < tokio ct | met |"
# A server run without CPU time (null) shows as unmeasured, not as a crash.
expect "| http | pollux executor=work_stealing | 5 (5-5) | - |  |  |  |"
# Latency: medians of the runs' percentiles, each in the unit that suits
# it; a run without them (the redis-server peer here) leaves the cell empty.
# CPU per request, user + kernel: 0.5 s and 1.5 s over 5000 requests; a
# run without the split (reports before it) leaves the cell empty.
expect "| http | pollux default | 2.50k (2.50k-2.50k) | 2.50k | 1.25 (vs tokio ct) | 100.00 + 300.00 | 420 µs / 2.50 ms |"
# Redis compares with redis-server, not tokio (the server's "reference"),
# per CPU-second: 60k / 50k on -P 1 meets 1.1x, 300k / 300k on -P 16 does not.
expect "| redis_p1 | pollux default | 30.00k (30.00k-30.00k) | 60.00k | 1.20 (vs redis-server) |  | 95 µs / 1.25 s |"
expect "| redis_p1 | redis-server | 25.00k (25.00k-25.00k) | 50.00k |  |  |  |"
expect "| redis_p1: Redis SET+GET+INCR per server CPU-s, examples/redis vs redis-server 7.0 | 1.20x (1.20-1.20; unpaired) | >= 1.10x | met |"
expect "| redis_p16: Redis SET+GET+INCR per server CPU-s, examples/redis vs redis-server 7.0 | 1.00x (1.00-1.00; unpaired) | >= 1.10x | **short** |"
refuse "redis_p1 default"  # no bar for it in the chart of ratios to tokio
grep -qF 'redis_p1 default' "${out%.md}.svg" && { echo "FAIL: redis in the tokio chart"; fail=1; }
# Each benchmark's shape next to tokio's original (targets.json "shape").
expect "| benchmark | original | pollux | tokio peer | same work? |"
expect "| spawn_many | rt_multi_threaded.rs spawn_many: 10,000 tokio::spawn from inside block_on"
expect "| million_timers | no tokio original: libuv's benchmark"
refuse "| http | no tokio original"  # a server without a shape has no row
expect "- **Note:** libuv peers unavailable (a note is shown)"
expect "![pollux / tokio ratios](report.svg)"
# The Targets table judges what a run measured, never a constant of the
# build (the 48-byte task header is a _Static_assert, not a target).
targets=$(sed -n '/^## Targets/,/^## /p' "$out")
for constant in "task header" "px_timer_node"; do
  if grep -qF -- "$constant" <<<"$targets"; then
    echo "FAIL: a Targets row restates a constant: $constant"; fail=1
  fi
done
# Bytes per sleeping task, by component: million_timers' printed sizes
# split its allocator's bytes per task (200 = 64 + the 136-byte frame).
expect "| component | pollux default | libuv |"
expect "| task header and timer storage (allocated per task minus the frame) | 64 | - |"
expect "| frame: the task's own fields (the latch pointer, in older runs) | 8 | - |"
expect "| px_timer_entry beyond its node (runtime, deadline, in older runs) | 16 | - |"
expect "| px_timer_node: links, tick, the waker (and slot, flags, in older runs) | 48 | - |"
expect "| **allocated per sleeping task** | 200 | 152 |"
expect "| peak RSS per sleeping task | 922 | 1024 |"
# Instructions per HTTP request under callgrind, and its target.
expect "| pollux default | 2000 | 5000 |"
expect "| 30.00 | \`conn__poll (http_min)\` |"
expect "| callgrind instructions per HTTP request (http row): pollux vs tokio | 2000 vs 1900 | < tokio ct | **short** |"
# The machine line carries what a system call costs there.
expect "A system call (getppid, bench/syscall_cost) costs 1200 ns here: the read and the write of a request, the same for every runtime that makes them, take 2.4 µs of its CPU time before any work."
# perf's split of a server's CPU per request: user space, the system calls'
# returns and the kernel, their sum beside /proc's, the top functions (a |
# in a name escaped); a server perf could not profile says why.
expect "| http | pollux default | 1.00 µs | 2.00 µs | 7.00 µs | 10.00 µs (11.00 µs) | \`conn__poll (http_min)\` 5.0, \`a\\|b (http_min)\` 4.0 |"
expect "| http | tokio ct | - | - | - | - | perf record: no access |"
# Scaling on paper (bench/scaling.md) is carried into every report.
expect "## Work stealing: how its cost grows with workers"
[ -s "${out%.md}.svg" ] || { echo "FAIL: no chart"; fail=1; }
grep -q '<svg' "${out%.md}.svg" || { echo "FAIL: the chart is not SVG"; fail=1; }
# A run whose pairs ran side by side (tools/bench's RUN_ORDER, recorded as
# "run_order") is judged by its pairs: the median of the repetitions' own
# ratios, met when each reaches the goal. yield_many's 1.50, 1.67, 1.79
# all do; chained_spawn's 3.00, 1.36, 2.95 have a median that does.
paired=${out%.md}-paired.json
python3 - "$run" "$paired" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))
run["run_order"] = ["pollux default", "tokio ct"]
# ping_pong: eight repetitions, their ratios 1.40 to 1.90 (pollux 140..190,
# tokio 100 each). The sign test bounds the median by the 2nd smallest of
# 8 (1.55 >= 1.5): met, though one pair is below the goal.
for label, vals in (("pollux default", [140, 155, 160, 160, 170, 170, 180,
                                        190]),
                    ("tokio ct", [100] * 8)):
    run["micro"].append({"bench": "ping_pong", "contender": label, "runs": [
        {"name": "ping_pong", "ops_per_s": str(v), "ops_per_cpu_s": str(v),
         "rep": i} for i, v in enumerate(vals)]})
# io_uring's calls come in batches that vary with timing: a longer run can
# make fewer than a shorter one, and their difference goes below zero.
run["strace"]["pollux default"] = {"calls_per_req": -0.03,
                                   "whole_run_calls_per_req": 0.18,
                                   "top": "futex 0.00"}
json.dump(run, open(sys.argv[2], "w"))
PY
python3 "$report" "$paired" --out "${paired%.json}.md" --targets "$2"
out=${paired%.json}.md
expect "| yield_many: fifo vs tokio current_thread | 1.67x paired (1.50-1.79; medians' 1.67x, 1.07-2.50) | >= 1.50x | met |"
expect "| chained_spawn: fifo vs tokio current_thread | 2.95x paired (1.36-3.00; medians' 2.86x, 1.36-3.10) | >= 1.50x | within noise |"
# Runs that cannot be paired keep the unpaired rule.
expect "| mpsc_contended: fifo vs tokio current_thread | 2.10x (2.00-2.20; unpaired) | >= 1.50x | met |"
expect "order: pollux default, tokio ct, then the rest"
expect "| ping_pong: fifo vs tokio current_thread | 1.65x paired (1.40-1.90; bound 1.55, the 2nd smallest of 8; medians' 1.65x, 1.40-1.90) | >= 1.50x | met |"
# A difference below zero says nothing: the whole run's figure (start-up
# included, an upper bound) stands in for it, in the target and the table.
expect "| syscalls per HTTP request: io_uring completion engine | 0.18 (whole run; the runs' difference: -0.03) | <= 0.5 | met |"
expect "| pollux default | 0.180 (whole run; the runs' difference: -0.03) | 0.180 | futex 0.00 |"
# Memory per idle connection: the median of three runs, with its min-max
# and that run's RSS; a contender that could not be measured says why.
expect "## Memory per idle connection (http)"
expect "| pollux default | 5000 | 10,240 (9,216-11,264) | 7,000 / 57,000 KiB |"
expect "| libuv | - | failed: server did not start | |"
[ "$fail" = 0 ] && echo "report ok"
exit "$fail"
