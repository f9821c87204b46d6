# simmeter.py: the meter as the host simulator assembles it: the object table (model.Meter) on
# flash-backed rows in a state directory, the ATM90E32AS driver talking to the register-level
# chip model (tools/atm90e32_model.py) fed by the load scenario, the energy registers and the
# metering engine. Runs on the MicroPython unix port and on CPython.
#
# Backfill: on a fresh state directory, `backfill_days` of history are metered first in
# simulated time, through the same path as live metering (chip model -> driver -> energy ->
# capture -> flash), one front-end poll per simulated minute (the scenario stays under 9 kW,
# so no 16-bit energy register overflows in a minute; loadscenario.py). The clock then jumps
# to the PC's time; the gap of the backfill run itself is metered as one more step.
#
# Test-only time acceleration (tools/torture.py): with SIM_CLOCK=F:REAL_MS:VIRT_MS in the
# environment, the meter's time runs F times faster than this PC's, Unix time REAL_MS (in ms)
# being VIRT_MS: the clock's tick and the chip model's metered time are scaled by F, and
# boot() takes that accelerated time as its battery-backed RTC, so a restart resumes there.
# F * 1 s of metering must stay under what the chip's 16-bit energy registers hold (about
# 80 s at the scenario's 9 kW). Without SIM_CLOCK (every normal run) nothing here changes.
import os
import time

from atm90e32 import ATM90E32
from atm90e32_model import ATM90E32Model
from clock import Clock, date_to_days
from hdlc import ticks_diff
from energy import Energy
from flashrows import FlashRows
from loadscenario import Scenario
from metering import Engine, checkpoint_size
from micropython import const
from rows import Row
from store import CheckpointStore

import hostio
import model

_STEP_S = const(60)  # backfill: simulated seconds per front-end poll
_CK = "ck"  # the checkpoint log's name in the state directory
_TICKS_MASK = const(0x3FFFFFFF)  # ticks_ms() wraps at 2**30 (hdlc.ticks_diff)


def host_utc(accel=None):
    # (days since 2000-01-01, seconds of day) of this PC's UTC time, or of the accelerated
    # time (accel: (F, REAL_MS, VIRT_MS) from SIM_CLOCK); setup only.
    if accel is None:
        t = time.gmtime(time.time())
    else:
        f, real, virt = accel
        t = time.gmtime((virt + (time.time_ns() // 1000000 - real) * f) // 1000)
    return date_to_days(t[0], t[1], t[2]), t[3] * 3600 + t[4] * 60 + t[5]


def sim_clock():
    # SIM_CLOCK=F:REAL_MS:VIRT_MS parsed, None when unset; setup only.
    v = os.getenv("SIM_CLOCK")
    if not v:
        return None
    f, real, virt = [int(w) for w in v.split(":")]
    if not 1 <= f <= 80:
        raise ValueError("SIM_CLOCK factor must be 1..80")
    return f, real, virt


class _Accel:
    # The scaled clock tick: the meter's clock gets ticks advancing F ms per elapsed ms (its
    # tick method is replaced by this one's on the instance). Allocation-free.
    def __init__(self, clock, factor):
        self.clock = clock
        self.f = factor
        self._last = -1  # last real tick
        self._virt = 0  # the scaled tick count, 30 bits like ticks_ms()

    def tick(self, now_ms):
        if self._last >= 0:
            d = ticks_diff(now_ms, self._last)
            if d > 0:
                self._virt = (self._virt + d * self.f) & _TICKS_MASK
        self._last = now_ms
        Clock.tick(self.clock, self._virt)


def _no_sleep(ms):
    pass  # the chip model resets at once


class SimMeter:
    def __init__(self, state_dir, cfg=None, seed=1):
        self.dir = state_dir
        self.meter = model.Meter(cfg, rows_factory=self._rows)
        self.chip = ATM90E32Model(Scenario(seed))
        fcfg = cfg.get("frontend") if cfg else None
        self.fe = ATM90E32(self.chip.spi, self.chip.cs, fcfg, sleep_ms=_no_sleep)
        dem = self.meter.cfg["demand"]
        self.energy = Energy(self.fe.lsb_num, self.fe.lsb_den, dem["sub_s"], dem["subs"])
        self.energy.bind(self.meter.registers)
        self.ck = CheckpointStore(state_dir, _CK, checkpoint_size(self.meter, self.energy))
        self.engine = Engine(self.meter, self.fe, self.energy, self.ck)
        self._last = -1
        self.accel = sim_clock()
        self.factor = 1
        if self.accel is not None:
            self.factor = self.accel[0]
            self.meter.clock.tick = _Accel(self.meter.clock, self.factor).tick

    def _row(self):
        # A Row wide enough for any profile (boot reads the newest row of each).
        return Row(max(pg.rows.size for pg in self.meter.profiles))

    def _rows(self, name, capacity, widths):
        return FlashRows(self.dir, name, capacity, widths)

    def fresh(self):
        if self.ck.count():
            return False
        for pg in self.meter.profiles:
            if pg.rows.count():
                return False
        return True

    def boot(self, backfill_days=0, log=None):
        # Sets the clock, resumes from the state directory (or backfills a fresh one), and
        # leaves the meter ready for poll(). Returns the number of load-profile rows backfilled.
        clk = self.meter.clock
        days, secs = host_utc(self.accel)
        n = 0
        if backfill_days and self.fresh():
            clk.set_utc(days - backfill_days, secs)
            self.engine.boot(self._row())
            n = self.advance_to(days, secs, log)
            days, secs = host_utc(self.accel)
            n += self.advance_to(days, secs)  # the time the backfill itself took
        else:
            clk.set_utc(days, secs)
            self.engine.boot(self._row())
            self.engine.capture()  # start-up rows (power down/up) now, not at the first poll
            self.engine.flush()
        clk.tick(hostio.ticks_ms())
        return n

    def advance_to(self, days, secs, log=None):
        # Simulated time: meters from the clock's time to (days, secs) UTC in steps of a
        # minute. Returns the number of load-profile rows captured.
        clk = self.meter.clock
        before = self.engine.captures
        shown = clk.days
        while True:
            left = (days - clk.days) * 86400 + secs - clk.secs
            if left <= 0:
                break
            self._step(clk.days, clk.secs + (_STEP_S if left > _STEP_S else left))
            if log is not None and clk.days - shown >= 7:
                shown = clk.days
                log("backfill: %d days to go" % (days - clk.days))
        return self.engine.captures - before

    def _step(self, days, secs):
        # Meters from the clock's time to (days, secs) in one poll, then captures and writes.
        clk = self.meter.clock
        d = days + secs // 86400
        s = secs % 86400
        ms = ((d - clk.days) * 86400 + s - clk.secs) * 1000
        if ms > 0:
            self.chip.run(ms, clk.days, clk.secs)
        clk.set_utc(d, s)
        eng = self.engine
        eng.measure(0)
        eng.capture()
        eng.flush()

    def poll(self, now, bus_idle):
        # Live: the chip meters the real elapsed time at the load of the current instant.
        clk = self.meter.clock
        if self._last >= 0:
            ms = ticks_diff(now, self._last)
            if ms > 0:
                self.chip.run(ms * self.factor, clk.days, clk.secs)
        self._last = now
        self.engine.poll(now, bus_idle)
