# The board main loop (firmware/mainloop.py) on a fake board: fake UART/DE/LED/WDT/RTC and
# clock (test_rs485.py's fakes), the real ATM90E32 driver on the register-level chip model
# (tools/atm90e32_model.py), flash rows in a temporary directory. A scripted HDLC session
# (SNRM/UA, AARQ/AARE, GET clock) over the fake UART while the engine meters and captures a
# row; input split across reads; echo; a fault logged and the loop serving on; a burst of
# faults starving the watchdog; the no-wdt flag; the reset counter that prevents a boot loop;
# the RTC both ways; boot() with a config file; allocation-free iterations. All runtimes.
import os
import sys
import time

from support import host_fake

# Every test here runs the loop on FakeBoard, whose front-end is the host-side chip model: on a
# board (not copied there) the whole module skips before its imports take the heap.
host_fake("atm90e32_model")

import config
import mainloop
from app_util import AARQ_LLS_12345678, aarq, get, set_req
from capture import ST_MASTER_RESET, ST_POWER_UP
from clock import ST_INVALID, date_to_days
from hdlc_util import C1, C16, LLC_REQ, SNRM, SRV, frame, i_ctrl, parse, split_frames
from rows import Row
from rs485 import FLUSH_UART
from support import IS_MICROPYTHON, SkipTest, assert_no_alloc, host_fake, unhex
from test_rs485 import FakeClock, FakePin, FakeUART

LN_CLOCK = unhex("00 00 01 00 00 FF")
LN_LP = unhex("01 00 63 01 00 FF")
AARE_OK = unhex("A2 03 02 01 00")  # AARE result: accepted
BOOT_DT = (2026, 3, 2, 0, 10, 14, 50, 0)  # RTC: Monday 2026-03-02 10:14:50 UTC

# **** a temporary directory (os only: every runtime has it) ****

_made = [0]


def _tmp():
    base = "."
    for p in ("/tmp", "."):
        try:
            os.stat(p)
            base = p
            break
        except OSError:
            pass
    t = time.ticks_us() if hasattr(time, "ticks_us") else int(time.time() * 1000000)
    while True:
        _made[0] += 1
        path = "%s/mainloop_%d_%d" % (base, t & 0xFFFFFF, _made[0])
        try:
            os.mkdir(path)
            return path
        except OSError:
            pass


def _rmtree(path):
    for name in os.listdir(path):
        p = path + "/" + name
        try:
            os.remove(p)
        except OSError:
            _rmtree(p)
    os.rmdir(path)


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


# **** the fake board ****


class FakeWDT:
    def __init__(self, ms):
        self.ms = ms
        self.feeds = 0

    def feed(self):
        self.feeds += 1


class FakeRTC:
    def __init__(self, dt):
        self.dt = dt
        self.sets = []

    def datetime(self, t=None):
        if t is None:
            return self.dt
        self.dt = t
        self.sets.append(t)


class FakeBoard:
    # The board module's interface (boards/rp2040_pico/board.py) on fakes.
    NAME = "fake"
    CONFIG = "config.json"
    WDT_MS = 8000
    RX_SIZE = 256
    FLUSH = FLUSH_UART
    TURNAROUND_US = -1
    GUARD_US = 0

    def __init__(self, root, rtc_dt=BOOT_DT, echo=False):
        self.ROOT = root
        self.ECHO = echo
        self.clk = FakeClock()
        self.clk.after = self._elapsed
        # the host-side chip model: on a board every test on this fake board skips
        self.chip = host_fake("atm90e32_model").ATM90E32Model(host_fake("loadscenario").Scenario(1))
        self.u = FakeUART(self.clk, 9600)
        self.u.loopback = echo
        self.de_pin = FakePin(self.clk, "de")
        self.led_pin = FakePin(self.clk, "led")
        self.rtc_obj = FakeRTC(rtc_dt) if rtc_dt else None
        self.wdts = []
        self.bauds = []
        self.main = None  # the chip meters once the meter clock exists
        self._us = 0
        self.ticks_ms = self.clk.ticks_ms
        self.ticks_us = self.clk.ticks_us
        self.sleep_ms = self.clk.sleep_ms
        self.sleep_us = self.clk.sleep_us

    def _elapsed(self, us):
        # The chip model meters the elapsed time (at the load of the meter clock's instant).
        self._us += us
        if self._us >= 10000:
            ms = self._us // 1000
            self._us -= ms * 1000
            if self.main is not None:
                c = self.main.clock
                self.chip.run(ms, c.days, c.secs)

    def uart(self, baud):
        self.bauds.append(baud)
        return self.u

    def de(self):
        return self.de_pin

    def spi(self):
        return self.chip.spi

    def cs(self):
        return self.chip.cs

    def led(self):
        return self.led_pin

    def wdt(self, ms):
        w = FakeWDT(ms)
        self.wdts.append(w)
        return w

    def rtc(self):
        return self.rtc_obj


