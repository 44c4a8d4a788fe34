#!/usr/bin/env bash
# Runs every tutorial program and compares its output with what
# docs/TUTORIAL.md shows.
set -u
dir=examples/tutorial
fail=0
expect() {
  local prog=$1 want=$2 got
  got=$("$dir/$prog" 2>&1)
  if [ "$got" = "$want" ]; then echo "ok: $prog"; else
    echo "FAIL: $prog"; echo "--- want"; echo "$want"; echo "--- got"; echo "$got"; fail=1; fi
}
countdown=$'countdown: 3\ncountdown: 2\ncountdown: 1\nresult: 42 (rc=0)'
expect 01_hand_future "$countdown"
expect 02_async_fn "$countdown"
expect 03_spawn_join $'task 2 finished\ntask 1 finished\ntask 0 finished\ntask 0 returned 0\ntask 1 returned 10\ntask 2 returned 20'
expect 04_channel $'sent 1\nsent 2\nsent 3\nsent 4\nsent 5\nsum 15'
expect 05_lines $'line: one\nline: two\nquiet for 100 ms, still waiting\nline: three\nend of stream'
exit $fail
