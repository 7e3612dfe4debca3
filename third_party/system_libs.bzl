"""A repository rule that wraps Debian's system libraries as cc_library targets.

BUILD files depend on labels such as "@system//:absl" or "@system//:openssl";
the link flags are asked of pkg-config once, here, when the workspace loads.
A missing package fails the build with the name of the script that installs it.
"""

# target name -> (pkg-config modules, extra link flags)
_LIBS = {
    "absl": ([
        "absl_synchronization",
        "absl_status",
        "absl_statusor",
        "absl_strings",
        "absl_str_format",
        "absl_flat_hash_map",
        "absl_flat_hash_set",
        "absl_node_hash_map",
        "absl_hash",
        "absl_time",
        "absl_random_random",
        "absl_btree",
    ], []),
    "openssl": (["openssl"], []),
    "libcrypto": (["libcrypto"], []),
    "gtest": (["gtest"], []),
    "gtest_main": (["gtest_main"], []),
    "gmock": (["gmock"], []),
    "benchmark": (["benchmark"], []),
    "json": (["nlohmann_json"], []),
    # The lab file parser of usr.sbin/ukernd (TOML).
    "tomlplusplus": (["tomlplusplus"], []),
    # Header-only command-line parser.
    "cli11": (["CLI11"], []),
    # Intel IPsec-MB ships no .pc file.
    "ipsecmb": ([], ["-lIPSec_MB"]),
    "dl": ([], ["-ldl"]),
    "pthread": ([], ["-lpthread"]),
}

def _pkg_config(ctx, flag, modules):
    if not modules:
        return []
    res = ctx.execute(["pkg-config", flag] + modules)
    if res.return_code != 0:
        fail("pkg-config %s %s failed: %s\nRun tools/setup to install the " %
             (flag, " ".join(modules), res.stderr) + "project's Debian packages.")
    return res.stdout.strip().split(" ") if res.stdout.strip() else []

def _system_libs_impl(ctx):
    lines = ['package(default_visibility = ["//visibility:public"])', ""]
    for name, (modules, extra) in _LIBS.items():
        cflags = [f for f in _pkg_config(ctx, "--cflags", modules) if f]
        libs = [f for f in _pkg_config(ctx, "--libs", modules) if f] + extra
        lines.append("cc_library(")
        lines.append('    name = "%s",' % name)
        lines.append("    copts = %s," % repr(cflags))
        lines.append("    linkopts = %s," % repr(libs))
        lines.append(")")
        lines.append("")
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)
    ctx.file("BUILD", "\n".join(lines))

system_libs = repository_rule(
    implementation = _system_libs_impl,
    local = True,
    environ = ["PKG_CONFIG_PATH"],
)