class Rig:
    def __init__(self, cfg=None, rtc_dt=BOOT_DT, echo=False, files=None):
        self.root = _tmp()
        for name in files or ():
            with open(self.root + "/" + name, "w") as f:
                f.write(files[name])
        self.board = FakeBoard(self.root, rtc_dt, echo)
        c = config.defaults()
        c["lls_password"] = "12345678"
        for k in cfg or ():
            c[k] = cfg[k]
        self.printed = []
        self.main = mainloop.Main(self.board, c, self.root, self.printed.append)
        self.board.main = self.main
        self.uart = self.board.u
        self.clk = self.board.clk
        self.seq = 0  # next N(S) = N(R) of the client's I-frames

    def close(self):
        _rmtree(self.root)

    def steps(self, n, ms=0):
        for _ in range(n):
            self.main.step()
            if ms:
                self.clk.advance(ms * 1000)

    def exchange(self, f, limit=200):
        # Puts a frame on the line, runs the loop until the answer went out; its frames.
        self.uart.feed(f)
        for _ in range(limit):
            self.main.step()
            if self.uart.n_out and self.uart.r == self.uart.w:
                return split_frames(self.uart.output())
        return []

    def connect(self, client=C16):
        out = self.exchange(frame(SRV, client, SNRM))
        assert len(out) == 1 and parse(out[0])[3] == 0x73  # UA
        self.seq = 0

    def request(self, apdu, client=C16):
        k = self.seq & 7
        out = self.exchange(frame(SRV, client, i_ctrl(k, k), LLC_REQ + apdu))
        self.seq += 1
        assert len(out) == 1, out
        seg, dst, src, ctrl, info = parse(out[0])
        assert ctrl & 1 == 0 and (ctrl >> 1) & 7 == k and ctrl >> 5 == (k + 1) & 7, hex(ctrl)
        return info[3:]  # after the LLC header

    def log(self):
        return _read(self.root + "/" + mainloop.LOG)


def _u32(b, p):
    return (b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]


def _get_clock(rig):
    apdu = rig.request(get(8, LN_CLOCK, 2))
    assert apdu[:4] == b"\xC4\x01\xC1\x00" and apdu[4] == 0x09 and apdu[5] == 12, apdu
    return apdu[6:18]


# **** the session ****


