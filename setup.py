"""Build asyncloop._core against the system libuv.

ASYNCLOOP_BUILD selects the build mode:
  release  (default) -O2, NDEBUG
  debug    -O0 -g, asserts on (-UNDEBUG), live-object counters
  sanitize debug + AddressSanitizer and UndefinedBehaviorSanitizer

ASYNCLOOP_WERROR=1 turns compiler warnings into errors (`make lint` sets it).
"""
import glob
import os
import shlex
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def pkg_config(*args):
    if shutil.which("pkg-config") is None:
        return None
    try:
        out = subprocess.run(
            ["pkg-config", *args, "libuv"],
            check=True, capture_output=True, text=True,
        ).stdout
    except subprocess.CalledProcessError:
        return None
    return shlex.split(out)


def libuv_flags():
    cflags = pkg_config("--cflags")
    libs = pkg_config("--libs")
    if cflags is None or libs is None:
        sys.exit(
            "error: libuv was not found by pkg-config.\n"
            "asyncloop links the system libuv; install its headers first:\n"
            "    Debian/Ubuntu: apt-get install libuv1-dev pkg-config\n"
            "    Fedora:        dnf install libuv-devel pkgconf\n"
            "    macOS:         brew install libuv pkg-config"
        )
    return cflags, libs


MODE = os.environ.get("ASYNCLOOP_BUILD", "release").strip().lower() or "release"
if MODE not in ("release", "debug", "sanitize"):
    sys.exit(f"error: ASYNCLOOP_BUILD={MODE!r}; use release, debug or sanitize")


class BuildExt(build_ext):
    def build_extensions(self):
        cflags, libs = libuv_flags()
        for ext in self.extensions:
            ext.extra_compile_args = list(cflags) + ext.extra_compile_args
            ext.extra_link_args = list(libs) + ext.extra_link_args
        super().build_extensions()


compile_args = ["-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                "-Wno-missing-field-initializers", "-fvisibility=hidden"]
link_args = []
macros = []
if os.environ.get("ASYNCLOOP_WERROR", "").strip() not in ("", "0"):
    compile_args += ["-Werror"]
if MODE == "release":
    compile_args += ["-O2"]
else:
    compile_args += ["-O0", "-g3", "-UNDEBUG", "-fno-omit-frame-pointer"]
    macros += [("ASYNCLOOP_DEBUG", "1")]
    if MODE == "sanitize":
        san = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
        compile_args += san
        link_args += san

setup(
    ext_modules=[
        Extension(
            "asyncloop._core",
            sources=sorted(glob.glob("src/*.c")),
            depends=glob.glob("src/*.h"),
            define_macros=macros,
            extra_compile_args=compile_args,
            extra_link_args=link_args,
        )
    ],
    cmdclass={"build_ext": BuildExt},
)
