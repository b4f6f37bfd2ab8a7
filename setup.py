"""Declares what pyproject.toml cannot: the packaged instrument files and the compiled kernel.

The kernel is optional (msgpack's pattern): if it cannot be built, assess falls back to the
pure-Python reference scorer. ASSESS_CYTHON_DEBUG=1 turns bounds checking back on.
"""
import os
import sys
import sysconfig

from setuptools import find_packages, setup

# The instrument definitions live at the top of the repository (instruments/<id>/<version>.yaml)
# and install as the data package assess.instruments, so a plain `pip install .` finds them.
packages = find_packages(include=["assess", "assess.*", "web", "web.*"]) + ["assess.instruments", "assess.schemas"]
package_dir = {"assess.instruments": "instruments"}
package_data = {"assess": ["*.pyi"], "assess.schemas": ["*.json"], "assess.instruments": ["*/*.yaml", "*/*/*.yaml"],
                "web": ["schema.sql", "templates/*.html", "templates/*/*.html", "static/*", "static/*/*"]}


def _builds_for_x86_64() -> bool:
    """Whether the extensions are built for x86-64 only (the target, not this machine: a macOS
    universal2 or arm64 build on an Intel Mac is not), with a GCC-style compiler."""
    target = sysconfig.get_platform().lower()
    return (target.endswith(("x86_64", "amd64")) and sys.platform != "win32"
            and "arm64" not in os.environ.get("ARCHFLAGS", ""))


def extensions():
    if not os.path.exists(os.path.join("kernels", "score.pyx")):
        return []
    import numpy
    from Cython.Build import cythonize
    from setuptools import Extension

    debug = os.environ.get("ASSESS_CYTHON_DEBUG") == "1"
    directives = {"language_level": "3", "boundscheck": debug, "wraparound": debug,
                  "initializedcheck": debug, "cdivision": True}
    ext = Extension("assess._kernel", ["kernels/score.pyx"], include_dirs=[numpy.get_include()],
                    extra_compile_args=["-O3"], define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")])
    screen = Extension("assess._screen", ["kernels/screen.pyx"], extra_compile_args=["-O3"])
    built = [ext, screen]
    if _builds_for_x86_64():
        # The same kernel for processors with AVX2 (kernels/score_avx2.pyx), chosen at import time;
        # no contraction of a * b + c into one rounding, so floating-point results stay the baseline's.
        # Optional: a compiler that refuses these flags leaves the baseline build alone.
        built.append(Extension("assess._kernel_avx2", ["kernels/score_avx2.pyx"], include_dirs=[numpy.get_include()],
                               extra_compile_args=["-O3", "-mavx2", "-mfma", "-mbmi", "-mbmi2", "-mpopcnt",
                                                   "-ffp-contract=off"],
                               define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]))
    modules = cythonize(built, compiler_directives=directives)
    for module in modules:     # (cythonize makes new Extension objects, without the optional flag)
        module.optional = module.name == "assess._kernel_avx2"
    return modules


setup(packages=packages, package_dir=package_dir, package_data=package_data, ext_modules=extensions())
