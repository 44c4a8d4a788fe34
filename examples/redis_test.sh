#!/usr/bin/env bash
# Drives examples/redis with the real redis-cli and redis-benchmark (Debian's
# redis-tools): values, expiry, errors, malformed input, and a 100,000
# request benchmark with 50 clients that must finish without errors.
set -u
redis=$1
fail=0
check() { if [ "$2" = "$3" ]; then echo "ok: $1"; else echo "FAIL: $1: want [$3] got [$2]"; fail=1; fi; }
if ! command -v redis-cli >/dev/null || ! command -v redis-benchmark >/dev/null; then
  echo "FAIL: redis-cli / redis-benchmark missing (tools/setup installs redis-tools)"; exit 1
fi

port=$(( 10000 + RANDOM % 22000 ))  # below the ephemeral range (32768+)
"$redis" "$port" 127.0.0.1 2>"${TEST_TMPDIR:-/tmp}/redis.err" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
for _ in $(seq 1 100); do redis-cli -p "$port" PING >/dev/null 2>&1 && break; sleep 0.05; done
if ! kill -0 "$pid" 2>/dev/null; then
  echo "FAIL: the server exited at start:"; cat "${TEST_TMPDIR:-/tmp}/redis.err"; exit 1
fi
cli() { redis-cli -p "$port" "$@" 2>&1; }

check "PING" "$(cli PING)" "PONG"
check "ECHO" "$(cli ECHO 'hello world')" "hello world"
check "SET" "$(cli SET k1 v1)" "OK"
check "GET" "$(cli GET k1)" "v1"
check "GET missing" "$(cli GET nope)" ""
check "EXISTS" "$(cli EXISTS k1 nope)" "1"
check "INCR new" "$(cli INCR counter)" "1"
check "INCR again" "$(cli INCR counter)" "2"
check "INCR not a number" "$(cli INCR k1)" "ERR value is not an integer or out of range"
check "MSET" "$(cli MSET a 1 b 2)" "OK"
check "MGET" "$(cli MGET a b nope | tr '\n' ,)" "1,2,,"
check "DEL" "$(cli DEL a b nope)" "2"
check "TTL no expiry" "$(cli TTL k1)" "-1"
check "TTL missing" "$(cli TTL nope)" "-2"
check "SET EX" "$(cli SET e1 x EX 100)" "OK"
check "TTL with expiry" "$(cli TTL e1)" "100"
check "EXPIRE" "$(cli EXPIRE k1 100)" "1"
check "SET PX" "$(cli SET short x PX 100)" "OK"
sleep 0.3
check "PX expired" "$(cli GET short)" ""
check "EXISTS expired" "$(cli EXISTS short)" "0"
check "unknown command" "$(cli FLY away)" "ERR unknown command 'FLY'"
check "SET bad expire" "$(cli SET k x EX zero)" "ERR invalid expire time in 'set' command"

# Malformed input closes that connection only.
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf '*2\r\n$3\r\nGET\r\n$x\r\n' >&3
read -r -t 5 reply <&3
exec 3>&-
check "malformed input gets a protocol error" "${reply%$'\r'}" "-ERR Protocol error"
check "server still serves others" "$(cli PING)" "PONG"
# QUIT closes after +OK.
check "QUIT" "$(cli QUIT)" "OK"

# The benchmark: 100,000 requests per test, 50 clients, no errors.
out=$(redis-benchmark -p "$port" -n 100000 -c 50 -t ping,set,get,incr,mset -q 2>&1)
echo "$out" | tr '\r' '\n' | grep -E 'requests per second' | sed 's/^/    /'
lines=$(echo "$out" | tr '\r' '\n' | grep -c 'requests per second')
check "redis-benchmark completed 6 tests" "$lines" "6"
if echo "$out" | grep -qiE 'error|refused|reset'; then echo "FAIL: benchmark reported errors"; echo "$out"; fail=1; fi
# Pipelined too.
out=$(redis-benchmark -p "$port" -n 100000 -c 50 -P 16 -t set,get -q 2>&1)
lines=$(echo "$out" | tr '\r' '\n' | grep -c 'requests per second')
check "pipelined redis-benchmark completed" "$lines" "2"
check "server alive after the benchmark" "$(cli PING)" "PONG"
exit $fail
