# bench_metering.py: the metering path's cost and RAM, on whatever Python runs it (MicroPython
# unix port, or CPython with tools/stubs on the path). Prints "name impl value" lines only.
#   <python> tools/bench_metering.py FIRMWARE_DIR STATE_DIR
# The meter is the simulator's (tools/simmeter.py): driver -> chip model over the fake SPI,
# energy registers, engine, flash rows in STATE_DIR (fresh).
import gc
import sys
import time

sys.path.insert(0, sys.argv[1])

import simmeter  # noqa: E402
from clock import date_to_days  # noqa: E402

IMPL = sys.implementation.name
MP = IMPL == "micropython"


def now_us():
    if hasattr(time, "ticks_us"):
        return time.ticks_us()
    return int(time.perf_counter() * 1000000)


def elapsed_us(t0):
    if hasattr(time, "ticks_diff"):
        return time.ticks_diff(time.ticks_us(), t0)
    return now_us() - t0


def used():
    gc.collect()
    return gc.mem_alloc() if MP else 0


def out(name, value):
    print("%s %s %d" % (name, IMPL, value))


class Polls:
    # n live seconds: the chip meters 1 s, the engine polls (driver + energy + capture check)
    def __init__(self, sim):
        self.sim = sim
        self.ms = 0

    def run(self, n):
        sim = self.sim
        clk = sim.meter.clock
        for _ in range(n):
            self.ms += 1000
            s = clk.secs + 1
            clk.days += s // 86400
            clk.secs = s % 86400
            sim.chip.run(1000, clk.days, clk.secs)
            sim.engine.poll(self.ms, True)


def main():
    base = used()
    sim = simmeter.SimMeter(sys.argv[2])
    built = used()
    d = date_to_days(2026, 1, 5)
    sim.meter.clock.set_utc(d, 0)
    sim.engine.boot(simmeter.Row(64))
    t0 = now_us()
    rows = sim.advance_to(d + 7, 0)
    dt = elapsed_us(t0)
    out("meter.heap_built", built - base)
    out("backfill.rows", rows)
    out("backfill.ms_per_day", dt // 7000)
    p = Polls(sim)
    p.run(60)  # warm up
    n = 3600
    t0 = now_us()
    p.run(n)  # one hour: 4 interval ends with rows and checkpoints written to files
    dt = elapsed_us(t0)
    out("poll.us_per_second_of_metering", dt // n)
    out("meter.heap_after_hour", used() - base)


if __name__ == "__main__":
    main()
