#!/usr/bin/env bash
# What one Redis command costs a server, by instructions (callgrind, user
# space only) and by system calls (strace -c), under redis-benchmark's SET,
# GET and INCR with 50 clients and 100,000 random keys, pipelined (-P 16)
# and not (-P 1). Each server first takes a warm-up run, so the keyspace is
# full before anything is counted; then instrumentation is switched on for
# the measured run only, so start-up and shutdown do not count.
#
#   bench/results/2026-12-04-redis-callgrind.sh OLD_REDIS NEW_REDIS > out.txt
#
# OLD_REDIS and NEW_REDIS are examples/redis binaries built with -c opt
# (before and after a change); Debian's redis-server 7.0 is the third server.
# examples-redis-old and -new are OLD_REDIS and NEW_REDIS. The .txt beside
# this script is its output on the 2-core VM for 22e0a61 (before the
# keyspace rework) and 458035f (after).
set -u
old=$1 new=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

wait_port() {
  for _ in $(seq 100); do
    redis-cli -p "$1" ping >/dev/null 2>&1 && return 0
    sleep 0.3
  done
  echo "server on port $1 did not start" >&2
  return 1
}

load() {  # port n pipeline
  redis-benchmark -p "$1" -t set,get,incr -n "$2" -c 50 -r 100000 -P "$3" -q \
    >/dev/null 2>&1
}

# callgrind: instructions per command of one server.
instructions() {  # name port n pipeline argv...
  local name=$1 port=$2 n=$3 pipe=$4
  shift 4
  valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$tmp/$name.cg" "$@" >"$tmp/$name.log" 2>&1 &
  local vp=$!
  wait_port "$port" || return
  load "$port" 20000 "$pipe"
  callgrind_control -i on "$vp" >/dev/null
  load "$port" "$n" "$pipe"
  callgrind_control -i off "$vp" >/dev/null
  kill -TERM "$vp"
  wait "$vp"
  local total
  total=$(awk '/Collected :/ {print $NF}' "$tmp/$name.log")
  echo "$name -P $pipe: $((total / (3 * n))) instructions per command"
}

# strace: system calls per command (every thread of the server).
syscalls() {  # name port n pipeline argv...
  local name=$1 port=$2 n=$3 pipe=$4
  shift 4
  "$@" >/dev/null 2>&1 &
  local sp=$!
  wait_port "$port" || return
  load "$port" 20000 "$pipe"
  strace -c -f -p "$sp" -o "$tmp/$name.st" 2>/dev/null &
  local st=$!
  sleep 1
  load "$port" "$n" "$pipe"
  kill -INT "$st"
  wait "$st"
  kill -TERM "$sp"
  wait "$sp"
  awk -v n="$n" -v name="$name" -v pipe="$pipe" '
    $NF == "total" { printf "%s -P %s: %.3f system calls per command\n", name, pipe, $(NF-2) / (3 * n) }
  ' "$tmp/$name.st"
}

for pipe in 16 1; do
  n=$([ "$pipe" = 16 ] && echo 100000 || echo 30000)
  instructions redis-server 7701 "$n" "$pipe" redis-server --save "" \
    --appendonly no --port 7701 --bind 127.0.0.1 --daemonize no
  instructions examples-redis-old 7702 "$n" "$pipe" "$old" 7702
  instructions examples-redis-new 7703 "$n" "$pipe" "$new" 7703
  syscalls redis-server 7701 "$n" "$pipe" redis-server --save "" \
    --appendonly no --port 7701 --bind 127.0.0.1 --daemonize no
  syscalls examples-redis-new 7703 "$n" "$pipe" "$new" 7703
done