def test_hdlc_session_while_metering_captures_a_row():
    r = Rig()
    try:
        m = r.main
        assert r.board.bauds == [9600] and len(r.board.wdts) == 1
        assert m.rtc_ok and not m.clock.status & ST_INVALID
        assert m.clock.days == date_to_days(2026, 3, 2)
        assert m.clock.secs == 10 * 3600 + 14 * 60 + 50
        r.connect()
        aare = r.request(aarq())
        assert aare[0] == 0x61 and AARE_OK in aare
        dt = _get_clock(r)
        # 2026-03-02 11:14:5x local (CET, deviation -60), status 0: the RTC's time
        assert dt[:5] == b"\x07\xEA\x03\x02\x01" and dt[5] == 11 and dt[6] == 14, dt
        assert dt[7] >= 50 and dt[9:11] == b"\xFF\xC4" and dt[11] == 0, dt
        # DE went up and down once per answer, around the bytes
        assert r.board.de_pin.changes == 1 + 2 * 3 and r.board.de_pin.v == 0
        # meter across 10:15:00 UTC (an interval end), serving a GET every second
        lp = m.meter.profile("1-0:99.1.0*255")
        assert lp.rows.count() == 0 and m.engine.captures == 0
        for _ in range(12):
            r.steps(100, ms=9)
            _get_clock(r)
        assert m.engine.captures == 1 and lp.rows.count() == 1
        assert m.engine.fe_status == 0 and m.engine.fe_errors == 0
        row = Row(lp.rows.size)
        assert lp.rows.read(0, row)
        assert row.days == date_to_days(2026, 3, 2) and row.secs == 10 * 3600 + 15 * 60
        assert row.status == ST_POWER_UP | ST_MASTER_RESET  # first interval of a fresh meter
        # the interval's kWh del + kWh rec (1-1:1.29.0, 1-1:2.29.0: columns 1 and 3, u32 Wh):
        # the scenario exports at this hour (solar), about 4 Wh in 10 s
        wh = _u32(row.vals, 0) + _u32(row.vals, 8)
        assert 1 <= wh <= 20, wh
        # the watchdog was fed every iteration, the LED blinks
        assert r.board.wdts[0].feeds > 1000 and r.board.led_pin.changes > 10
        assert m.faults == 0 and not m.starving
    finally:
        r.close()


def test_frames_split_across_reads_and_echo():
    for chunk, echo in ((1, False), (7, False), (5, True)):
        r = Rig(echo=echo)
        try:
            r.uart.chunk = chunk
            r.connect()
            assert AARE_OK in r.request(aarq())
            _get_clock(r)
            assert r.main.port.echo_errors == 0
            assert r.main.faults == 0
        finally:
            r.close()


def test_clock_set_reaches_the_rtc_and_a_plausible_rtc_only_sets_the_clock():
    r = Rig()
    try:
        r.connect(C1)
        aare = r.request(AARQ_LLS_12345678, C1)
        assert AARE_OK in aare, aare
        # SET 2027-01-05 08:09:10 local CET (UTC 07:09:10)
        value = unhex("09 0C 07 EB 01 05 FF 08 09 0A 00 FF C4 00")
        resp = r.request(set_req(8, LN_CLOCK, 2, value), C1)
        assert resp == b"\xC5\x01\xC1\x00", resp
        r.steps(60, ms=1)  # the RTC is written from the loop (the tuple allocates)
        sets = r.board.rtc_obj.sets
        assert len(sets) == 1 and sets[0][:3] == (2027, 1, 5), sets
        assert sets[0][3] == 1 and sets[0][4] == 7 and sets[0][5] == 9  # Tuesday = 1 (Monday 0)
        assert sets[0][6] >= 10
    finally:
        r.close()
    for dt in ((2021, 1, 1, 4, 0, 0, 5, 0), (2000, 1, 1, 5, 0, 0, 0, 0)):  # rp2 / esp32 resets
        r = Rig(rtc_dt=dt)
        try:
            assert not r.main.rtc_ok and r.main.clock.status & ST_INVALID
            assert "clock not set: RTC reads %d-01-01" % dt[0] in r.log()
            r.connect()
            assert AARE_OK in r.request(aarq())
            r.steps(300, ms=20)  # 6 s across nothing: no capture with an unknown time
            assert r.main.engine.captures == 0
        finally:
            r.close()
    r = Rig(rtc_dt=None)  # no RTC at all
    try:
        assert not r.main.rtc_ok and r.main.clock.status & ST_INVALID
        assert "clock not set" in r.log()
    finally:
        r.close()


# **** faults and the watchdog ****


def test_a_fault_is_logged_and_the_loop_serves_on():
    r = Rig()
    try:
        r.connect()
        assert AARE_OK in r.request(aarq())
        r.uart.feed(b"\x7e")  # something to read, then the driver fails
        r.uart.fail_reads = 1
        r.steps(3, ms=1)
        assert r.main.faults == 1
        log = r.log()
        assert "fault 1 at " in log and "OSError" in log, log
        assert r.printed[-1] in log and r.printed[-1].startswith("fault 1 at ")  # and printed
        feeds = r.board.wdts[0].feeds
        r.uart.r = r.uart.w  # the stray flag byte is gone with the fault
        _get_clock(r)  # still serving, same association
        assert r.board.wdts[0].feeds > feeds and not r.main.starving
    finally:
        r.close()


