# test_board.py: the portable tests and the speed/RAM figures on a board (`make test-board`).
#
#   python tools/test_board.py --board rp2040_pico|esp32_devkit --port /dev/ttyACM0|auto|local
#          [--bundle build/<board>] [--heap 4m] [--keep-no-wdt] [--keep-tb] [-k SUBSTR] [-v]
#          [MODULE ...]
#
# 1. Stages build/<board>/test-board/tb/: fw/ = the board bundle's lib/*.mpy (`make mpy`), tests/
#    = host_tests/portable/*.py compiled with mpy-cross for the board (a Pico cannot compile
#    the large test files itself), tools/ = portable_runner.mpy and bench_requests.mpy,
#    boards/config.example.json (test_config validates it there). The host-side fakes of
#    tools/ (chip model, load scenario) are not copied: tests that need them skip
#    (support.host_fake).
# 2. Board (--port DEVICE or auto), with mpremote, each step one mpremote call:
#      connect PORT fs touch :no-wdt + reset   a running meter's watchdog would reset the board
#      connect PORT fs cp -r STAGE/tb :        (unchanged files are skipped by their hash)
#      connect PORT exec BENCH                 bench_requests.main(["tb/fw", "board", "tb/rows"])
#      connect PORT exec TESTS                 portable_runner.main(["tb/fw", "tb/tests", ...,
#                                              MODULE]), once per test module
#      connect PORT fs rm -r :tb + fs rm :no-wdt + reset
#                                              (:tb stays with --keep-tb, :no-wdt with
#                                              --keep-no-wdt: then no reset)
#    mpremote soft-resets at each connection, so the figures and every test module start on a
#    fresh heap; main.py does not run after a soft reset in the raw REPL, and :lib/ (the
#    installed meter) is not touched. One module per reset because a board's heap does not
#    survive thirty modules in one run: every string a loaded .mpy interns stays in the qstr
#    pool for good (measured on the unix port at 256 KB: the pools grew from 22 KB to 90 KB and
#    the largest free block fell from 112 KB to 16 KB), and a module that hangs or resets the
#    board costs only its own tests. --port local: the same files in a temporary directory and
#    the same programs under the venv's MicroPython unix port (-X heapsize=HEAP, a new process
#    per module), cwd = that directory.
# 3. Prints PASS/FAIL/SKIP per test (RUN lines and each module's summary with -v), one summary
#    line over all modules and the figures. Exit status 1 when a test failed, none passed, a
#    module's run died (no summary line), or the request path allocated; 2 for a setup error
#    (no bundle, mpremote failed).
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import hosttools

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "host_tests", "portable")
TOOLS = os.path.join(ROOT, "tools")
ARCH = {"rp2040_pico": "armv6m", "esp32_devkit": "xtensawin"}
ON_BOARD = ("portable_runner.py", "bench_requests.py")  # tools/ modules that run there

BENCH = ("import sys\nsys.path.insert(0, 'tb/tools')\nimport bench_requests\n"
         "bench_requests.main(['tb/fw', 'board', 'tb/rows'])\n")
RUN_TESTS = ("import sys\nsys.path.insert(0, 'tb/tools')\nimport portable_runner\n"
             "portable_runner.main(%r)\n")


def mpy_cross(tool, arch, src, dst):
    if os.path.exists(dst) and os.path.getmtime(dst) >= os.path.getmtime(src):
        return
    subprocess.run([tool, "-march=" + arch, "-s", os.path.basename(src), "-o", dst, src],
                   check=True)


def stage(bundle, out, tests_dir, arch, tool):
    # out/tb/{fw,tests,tools}; returns the test module names.
    lib = os.path.join(bundle, "lib")
    if not os.path.isdir(lib) or not any(n.endswith(".mpy") for n in os.listdir(lib)):
        raise SetupError("no compiled bundle in %s: make mpy BOARD=..." % lib)
    tb = os.path.join(out, "tb")
    if os.path.isdir(tb):
        shutil.rmtree(tb)  # nothing stale: a module removed here must not run there
    for sub in ("fw", "tests", "tools"):
        os.makedirs(os.path.join(tb, sub))
    for n in sorted(os.listdir(lib)):
        if n.endswith(".mpy"):
            shutil.copy2(os.path.join(lib, n), os.path.join(tb, "fw", n))
    # test_config checks the example configuration where the tests find it: tb/boards/
    os.makedirs(os.path.join(tb, "boards"))
    shutil.copy2(os.path.join(ROOT, "boards", "config.example.json"), os.path.join(tb, "boards"))
    cache = os.path.join(out, "cache")
    os.makedirs(cache, exist_ok=True)
    mods = []
    for d, names, sub in ((tests_dir, sorted(os.listdir(tests_dir)), "tests"),
                          (TOOLS, ON_BOARD, "tools")):
        for n in names:
            if not n.endswith(".py"):
                continue
            key = sub + "-" + n[:-3] + ".mpy"
            mpy_cross(tool, arch, os.path.join(d, n), os.path.join(cache, key))
            shutil.copy2(os.path.join(cache, key), os.path.join(tb, sub, n[:-3] + ".mpy"))
            if sub == "tests" and n.startswith("test_"):
                mods.append(n[:-3])
    return mods


