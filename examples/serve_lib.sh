# Sourced by the example servers' tests: starts a server on a free loopback
# port and waits until it accepts connections.
#
#   start_server ERRFILE PROGRAM ARGS...   (the word PORT in ARGS is replaced)
#
# Sets $pid and $port; $pid is empty when five attempts on random ports
# failed (each one's stderr is printed).
start_server() {
  local errfile=$1 up
  shift
  pid=""
  for _ in 1 2 3 4 5; do
    port=$(( 10000 + RANDOM % 22000 ))  # below the ephemeral range (32768+)
    "${@/#PORT/$port}" >/dev/null 2>"$errfile" &
    pid=$!
    up=0
    for _ in $(seq 1 50); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then up=1; break; fi
      if ! kill -0 "$pid" 2>/dev/null; then break; fi
      sleep 0.1
    done
    [ "$up" -eq 1 ] && return 0
    echo "attempt on port $port failed:"; cat "$errfile"
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; pid=""
  done
}