def test_a_burst_of_faults_starves_the_watchdog_and_limits_the_log():
    r = Rig()
    try:
        w = r.board.wdts[0]
        for _ in range(8):
            r.uart.feed(b"\x7e")
            r.uart.fail_reads = 1
            r.steps(1, ms=100)
            r.uart.r = r.uart.w
        assert r.main.faults == 8 and r.main.starving
        log = r.log()
        assert log.count("fault ") == 3 and "faults in 60 s: watchdog reset" in log, log
        fed = w.feeds
        r.connect()  # still answering until the watchdog resets the board
        assert w.feeds == fed
        # a quiet minute later the next fault is logged again, with the count of the others
        r.steps(70, ms=1000)
        r.uart.feed(b"\x7e")
        r.uart.fail_reads = 1
        r.steps(1)
        assert "(5 more not logged before it)" in r.log()
    finally:
        r.close()


def test_no_wdt_flag():
    r = Rig(files={mainloop.NO_WDT: ""})
    try:
        assert r.board.wdts == [] and r.main.wdt is None
        assert "watchdog off" in r.log()
        r.connect()
        r.steps(100, ms=10)
        # not even after a healthy period
        r.steps(620, ms=1000)
        assert r.board.wdts == [] and r.main.resets == 0
    finally:
        r.close()


def test_reset_counter_prevents_a_boot_loop():
    r = Rig(files={mainloop.RESETS: "3"})  # three boots in a row that never got healthy
    try:
        assert r.main.resets == 4 and r.board.wdts == []
        assert _read(r.root + "/" + mainloop.RESETS) == "4"
        assert "watchdog deferred: boot 4 in a row" in r.log()
        # faults now only get logged (no watchdog to starve)
        for _ in range(6):
            r.uart.feed(b"\x7e")
            r.uart.fail_reads = 1
            r.steps(1, ms=10)
            r.uart.r = r.uart.w
        assert r.main.faults == 6 and not r.main.starving
        # ten fault-free minutes: the counter clears and the watchdog starts
        r.steps(590, ms=1000)
        assert r.board.wdts == []
        r.steps(20, ms=1000)
        assert len(r.board.wdts) == 1 and r.main.resets == 0
        assert _read(r.root + "/" + mainloop.RESETS) == "0"
        assert r.board.wdts[0].feeds > 0 and "watchdog started" in r.log()
    finally:
        r.close()
    r = Rig(files={mainloop.RESETS: "1"})  # a normal boot after a healthy one
    try:
        assert r.main.resets == 2 and len(r.board.wdts) == 1
    finally:
        r.close()


def test_heap_lock_flag():
    # config flags.heap_lock: the loop runs with the heap locked; an allocation in an iteration
    # is a fault (logged, heap unlocked for it) and the loop goes on.
    if not IS_MICROPYTHON or sys.platform == "webassembly":
        raise SkipTest("heap_lock raises MemoryError on the unix port only (wasm hangs)")
    c = config.defaults()
    c["flags"]["heap_lock"] = True
    r = Rig({"flags": c["flags"]})
    try:
        r.clk.record = False  # the fakes' event log allocates
        r.main.run(50)
        assert r.main.faults == 0
        r.uart.feed(b"\x7e")
        r.uart.readinto = _AllocatesOnce(r.uart.readinto)
        r.main.run(5)
        assert r.main.faults == 1 and "MemoryError" in r.log(), r.log()
        r.uart.r = r.uart.w
        r.uart.feed(frame(SRV, C16, SNRM))
        r.main.run(5)  # served with the heap locked again
        out = split_frames(r.uart.output())
        assert len(out) == 1 and parse(out[0])[3] == 0x73
        assert r.main.faults == 1 and not r.main._locked
        x = [1, 2, 3]  # the heap is unlocked after run()
        assert len(x) == 3
    finally:
        r.close()


