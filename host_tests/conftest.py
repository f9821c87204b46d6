# pytest on CPython: firmware/ and the portable test helpers on the path, and the `micropython`
# stub (tools/stubs) in place of MicroPython's module.
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Each is put in front, so the last wins: tools/ goes first (lowest), since tools/config.py (the
# PC command) must not shadow firmware/config.py, as in tools/portable_runner.py.
for sub in ("tools", "tools/stubs", "firmware", "host_tests/portable"):
    p = os.path.join(ROOT, sub)
    if p not in sys.path:
        sys.path.insert(0, p)

# Portable tests skip with support.SkipTest (no pytest on the boards); under pytest that is
# pytest's own skip.
import pytest  # noqa: E402
import support  # noqa: E402

support.SkipTest = pytest.skip.Exception
