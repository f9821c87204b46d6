# The simulator's state directory as a head-end sees it through the real Gurux client over
# HDLC/TCP, on the MicroPython unix port and on CPython: a fresh directory backfilled with two
# days of history (load profile, billing rows, cumulative registers), the same directory after a
# stop (SIGTERM to the launcher, or SIGKILL of its whole process group: a power cut) and a
# restart, and a fresh directory without backfill. CPython runs with the meter's clock moved
# (a DST switch or a month start inside the backfill) cover what today's date may not.
#
# Expectations come from firmware/metering.py's header (rows stamped with the interval END,
# never out of order; start-up bits power up 0x40 + master reset 0x08 on a fresh store, power
# down 0x80 + power up 0x40 for a restart within the interval the power failed in; DST bits in
# the interval of the switch; a power cut loses at most the interval in progress) and from
# model.DEFAULTS (CET with the EU DST rule, 15-minute intervals, billing at 00:00 local on the
# 1st), re-derived here independently with datetime. The meter keeps metering while we read, so
# every read is a snapshot retried when a capture fell in it, and energy bounds use the load
# scenario's limit (tools/loadscenario.py: below 9 kW / 9 kVA). An orderly stop (SIGTERM)
# loses nothing; a power cut without warning (SIGKILL) loses the interval in progress.
import datetime
import math
import os
import signal
import time

import model
import pytest
from gurux_dlms import GXByteBuffer
from gurux_util import GuruxSession
from test_sim_link import Sim, TcpPeer

UTC = datetime.timezone.utc
RUNTIMES = ("micropython", "cpython")
PERIOD = 900  # recording interval, s (model.DEFAULTS["recording_interval"])
QUARTER = datetime.timedelta(seconds=PERIOD)
HOUR = datetime.timedelta(hours=1)
MAX_W = 9000  # loadscenario.py: |P| and S stay below 9 kW / 9 kVA
BACKFILL_DAYS = 2

# Seed "Status capture object bitmap" (firmware/capture.py)
MASTER_RESET = 0x0008
POWER_UP = 0x0040
POWER_DOWN = 0x0080
DST_STARTED = 0x0100
DST_ENDED = 0x0200
DST_BITS = DST_STARTED | DST_ENDED
NOT_PERIODIC = 0xFFFF  # a billing row's status

LOAD_PROFILE = "1.0.99.1.0.255"
BILLING = "1.0.98.1.0.255"
STATUS = "0.0.97.97.0.255"
# Interval energy column -> the cumulative register it adds up to (energy.py header).
INTERVAL_OF = {"1.1.1.29.0.255": "1.1.1.8.0.255", "1.1.2.29.0.255": "1.1.2.8.0.255",
               "1.1.3.29.0.255": "1.1.3.8.0.255", "1.1.4.29.0.255": "1.1.4.8.0.255"}
CUMULATIVE = ("1.1.1.8.0.255", "1.1.2.8.0.255", "1.1.3.8.0.255", "1.1.4.8.0.255",
              "1.1.5.8.0.255", "1.1.6.8.0.255", "1.1.7.8.0.255", "1.1.8.8.0.255",
              "1.1.9.8.0.255")


def test_meter_defaults_are_what_this_file_models():
    # The calendar below hard-codes these; a changed default must be modelled here too.
    d = model.DEFAULTS
    assert d["recording_interval"] == PERIOD
    assert d["utc_offset"] == 60 and d["dst"] is True
    assert d["dst_rule"] == {"begin": [3, 5, 7, 1], "end": [10, 5, 7, 1], "deviation": 60}
    assert d["billing"] == {"day": 1, "hour": 0, "minute": 0}


# **** the calendar, independently: CET (UTC+1), EU DST (last Sunday of March/October, 01:00
# UTC, +1 h), billing at 00:00 local wall time on the 1st ****


def last_sunday(year, month):
    d = datetime.date(year, month, 31)  # March and October have 31 days
    return d - datetime.timedelta(days=(d.weekday() - 6) % 7)


