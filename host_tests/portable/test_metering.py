# The metering engine (firmware/metering.py) on the full meter model with a scripted front-end,
# the real energy registers, in-RAM rows and an in-RAM checkpoint log: capture instants, status
# bits, power cuts, clock sets both ways, DST, billing, deferred writes, allocation. All runtimes.
import array

import axdr
import capture
import metering
import model
import rows
from clock import date_to_days
from energy import Energy
from support import assert_no_alloc, need_heap

LP = "1-0:99.1.0*255"
BILL = "1-0:98.1.0*255"
IMP, EXP, QF, QR, S = 0, 1, 2, 3, 4
ROWS_KEPT = 400


class FakeFrontEnd:
    # Scripted counts per poll (1/320 Wh each: 3200 imp/kWh at 0.01 CF).
    lsb_num = 1
    lsb_den = 320

    def __init__(self):
        self.counts = array.array("i", [320, 0, 80, 0, 400])  # 1 Wh, 0.25 varh, 1.25 VAh
        self.status = 0
        self.starts = 0
        self.polls = 0

    def start(self):
        self.starts += 1
        self.status = 0
        return 0

    def poll(self, deltas):
        self.polls += 1
        for k in range(5):
            deltas[k] = self.counts[k]
        return self.status


class RamLog:
    # The checkpoint store's interface (store.CheckpointLog): latest(dst) and append(src).
    def __init__(self, size):
        self.buf = bytearray(size)
        self.n = 0

    def latest(self, dst):
        if not self.n:
            return False
        dst[:] = self.buf
        return True

    def append(self, src):
        self.buf[:] = src
        self.n += 1
        return 0


