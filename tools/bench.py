# bench.py: `make bench`. Figures, not assertions: HDLC throughput on the MicroPython unix port
# and CPython, heap taken by one link with default sizes, the metering path's cost and heap,
# and .mpy code size per board; then server time per request and wire efficiency
# (tools/bench_speed.py) and the RAM budget (tools/bench_budget.py).
import os
import subprocess
import sys
import tempfile

import bench_budget
import bench_speed
import hosttools
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE = os.path.join(ROOT, "firmware")
TESTS = os.path.join(ROOT, "host_tests", "portable")
STUBS = os.path.join(ROOT, "tools", "stubs")
BOARDS = (("rp2040_pico", "armv6m"), ("esp32_devkit", "xtensawin"))


def tool(name):
    return hosttools.find(name, "make setup installs it")


def run_bench(label, cmd, env=None):
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if out.returncode:
        print("%-14s FAILED\n%s%s" % (label, out.stdout, out.stderr))
        return {}
    figures = {}
    for line in out.stdout.splitlines():
        name, _impl, value = line.split()
        figures[name] = int(value)
    return figures


def code_size(arch):
    total = 0
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for name in sorted(os.listdir(FIRMWARE)):
            if not name.endswith(".py"):
                continue
            dst = os.path.join(d, name[:-3] + ".mpy")
            subprocess.run([tool("mpy-cross"), "-O2", "-march=" + arch, "-o", dst,
                            os.path.join(FIRMWARE, name)], check=True)
            size = os.path.getsize(dst)
            rows.append((name[:-3] + ".mpy", size))
            total += size
    return total, rows


def main():
    env = dict(os.environ, PYTHONPATH=STUBS)
    script = os.path.join(ROOT, "tools", "bench_hdlc.py")
    mp = run_bench("micropython", [tool("micropython"), script, FIRMWARE, TESTS])
    cp = run_bench("cpython", [sys.executable, script, FIRMWARE, TESTS], env)
    print("HDLC deframer + link (SNRM, 10 I-frame exchanges of 40 bytes, RR, DISC; fed whole)")
    print("  %-28s %14s %14s" % ("", "micropython", "cpython"))
    for key, label in (("hdlc.frames_per_s", "client frames per second"),
                       ("hdlc.bytes_per_s", "bytes per second"),
                       ("hdlc.us_per_frame", "us per frame")):
        print("  %-28s %14s %14s" % (label, mp.get(key, "-"), cp.get(key, "-")))
    avg = mp.get("hdlc.avg_frame_bytes") or cp.get("hdlc.avg_frame_bytes") or 0
    print("  for scale: one %d-byte client frame takes %d us on the wire at 9600 baud (8N1)"
          % (avg, avg * 10 * 1000000 // 9600))
    print("RAM")
    print("  heap of one HdlcLink, defaults (128/128, window 1, PDU 1024) on MicroPython: %s bytes"
          % mp.get("hdlc.link_heap_bytes", "-"))
    with tempfile.TemporaryDirectory() as d1, tempfile.TemporaryDirectory() as d2:
        script = os.path.join(ROOT, "tools", "bench_metering.py")
        mm = run_bench("micropython", [tool("micropython"), "-X", "heapsize=512k", script,
                                       FIRMWARE, d1])
        cm = run_bench("cpython", [sys.executable, script, FIRMWARE, d2], env)
    print("Metering (driver on the chip model, energy, engine, flash rows in files)")
    print("  %-40s %14s %14s" % ("", "micropython", "cpython"))
    for key, label in (("poll.us_per_second_of_metering", "us per 1-s poll (incl. captures)"),
                       ("backfill.ms_per_day", "backfill ms per simulated day")):
        print("  %-40s %14s %14s" % (label, mm.get(key, "-"), cm.get(key, "-")))
    print("  heap of the meter (objects, driver, energy, engine, open files) on MicroPython: "
          "%s bytes after build, %s after an hour of metering"
          % (mm.get("meter.heap_built", "-"), mm.get("meter.heap_after_hour", "-")))
    print("Code size (.mpy, mpy-cross -O2)")
    for board, arch in BOARDS:
        total, rows = code_size(arch)
        detail = ", ".join("%s %d" % r for r in rows)
        print("  %-14s %-10s %6d bytes  (%s)" % (board, arch, total, detail))
    speed = bench_speed.main() == 0  # server time per request, wire efficiency (bench_speed.py)
    budget = bench_budget.report()
    return 0 if (mp and cp and mm and cm and speed and budget) else 1


if __name__ == "__main__":
    sys.exit(main())