def dst_switches(year):
    b = last_sunday(year, 3)
    e = last_sunday(year, 10)
    return (datetime.datetime(b.year, b.month, b.day, 1, tzinfo=UTC),
            datetime.datetime(e.year, e.month, e.day, 1, tzinfo=UTC))


def in_dst(t):
    b, e = dst_switches(t.year)
    return b <= t < e


def dst_bits(end):
    # The DST bit of the row stamped `end`: its interval [end - 900 s, end) holds a switch.
    start = end - QUARTER
    bits = 0
    for y in {start.year, end.year}:
        b, e = dst_switches(y)
        if start <= b < end:
            bits |= DST_STARTED
        if start <= e < end:
            bits |= DST_ENDED
    return bits


def billing_instants(a, b):
    # UTC instants of 00:00 local wall time on the 1st of a month, a <= t <= b.
    out = []
    y, m = a.year, a.month - 1
    while True:
        if m == 0:
            y, m = y - 1, 12
        t = datetime.datetime(y, m, 1, tzinfo=UTC) - HOUR
        if in_dst(t):
            t -= HOUR
        if t > b:
            return out
        if t >= a:
            out.append(t)
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)


def test_calendar_helpers_on_known_dates():
    def at(*a):
        return datetime.datetime(*a, tzinfo=UTC)

    assert dst_switches(2026) == (at(2026, 3, 29, 1), at(2026, 10, 25, 1))
    assert dst_switches(2027) == (at(2027, 3, 28, 1), at(2027, 10, 31, 1))
    assert dst_bits(at(2026, 10, 25, 1, 15)) == DST_ENDED
    assert dst_bits(at(2026, 3, 29, 1, 15)) == DST_STARTED
    assert dst_bits(at(2026, 10, 25, 1)) == 0 and dst_bits(at(2026, 10, 25, 1, 30)) == 0
    assert billing_instants(at(2026, 10, 30), at(2026, 11, 2)) == [at(2026, 10, 31, 23)]
    assert billing_instants(at(2026, 6, 29), at(2026, 7, 2)) == [at(2026, 6, 30, 22)]
    assert billing_instants(at(2026, 12, 30), at(2027, 1, 2)) == [at(2026, 12, 31, 23)]
    assert billing_instants(at(2026, 11, 19), at(2026, 11, 21)) == []
    assert billing_instants(at(2026, 10, 31, 23), at(2026, 10, 31, 23)) == [at(2026, 10, 31, 23)]


# **** the head-end: Gurux over the simulator's TCP port ****


class Head(GuruxSession):
    # A public (client 16) Gurux session; frames read by their length field (TcpPeer).
    # shift: how far the meter's clock is ahead of the host's (time-shifted runs below).
    def __init__(self, sim, shift=datetime.timedelta(0)):
        GuruxSession.__init__(self)
        self.shift = shift
        self.peer = TcpPeer(sim.ready["hdlc-tcp"])
        self.connect()
        self.objs = {o.logicalName: o for o in self.objects()}
        for ln in (LOAD_PROFILE, BILLING):
            self.read(self.objs[ln], 3)  # capture objects: Gurux needs them for the buffer

    def _exchange(self, frame, reply):
        self.peer.send(bytes(frame))
        f = self.peer.read_frame()
        assert f is not None, "no answer from the meter"
        assert self.c.getData(GXByteBuffer(f), reply, None)

    def value(self, ln, attr=2):
        return int(self.read(self.objs[ln], attr))

    def rows(self, ln):
        # [(UTC timestamp, status, {column logical name: int})], oldest first.
        pg = self.objs[ln]
        names = [o.logicalName for o, _ in pg.captureObjects]
        assert names[:2] == ["0.0.1.0.0.255", STATUS], names
        out = []
        for r in self.read(pg, 2):
            ts = r[0].value.astimezone(UTC)
            out.append((ts, int(r[1]), {n: int(v) for n, v in zip(names[2:], r[2:])}))
        return out

    def snapshot(self):
        # Load profile, current status, cumulative registers and billing rows with no capture
        # in between (entries in use unchanged around them), and the host's UTC time after.
        # A meter still writing rows it caught up on (a loaded machine slows the backfill and
        # the start) changes the count for a while: try again, half a second apart.
        for _ in range(10):
            n = self.value(LOAD_PROFILE, 7)
            rows = self.rows(LOAD_PROFILE)
            status = self.value(STATUS)
            regs = {ln: self.value(ln) for ln in CUMULATIVE}
            billing = self.rows(BILLING)
            if self.value(LOAD_PROFILE, 7) == n == len(rows):
                return Snapshot(rows, status, regs, billing, now() + self.shift)
            time.sleep(0.5)
        raise AssertionError("a capture fell into every one of 10 snapshots")

    def close(self):
        GuruxSession.close(self)
        self.peer.close()


