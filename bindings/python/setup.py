"""The package's build, by setuptools-rust: the crate is built as the C library (the
`capi` feature, a cdylib with the SONAME libmulticast.so.<major>, as the Makefile builds
it) and bundled inside the package as ``libmulticast/libmulticast.so.<major>``, a name
that is no importable module (so ``help(libmulticast)`` lists no such submodule).

The crate is two levels up in the checkout; an sdist carries a copy of its sources in
``crate/`` (added when the sdist is made), so it builds anywhere cargo is installed.
The wheel holds no CPython extension, only a library loaded with ctypes: it is tagged
``py3-none-<platform>`` and installs on every Python 3. ``auditwheel repair`` turns the
platform into the manylinux one the library's symbol versions allow.
"""
import os
import pathlib
import re
import shutil
import subprocess
import tarfile

from setuptools import setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.sdist import sdist
from setuptools_rust import Binding, RustExtension, Strip
from setuptools_rust.build import build_rust

HERE = pathlib.Path(__file__).resolve().parent
CRATE = HERE / "crate" if (HERE / "crate" / "Cargo.toml").exists() else HERE.parents[1]


def version():
    return re.search(r'(?m)^version = "([^"]+)"', (CRATE / "Cargo.toml").read_text()).group(1)


MAJOR = version().split(".")[0]


class BundledLibrary(build_rust):
    """Puts the built library where the loader and its SONAME expect it."""

    def get_dylib_ext_path(self, ext, target_fname):
        build_ext = self.get_finalized_command("build_ext")
        package = build_ext.get_ext_fullpath(ext.name).rsplit(os.sep, 1)[0]
        return os.path.join(package, f"libmulticast.so.{MAJOR}")


class AnyPython3(bdist_wheel):
    """py3-none-<platform>: a native library, but no CPython ABI."""

    def get_tag(self):
        _, _, platform = super().get_tag()
        return "py3", "none", platform


class SdistWithCrate(sdist):
    """The sdist carries the crate as `cargo package` packs it for crates.io (sources,
    header, a normalized Cargo.toml and the lock file), so it builds outside the checkout."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        target = pathlib.Path(base_dir) / "crate"
        if CRATE.parent == HERE:  # an sdist made from an sdist: its copy as it is
            shutil.copytree(CRATE, target)
            return
        cargo = os.environ.get("CARGO", "cargo")
        subprocess.run([cargo, "package", "--offline", "--no-verify", "--allow-dirty", "--quiet",
                        "--manifest-path", str(CRATE / "Cargo.toml")], check=True)
        packed = CRATE / "target" / "package" / f"libmulticast-{version()}.crate"
        with tarfile.open(packed) as crate:
            # The "data" filter where this Python has it (3.12, and 3.8-3.11 updates).
            crate.extractall(target.parent, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        (target.parent / f"libmulticast-{version()}").rename(target)


setup(
    version=version(),
    rust_extensions=[
        RustExtension(
            "libmulticast._library",
            path=str(CRATE / "Cargo.toml"),
            binding=Binding.NoBinding,
            features=["capi"],
            rustc_flags=["-C", f"link-arg=-Wl,-soname,libmulticast.so.{MAJOR}"],
            strip=Strip.Debug,
            py_limited_api=False,
        )
    ],
    cmdclass={"build_rust": BundledLibrary, "bdist_wheel": AnyPython3, "sdist": SdistWithCrate},
)
