"""The backends of each axis: the one list that adding a backend edits.

Adding a backend is its directory plus one line here. The directory is
AXIS_DIR/NAME (executors/, reactors/ or timers/) with a library NAME (its ops
table) and a library "default" that binds it as the selected backend (see an
existing one). From BACKENDS:

  - backend_flag() generates, in the axis's BUILD file, the string flag (its
    values), one config_setting per value (is_NAME) and the library
    "selected" that picks NAME/default;
  - tools/backends writes backends.bazelrc (the --config=SHORTCUT lines that
    .bazelrc imports) and the value lists in README.md and docs/BACKENDS.md,
    and checks them (tools/test runs the check);
  - tools/test (the matrix) and tools/bench (the variants) read the values.

Each entry: NAME: {"config": SHORTCUT (when it is not NAME), "multi_threaded":
True (executors that run tasks on several threads: the benchmarks compare
them with tokio's multi_thread runtime)}.
This file is data read by Starlark and by Python (tools/backends.py): keep
BACKENDS a literal.
"""

load("@bazel_skylib//rules:common_settings.bzl", "string_flag")
load("@rules_cc//cc:defs.bzl", "cc_library")

BACKENDS = {
    "executor": {
        "default": "fifo",
        "values": {
            "fifo": {},
            "priority": {},
            "work_stealing": {"config": "ws", "multi_threaded": True},
        },
    },
    "reactor": {
        "default": "io_uring",
        "values": {
            "epoll": {},
            "select": {},
            "poll": {},
            "libevent": {},
            "kqueue": {},
            "io_uring": {},
        },
    },
    "timer": {
        "default": "wheel",
        "values": {
            "wheel": {},
            "heap": {},
        },
    },
}

def backend_flag(axis):
    """The flag --//PKG:AXIS, its config_settings and the library "selected".

    Called once, in the BUILD file of the axis's package (executors/,
    reactors/ or timers/).

    Args:
      axis: "executor", "reactor" or "timer" (a key of BACKENDS).
    """
    spec = BACKENDS[axis]
    names = list(spec["values"].keys())
    string_flag(
        name = axis,
        build_setting_default = spec["default"],
        values = names,
    )
    for name in names:
        native.config_setting(
            name = "is_" + name,
            flag_values = {":" + axis: name},
        )
    cc_library(
        name = "selected",
        deps = select({
            ":is_" + name: ["//%s/%s:default" % (native.package_name(), name)]
            for name in names
        }),
    )