class Snapshot:
    def __init__(self, rows, status, regs, billing, at):
        self.rows = rows
        self.status = status
        self.regs = regs
        self.billing = billing
        self.at = at


def now():
    return datetime.datetime.now(UTC)


def max_energy(seconds):
    # Wh (varh, VAh) the load scenario can deliver in `seconds`, rounded up, +1 for flooring.
    return math.ceil(MAX_W * max(seconds, 0) / 3600) + 1


def interval_sums(rows):
    return {reg: sum(r[2][col] for r in rows) for col, reg in INTERVAL_OF.items()}


def in_progress(snap):
    # Energy counted since the newest row (fresh store: the registers start at 0, and the
    # interval columns add up to their growth exactly, energy.py header).
    sums = interval_sums(snap.rows)
    return {reg: snap.regs[reg] - sums[reg] for reg in sums}


def seconds_left():
    # Until the next interval boundary (local standard time is UTC + 1 h: the same quarters).
    return PERIOD - time.time() % PERIOD


def group_alive(pgid):
    # Live (non-zombie) processes of the process group, from /proc.
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        if fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(name))
    return pids


def wait_group_gone(pgid, timeout=5.0):
    deadline = time.monotonic() + timeout
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return group_alive(pgid)


def start(runtime, state_dir, backfill):
    return Sim(runtime, "--state-dir", str(state_dir), "--backfill-days", str(backfill))


# **** 1. a fresh state directory, backfilled ****


@pytest.fixture(scope="module", params=RUNTIMES)
def backfilled(request, tmp_path_factory):
    d = tmp_path_factory.mktemp("state-" + request.param)
    t0 = now()
    sim = start(request.param, d, BACKFILL_DAYS)
    t1 = now()
    head = Head(sim)
    try:
        yield t0, t1, head, head.snapshot()
    finally:
        try:
            head.close()
        finally:
            sim.stop()


def check_rows_in_time_order(rows):
    # Quarter-hour stamps, each interval exactly once, oldest first, no gap.
    for ts, _, _ in rows:
        assert ts.minute % 15 == 0 and ts.second == 0 and ts.microsecond == 0, ts
    for a, b in zip(rows, rows[1:]):
        assert b[0] - a[0] == QUARTER, (a[0], b[0])


def check_backfill_rows(t0, t1, snap, days):
    # t0, t1: the meter's time just before the start and at READY.
    rows = snap.rows
    assert abs(len(rows) - days * 96) <= 1, len(rows)
    check_rows_in_time_order(rows)
    # The backfill starts at the host's time `days` ago; the first row ends its interval.
    span = datetime.timedelta(days=days)
    assert t0 - span < rows[0][0] <= t1 - span + QUARTER + datetime.timedelta(seconds=1)
    # The newest row is the last boundary passed (written within a second or so of it).
    assert snap.at - QUARTER - datetime.timedelta(seconds=5) <= rows[-1][0] <= snap.at


