"""Print, one per line, the files a test run needs beside the installed package.

They are cibuildwheel's ``test-sources`` in pyproject.toml, so the local wheel and
sdist checks copy exactly what the release builds copy.
"""
import os
import sys

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(root, "pyproject.toml"), "rb") as f:
    sys.stdout.write("\n".join(tomllib.load(f)["tool"]["cibuildwheel"]["test-sources"]) + "\n")
