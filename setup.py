"""Build hook for the optional C extension; all metadata lives in pyproject.toml.

``moldau.records._scan`` is the per-record walk of record validation
(src/moldau/records/_scan.c). It is ``optional``: without a C compiler or Python
headers the install still succeeds and moldau.records.validation uses its
pure-Python twin.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "moldau.records._scan",
            sources=["src/moldau/records/_scan.c"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
