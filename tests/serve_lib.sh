# shellcheck shell=bash
# Sourced by the tests that run a server program: starts it on a free
# loopback port and waits until it listens there.
#
#   start_server ERRFILE PROGRAM ARGS...   (the word PORT in ARGS is replaced)
#
# Sets $pid and $port; $pid is empty when five attempts on random ports
# failed (each one's stderr is printed). Ports come from below the kernel's
# ephemeral range (32768+), so no client socket of a test running beside
# this one holds ours; another test's server may, hence the retries.

# listens PID PORT: whether process PID holds the TCP listener of PORT.
# A connect that succeeds does not say whose listener answered: when the
# port was taken, ours exits with "address already in use" while the connect
# reaches the other test's server (seen in CI). So the listener's socket
# inode, from /proc/net/tcp{,6}, must be one of the descriptors of PID or
# of its children (PROGRAM may be a wrapper that does not exec).
listens() {
  local hex inodes fd link p procs
  hex=$(printf '%04X' "$2")
  inodes=$(awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p {
             print "socket:[" $10 "]" }' /proc/net/tcp /proc/net/tcp6 2>/dev/null)
  [ -n "$inodes" ] || return 1
  procs="$1 $(cat /proc/"$1"/task/*/children 2>/dev/null)"
  for fd in $(for p in $procs; do echo /proc/"$p"/fd/*; done); do
    link=$(readlink "$fd" 2>/dev/null) || continue
    if grep -qxF "$link" <<<"$inodes"; then return 0; fi
  done
  return 1
}

start_server() {
  local errfile=$1 up
  shift
  pid=""
  for _ in 1 2 3 4 5; do
    port=$(( 10000 + RANDOM % 22000 ))
    "${@/#PORT/$port}" >/dev/null 2>"$errfile" &
    pid=$!
    up=0
    for _ in $(seq 1 100); do
      if listens "$pid" "$port"; then up=1; break; fi
      if ! kill -0 "$pid" 2>/dev/null; then break; fi
      sleep 0.1
    done
    [ "$up" -eq 1 ] && return 0
    echo "attempt on port $port failed:"; cat "$errfile"
    # "|| true": a server that failed has exited with an error, and a
    # sourcing script under `set -e` (bench_smoke_test.sh) must retry, not
    # stop here (seen in the matrix: a taken port ended the smoke test).
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=""
  done
}
