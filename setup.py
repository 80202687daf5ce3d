"""The optional C kernel (``venuefeed._kernel``); everything else is in pyproject.toml.

``optional=True``: without a C compiler the build warns and installs the pure-Python
package, whose loops :mod:`venuefeed.book` then uses.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("venuefeed._kernel", ["src/venuefeed/_kernel.c"], optional=True)])
