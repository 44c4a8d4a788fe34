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

# shellcheck source=tests/serve_lib.sh
source "$(dirname "$0")/../tests/serve_lib.sh"
start_server "${TEST_TMPDIR:-/tmp}/redis.err" "$redis" PORT 127.0.0.1
if [ -z "$pid" ]; then echo "FAIL: the server did not start"; exit 1; fi
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
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
# Values shorter than 24 bytes live in the key's entry, longer ones in an
# allocation of their own: each way and back, and SET over another type.
v23=$(printf 'a%.0s' $(seq 1 23)); v24=$(printf 'b%.0s' $(seq 1 24))
check "a 23-byte value" "$(cli SET v "$v23"; cli GET v)" "OK
$v23"
check "then a 24-byte one" "$(cli SET v "$v24"; cli GET v)" "OK
$v24"
check "then a short one again" "$(cli SET v 41; cli INCR v; cli GET v)" "OK
42
42"
long_key=$(printf 'k%.0s' $(seq 1 300))
check "a 300-byte key" "$(cli SET "$long_key" x; cli GET "$long_key")" "OK
x"
check "SET over a list" "$(cli RPUSH lst a b; cli SET lst s; cli GET lst)" "2
OK
s"

# Malformed input closes that connection only.
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf '*2\r\n$3\r\nGET\r\n$x\r\n' >&3
read -r -t 5 reply <&3
exec 3>&-
check "malformed input gets a protocol error" "${reply%$'\r'}" "-ERR Protocol error: invalid bulk length"
check "server still serves others" "$(cli PING)" "PONG"
# QUIT closes after +OK.
check "QUIT" "$(cli QUIT)" "OK"

# Hostile numbers: each gets Redis's error, none crashes (UBSan build too).
raw() {  # sends raw bytes on a fresh connection, prints the first reply line
  exec 4<>"/dev/tcp/127.0.0.1/$port"
  printf "$1" >&4
  local r; read -r -t 5 r <&4; exec 4>&-
  echo "${r%$'\r'}"
}
check "multibulk count overflow" "$(raw '*9999999999999999999\r\n')" "-ERR Protocol error: invalid multibulk length"
check "bulk length \$-" "$(raw '*1\r\n$-\r\n')" "-ERR Protocol error: invalid bulk length"
check "bulk length too big" "$(raw '*1\r\n$99999999999\r\n')" "-ERR Protocol error: invalid bulk length"
check "bulk length 0-padded" "$(raw '*1\r\n$04\r\nPING\r\n')" "-ERR Protocol error: invalid bulk length"
check "multibulk count of 18 digits" "$(raw '*100000000000000000\r\n')" "-ERR Protocol error: invalid multibulk length"
# A length split across reads, and one whose \r\n is: both wait for the rest.
exec 4<>"/dev/tcp/127.0.0.1/$port"
printf '*1\r\n$' >&4; sleep 0.2; printf '4\r' >&4; sleep 0.2
printf '\nPING\r\n' >&4
read -r -t 5 reply <&4; exec 4>&-
check "a length split across reads" "${reply%$'\r'}" "+PONG"
cli SET big 9223372036854775807 >/dev/null
check "INCR at INT64_MAX" "$(cli INCR big)" "ERR increment or decrement would overflow"
cli SET sp " 5" >/dev/null
check "INCR of ' 5'" "$(cli INCR sp)" "ERR value is not an integer or out of range"
# As real Redis 7.0: 18446744074 s is about 584 years: fine, and the key stays.
check "SET EX past 2^64 nanoseconds" "$(cli SET k v EX 18446744074)" "OK"
check "the key does not vanish" "$(cli GET k)" "v"
check "its TTL" "$(cli TTL k)" "18446744074"
check "SET EX overflowing ms" "$(cli SET k v EX 9223372036854775)" "ERR invalid expire time in 'set' command"
check "SET EX large but valid" "$(cli SET kbig v EX 9000000000)" "OK"
check "the key is still there" "$(cli GET kbig)" "v"
check "EXPIRE past 2^64 nanoseconds" "$(cli EXPIRE kbig 18446744073)" "1"
check "the key is not deleted" "$(cli GET kbig)" "v"
check "EXPIRE overflowing" "$(cli EXPIRE kbig 9223372036854775)" "ERR invalid expire time in 'expire' command"
check "key survives a bad EXPIRE" "$(cli GET kbig)" "v"
keys=$(seq -f 'key%g' 1 2000 | tr '\n' ' ')
cli MSET $(seq -f 'key%g 1' 1 2000) >/dev/null
check "inline DEL of 2000 keys" "$(raw "DEL $keys\r\n")" ":2000"

