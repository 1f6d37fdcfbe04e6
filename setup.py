"""Only the compiled part of the package (everything else is in pyproject.toml):
recovery's per-record loops, ctdbcore/db/_bulk.c (see ctdbcore/db/bulk.py)."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("ctdbcore.db._bulk", ["ctdbcore/db/_bulk.c"],
                             extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"])])