class Rig:
    # One meter "power-on": model, engine, front-end; rows and checkpoints survive in `disk`.
    def __init__(self, disk, days, secs, cfg=None):
        self.disk = disk
        self.meter = model.Meter(cfg, rows_factory=self._rows)
        self.fe = FakeFrontEnd()
        self.energy = Energy(1, 320, 900, 1)
        self.energy.bind(self.meter.registers)
        if "ck" not in disk:
            disk["ck"] = RamLog(metering.checkpoint_size(self.meter, self.energy))
        self.eng = metering.Engine(self.meter, self.fe, self.energy, disk["ck"])
        self.meter.clock.set_utc(days, secs)
        self.eng.boot(rows.Row(64))
        self.ms = 0

    def _rows(self, name, cap, widths):
        # At most ROWS_KEPT rows per log: the longest run here records 288 rows, and the
        # default 35-day load profile in RAM (77 KB in one block) would keep these tests off a
        # board's heap. Full-size tables are test_meter_model's and test_profile_generic's.
        if name not in self.disk:
            self.disk[name] = rows.MemoryRows(min(cap, ROWS_KEPT), widths)
        return self.disk[name]

    def run(self, seconds, step=60, idle=True):
        # Advance the clock and poll once per step; the front-end counts once per poll.
        clk = self.meter.clock
        for _ in range(seconds // step):
            s = clk.secs + step  # as Clock.tick() advances it (set_utc would mark it valid)
            clk.days += s // 86400
            clk.secs = s % 86400
            self.ms += step * 1000
            self.eng.poll(self.ms, idle)

    def rows(self, obis=LP):
        r = self.meter.profile(obis).rows
        out = []
        row = rows.Row(r.size)
        for i in range(r.count()):
            r.read(i, row)
            out.append((row.days, row.secs, row.status, bytes(row.vals)))
        return out

    def total(self, obis="1-1:1.8.0"):
        raw = self.meter.registers[model.cosem.parse_obis(obis)].raw
        v = 0
        for b in raw:
            v = (v << 8) | b
        return v


def u32(b, p):
    return (b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]


D0 = date_to_days(2024, 1, 10)


def test_rows_at_every_boundary_with_interval_energies():
    rig = Rig({}, D0, 3600 + 120)  # starts 2 minutes into an interval
    rig.run(86400)
    got = rig.rows()
    assert len(got) == 96
    assert got[0][:2] == (D0, 3600 + 900)  # the partial first interval ends at the boundary
    for k in range(1, 96):
        assert (got[k][0] - got[k - 1][0]) * 86400 + got[k][1] - got[k - 1][1] == 900
    # power up + master reset (fresh store) on the first row only
    assert got[0][2] == capture.ST_POWER_UP | capture.ST_MASTER_RESET
    assert all(g[2] == 0 for g in got[1:])
    # a whole interval: 15 polls of 1 Wh import, 0.25 varh forward
    assert u32(got[5][3], 0) == 15 and u32(got[5][3], 8) == 0
    # intervals add up to 1.8.0, less the 2 polls of the interval in progress (01:01, 01:02)
    assert sum(u32(g[3], 0) for g in got) == rig.total() - 2
    assert got[0][3][:4] == b"\x00\x00\x00\x0d"  # 13 polls in the partial first interval


def test_power_cut_and_restart_later_marks_power_down_and_up():
    disk = {}
    rig = Rig(disk, D0, 0)
    rig.run(3 * 3600 + 420)  # cut at 03:07 with 7 polls in the interval in progress
    before_cut = rig.total()
    n = len(rig.rows())
    rig2 = Rig(disk, D0, 5 * 3600 + 60)  # power back at 05:01
    assert rig2.total() == before_cut - 7  # the interval in progress is what is lost
    rig2.run(1800)
    got = rig2.rows()
    assert got[n - 1][1] == 3 * 3600  # the last row before the cut
    assert got[n][:3] == (D0, 3 * 3600 + 900, capture.ST_POWER_DOWN)  # the interval it failed in
    assert got[n][3] == bytes(16)  # its energy was lost: zeros, not a guess
    assert got[n + 1][:3] == (D0, 5 * 3600 + 900, capture.ST_POWER_UP)
    assert got[n + 2][:3] == (D0, 5 * 3600 + 1800, 0)
    assert rig2.total() >= before_cut - 7


def test_restart_within_the_same_interval_marks_both_bits_on_one_row():
    disk = {}
    rig = Rig(disk, D0, 0)
    rig.run(3600 + 120)
    rig2 = Rig(disk, D0, 3600 + 600)
    rig2.run(600)
    got = rig2.rows()
    assert got[-1][:3] == (D0, 3600 + 900, capture.ST_POWER_DOWN | capture.ST_POWER_UP)
    assert got[-2][1] == 3600 and len(got) == 5
    ts = [(g[0], g[1]) for g in got]
    assert ts == sorted(set(ts))


def test_cut_between_row_and_checkpoint_keeps_the_row_without_duplicating_it():
    disk = {}
    rig = Rig(disk, D0, 0)
    rig.run(1800)
    ck = disk["ck"]
    saved = bytearray(ck.buf)
    rig.run(900)  # one more row, then "lose" its checkpoint
    ck.buf[:] = saved
    rig2 = Rig(disk, D0, 2700 + 300)
    rig2.run(1200)
    ts = [(g[0], g[1]) for g in rig2.rows()]
    assert ts == sorted(set(ts)) and ts[:3] == [(D0, 900), (D0, 1800), (D0, 2700)]


def set_clock(meter, y, mo, d, h, mi, s):
    # A client's SET of Clock attribute 2 (management association), local time, deviation
    # unspecified: the real request path, so the time-changed hook runs.
    buf = bytearray(14)
    dt = [y, mo, d, 0xFF, h, mi, s, 0, axdr.DEVIATION_UNSPECIFIED, 0xFF]
    axdr.put_datetime(buf, 0, dt)
    assert meter.clock.set(2, axdr.Reader(buf, 0, 14), model.MANAGEMENT) == 0


def test_clock_set_forward_closes_the_interval_at_its_planned_end():
    rig = Rig({}, D0, 0)
    rig.run(1200)  # 00:20 UTC = 01:20 CET
    set_clock(rig.meter, 2024, 1, 10, 4, 0, 0)  # 04:00 CET = 03:00 UTC
    rig.run(1800)
    got = rig.rows()
    assert [(g[1], g[2]) for g in got] == [
        (900, capture.ST_POWER_UP | capture.ST_MASTER_RESET),
        (1800, capture.ST_TIME_CHANGED),  # the interrupted interval, at its planned end
        (3 * 3600 + 900, 0),
        (3 * 3600 + 1800, 0),
    ]
    # 00:16..00:20: 5 polls, then the set; the poll that first sees the new time (a second of
    # energy on a meter, a minute in this test) still closes into the interrupted interval
    assert u32(got[1][3], 0) == 5 + 1


def test_clock_set_backward_holds_rows_until_time_passes_the_last_one():
    rig = Rig({}, D0, 0)
    rig.run(3600 + 300)  # 01:05 UTC
    total = rig.total()
    set_clock(rig.meter, 2024, 1, 10, 1, 30, 0)  # 01:30 CET = 00:30 UTC: 35 minutes back
    rig.run(3600)
    got = rig.rows()
    ts = [(g[0], g[1]) for g in got]
    assert ts == sorted(set(ts))  # never a duplicate or an out-of-order timestamp
    assert ts[:4] == [(D0, 900), (D0, 1800), (D0, 2700), (D0, 3600)]
    held = got[4]
    assert held[:3] == (D0, 4500, capture.ST_TIME_CHANGED)  # the planned end, reached again
    assert u32(held[3], 0) == 5 + 45  # 01:01..01:05 before the set, 00:31..01:15 after
    assert rig.total() == total + 60
    assert sum(u32(g[3], 0) for g in got) == rig.total()


def test_dst_started_and_ended_rows():
    need_heap(104 * 1024)  # 64-bit unix port, fresh process, +10 %
    for month, day, bit in ((3, 31, capture.ST_DST_STARTED), (10, 27, capture.ST_DST_ENDED)):
        d = date_to_days(2024, month, day)
        rig = Rig({}, d, 0)
        rig.run(3 * 3600, step=300)
        flagged = [(g[1], g[2]) for g in rig.rows() if g[2] & (0x300)]
        assert flagged == [(3600 + 900, bit)]


def test_billing_rows_at_local_midnight_on_the_1st():
    d = date_to_days(2024, 2, 28)
    rig = Rig({}, d, 12 * 3600)
    rig.run(3 * 86400, step=300)  # over 1 March 00:00 CET = 29 Feb 23:00 UTC (leap year)
    got = rig.rows(BILL)
    assert len(got) == 1
    assert got[0][:3] == (date_to_days(2024, 2, 29), 23 * 3600, capture.ST_NOT_PERIODIC)
    # values: the billing registers at that instant; 1.8.0 first (u64), polls of 1 Wh / 5 min
    polls = (date_to_days(2024, 2, 29) - d) * 288 + (23 - 12) * 12
    assert got[0][3][:8] == polls.to_bytes(8, "big")


def test_billing_never_repeats_after_a_backward_set():
    d = date_to_days(2024, 2, 29)
    rig = Rig({}, d, 22 * 3600)
    rig.run(7200, step=300)  # past 1 March 00:00 CET
    set_clock(rig.meter, 2024, 2, 29, 20, 0, 0)  # back before the instant
    rig.run(4 * 3600, step=300)
    assert len(rig.rows(BILL)) == 1


def test_billing_instant_passed_while_off_is_recorded_at_restart():
    need_heap(79 * 1024)  # 64-bit unix port, fresh process, +10 %
    disk = {}
    d = date_to_days(2024, 2, 28)
    rig = Rig(disk, d, 0)
    rig.run(3600, step=300)
    rig2 = Rig(disk, date_to_days(2024, 3, 3), 0)
    rig2.run(600, step=300)
    got = rig2.rows(BILL)
    assert [g[:2] for g in got] == [(date_to_days(2024, 2, 29), 23 * 3600)]


def test_writes_wait_for_an_idle_bus_at_most_five_seconds():
    need_heap(104 * 1024)  # 64-bit unix port, fresh process, +10 %
    rig = Rig({}, D0, 840)
    rig.run(70, step=1, idle=False)  # the 00:15 boundary passes during a busy bus
    r = rig.meter.profile(LP).rows
    assert r.count() == 1  # deferred at most 5 s, then written anyway
    rig.run(840, step=1, idle=False)
    rig.run(60, step=60, idle=True)
    assert r.count() == 2
    rig2 = Rig({}, D0, 840)
    rig2.run(62, step=1, idle=False)  # 2 s past the boundary: still waiting
    assert rig2.eng.pending()
    assert rig2.meter.profile(LP).rows.count() == 0
    rig2.run(1, step=1, idle=True)
    assert rig2.meter.profile(LP).rows.count() == 1 and not rig2.eng.pending()


def test_front_end_that_stops_metering_is_started_again():
    rig = Rig({}, D0, 0)
    assert rig.fe.starts == 1
    rig.fe.status = 2  # frontend.ERR_NOT_METERING
    rig.run(60)
    assert rig.fe.starts == 2 and rig.eng.fe_errors == 1
    assert rig.total() == 1  # the poll's values still counted


def test_no_capture_until_the_clock_is_valid():
    rig = Rig({}, D0, 0)
    clk = rig.meter.clock
    clk.status |= 1  # invalid, as on a board without RTC after power-up
    rig.run(1800)
    assert rig.rows() == [] and rig.total() == 30
    clk.set_utc(D0, 1800)
    rig.run(900)
    assert [g[1] for g in rig.rows()] == [2700]


class Steady:
    def __init__(self, rig):
        self.rig = rig

    def step(self, x):
        # 15 polls: crosses one interval boundary, captures, flushes, checkpoints
        self.rig.run(900)


def test_steady_state_allocation_free():
    need_heap(54 * 1024)  # 64-bit unix port, fresh process, +10 %
    rig = Rig({}, D0, 0)
    rig.run(1800)
    assert_no_alloc(Steady(rig).step, 0, "metering interval")


def test_schedule_and_dst_rule_from_config():
    # US Eastern: UTC-5, DST from the 2nd Sunday of March 07:00 UTC (02:00 EST); billing on the
    # 15th at 06:00 local; hourly recording.
    cfg = {"utc_offset": -300, "recording_interval": 3600,
           "dst_rule": {"begin": [3, 2, 7, 7], "end": [11, 1, 7, 6], "deviation": 60},
           "billing": {"day": 15, "hour": 6, "minute": 0}}
    d = date_to_days(2024, 3, 9)
    rig = Rig({}, d, 0, cfg)
    rig.run(7 * 86400, step=300)
    got = rig.rows()
    assert all(g[1] % 3600 == 0 for g in got) and len(got) == 7 * 24
    flagged = [(g[0], g[1]) for g in got if g[2] & 0x300]
    # 10 March 2024 07:00 UTC: the hour 07:00-08:00 UTC is the first in DST, its row at 08:00
    assert flagged == [(date_to_days(2024, 3, 10), 8 * 3600)]
    bill = rig.rows(BILL)
    # 15 March 06:00 EDT = 10:00 UTC
    assert [(b[0], b[1]) for b in bill] == [(date_to_days(2024, 3, 15), 10 * 3600)]