# A client that pipelines GETs of a 60 KB value and never reads: its
# replies stop at the output limits, the server's memory stays bounded, and
# others keep being served.
cli SET fat "$(head -c 60000 /dev/zero | tr '\0' x)" >/dev/null
rss0=$(awk '/VmRSS/{print $2}' /proc/$pid/status)
exec 5<>"/dev/tcp/127.0.0.1/$port"
for _ in $(seq 1 8); do printf 'GET fat\r\n%.0s' $(seq 1 1000) >&5 2>/dev/null; done
sleep 1
start=$(date +%s%N)
check "others served while a client does not read" "$(cli PING)" "PONG"
ms=$(( ($(date +%s%N) - start) / 1000000 ))
rss1=$(awk '/VmRSS/{print $2}' /proc/$pid/status)
echo "    non-reading client: RSS ${rss0} -> ${rss1} KiB, PING took ${ms} ms"
[ $((rss1 - rss0)) -lt 65536 ] || { echo "FAIL: RSS grew by more than 64 MiB"; fail=1; }
exec 5>&-

# Idle connections are closed by the idle timeout, on a second server
# started with -t 1 (the main one has none, as Redis's default: a loaded
# machine must not make the benchmarks below look idle).
main_pid=$pid main_port=$port
start_server "${TEST_TMPDIR:-/tmp}/redis_idle.err" "$redis" -t 1 PORT 127.0.0.1
ipid=$pid iport=$port
pid=$main_pid port=$main_port
if [ -z "$ipid" ]; then echo "FAIL: the -t 1 server did not start"; exit 1; fi
exec 6<>"/dev/tcp/127.0.0.1/$iport"
if timeout 10 cat <&6 >/dev/null; then echo "ok: idle connection closed by the server"; else echo "FAIL: idle connection still open after 10 s"; fail=1; fi
exec 6>&-
kill -TERM "$ipid"; wait "$ipid"

# QUIT with more input behind it: +OK and a clean close, not a reset.
exec 7<>"/dev/tcp/127.0.0.1/$port"
printf 'QUIT\r\nPING\r\nPING\r\n' >&7
read -r -t 5 q <&7
check "QUIT replies before closing" "${q%$'\r'}" "+OK"
exec 7>&-

# The benchmark: 25,000 requests per test, 50 clients, no errors (about a
# second of load per test in a fastbuild; 100,000 took 21 s of the test's 30,
# in every configuration of the matrix, for no check the shorter run lacks:
# speed is tools/bench's to measure).
out=$(redis-benchmark -p "$port" -n 25000 -c 50 -t ping,set,get,incr,mset -q 2>&1)
echo "$out" | tr '\r' '\n' | grep -E 'requests per second' | sed 's/^/    /'
lines=$(echo "$out" | tr '\r' '\n' | grep -c 'requests per second')
check "redis-benchmark completed 6 tests" "$lines" "6"
if echo "$out" | grep -qiE 'error|refused|reset'; then echo "FAIL: benchmark reported errors"; echo "$out"; fail=1; fi
# Pipelined too.
out=$(redis-benchmark -p "$port" -n 25000 -c 50 -P 16 -t set,get -q 2>&1)
lines=$(echo "$out" | tr '\r' '\n' | grep -c 'requests per second')
check "pipelined redis-benchmark completed" "$lines" "2"
check "server alive after the benchmark" "$(cli PING)" "PONG"

# redis-benchmark's default run (every test) runs to the end.
out=$(timeout 120 redis-benchmark -p "$port" -n 2000 -c 10 -q 2>&1)
lines=$(echo "$out" | tr '\r' '\n' | grep -c 'requests per second')
echo "    default redis-benchmark run: $lines tests"
[ "$lines" -ge 18 ] || { echo "FAIL: the default run stopped early:"; echo "$out" | tr '\r' '\n' | tail -5; fail=1; }

# SIGTERM: stops accepting, drains, exits 0.
kill -TERM "$pid"
for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
wait "$pid"; rc=$?
check "SIGTERM exits 0" "$rc" "0"
trap - EXIT
exit $fail