class _AllocatesOnce:
    # A UART read that allocates (a list) the first time: under the lock, a MemoryError.
    def __init__(self, read):
        self.read = read
        self.left = 1

    def __call__(self, buf, n=-1):
        if self.left:
            self.left = 0
            return len([n, n])
        return self.read(buf, n)


def _boot_file(root, text):
    # mainloop.boot() as a board's main.py calls it, with config.json holding text.
    path = root + "/config.json"
    with open(path, "w") as f:
        f.write(text)
    board = FakeBoard(root)
    m = mainloop.boot(board, path)
    board.main = m
    return board, m


def test_boot_with_a_config_file():
    root = _tmp()
    try:
        board, m = _boot_file(root, '{"hdlc": {"unit_id": 18, "baud": 19200}, "recording_interval": 7}')
        assert m.link.unit_id == 18 and board.bauds == [19200]
        assert m.engine.period == 900  # 7 s is invalid: the default, with a message
        log = _read(root + "/" + mainloop.LOG)
        assert "recording_interval 7 invalid" in log and "meter fake: unit 18, 19200 baud" in log
        assert "no lls_password" in log
        m.run(20)
        assert m.faults == 0
    finally:
        _rmtree(root)


def test_boot_drops_the_config_module_it_loaded():
    # config.py is boot-only: boot() imports it and drops it from sys.modules again, so its
    # code can be collected (tools/bench_heap.py drop.config); the log works without it. A
    # config module imported before boot (a test, a tool) is left alone.
    saved = sys.modules.pop("config")
    root = _tmp()
    try:
        board, m = _boot_file(root, '{"recording_interval": 7}')
        assert "config" not in sys.modules and not hasattr(mainloop, "config")
        assert m.meter.cfg is None  # the builders' input, not kept either
        m.log(["fault 1 at 5 ms: after boot"])
        log = _read(root + "/" + mainloop.LOG)
        assert "recording_interval 7 invalid" in log and log.endswith("after boot\n")
        m.run(20)
        assert m.faults == 0
        sys.modules["config"] = saved
        _boot_file(root, '{"recording_interval": 7}')
        assert sys.modules["config"] is saved
    finally:
        sys.modules["config"] = saved
        _rmtree(root)


# **** allocation ****


class _Requests:
    # GET clock requests (N(S) = N(R) = k per request) and loop iterations; repeatable.
    def __init__(self, rig):
        self.rig = rig
        self.frames = [frame(SRV, C16, i_ctrl(k, k), LLC_REQ + get(8, LN_CLOCK, 2))
                       for k in range(8)]
        self.answers = 0

    def run(self, steps):
        rig = self.rig
        rig.uart.feed(self.frames[rig.seq & 7])
        rig.seq += 1
        for _ in range(steps):
            rig.main.step()
            rig.clk.advance(5000)
        if rig.uart.n_out:
            self.answers += 1
        rig.uart.n_out = 0


def test_steady_state_iterations_allocate_nothing():
    r = Rig(echo=True)
    try:
        r.connect()
        assert AARE_OK in r.request(aarq())
        _get_clock(r)
        d = _Requests(r)
        # get close to 10:15:00 UTC so the measured iterations include a capture (flash rows
        # and checkpoint written), front-end polls and the LED
        while r.main.clock.secs < 10 * 3600 + 14 * 60 + 59:
            d.run(20)
        assert d.answers > 0 and r.main.engine.captures == 0
        r.clk.record = False  # the fakes' event log allocates
        polls = r.main.engine.fe_errors, r.board.chip.reads[0x80]
        assert_no_alloc(d.run, 200, "main loop: 200 iterations with a GET")
        assert r.main.engine.captures == 1, "the capture happened in the measured iterations"
        assert r.board.chip.reads[0x80] >= polls[1] + 2 and r.main.engine.fe_errors == polls[0]
        assert_no_alloc(d.run, 30, "main loop: 30 iterations with a GET")
        assert r.main.faults == 0 and r.main.port.echo_errors == 0
        assert d.answers >= 3
    finally:
        r.close()
