# Power cuts through the whole capture path: the metering engine (firmware/metering.py) on the
# full meter model with a scripted front-end, the real flash row sources (flashrows.FlashRows)
# and the real checkpoint store (store.CheckpointStore) on a RAM file system (fakefs.RamFS).
# A scripted day (interval ends, a billing instant, a clock set forward over the next billing
# instant, one backward across it, a power outage, the FIFO wrap of a small load profile with
# segment rollover in every store) is run once uncut; its flash operations are logged. Then the
# power is cut at every operation (and at every byte of representative writes): the files as
# they were at that instant boot a new meter later, which runs on, and the invariants are
# checked against the uncut run. The images are rebuilt from the log (fakefs.Replay); a test
# cuts real runs at every operation to show a cut run leaves exactly those files. Two engine
# bugs this found (power down marked in skipped time, the first billing instant lost over a
# restart) have their reproductions as tests of their own. All runtimes.
import array

import axdr
import capture
import cosem
import metering
import model
from clock import date_to_days
from energy import Energy
from fakefs import CREATE, PowerCut, RamFS, Replay, TmpDir
from flashrows import FlashRows
from rows import MemoryRows, Row
from store import FILES, CheckpointStore
from support import SkipTest, assert_no_alloc, need_heap

LP = "1-0:99.1.0*255"
BILL = "1-0:98.1.0*255"
PD = capture.ST_POWER_DOWN
PU = capture.ST_POWER_UP
MR = capture.ST_MASTER_RESET
TC = capture.ST_TIME_CHANGED
NP = capture.ST_NOT_PERIODIC
PERIOD = 900
DAY = 86400

# Small stores so a short run wraps them: load profile 8 rows of 29-byte records, 2 a segment
# (5 segment files, 10 slots); billing 3 rows of 83 bytes, 2 a segment; checkpoints (11-byte
# engine header, the energy record and the captures waiting to be written: 489-byte records)
# 2 a segment, capacity 2 (4 slots).
LP_CAP = 8
BILL_CAP = 3
LP_SEG = 64
BILL_SEG = 200
CK_SEG = 1000
DIR = "/m"
CUMULATIVE = ("1-1:1.8.0", "1-1:2.8.0", "1-1:3.8.0", "1-1:4.8.0", "1-1:5.8.0", "1-1:6.8.0",
              "1-1:7.8.0", "1-1:8.8.0", "1-1:9.8.0")
ZERO_REGS = (0,) * len(CUMULATIVE)


def _name(obis):
    return "p" + "".join("%02x" % b for b in cosem.parse_obis(obis))  # model._rows_name


LP_FILES = DIR + "/" + _name(LP) + "."
BILL_FILES = DIR + "/" + _name(BILL) + "."
CK_FILES = DIR + "/ck."


def at(y, mo, d, h, mi):
    # UTC instant as seconds since 2000 (test arithmetic only)
    return date_to_days(y, mo, d) * DAY + h * 3600 + mi * 60


# The script (UTC; local time is CET = UTC + 1 h, no DST before 31 March). One poll a minute.
T0 = at(2024, 1, 31, 21, 50)
STEP = 60
SCRIPT = (
    ("run", 6600),  # 21:50 -> 23:40: rows 22:00 .. 23:30, billing 23:00 (1 Feb 00:00 local)
    ("set", 2024, 3, 1, 0, 7, 0),  # forward to 29 Feb 23:07: over the next billing instant
    ("run", 3000),  # -> 23:57: rows 31 Jan 23:45 (bit 5), 29 Feb 23:15 .. 23:45, billing 23:00
    ("set", 2024, 2, 29, 23, 52, 0),  # back to 22:52, across that billing instant again
    ("run", 4200),  # -> 1 Mar 00:02: the planned end 00:00 is held (bit 5), no second billing
    ("off", 4680),  # power off (no write in progress), back at 01:20: 00:15 power down (zero)
    ("run", 6000),  # -> 03:00: rows 01:30 (power up) .. 03:00; the profile wraps twice
)
INSTANTS = (at(2024, 1, 31, 23, 0), at(2024, 2, 29, 23, 0), at(2024, 3, 31, 22, 0))
AFTER_STEP = 300  # polls after a reboot: every 5 minutes (3 an interval)
DELAYS = (300, 5700)  # reboot 5 min (often inside the same interval) or 95 min after the cut


