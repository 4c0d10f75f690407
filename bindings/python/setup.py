"""Builds the Rust library with cargo and puts it inside the package, so that
`pip install ./bindings/python` gives a package that imports with no other set-up.

The checkout this file sits in (two levels up) is built as the C library (`cargo rustc
--features capi --crate-type cdylib,staticlib -- -C link-arg=...soname`, exactly as the
Makefile does,
so the two share one build);
$LIBMULTICAST_CARGO names another cargo. The wheel is platform-specific, since it
carries a native library.
"""
import os
import pathlib
import re
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def version():
    cargo_toml = (ROOT / "Cargo.toml").read_text()
    return re.search(r'(?m)^version = "([^"]+)"', cargo_toml).group(1)


class BuildWithLibrary(build_py):
    """build_py, then cargo's release library copied into the built package."""

    def run(self):
        super().run()
        cargo = os.environ.get("LIBMULTICAST_CARGO", "cargo")
        major = version().split(".")[0]
        subprocess.run([cargo, "rustc", "--release", "--lib", "--features", "capi", "--crate-type", "cdylib,staticlib",
                        "--manifest-path", str(ROOT / "Cargo.toml"),
                        "--", "-C", f"link-arg=-Wl,-soname,libmulticast.so.{major}"],
                       check=True, cwd=ROOT)  # in the checkout, so its .cargo/config.toml applies
        target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
        built = target / "release" / "libmulticast.so"
        destination = pathlib.Path(self.build_lib) / "libmulticast" / "libmulticast.so"
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built, destination)
        # Debug information stays in the checkout's build; the wheel gets a stripped copy.
        if shutil.which("strip"):
            subprocess.run(["strip", "--strip-debug", str(destination)], check=True)


class NativeDistribution(Distribution):
    def has_ext_modules(self):
        return True


setup(version=version(), cmdclass={"build_py": BuildWithLibrary}, distclass=NativeDistribution)