def check_status_bits(rows):
    for i, (ts, st, _) in enumerate(rows):
        want = POWER_UP | MASTER_RESET if i == 0 else 0
        assert st & ~DST_BITS == want, (i, ts, hex(st))
        assert st & DST_BITS == dst_bits(ts), (i, ts, hex(st))


def check_energy(snap):
    since = (snap.at - snap.rows[-1][0]).total_seconds()
    for reg, e in in_progress(snap).items():
        # >= 0: the intervals hold no more than the register; the rest is the interval in
        # progress, which no row holds yet.
        assert 0 <= e <= max_energy(since), (reg, snap.regs[reg], e, since)
    assert snap.regs["1.1.1.8.0.255"] > 0 and snap.regs["1.1.9.8.0.255"] > 0


def check_billing(snap):
    lp = snap.rows
    assert [r[0] for r in snap.billing] == billing_instants(lp[0][0], lp[-1][0])
    for ts, st, v in snap.billing:
        assert st == NOT_PERIODIC, (ts, hex(st))
        # The billing instant is an interval end too: the same poll captures both, so the
        # cumulative registers equal the interval columns summed up to it, to the digit.
        sums = interval_sums([r for r in lp if r[0] <= ts])
        for reg, total in sums.items():
            assert v[reg] == total, (ts, reg, v[reg], total)
        assert v["1.1.16.8.0.255"] == v["1.1.1.8.0.255"] - v["1.1.2.8.0.255"]
        assert v["1.1.128.8.0.255"] == v["1.1.3.8.0.255"] - v["1.1.4.8.0.255"]


def test_backfill_rows_on_quarter_hours_in_order(backfilled):
    t0, t1, _, snap = backfilled
    check_backfill_rows(t0, t1, snap, BACKFILL_DAYS)


def test_backfill_status_bits(backfilled):
    check_status_bits(backfilled[3].rows)


def test_interval_energy_adds_up_to_registers(backfilled):
    check_energy(backfilled[3])


def test_billing_rows_iff_the_span_crosses_a_month_start(backfilled):
    check_billing(backfilled[3])


def test_registers_never_decrease_while_running(backfilled):
    head = backfilled[2]
    first = {ln: head.value(ln) for ln in CUMULATIVE}
    time.sleep(3)
    second = {ln: head.value(ln) for ln in CUMULATIVE}
    for ln in CUMULATIVE:
        assert first[ln] <= second[ln] <= first[ln] + max_energy(10), (ln, first, second)


# Today's span rarely holds a DST switch or a month start. These runs move the meter's clock:
# a sitecustomize on the CPython child's path shifts time.time(), which the simulator reads once
# at start (tools/simmeter.py host_utc; it then runs on the tick counter). MicroPython has no
# such hook, hence CPython only.
SITECUSTOMIZE = """\
import os, time
_shift = float(os.environ["TEST_SIM_STATE_SHIFT_S"])
_time = time.time
time.time = lambda: _time() + _shift
"""


@pytest.mark.parametrize("when, days, dst, month", [
    ("2026-10-26T12:00:00", 2, True, False),  # DST ended 2026-10-25 01:00 UTC
    ("2027-03-29T12:00:00", 2, True, False),  # DST started 2027-03-28 01:00 UTC
    ("2026-04-01T00:05:00", 3, True, True),  # DST started; April began 03-31 22:00 UTC (CEST)
    ("2026-12-01T10:00:00", 2, False, True),  # December began 11-30 23:00 UTC (CET)
])
def test_backfill_across_dst_and_month_start_cpython(when, days, dst, month, tmp_path,
                                                     monkeypatch):
    target = datetime.datetime.fromisoformat(when).replace(tzinfo=UTC)
    shift = target - now()
    (tmp_path / "sitecustomize.py").write_text(SITECUSTOMIZE)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # sim.py keeps it for the child
    monkeypatch.setenv("TEST_SIM_STATE_SHIFT_S", repr(shift.total_seconds()))
    t0 = now() + shift
    sim = start("cpython", tmp_path / "state", days)
    t1 = now() + shift
    try:
        head = Head(sim, shift)
        snap = head.snapshot()
        head.close()
    finally:
        sim.stop()
    assert any(r[1] & DST_BITS for r in snap.rows) == dst
    assert bool(snap.billing) == month
    check_backfill_rows(t0, t1, snap, days)
    check_status_bits(snap.rows)
    check_energy(snap)
    check_billing(snap)


