# bench_minheap.py: the smallest MicroPython heap (-X heapsize=) with which the simulator serves
# a whole client session, the simulator importing the firmware as .mpy (tools/mpycache.py) as a
# board does. Each size is judged by a real dlms-cosem session against tools/simhost.py under
# the unix port: associate (public), read every attribute of the object list, the whole load
# profile by block transfer, a range read and entry reads (the interop suite's own checks,
# host_tests/test_sim_interop.py, imported), then an LLS association that sets the clock and
# is refused a register write, and Gurux reads every attribute and the profile by range and entry.
#
#   python tools/bench_minheap.py [--lo 16] [--hi 512] [--step 4] [--backfill-days 2] [-v]
#   bisect(lo_k, hi_k, step_k, backfill_days) -> (smallest passing KiB or None, trials)
# Figures only; a size that fails may fail by MemoryError in the meter (it then stops or
# answers nothing) or by the client timing out.
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# As host_tests/conftest.py: the last inserted wins, so firmware/config.py beats tools/config.py.
for _sub in ("host_tests", "tools", "tools/stubs", "firmware", "host_tests/portable"):
    sys.path.insert(0, os.path.join(ROOT, _sub))

import hosttools  # noqa: E402
import mpycache  # noqa: E402

PASSWORD = "sim-pass-1"  # test_sim_interop.PASSWORD


def start(heap_k, state, port, mpy_dir):
    env = dict(os.environ, MICROPYPATH=mpy_dir)
    cmd = [hosttools.find("micropython", "make setup installs it"), "-X",
           "heapsize=%dk" % heap_k, "-m", "simhost", "hdlc_tcp=127.0.0.1:%d" % port,
           "state_dir=" + state, "lls_password=" + PASSWORD, "backfill_days=0"]
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def wait_ready(proc, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            return None
        if line.startswith("READY hdlc-tcp "):
            return line.split()[2]
    return None


class _Ready:
    # What interop_util.Port needs of a running simulator: its READY addresses.
    def __init__(self, addr):
        self.ready = {"hdlc-tcp": addr}


def session(addr):
    # The interop suite's own tests on HDLC over TCP, in the order a head-end would run them.
    import test_sim_interop as t

    t.structlog.configure(
        wrapper_class=t.structlog.make_filtering_bound_logger(t.logging.WARNING))
    port = t.Port(_Ready(addr), "hdlc-tcp")
    t.test_dlms_cosem_reads_every_attribute_of_the_object_list(port, "public")
    t.test_dlms_cosem_reads_the_load_profile_by_range_and_entry(port)
    t.test_dlms_cosem_reads_every_attribute_of_the_object_list(port, "lls")
    t.test_dlms_cosem_lls_sets_the_clock_and_is_refused_a_register(port)
    t.test_gurux_reads_every_attribute_of_the_object_list(port, "public")
    t.test_gurux_reads_the_load_profile_by_range_and_entry(port)


def trial(heap_k, backfill_days, mpy_dir, verbose=False):
    # True when the simulator at this heap serves the whole session.
    import sim as launcher

    state = tempfile.mkdtemp(prefix="dlms-minheap-")
    port = launcher.reserve_port("127.0.0.1")
    proc = None
    try:
        _backfill(heap_k, state, port, mpy_dir, backfill_days)
        proc = start(heap_k, state, port, mpy_dir)
        addr = wait_ready(proc, 60)
        if addr is None:
            return False, "no READY"
        try:
            session(addr)
        except Exception as e:  # noqa: BLE001 - any failure fails the size
            return False, "%s: %s" % (type(e).__name__, str(e)[:100])
        if proc.poll() is not None:
            return False, "the meter exited"
        return True, "ok"
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(state, ignore_errors=True)


def _backfill(heap_k, state, port, mpy_dir, days):
    # The history is metered at a generous heap first (the backfill is not a board's job: a
    # board meters live), then the meter restarts on that state at the size under trial.
    if not days:
        return
    env = dict(os.environ, MICROPYPATH=mpy_dir)
    cmd = [hosttools.find("micropython", ""), "-X", "heapsize=1m", "-m", "simhost",
           "hdlc_tcp=127.0.0.1:%d" % port, "state_dir=" + state, "backfill_days=%d" % days]
    p = subprocess.Popen(cmd, env=env, cwd=ROOT, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         start_new_session=True)
    wait_ready(p, 300)
    _stop(p)


def _stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGINT)  # the meter saves its state and exits
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    p.wait(5)
    for f in (p.stdout, p.stderr):
        if f:
            f.close()


def bisect(lo, hi, step, backfill_days, verbose=False):
    # Smallest passing size in KiB, to `step`, assuming hi passes; (None, trials) if hi fails.
    mpy_dir = mpycache.path()
    trials = []
    ok, why = trial(hi, backfill_days, mpy_dir, verbose)
    trials.append((hi, ok, why))
    if verbose:
        print("  %4d KiB: %s" % (hi, why), flush=True)
    if not ok:
        return None, trials
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step
        if mid <= lo:
            mid = lo + step
        ok, why = trial(mid, backfill_days, mpy_dir, verbose)
        trials.append((mid, ok, why))
        if verbose:
            print("  %4d KiB: %s" % (mid, why), flush=True)
        if ok:
            hi = mid
        else:
            lo = mid
    return hi, trials


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lo", type=int, default=16, help="KiB known to fail (default 16)")
    ap.add_argument("--hi", type=int, default=512, help="KiB expected to pass (default 512)")
    ap.add_argument("--step", type=int, default=4, help="resolution in KiB (default 4)")
    ap.add_argument("--backfill-days", type=int, default=2)
    ap.add_argument("-v", action="store_true")
    a = ap.parse_args()
    best, trials = bisect(a.lo, a.hi, a.step, a.backfill_days, a.v)
    print("minheap.kib %s" % (best if best is not None else -1))
    return 0 if best is not None else 1


if __name__ == "__main__":
    sys.exit(main())