class SetupError(Exception):
    pass


class Board:
    # A board through mpremote; every call is one mpremote process.
    def __init__(self, mpremote, port, reset_wait, keep_no_wdt, keep_tb=False):
        self.mpremote = mpremote
        self.port = port
        self.reset_wait = reset_wait
        self.keep_no_wdt = keep_no_wdt
        self.keep_tb = keep_tb

    def _call(self, args, capture=False):
        cmd = [self.mpremote, "connect", self.port] + args
        if capture:
            return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, cwd=ROOT)
        if subprocess.run(cmd, cwd=ROOT).returncode:
            raise SetupError("failed: " + " ".join(cmd))
        return None

    def put(self, stage_dir):
        self._call(["fs", "touch", ":no-wdt", "+", "reset"])
        time.sleep(self.reset_wait)  # the board restarts (and re-enumerates on USB)
        self._call(["fs", "cp", "-r", os.path.join(stage_dir, "tb"), ":"])

    def run(self, code):
        return self._call(["exec", code], capture=True)

    def done(self):
        # :tb/ (about 300 KB) goes unless --keep-tb: the meter's logs share that flash, and
        # a full file system stops them recording (store.ERR_IO).
        args = [] if self.keep_tb else ["fs", "rm", "-r", ":tb"]
        if not self.keep_no_wdt:
            args += (["+"] if args else []) + ["fs", "rm", ":no-wdt", "+", "reset"]
        if args:
            self._call(args)


class Local:
    # The MicroPython unix port in a temporary directory: the board's layout, no board.
    def __init__(self, micropython, heap):
        self.micropython = micropython
        self.heap = heap
        self.tmp = tempfile.TemporaryDirectory(prefix="test_board_")

    def put(self, stage_dir):
        shutil.copytree(os.path.join(stage_dir, "tb"), os.path.join(self.tmp.name, "tb"))

    def run(self, code):
        return subprocess.Popen([self.micropython, "-X", "heapsize=" + self.heap, "-c", code],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                cwd=self.tmp.name)

    def done(self):
        self.tmp.cleanup()


def collect(proc, timeout, show):
    # Lines of a running program; show(line) for each as it comes. Killed after `timeout` s.
    import threading

    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    lines = []
    try:
        for line in proc.stdout:
            line = line.rstrip("\r\n")
            lines.append(line)
            show(line)
        proc.wait()
    finally:
        timer.cancel()
    return lines


class Tests:
    # Collects the runner's lines over one run per module: the failures, the module that died
    # (no summary line), and the counts summed over the modules' summary lines.
    def __init__(self, verbose):
        self.verbose = verbose
        self.runtime = None
        self.counts = [0, 0, 0]  # passed, failed, skipped
        self.died = []
        self.failed = []
        self.running = self.summary = None

    def start(self, module):
        self.running = module
        self.summary = None

    def show(self, line):
        if line.startswith("RUN "):
            self.running = line[4:]
            if not self.verbose:
                return
        elif line.startswith(("PASS ", "FAIL ", "SKIP ")):
            self.running = None
            if line.startswith("FAIL "):
                self.failed.append(line[5:])
        if " passed, " in line and " failed, " in line and line.endswith(" skipped"):
            self.summary = line
            if not self.verbose:
                return
        print(line, flush=True)

    def end(self, module):
        # after one module's run: add its summary line's counts, or note that it died
        if self.summary is None:
            self.died.append(self.running or module)
            return
        self.runtime, counts = self.summary.split(": ", 1)
        for i, part in enumerate(counts.split(", ")):
            self.counts[i] += int(part.split()[0])


def figures(lines):
    figs = {}
    for line in lines:
        p = line.split()
        if len(p) == 3 and p[1] == "micropython" and p[2].lstrip("-").isdigit():
            figs[p[0]] = int(p[2])
    return figs


# (figure, label, unit) in the order printed; README (test-board) explains each.
FIGURES = (
    ("heap.firmware_bytes", "heap taken by importing the firmware (mainloop and all)", "bytes"),
    ("heap.free_after_import", "free heap after the imports", "bytes"),
    ("heap.tables_bytes", "heap taken by the tables (default meter, flash rows) and link",
     "bytes"),
    ("heap.free_after_tables", "free heap after building them", "bytes"),
    ("alloc.session_bytes", "allocated by a session (gc.mem_alloc delta, must be 0)", "bytes"),
    ("alloc.heap_lock_ok", "same session under heap_lock() (1 = no MemoryError)", ""),
    ("req.setup_us", "session set-up: SNRM + AARQ", "us"),
    ("req.get_register_us", "GET register 1-1:1.8.0", "us"),
    ("req.get_clock_us", "GET clock", "us"),
    ("req.lp_block_us", "one load-profile block (GET-next, 1024-byte PDU, its RRs)", "us"),
    ("req.release_us", "release: RLRQ + DISC", "us"),
    ("crc.bytes_per_s", "CRC-16/X.25 (fcs16) throughput", "bytes/s"),
    ("crc.us_per_128_bytes", "CRC-16 of one 128-byte frame", "us"),
)