# **** the meter on a file system ****


class FakeFrontEnd:
    # 1 Wh import, 0.25 varh forward, 1.25 VAh per poll (1/320 Wh counts, as test_metering).
    lsb_num = 1
    lsb_den = 320

    def __init__(self):
        self.counts = array.array("i", [320, 0, 80, 0, 400])

    def start(self):
        return 0

    def poll(self, deltas):
        for k in range(5):
            deltas[k] = self.counts[k]
        return 0


def _cfg():
    lp = dict(model.LOAD_PROFILE)
    lp["entries"] = LP_CAP
    bill = dict(model.BILLING)
    bill["entries"] = BILL_CAP
    return {"log_exports": [lp, bill]}


class Power:
    # One power-on: a new model, energy and engine on the files of `fs`, clock at t (UTC s).
    def __init__(self, fs, t, flash=True, d=DIR):
        self.fs = fs
        self.flash = flash
        self.dir = d
        self.meter = model.Meter(_cfg(), rows_factory=self._rows)
        self.energy = Energy(1, 320, 900, 1)
        self.energy.bind(self.meter.registers)
        if flash:
            ck = CheckpointStore(d, "ck", metering.checkpoint_size(self.meter, self.energy), 2,
                                 fs, CK_SEG)
        else:
            ck = fs.setdefault("ck", RamLog(metering.checkpoint_size(self.meter, self.energy)))
        self.ck = ck
        self.eng = metering.Engine(self.meter, FakeFrontEnd(), self.energy, ck)
        self.meter.clock.set_utc(t // DAY, t % DAY)
        self.eng.boot(Row(128))
        self.ms = 0

    def _rows(self, name, cap, widths):
        if not self.flash:  # a dict of MemoryRows: the in-RAM reference of test_metering
            if name not in self.fs:
                self.fs[name] = MemoryRows(cap, widths)
            return self.fs[name]
        seg = LP_SEG if cap == LP_CAP else BILL_SEG
        return FlashRows(self.dir, name, cap, widths, self.fs, seg)

    def now(self):
        c = self.meter.clock
        return c.days * DAY + c.secs

    def poll(self, step):
        # As Clock.tick() advances the clock (set_utc would mark it valid), then one poll.
        c = self.meter.clock
        s = c.secs + step
        c.days += s // DAY
        c.secs = s % DAY
        self.ms += step * 1000
        self.eng.poll(self.ms, True)

    def regs(self):
        out = []
        for o in CUMULATIVE:
            v = 0
            for b in self.meter.registers[cosem.parse_obis(o)].raw:
                v = (v << 8) | b
            out.append(v)
        return tuple(out)

    def rows(self, obis):
        return self.meter.profile(obis).rows


from test_metering import RamLog  # noqa: E402  (the checkpoint interface in RAM)


def set_clock(meter, y, mo, d, h, mi, s):
    # A client's SET of Clock attribute 2 (management association), local time, deviation
    # unspecified: the real request path, so the time-changed hook runs (as test_metering).
    buf = bytearray(14)
    dt = [y, mo, d, 0xFF, h, mi, s, 0, axdr.DEVIATION_UNSPECIFIED, 0xFF]
    axdr.put_datetime(buf, 0, dt)
    assert meter.clock.set(2, axdr.Reader(buf, 0, 14), model.MANAGEMENT) == 0


def row_tuple(row):
    return (row.days * DAY + row.secs, row.status, bytes(row.vals))


def served(rows):
    # Every row a reader gets, oldest first; a row failing its check is never acceptable.
    out = []
    row = Row(rows.size)
    for i in range(rows.count()):
        assert rows.read(i, row), "row %d of %d not served" % (i, rows.count())
        out.append(row_tuple(row))
    return out


def next_seq(rows):
    return rows.base() + rows.count()


def wh(row):
    # +A energy of a load-profile row (1-1:1.29.0, the first column)
    v = row[2]
    return (v[0] << 24) | (v[1] << 16) | (v[2] << 8) | v[3]


# **** the scripted run ****


class Run:
    # Plays SCRIPT on one file system; records the rows as they are captured (with the poll
    # that captured them) and, at every flash operation, ctx = (clock, poll, cumulative
    # registers, polls since the poll of the last interval end).
    def __init__(self, fs, flash=True):
        self.fs = fs
        self.flash = flash
        self.pw = None
        self.t = T0
        self.poll = -1
        self.prev_cap = -1
        self.lp = []  # (row, poll)
        self.bill = []
        if flash:
            fs.context = self.context

    def context(self):
        pw = self.pw
        if pw is None:  # building the meter: files being created
            return (self.t, self.poll, ZERO_REGS, 0)
        return (pw.now(), self.poll, pw.regs(), self.poll - self.prev_cap)

    def play(self):
        self.power_on(T0)
        for step in SCRIPT:
            if step[0] == "run":
                for _ in range(step[1] // STEP):
                    self.step()
            elif step[0] == "set":
                set_clock(self.pw.meter, step[1], step[2], step[3], step[4], step[5], step[6])
            else:
                self.power_on(self.pw.now() + step[1])
        return self

    def power_on(self, t):
        self.pw = None
        self.t = t
        self.pw = Power(self.fs, t, self.flash)
        self.seen = [next_seq(self.pw.rows(LP)), next_seq(self.pw.rows(BILL))]
        self.step(0)  # the main loop polls at once

    def step(self, seconds=STEP):
        self.poll += 1
        eng = self.pw.eng
        caps = eng.captures
        self.pw.poll(seconds)
        if eng.captures != caps:
            self.prev_cap = self.poll
        self._collect(0, LP, self.lp)
        self._collect(1, BILL, self.bill)

    def _collect(self, i, obis, out):
        rows = self.pw.rows(obis)
        row = Row(rows.size)
        for s in range(self.seen[i], next_seq(rows)):
            assert rows.read(s - rows.base(), row) is not False  # MemoryRows: None
            out.append((row_tuple(row), self.poll))
        self.seen[i] = next_seq(rows)


class Reference:
    # The uncut run and its flash operations: which operation wrote which row or checkpoint.
    def __init__(self):
        fs = RamFS()
        fs.log = []
        self.run = Run(fs).play()
        self.fs = fs
        self.log = fs.log
        self.lp = self.run.lp
        self.bill = self.run.bill
        self.lp_ops = self._ops(LP_FILES)
        self.bill_ops = self._ops(BILL_FILES)
        self.ck_ops = self._ops(CK_FILES)
        assert len(self.lp_ops) == len(self.lp) and len(self.bill_ops) == len(self.bill)
        assert len(self.lp_ops) + len(self.bill_ops) + len(self.ck_ops) == \
            sum(1 for op in self.log if op[0] != CREATE)

    def _ops(self, prefix):
        return [k for k in range(len(self.log))
                if self.log[k][0] != CREATE and self.log[k][1].startswith(prefix)]


_REF = []


def reference():
    if not _REF:
        _REF.append(Reference())
    return _REF[0]


# **** one cut: reboot on the files as they were, run on, check ****


class Counts:
    def __init__(self):
        self.cuts = 0
        self.pd_skipped_span = 0  # power down marked at L + period < the interval it failed in


def on_flash(ref, op, k, done):
    # A cut at op k (whole if done) kept the row written at op: it reached flash, or the
    # checkpoint written just before it (which holds it: metering.Engine.flush) did, and
    # boot puts the row back.
    held = max(i for i in ref.ck_ops if i < op)
    return op < k or (op == k and done) or held < k or (held == k and done)


def expected_pd_end(ref, k, done):
    # End of the interval the power failed in: the first row the uncut run captured that had
    # not reached flash at the cut; None if the uncut run captured no more rows.
    for i in range(len(ref.lp)):
        if not on_flash(ref, ref.lp_ops[i], k, done):
            return ref.lp[i][0][0]
    return None


def check_cut(ref, k, j, image, counts):
    kind, path, pos, payload, ctx = ref.log[k]
    t_cut, cut_poll, regs_cut, bound = ctx
    # The cut operation reached flash whole: all its bytes, or the ones it did not write
    # already held the same values (a record rewritten with an equal tail).
    done = j >= len(payload) or (
        path in image and bytes(image[path][pos:pos + len(payload)]) == bytes(payload))
    lp_done = [ref.lp[i][0] for i in range(len(ref.lp)) if on_flash(ref, ref.lp_ops[i], k, done)]
    bill_done = [ref.bill[i][0] for i in range(len(ref.bill))
                 if on_flash(ref, ref.bill_ops[i], k, done)]
    ck_regs = ZERO_REGS
    ck_start = None  # the checkpoint on flash: start of the interval then in progress
    for i in ref.ck_ops:
        if i < k or (i == k and done):
            ck_regs = ref.log[i][4][2]
            rec = ref.log[i][3]  # seq u32, version, days u16, secs u24, ...
            ck_start = ((rec[5] << 8) | rec[6]) * DAY + ((rec[7] << 16) | (rec[8] << 8) | rec[9])
    t_boot = t_cut + DELAYS[(k + j) & 1]
    pw = Power(RamFS(image), t_boot)
    lp = pw.rows(LP)
    bill = pw.rows(BILL)
    where = "cut at op %d (%s @%d) byte %d of %d" % (k, path, pos, j, len(payload))

    # At boot: every row that reached flash, none other, nothing corrupt; the energy of the
    # last checkpoint that reached flash, exactly.
    assert served(lp) == lp_done[-LP_CAP:], where
    assert next_seq(lp) == len(lp_done), where
    assert served(bill) == bill_done[-BILL_CAP:], where
    restored = pw.regs()
    assert restored == ck_regs, (where, restored, ck_regs)
    lost = regs_cut[0] - restored[0]  # Wh = polls (1 Wh each)
    assert 0 <= lost <= bound, (where, lost, bound)  # at most the interval in progress
    for i in range(len(CUMULATIVE)):
        assert regs_cut[i] >= restored[i], where
    if bill_done:  # no billing row shows more energy than the registers restored
        n = pw.meter.registers[cosem.parse_obis(CUMULATIVE[0])].size
        v = 0
        for x in served(bill)[-1][2][:n]:
            v = (v << 8) | x
        assert v <= restored[0], (where, v, restored[0])

    # Run on until the interval after the power-down mark and the one after the power-up end.
    last = lp_done[-1][0] if lp_done else None
    # The engine marks power down at the end of the interval in progress as flash knows it:
    # from the checkpoint, or the newest row if that is later (its checkpoint was cut).
    known = ck_start if last is None or (ck_start is not None and ck_start > last) else last
    e = (known // PERIOD + 1) * PERIOD if known is not None else None
    b1 = (t_boot // PERIOD + 1) * PERIOD  # end of the interval the meter came back in
    until = max(b1, e if e is not None else b1) + PERIOD
    pw.poll(0)  # the main loop polls at once
    polls = 1
    while pw.now() < until:
        pw.poll(AFTER_STEP)
        polls += 1
    end = pw.regs()
    assert end[0] - restored[0] == polls, where  # nothing lost after the reboot
    for i in range(len(CUMULATIVE)):
        assert end[i] >= restored[i], where

    got = served(lp)
    n_new = next_seq(lp) - len(lp_done)
    assert 2 <= n_new < LP_CAP, (where, n_new)
    new = got[-n_new:]
    assert got == (lp_done + new)[-LP_CAP:], where  # pre-cut rows unchanged
    ts = [r[0] for r in got]
    for i in range(1, len(ts)):
        assert ts[i] > ts[i - 1], (where, ts)  # strictly increasing: no duplicate, no disorder
    _check_new_rows(ref, k, done, new, last, e, t_boot, b1, t_cut, where, counts)
    _check_billing(ref, k, j, done, served(bill), bill_done, cut_poll, t_cut, t_boot,
                   pw.now(), known, where, counts)
    counts.cuts += 1


def _check_new_rows(ref, k, done, new, last, e, t_boot, b1, t_cut, where, counts):
    if e is None:  # nothing reached flash: a fresh store, master reset on the first row
        assert new[0][:2] == (b1, PU | MR), where
        rest = new[1:]
    else:
        assert last is None or new[0][0] > last, where
        want = expected_pd_end(ref, k, done)
        assert want is None or want >= e, (where, want, e)  # never after the failure
        if want is not None and want > e:
            # Only when the checkpoint naming the interval in progress was itself cut (the
            # one written at start-up or at the interval end just before): flash knows no
            # better, and the mark goes on the interval the last complete checkpoint names.
            counts.pd_skipped_span += 1
        if t_boot < e:  # back within the interval the power failed in: one row, both bits
            assert new[0][:2] == (e, PD | PU), (where, new[0][:2])
            rest = new[1:]
        else:  # its energy was lost: a zero row; power up on the interval it came back in
            assert new[0] == (e, PD, bytes(len(new[0][2]))), (where, new[0][:2])
            assert new[1][:2] == (b1, PU), (where, new[1][:2])
            rest = new[2:]
    for r in rest:  # whole intervals after the reboot: 3 polls of 1 Wh, no status
        assert r[1] == 0 and wh(r) == PERIOD // AFTER_STEP, (where, r[:2])
    for i in range(1, len(rest)):
        assert rest[i][0] - rest[i - 1][0] == PERIOD, where


def _check_billing(ref, k, j, done, got, bill_done, cut_poll, t_cut, t_boot, t_end, known,
                   where, counts):
    # One row per billing instant the meter passed: those the uncut run had captured by the
    # cut, then any passed after it (while off, or in the run after the reboot; a store with
    # nothing on flash knows only the instants after it started). Never two rows of one instant.
    ts = [r[0] for r in got]
    for i in range(1, len(ts)):
        assert ts[i] > ts[i - 1], (where, ts)
    want = [ref.bill[i][0][0] for i in range(len(ref.bill)) if ref.bill[i][1] <= cut_poll]
    for x in INSTANTS:
        if t_cut < x <= t_end and x not in want and (known is not None or x > t_boot):
            want.append(x)
    want.sort()
    assert got[: len(bill_done)] == bill_done[-BILL_CAP:], where
    assert ts == want, (where, ts, want)


def offsets(n):
    # Byte counts of a cut write to try in the sweep over every operation: nothing, the first
    # bytes (inside the sequence number), the payload, the CRC, all of it.
    if n <= 1:
        return (0, n) if n else (0,)
    return sorted(set((0, 1, 3, 4, 5, 7, n // 2, n - 3, n - 2, n - 1, n)))


# **** tests ****


def test_reference_run_captures_what_the_script_says():
    need_heap(121 * 1024)  # 64-bit unix port, fresh process, +10 %
    ref = reference()
    lp = [r for r, _ in ref.lp]
    h = 3600
    d31 = at(2024, 1, 31, 0, 0)
    d29 = at(2024, 2, 29, 0, 0)
    d1 = at(2024, 3, 1, 0, 0)
    want = [(d31 + 22 * h, PU | MR, 11), (d31 + 22 * h + 900, 0, 15)]
    want += [(d31 + 22 * h + 900 * i, 0, 15) for i in range(2, 7)]
    want += [(d31 + 23 * h + 2700, TC, 10 + 1)]  # closed at its planned end after the set
    want += [(d29 + 23 * h + 900 * i, 0, 15 if i > 1 else 7) for i in (1, 2, 3)]
    want += [(d1, TC, 12 + 68)]  # held until the clock came back to it
    want += [(d1 + 900, PD, 0), (d1 + h + 1800, PU, 11)]  # outage 00:02 .. 01:20
    want += [(d1 + h + 1800 + 900 * i, 0, 15) for i in range(1, 7)]
    assert [(r[0], r[1], wh(r)) for r in lp] == want
    assert [r[0][:2] for r in ref.bill] == [(INSTANTS[0], NP), (INSTANTS[1], NP)]
    # Every store wrapped its ring and rolled over segments: all files written, slots reused.
    lp_paths = set(ref.log[k][1] for k in ref.lp_ops)
    assert len(lp_paths) == 5 and len(ref.lp_ops) == 20 > 10
    assert len(set(ref.log[k][1] for k in ref.ck_ops)) == 2 and len(ref.ck_ops) > 4
    assert len(set(ref.log[k][1] for k in ref.bill_ops)) == 1  # 2 rows: one segment
    pw = ref.run.pw
    assert served(pw.rows(LP)) == lp[-LP_CAP:] and pw.rows(LP).base() == 12
    # The same script on in-RAM rows and checkpoints captures the same rows.
    mem = Run({}, flash=False).play()
    assert [r for r, _ in mem.lp] == lp
    assert [r for r, _ in mem.bill] == [r for r, _ in ref.bill]
    assert mem.pw.regs() == pw.regs()


def _sweep(ks, every_byte):
    ref = reference()
    rep = Replay(ref.log)
    counts = Counts()
    n = 0
    for k in ks:
        size = len(ref.log[k][3])
        js = range(size + 1) if every_byte else offsets(size)
        for j in js:
            check_cut(ref, k, j, rep.image(k, j), counts)
            n += 1
    assert counts.cuts == n
    return counts


def test_power_cut_at_every_flash_operation():
    need_heap(162 * 1024)  # 64-bit unix port, fresh process, +10 %
    # Every file creation, row append and checkpoint save of the script, each cut at the
    # byte counts of offsets(): 52 operations, 482 cuts.
    ref = reference()
    counts = _sweep(range(len(ref.log)), False)
    assert counts.cuts == sum(len(offsets(len(op[3]))) for op in ref.log)


def test_power_cut_at_every_byte_of_every_row_write():
    need_heap(155 * 1024)  # 64-bit unix port, fresh process, +10 %
    # The 20 load-profile and the 2 billing row appends, each cut after 0 .. 29 (83) bytes:
    # 768 cuts.
    ref = reference()
    counts = _sweep(sorted(ref.lp_ops + ref.bill_ops), True)
    assert counts.cuts == 20 * 30 + 2 * 84


def test_power_cut_at_every_byte_of_two_checkpoints():
    need_heap(146 * 1024)  # 64-bit unix port, fresh process, +10 %
    # A checkpoint reusing the first slot of a segment (the 7th: slot 2 = segment 1, second
    # turn) and the one the start-up after the outage writes (holding its power-down row,
    # written next), each cut after 0 .. 489 bytes: 980 cuts.
    ref = reference()
    boot = [k for k in ref.ck_ops if ref.log[k + 1][1].startswith(LP_FILES)
            and ref.log[k][4][0] == ref.log[k + 1][4][0] == at(2024, 3, 1, 1, 20)]
    assert len(boot) == 1
    counts = _sweep((ref.ck_ops[6], boot[0]), True)
    assert counts.cuts == 2 * 490


def test_replayed_images_are_what_a_cut_run_leaves():
    need_heap(196 * 1024)  # 64-bit unix port, fresh process, +10 %
    # The sweeps boot from images rebuilt from the log; here real runs lose power at every
    # operation (after some byte count): the files left and the meter's state at the cut are
    # the same, and nothing runs on after the cut.
    ref = reference()
    rep = Replay(ref.log)
    for k in range(len(ref.log)):
        n = len(ref.log[k][3])
        j = (k * 7) % (n + 1)
        fs = RamFS()
        fs.log = []
        fs.cut_op = k
        fs.cut_bytes = j
        run = Run(fs)
        try:
            run.play()
            assert False, "no cut at op %d" % k
        except PowerCut:
            pass
        assert fs.data == rep.image(k, j), k
        assert len(fs.log) == k + 1
        for i in range(k + 1):
            assert fs.log[i][:4] == ref.log[i][:4] and fs.log[i][4][2] == ref.log[i][4][2], i


class Steady:
    def __init__(self, pw):
        self.pw = pw

    def interval(self, _):
        # 15 polls: one interval end: capture, row append, checkpoint save, each a file write
        for _ in range(15):
            self.pw.poll(60)


def test_steady_state_on_real_files_allocation_free():
    with TmpDir() as d:
        pw = Power(FILES, T0, d=d)
        st = Steady(pw)
        for _ in range(2 * LP_CAP + 3):  # past the wrap of the load profile
            st.interval(0)
        lp = pw.rows(LP)
        n = next_seq(lp)
        ck = pw.ck.newest_seq()
        assert_no_alloc(st.interval, 0, "engine interval on FlashRows + CheckpointStore")
        assert next_seq(lp) == n + 2 and pw.ck.newest_seq() == ck + 2  # both calls wrote
        assert lp.count() == LP_CAP and pw.rows(BILL).count() == 1
        lp.close()
        pw.rows(BILL).close()
        pw.ck.close()


# **** known bugs (kept out of the sweeps above; remove the SkipTest when fixed) ****


def test_power_down_marked_on_the_interval_it_failed_in_after_a_clock_set():
    need_heap(91 * 1024)  # 64-bit unix port, fresh process, +10 %
    # Minimal: fresh meter at 31 Jan 00:00 UTC, 20 polls; the clock is set forward to 04:00
    # local (03:00 UTC): the poll at 03:01 closes 00:30 (bit 5), checkpoint says L = 00:30.
    # Power off at 03:05, back at 03:07, inside the interval (03:00, 03:15] it failed in.
    fs = RamFS()
    t = at(2024, 1, 31, 0, 0)
    pw = Power(fs, t)
    for _ in range(20):
        pw.poll(60)
    set_clock(pw.meter, 2024, 1, 31, 4, 0, 0)
    for _ in range(5):
        pw.poll(60)
    pw = Power(fs, t + 3 * 3600 + 420)  # same files: power off (no write in progress) and on
    for _ in range(25):
        pw.poll(60)
    got = [r[:2] for r in served(pw.rows(LP))]
    # Wanted: ... (00:30, TC), (03:15, PD|PU). Got: (00:45, PD) zero row in the skipped span,
    # then (03:15, PU): the interval the power failed in has no power-down mark.
    assert got[-3:] == [(t + 1800, TC), (t + 3 * 3600 + 900, PD | PU),
                        (t + 3 * 3600 + 1800, 0)], got
    # Same after a start-up: outage 00:20 .. 02:00 (zero row 00:30, power up on 02:15), then a
    # second outage at 02:05 back at 02:08: wanted (02:15, PD|PU); got a zero row at 00:45.
    fs = RamFS()
    pw = Power(fs, t)
    for _ in range(20):
        pw.poll(60)
    pw = Power(fs, t + 2 * 3600)
    for _ in range(5):
        pw.poll(60)
    pw = Power(fs, t + 2 * 3600 + 480)
    for _ in range(25):
        pw.poll(60)
    got = [r[:2] for r in served(pw.rows(LP))]
    assert got == [(t + 900, PU | MR), (t + 1800, PD), (t + 2 * 3600 + 900, PD | PU),
                   (t + 2 * 3600 + 1800, 0)], got


def test_first_billing_instant_passed_while_off_is_recorded():
    need_heap(150 * 1024)  # 64-bit unix port, fresh process, +10 %
    # Minimal, no torn write: meter from 31 Jan 22:40 UTC (23:40 local), row 22:45 recorded;
    # power off at 22:50, back at 1 Feb 00:20 UTC. The billing instant 1 Feb 00:00 local
    # (31 Jan 23:00 UTC) passed while it was off: "due at once" (metering.py header). The
    # start-up writes the zero row at 23:00 first and then looks for instants after 23:00.
    fs = RamFS()
    pw = Power(fs, at(2024, 1, 31, 22, 40))
    for _ in range(10):
        pw.poll(60)
    pw = Power(fs, at(2024, 2, 1, 0, 20))
    for _ in range(6):
        pw.poll(300)
    assert [r[:2] for r in served(pw.rows(LP))][-3:] == [
        (INSTANTS[0], PD), (at(2024, 2, 1, 0, 30), PU), (at(2024, 2, 1, 0, 45), 0)]
    assert [r[0] for r in served(pw.rows(BILL))] == [INSTANTS[0]]
    # The reference run cut at the first byte of the billing row write of that instant: the
    # 23:00 load-profile row is on flash, the checkpoint (22:45) and the billing row are not.
    ref = reference()
    k = ref.bill_ops[0]
    pw = Power(RamFS(Replay(ref.log).image(k, 0)), ref.log[k][4][0] + 300)
    for _ in range(6):
        pw.poll(300)
    assert [r[0] for r in served(pw.rows(BILL))] == [INSTANTS[0]]
