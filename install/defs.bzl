"""pollux_archive: every object of a cc_library's transitive deps in one .a.

It also provides the archive as a CcInfo linked whole (alwayslink), which is
how //install:libpollux.so gets every object without each of pollux's
libraries being alwayslink.

Bazel makes one archive per cc_library; a C project outside Bazel wants one
libpollux.a, the way libuv ships libuv.a. The rule collects the object files
of every library that the deps link (PIC objects when Bazel built them, so
the archive can also go into a user's shared library), archives them with
the toolchain's ar, and writes beside it the link flags those libraries
carry (-pthread, -levent_core, -luring, ...) for pkg-config's Libs.private
and CMake's INTERFACE_LINK_LIBRARIES, and the backends the flags selected.
"""

load("@bazel_skylib//rules:common_settings.bzl", "BuildSettingInfo")
load("@bazel_tools//tools/cpp:toolchain_utils.bzl", "find_cpp_toolchain")

def _pollux_archive_impl(ctx):
    cc_toolchain = find_cpp_toolchain(ctx)
    objects = []
    pic = True
    flags = []
    for dep in ctx.attr.deps:
        for linker_input in dep[CcInfo].linking_context.linker_inputs.to_list():
            for lib in linker_input.libraries:
                objs = lib.pic_objects or lib.objects
                if objs and not lib.pic_objects:
                    pic = False
                if not objs and (lib.static_library or lib.pic_static_library):
                    fail("%s: no object files for %s" % (ctx.label, lib.static_library or lib.pic_static_library))
                objects.extend(objs)
            for flag in linker_input.user_link_flags:
                if flag not in flags:
                    flags.append(flag)

    archive = ctx.actions.declare_file(ctx.attr.name + ".a")
    args = ctx.actions.args()
    args.add(cc_toolchain.ar_executable)
    args.add(archive)
    args.add_all(objects)

    # "q": append every object even when two share a base name (ar's "r"
    # would replace the first); "D": no timestamps, so the archive is
    # reproducible; "s": the symbol index.
    ctx.actions.run_shell(
        inputs = depset(objects, transitive = [cc_toolchain.all_files]),
        outputs = [archive],
        arguments = [args],
        command = 'ar="$1"; out="$2"; shift 2; rm -f "$out"; "$ar" qcsD "$out" "$@"',
        mnemonic = "PolluxArchive",
        progress_message = "Archiving %d objects into %s" % (len(objects), archive.short_path),
    )

    linkopts = ctx.actions.declare_file(ctx.attr.name + ".linkopts")
    ctx.actions.write(linkopts, " ".join(flags) + "\n")

    info = ctx.actions.declare_file(ctx.attr.name + ".build_info")
    ctx.actions.write(info, "executor=%s reactor=%s timer=%s\n" % (
        ctx.attr._executor[BuildSettingInfo].value,
        ctx.attr._reactor[BuildSettingInfo].value,
        ctx.attr._timer[BuildSettingInfo].value,
    ))

    # The same archive as a library other cc targets link whole: the
    # shared library links every object through it, so pollux's own
    # libraries need no alwayslink (only the backend registrations do,
    # whose symbols runtime.c references from below them in link order).
    feature_configuration = cc_common.configure_features(
        ctx = ctx,
        cc_toolchain = cc_toolchain,
        requested_features = ctx.features,
        unsupported_features = ctx.disabled_features,
    )
    library = cc_common.create_library_to_link(
        actions = ctx.actions,
        feature_configuration = feature_configuration,
        cc_toolchain = cc_toolchain,
        static_library = None if pic else archive,
        pic_static_library = archive if pic else None,
        alwayslink = True,
    )
    linking_context = cc_common.create_linking_context(
        linker_inputs = depset([cc_common.create_linker_input(
            owner = ctx.label,
            libraries = depset([library]),
            user_link_flags = depset(flags),
        )]),
    )
    return [
        DefaultInfo(files = depset([archive, linkopts, info])),
        CcInfo(linking_context = linking_context),
    ]

pollux_archive = rule(
    implementation = _pollux_archive_impl,
    attrs = {
        "deps": attr.label_list(providers = [CcInfo]),
        "_cc_toolchain": attr.label(default = "@bazel_tools//tools/cpp:current_cc_toolchain"),
        "_executor": attr.label(default = "//executors:executor"),
        "_reactor": attr.label(default = "//reactors:reactor"),
        "_timer": attr.label(default = "//timers:timer"),
    },
    fragments = ["cpp"],
    toolchains = ["@bazel_tools//tools/cpp:toolchain_type"],
    incompatible_use_toolchain_transition = True,
)
