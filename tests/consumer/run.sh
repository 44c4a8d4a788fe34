#!/usr/bin/env bash
# Consumer tests of the installed library: installs pollux with tools/install
# into a temporary prefix and uses it from outside the workspace, the ways
# other projects do, each building the demo (examples/hello.c) plus some user
# code and checking what the demo prints:
#
#   headers-installed           the install holds exactly the public headers
#   headers-alone               each installed header compiles alone, C11 and
#                               C++17, and pollux.h reaches nothing else
#                               (tests/headers_test.sh, also //tests:headers_test)
#   exports                     libpollux.so exports px_ symbols only
#   pkg-config, pkg-config-static   cc hello.c $(pkg-config --cflags --libs pollux)
#   cmake                       find_package(pollux): pollux::pollux, _static
#   bazel                       another workspace, local_repository to this one
#   one-config-per-prefix       installing another configuration is refused
#
# Prints PASS/FAIL per check and ends with "N passed, N failed".
#
#   tests/consumer/run.sh [BAZEL FLAGS...]   flags select what tools/install builds
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/tests/consumer
work=$(mktemp -d "${TMPDIR:-/tmp}/pollux-consumer.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
passed=0
failed=0

check() {
  local name=$1
  shift
  if (cd "$work" && "$@") >"$work/$name.log" 2>&1; then
    echo "PASS $name"
    passed=$((passed + 1))
  else
    echo "FAIL $name"
    tail -40 "$work/$name.log" | sed 's/^/    /'
    failed=$((failed + 1))
  fi
}

expected=$'Starting async operations...\nTask 2 complete, Task 1 complete'
demo_prints() {
  local out
  out=$("$@") || { echo "$* exited with $?"; return 1; }
  if [ "$out" != "$expected" ]; then
    printf 'expected:\n%s\ngot:\n%s\n' "$expected" "$out"
    return 1
  fi
}

# A directory outside the workspace holding the demo and the user code.
project() {
  mkdir -p "$work/$1"
  cp "$root/examples/hello.c" "$here/user.c" "$work/$1/"
}

install_it() { "$root/tools/install" "$prefix" "$@"; }

headers_installed() {
  # The install holds exactly api/'s public headers: none missing, no
  # internal one (tests/headers_test.sh then compiles each alone).
  diff <(cd "$root/api" && ls pollux.h pollux/*.h) <(cd "$prefix/include" && find . -type f | sed 's|^\./||' | sort)
}

exports() {
  # Defined global symbols of the shared library: px_ only, and px__ only
  # for the functions the public headers declare (public macros call them,
  # so they are ABI: install/pollux.map lists them).
  local syms declared bad missing
  syms=$(readelf --dyn-syms -W "$prefix/lib/libpollux.so" | awk '$5 != "LOCAL" && $7 != "UND" && NR > 3 {print $8}' | sed 's/@.*//' | grep .)
  declared=$(cat "$prefix"/include/pollux/*.h | grep -v 'static inline' |
    grep -oE '^[a-zA-Z_][a-zA-Z0-9_ *]*[ *]px__[a-z0-9_]+\(' | grep -oE 'px__[a-z0-9_]+' | sort -u)
  bad=$(echo "$syms" | grep -v '^px_[a-z0-9]' | grep -vxF "$declared" || true)
  [ -z "$bad" ] || { echo "exported beyond the API: $bad"; return 1; }
  missing=$(comm -23 <(echo "$declared" | grep .) <(echo "$syms" | sort -u))
  [ -z "$missing" ] || { echo "declared in the public headers but not exported (add to install/pollux.map): $missing"; return 1; }
  echo "$syms" | grep -qx px_run || { echo "px_run is not exported"; return 1; }
}

pkgconfig_shared() {
  project pc && cd pc || return 1
  export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
  # The user's own flags (-Werror) and pollux's: nothing of pollux's
  # warning flags may come with them, or user.c fails.
  case "$(pkg-config --cflags pollux)" in *-W*) echo "pkg-config imposes warning flags"; return 1 ;; esac
  # shellcheck disable=SC2046
  cc -Werror hello.c user.c $(pkg-config --cflags --libs pollux) -o hello || return 1
  readelf -d hello | grep -q 'NEEDED.*libpollux\.so' || { echo "not linked to libpollux.so"; return 1; }
  LD_LIBRARY_PATH=$prefix/lib demo_prints ./hello
}

pkgconfig_static() {
  project pcs && cd pcs || return 1
  export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
  # shellcheck disable=SC2046
  cc -Werror hello.c user.c $(pkg-config --cflags --libs pollux-static) -o hello || return 1
  if readelf -d hello | grep -q 'NEEDED.*libpollux'; then echo "static build needs libpollux.so"; return 1; fi
  demo_prints ./hello
}

cmake_project() {
  project cmake && cp "$here/cmake/CMakeLists.txt" cmake/ && cd cmake || return 1
  cmake -S . -B build -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_FLAGS=-Werror || return 1
  cmake --build build || return 1
  demo_prints build/hello_shared || return 1
  demo_prints build/hello_static
}

bazel_workspace() {
  project bazel && cd bazel || return 1
  sed "s|@POLLUX@|$root|g" "$here/bazel/WORKSPACE.in" >WORKSPACE
  cp "$here/bazel/BUILD.in" BUILD.bazel
  # Sandbox noise off; strict ISO C11 for every C file, as some workspaces
  # set it, which pollux's libraries must survive (each defines what it
  # needs itself); pollux's local settings (a disk cache) if any.
  printf 'build --nosandbox_debug\nbuild --conlyopt=-std=c11\ntry-import %s/user.bazelrc\n' "$root" >.bazelrc
  # Its own output base, kept between runs (keyed by the checkout) so a
  # rerun is incremental; the server exits soon after.
  local ob=${TMPDIR:-/tmp}/pollux-consumer-bazel-$(id -u)/$(echo "$root" | md5sum | cut -c1-12)
  bazel --output_base="$ob" --max_idle_secs=15 build --color=no --curses=no --noshow_progress //:hello || return 1
  demo_prints bazel-bin/hello
}

refuses_second_config() {
  local out
  if out=$("$root/tools/install" "$prefix" --config=ws 2>&1); then
    echo "a second configuration was installed over the first"; return 1
  fi
  echo "$out" | grep -q 'already holds pollux built with' || { echo "$out"; return 1; }
}

echo "=== tools/install into $prefix $*"
if ! check install install_it "$@"; then
  echo "$passed passed, $failed failed"
  exit 1
fi
check headers-installed headers_installed
check headers-alone "$root/tests/headers_test.sh" "$prefix/include/pollux.h" "$prefix"/include/pollux/*.h
check exports exports
check pkg-config pkgconfig_shared
check pkg-config-static pkgconfig_static
check cmake cmake_project
check bazel bazel_workspace
case " $* " in
  *" --config=ws "*) ;;  # the refusal test installs ws over the first
  *) check one-config-per-prefix refuses_second_config ;;
esac
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
