#!/usr/bin/env bash
# Runs examples/run as a user would: numbered lines, exit codes passed on,
# signals as 128 + N, the time limit killing the command, output streamed
# while the command still runs, start failures and usage errors.
set -uo pipefail
run=$1
tmp=${TEST_TMPDIR:-/tmp}
fail=0
check() { if ! eval "$1"; then echo "FAIL: $2"; fail=1; else echo "ok: $2"; fi; }

out=$("$run" -- sh -c 'echo first; echo second; exit 3')
rc=$?
check '[ "$out" = $'"'"'1: first\n2: second'"'"' ]' "lines are numbered (got: $out)"
check '[ "$rc" -eq 3 ]' "the exit code is passed on (got $rc)"

out=$("$run" printf 'no\nnewline')
check '[ "$out" = $'"'"'1: no\n2: newline'"'"' ]' "a last line without newline (got: $out)"

long=$(head -c 10000 /dev/zero | tr '\0' x)
out=$("$run" -- sh -c "echo $long; echo short")
check '[ "$out" = "1: $long"$'"'"'\n2: short'"'"' ]' "a line longer than the buffer stays one line"

"$run" -- sh -c 'kill -TERM $$' >/dev/null
rc=$?
check '[ "$rc" -eq 143 ]' "killed by SIGTERM: 128 + 15 (got $rc)"

# The time limit: the command (which would sleep 30 s) is killed.
start=$(date +%s)
"$run" -t 0.5 -- sh -c "echo \$\$ > '$tmp/pid'; echo started; exec sleep 30" >"$tmp/out" 2>"$tmp/err"
rc=$?
secs=$(( $(date +%s) - start ))
check '[ "$rc" -eq 124 ]' "out of time: 124 (got $rc)"
check '[ "$secs" -lt 20 ]' "run did not wait for the command (${secs} s)"
check 'grep -q "timed out" "$tmp/err"' "says it timed out"
check '[ "$(cat "$tmp/out")" = "1: started" ]' "printed what came before the limit"
check '! kill -0 "$(cat "$tmp/pid")" 2>/dev/null' "the command is gone"

# Streaming: the first line is out while the command still sleeps.
"$run" -- sh -c 'echo early; sleep 3; echo late' >"$tmp/stream" &
pid=$!
for _ in $(seq 1 100); do
  grep -q early "$tmp/stream" 2>/dev/null && break
  sleep 0.05
done
check 'grep -q "1: early" "$tmp/stream"' "the first line arrives before the command ends"
check '! grep -q late "$tmp/stream"' "the second has not come yet"
wait "$pid"
check 'grep -q "2: late" "$tmp/stream"' "then the second line"

err=$("$run" /nonexistent/program 2>&1 >/dev/null)
rc=$?
check '[ "$rc" -eq 127 ]' "a missing program: 127 (got $rc)"
check '[[ "$err" == *"no such file"* ]]' "and why (got: $err)"

for args in "" "-t" "-t abc -- true" "-t 0 -- true" "--"; do
  # shellcheck disable=SC2086
  "$run" $args >/dev/null 2>&1
  rc=$?
  check '[ "$rc" -eq 2 ]' "usage error '$args' exits 2 (got $rc)"
done

exit $fail