def report(figs):
    for key, label, unit in FIGURES:
        v = figs.get(key)
        print("  %-62s %10s %s" % (label, "-" if v is None else v, unit if v is not None else ""))


def main(argv=None):
    ap = argparse.ArgumentParser(description="portable tests and figures on a board")
    ap.add_argument("--board", required=True, choices=sorted(ARCH))
    ap.add_argument("--port", default="auto", help="serial device, auto, or local (unix port)")
    ap.add_argument("--bundle", help="the compiled bundle (default build/<board>)")
    ap.add_argument("--tests-dir", default=TESTS)
    ap.add_argument("--stage", help="staging directory (default build/<board>/test-board)")
    ap.add_argument("--heap", default="4m", help="MicroPython heap with --port local")
    ap.add_argument("--mpremote", default=None)
    ap.add_argument("--mpy-cross", default=None)
    ap.add_argument("--micropython", default=None)
    ap.add_argument("--reset-wait", type=float, default=3.0)
    ap.add_argument("--keep-no-wdt", action="store_true")
    ap.add_argument("--keep-tb", action="store_true",
                    help="leave :tb/ on the board (a rerun copies only what changed)")
    ap.add_argument("--timeout", type=float, default=1800,
                    help="seconds for each run on the board: the figures, each test module")
    ap.add_argument("--no-bench", action="store_true", help="tests only")
    ap.add_argument("-k", default=None)
    ap.add_argument("-v", action="store_true",
                    help="also show RUN lines and each module's summary")
    ap.add_argument("modules", nargs="*")
    a = ap.parse_args(argv)
    bundle = a.bundle or os.path.join(ROOT, "build", a.board)
    stage_dir = a.stage or os.path.join(bundle, "test-board")
    try:
        mods = stage(bundle, stage_dir, a.tests_dir, ARCH[a.board],
                     a.mpy_cross or hosttools.find("mpy-cross", "make setup installs it"))
    except (SetupError, subprocess.CalledProcessError) as e:
        print("test-board: %s" % e)
        return 2
    if a.port == "local":
        target = Local(a.micropython or hosttools.find("micropython", "make setup installs it"),
                       a.heap)
        where = "local (MicroPython unix port, heap %s)" % a.heap
    else:
        target = Board(a.mpremote or hosttools.find("mpremote", "make setup installs it"),
                       a.port, a.reset_wait, a.keep_no_wdt, a.keep_tb)
        where = a.port
    try:
        return run(target, a, stage_dir, mods, where)
    except SetupError as e:
        print("test-board: %s" % e)
        return 2


def run(target, a, stage_dir, mods, where):
    target.put(stage_dir)
    try:
        bench = []
        if not a.no_bench:
            print("test-board: figures on %s %s" % (a.board, where), flush=True)
            bench = collect(target.run(BENCH), a.timeout,
                            lambda line: a.v and print(line, flush=True))
        print("test-board: tests on %s %s" % (a.board, where), flush=True)
        t = Tests(a.v)
        for module in a.modules or mods:
            args = ["tb/fw", "tb/tests", "tb/tools/stubs", "--board"] + \
                (["-k", a.k] if a.k else []) + [module]
            t.start(module)
            collect(target.run(RUN_TESTS % (args,)), a.timeout, t.show)
            t.end(module)
    finally:
        target.done()
    return summarize(a, t, bench)


def summarize(a, t, bench):
    rc = 0
    print("test-board %s:" % a.board)
    passed, failed, skipped = t.counts
    if t.runtime is not None:
        print("  tests: %s: %d passed, %d failed, %d skipped" % (t.runtime, passed, failed, skipped))
    if failed or not passed:
        rc = 1
    for name in t.died:
        print("  tests: no summary line: the run died or hung in " + name)
        rc = 1
    for name in t.failed:
        print("  FAILED " + name)
    if a.no_bench:
        return rc
    figs = figures(bench)
    if "bench_requests done" not in bench:
        print("  figures: the timing run did not finish:")
        for line in bench[-15:]:
            print("    " + line)
        rc = 1
    report(figs)
    if figs.get("alloc.session_bytes", 0) or figs.get("alloc.heap_lock_ok", 1) != 1:
        print("  FAILED: the request path allocated on this board")
        rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
