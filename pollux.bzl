"""The one dependency list of the pollux library and of its variants.

//:pollux links the executor the --//executors:executor flag selects; the
test-only variants (//executors/work_stealing:pollux_ws,
//executors/priority:pollux_priority) hard-wire one executor so that a plain
`bazel test //...` exercises it. All of them are pollux_library() over
POLLUX_DEPS, so a library added to pollux reaches every variant.
"""

load("@rules_cc//cc:defs.bzl", "cc_library")

# Everything the library links except the executor backend.
POLLUX_DEPS = [
    "//api",
    "//blocking",
    "//executors:core",
    "//observe",
    "//process",
    "//reactors:readiness",
    "//reactors:selected",
    "//reactors:signal",
    "//reactors:tcp",
    "//reactors:udp",
    "//reactors:unix",
    "//resolver",
    "//scope",
    "//serve",
    "//sync",
    "//timers:selected",
    "//timers:sleep",
    "//tls",
    "//wakers",
]

def pollux_library(name, executor, **kwargs):
    """pollux with `executor`: the label of an executor's default library.

    Args:
      name: the target's name.
      executor: "//executors:selected" (the flag's), or one executor's
        "default" library.
      **kwargs: passed to cc_library (testonly, visibility).
    """
    cc_library(
        name = name,
        deps = [executor] + POLLUX_DEPS,
        **kwargs
    )
