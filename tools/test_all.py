# test_all.py: `make test`. Runs every test on every runtime and prints one line per runtime.
# A runtime fails when any test fails or when it runs no test (pytest exit 5 included).
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable


def run(label, cmd):
    print("==== %s: %s" % (label, " ".join(os.path.relpath(c, ROOT) if c.startswith(ROOT)
                                           else c for c in cmd)), flush=True)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    last = ""
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        if re.search(r"\d+ (passed|failed)", line):
            last = line.strip()
    rc = proc.wait()
    m = re.search(r"(\d+) passed", last)
    passed = int(m.group(1)) if m else 0
    ok = rc == 0 and passed > 0
    return label, ok, passed, rc, last


def main():
    results = [
        run("cpython", [PY, "-m", "pytest", "host_tests", "-q", "-p", "no:cacheprovider"]),
        run("micropython-unix", [PY, "tools/run_portable.py", "--runtime", "micropython"]),
        run("micropython-wasm32", [PY, "tools/run_portable.py", "--runtime", "wasm"]),
    ]
    print("\n==== summary")
    failed = 0
    for label, ok, passed, rc, last in results:
        print("%-20s %-4s %4d passed   (%s)" % (label, "ok" if ok else "FAIL", passed, last))
        failed += not ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
