"""Build step for the one native piece: the LD_PRELOAD library behind ``irda run`` (native/irsock_preload.c).

The metadata lives in pyproject.toml; this file only adds a build_ext that compiles the library with the C compiler
into the package (irsock/daemon/libirsock_preload.so; in place for ``pip install -e .``) and ships its source next to
it (irsock/daemon/irsock_preload.c), so that :mod:`irsock.daemon.native` can build it later when it could not be
built now. A missing or failing compiler is a warning, never a failed install: everything but ``irda run`` works
without the library, and ``irda run`` says how to get it.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
SOURCE = "native/irsock_preload.c"
MODULE = "irsock.daemon.libirsock_preload"  # -> irsock/daemon/libirsock_preload.so
SHIPPED_SOURCE = "irsock/daemon/irsock_preload.c"
CFLAGS = ["-O2", "-fPIC", "-Wall", "-Wextra", "-pthread"]


class BuildPreload(build_ext):
    """Builds the preload library as a plain shared object (no Python module: no ABI tag, no Python symbols)."""

    def get_ext_filename(self, fullname: str) -> str:
        # asked with the dotted name, and (for the build directory) with its last part alone
        if fullname in (MODULE, MODULE.rsplit(".", 1)[1]):
            return str(Path(*fullname.split("."))) + ".so"
        return super().get_ext_filename(fullname)

    def build_extension(self, ext: Extension) -> None:
        if ext.name != MODULE:
            super().build_extension(ext)
            return
        if not sys.platform.startswith("linux"):
            self.warn(f"irsock: the AF_IRDA preload library (irda run) is Linux only; not built on {sys.platform}")
            return
        target = Path(self.get_ext_fullpath(ext.name))
        try:
            objects = self.compiler.compile(ext.sources, output_dir=self.build_temp, extra_postargs=CFLAGS)
            target.parent.mkdir(parents=True, exist_ok=True)
            self.compiler.link_shared_object(objects, str(target), libraries=["dl", "pthread"],
                                             extra_postargs=["-pthread"])
        except Exception as exc:  # CompileError, LinkError, a missing compiler (DistutilsExecError, OSError)
            self.warn(f"irsock: could not build the AF_IRDA preload library for `irda run` ({exc}); everything else "
                      "works. Install a C compiler (Debian/Ubuntu: apt install gcc) and reinstall, or let `irda run` "
                      "build it into ~/.cache/irsock on first use.")


class BuildPyWithSource(build_py):
    """Also puts the C source into the package, for the build on demand (irsock.daemon.native)."""

    def run(self) -> None:
        super().run()
        source = HERE / SOURCE
        if source.exists():
            target = Path(self.build_lib) / SHIPPED_SOURCE
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)


setup(
    ext_modules=[Extension(MODULE, sources=[SOURCE], optional=True)],
    cmdclass={"build_ext": BuildPreload, "build_py": BuildPyWithSource},
)