# **** 2. stop and restart on the same state directory ****


LOSS_WH = 5  # energy the interval in progress holds at the stop, in some interval column
MARGIN_S = 20  # left before the next boundary: stop, restart and reads fit well in it


def wait_for_energy_at_stake(head):
    # A snapshot once the interval in progress holds LOSS_WH Wh in one of the registers the
    # load profile sums, with MARGIN_S s of it left. A stop then loses that energy (the newest
    # checkpoint is the newest row's; the backfill meters up to the host's time, so this is
    # usually at once). The restart and its reads take well under 2 s: < 5 Wh at 9 kW.
    deadline = time.monotonic() + 2 * PERIOD
    while time.monotonic() < deadline:
        left = seconds_left()
        if left < MARGIN_S:
            time.sleep(left + 0.1)
            continue
        snap = head.snapshot()
        if max(in_progress(snap).values()) >= LOSS_WH:
            return snap
        time.sleep(2)
    raise AssertionError("no %d Wh metered in an interval" % LOSS_WH)


class Restart:
    # What a head-end sees before a stop and right after the restart on the same directory.
    def __init__(self, runtime, stop, state_dir):
        sim = start(runtime, state_dir, BACKFILL_DAYS)
        try:
            head = Head(sim)
            # Stop and restart well inside one interval: the restart then comes back within
            # the interval the power failed in (one row-to-be with power down + power up).
            self.before = wait_for_energy_at_stake(head)
            head.peer.close()
            pgid = sim.proc.pid  # Sim starts the launcher in its own session
            assert group_alive(pgid), "simulator gone before the stop"
            self.stopped_at = now()
            if stop == "sigterm":
                sim.proc.send_signal(signal.SIGTERM)  # the launcher forwards it to the meter
            else:
                os.killpg(pgid, signal.SIGKILL)  # launcher and meter at once: a power cut
            self.left = wait_group_gone(pgid)
            self.rc = sim.proc.wait(5)
        finally:
            sim.stop()
        sim = start(runtime, state_dir, BACKFILL_DAYS)  # not fresh: no backfill
        try:
            head = Head(sim)
            self.after = head.snapshot()
            self.registers_again = {ln: head.value(ln) for ln in CUMULATIVE}
            head.close()
        finally:
            sim.stop()


@pytest.fixture(scope="module", params=[(r, s) for r in RUNTIMES for s in ("sigterm",
                                                                           "sigkill")],
                ids=lambda p: "-".join(p))
def restart(request, tmp_path_factory):
    runtime, stop = request.param
    r = Restart(runtime, stop, tmp_path_factory.mktemp("restart-%s-%s" % request.param))
    r.stop = stop
    return r


def test_stop_ends_launcher_and_meter(restart):
    assert restart.left == [], "still running after the stop: %r" % restart.left
    if restart.stop == "sigterm":
        # sim.py exits with the child's status, 128 + N for death by signal N.
        assert restart.rc in (0, 128 + signal.SIGTERM), restart.rc
    else:
        assert restart.rc == -signal.SIGKILL, restart.rc


def test_restart_keeps_every_row_and_adds_no_history(restart):
    old = restart.before.rows
    new = restart.after.rows
    assert restart.after.at < old[-1][0] + 2 * QUARTER, "the restart left the stop's interval"
    assert new[:len(old)] == old  # timestamps, status and energies, unchanged and in order
    # Same interval as before the stop (no boundary passed), and --backfill-days ignored.
    assert new == old, new[len(old):]
    assert restart.after.billing == restart.before.billing
    check_rows_in_time_order(new)


