"""The one compiled part of dibble: the statistics collector's hot path in C.

Optional: where no C compiler is at hand the build goes on without it and
the collector uses its Python version (see src/dibble/stats/_speedups.c).
``DIBBLE_REQUIRE_EXTENSIONS=1`` makes a failed build an error (the gates
set it under CI, so a broken C file cannot pass unnoticed).  Everything
else about the package is in pyproject.toml.
"""

import os
import sys

from setuptools import Extension, setup

# The float arithmetic must round as Python's does: no fused multiply-add.
FLAGS = [] if sys.platform == "win32" else ["-ffp-contract=off"]

setup(
    ext_modules=[
        Extension(
            "dibble.stats._speedups",
            ["src/dibble/stats/_speedups.c"],
            extra_compile_args=FLAGS,
            optional=not os.environ.get("DIBBLE_REQUIRE_EXTENSIONS"),
        )
    ]
)