def test_restart_marks_power_down_and_up(restart):
    # metering.py: back within the interval the power failed in, that interval gets power
    # down + power up: the status object holds it until the row at the interval end.
    before = restart.before
    after = restart.after
    assert before.status & (POWER_DOWN | POWER_UP) == 0, hex(before.status)
    end = after.rows[-1][0] + QUARTER  # the interval in progress ends here
    assert after.at < end, "the read after the restart left the stop's interval"
    assert after.status & ~DST_BITS == POWER_DOWN | POWER_UP, hex(after.status)
    # A DST switch in this interval may show at once or only in the row at its end.
    assert after.status & DST_BITS in (0, dst_bits(end)), hex(after.status)


def test_restart_loses_at_most_the_interval_in_progress(restart):
    # metering.py: "a power cut loses at most the interval in progress": the registers come
    # back at their value at the last boundary (the sum of the interval columns, a fresh store
    # starting at 0) plus what was metered since the restart.
    before = restart.before
    after = restart.after
    assert after.rows == before.rows
    since = (after.at - restart.stopped_at).total_seconds()
    if restart.stop == "sigterm":  # an orderly stop saved the interval in progress
        for reg, e in in_progress(after).items():
            assert e >= in_progress(before)[reg], (reg, e)
    else:
        for reg, e in in_progress(after).items():
            assert 0 <= e <= max_energy(since), (reg, after.regs[reg], e, since)
    lost_at_most = max_energy((restart.stopped_at - before.rows[-1][0]).total_seconds())
    for ln in CUMULATIVE:
        assert after.regs[ln] >= before.regs[ln] - lost_at_most, (ln, before.regs, after.regs)
        assert restart.registers_again[ln] >= after.regs[ln], ln  # and it counts on from there


def test_registers_after_restart(restart):
    # SIGTERM is an orderly stop (the launcher hands it to the meter as SIGINT; the meter
    # saves the interval in progress, as a board does on its power-fail input): the registers
    # never read lower after the restart. SIGKILL of the whole group is a power cut without
    # warning: the registers come back at the last checkpoint, the energy of the interval in
    # progress is what is lost (metering.py). Deterministic: at the stop the interval in
    # progress held >= LOSS_WH Wh in a register, more than the restart can meter again.
    assert max(in_progress(restart.before).values()) >= LOSS_WH
    assert max_energy((restart.after.at - restart.stopped_at).total_seconds()) <= LOSS_WH
    lower = [ln for ln in CUMULATIVE if restart.after.regs[ln] < restart.before.regs[ln]]
    if restart.stop == "sigterm":
        assert lower == [], (restart.before.regs, restart.after.regs)
    else:
        assert lower, (restart.before.regs, restart.after.regs)


# **** 3. a fresh state directory without backfill ****


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_fresh_without_backfill_is_empty_with_master_reset(runtime, tmp_path):
    if seconds_left() < 10:  # start and read within one interval
        time.sleep(seconds_left() + 0.1)
    t0 = now()
    sim = start(runtime, tmp_path / "state", 0)
    try:
        head = Head(sim)
        snap = head.snapshot()
        assert head.value(LOAD_PROFILE, 7) == 0
        head.close()
    finally:
        sim.stop()
    assert snap.rows == [] and snap.billing == []
    end = datetime.datetime.fromtimestamp((t0.timestamp() // PERIOD + 1) * PERIOD, UTC)
    assert snap.at < end, "the read left the start's interval"
    assert snap.status & ~DST_BITS == POWER_UP | MASTER_RESET, hex(snap.status)
    assert snap.status & DST_BITS in (0, dst_bits(end)), hex(snap.status)
    for ln, v in snap.regs.items():
        assert 0 <= v <= max_energy((snap.at - t0).total_seconds()), (ln, v)
