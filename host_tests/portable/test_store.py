# store.SegmentLog, store.CheckpointStore and flashrows.FlashRows on real files (CPython, the
# unix port's VfsPosix, the wasm port's in-memory Emscripten FS), on LittleFS (VfsLfs2 on a RAM
# block device, unix port only) and on a RAM fake file system for injected faults: round trip,
# FIFO wrap, reboot, a power cut at every byte of a record write, a corrupt byte anywhere,
# clear() across reboots, binary search against a linear scan, read counts, allocation.
import io
import os
import time

from flashrows import FlashRows
from rows import Row
from store import ERR_IO, ERR_SEQ, OK, CheckpointStore, SegmentLog
from support import IS_MICROPYTHON, SMALL_INT_LIMIT, SkipTest, assert_no_alloc, need_heap

# **** helpers: a temporary directory with os only, payloads, raw file access ****

import fakefs  # noqa: E402
from fakefs import TmpDir  # noqa: E402  (a fresh directory with os only)

_made = [0]  # LittleFS mount points made


def pay(seq, n):
    return bytes(((seq * 7 + k * 13 + (seq >> 8)) & 0xFF) for k in range(n))


def fill(log, first, n):
    for s in range(first, first + n):
        assert log.append(pay(s, log.payload_size)) == OK


def served(log):
    # The payloads served, oldest first; asserts every record in count() reads back.
    out = []
    dst = bytearray(log.payload_size)
    for i in range(log.count()):
        assert log.read(i, dst), i
        out.append(bytes(dst))
    return out


def expect(log, first, last):
    # The log serves exactly seqs first..last (inclusive) with their payloads.
    assert log.count() == last - first + 1, (log.count(), first, last)
    assert log.base() == first, (log.base(), first)
    assert log.newest_seq() == last
    got = served(log)
    for i in range(len(got)):
        assert got[i] == pay(first + i, log.payload_size), (i, first)


def where(log, seq):
    # (segment number, byte offset in its file) of seq's slot
    slot = seq % log.total
    return slot // log.per_seg, (slot % log.per_seg) * log.rec


def rd(path):
    with open(path, "rb") as f:
        return f.read()


def wr(path, data):
    with open(path, "wb") as f:
        f.write(data)


# Small geometry so tests cross many segments quickly: record 14 bytes, 9 per segment.
PAY = 8
SEG = 128


def small(d, cap=20, name="lg"):
    return SegmentLog(d, name, PAY, cap, seg_bytes=SEG)


def multi(d, cap=50, name="lg"):
    # Segments of several units, as a long profile has (4 files at most: 18 records in 2 units
    # of 128 bytes a segment, 4 segments, 72 slots for 50 records).
    return SegmentLog(d, name, PAY, cap, seg_bytes=SEG, max_files=4)


# **** round trip, wrap, reboot ****


def test_geometry_of_the_meter_logs():
    with TmpDir() as d:
        lp = FlashRows(d, "lp", 3360, (4, 4, 4, 4))  # load profile: 4 values of 4 bytes
        # 7 files of 4 blocks (564 records of 29 bytes = 16356 bytes), not 25 of one block
        assert (lp.log.rec, lp.log.per_seg, lp.log.n_seg) == (29, 564, 7)
        assert lp.log.reads == lp.log.total == 3948  # the boot scan reads every slot once
        lp.close()
        year = FlashRows(d, "year", 8760, (4, 4, 4, 4))  # a year of hourly rows
        assert (year.log.per_seg, year.log.n_seg) == (1271, 8)  # 9 blocks a file, not 64 files
        year.close()
        bill = FlashRows(d, "bill", 24, (8,) * 7 + (4,) * 3 + (2,))  # billing: 11 values
        assert (bill.log.rec, bill.log.per_seg, bill.log.n_seg) == (83, 49, 2)
        bill.close()
        cp = CheckpointStore(d, "cp", 128)
        assert (cp.rec, cp.per_seg, cp.n_seg) == (134, 30, 2)
        cp.close()
        assert len(os.listdir(d)) == 7 + 8 + 2 + 2


def test_segment_count_is_bounded_and_capacity_kept():
    # For any capacity and record size: at most max_files files of whole 4096-byte units, the
    # records of all but the spare segment cover the capacity, and the segments are the
    # smallest whole units that do (one unit, as before, while 7 one-unit segments suffice).
    for rec_pay in (1, 25, 381):
        for cap in (1, 24, 141, 142, 987, 988, 3360, 8760):
            for files in (2, 8):
                log = SegmentLog("/x", "g", rec_pay, cap, _NullFS(), 4096, files)
                rec, per, n = log.rec, log.per_seg, log.n_seg
                assert n <= files and (n - 1) * per >= cap, (rec, cap, files, per, n)
                units = (per * rec + 4095) // 4096
                assert per == units * 4096 // rec, (rec, cap, per)
                if units > 1:  # one unit less would need more files
                    smaller = (units - 1) * 4096 // rec
                    assert (cap + smaller - 1) // smaller + 1 > files, (rec, cap, per)
                else:
                    assert per == 4096 // rec


class _NullFS:
    # Files that hold nothing: the geometry without touching a disk.
    def mkdir(self, path):
        pass

    def open(self, path, mode):
        return self

    def seek(self, off):
        pass

    def readinto(self, buf):
        return 0

    def close(self):
        pass


def test_empty_log():
    with TmpDir() as d:
        log = small(d)
        assert (log.count(), log.base(), log.newest_seq(), log.capacity()) == (0, 0, -1, 20)
        assert not log.read(0, bytearray(PAY))
        assert not log.read(-1, bytearray(PAY))
        log.close()
        log = small(d)
        assert log.count() == 0
        log.close()


def test_round_trip_and_reboot_resumes():
    with TmpDir() as d:
        log = small(d)
        assert (log.rec, log.per_seg, log.n_seg, log.total) == (14, 9, 4, 36)
        fill(log, 0, 13)
        expect(log, 0, 12)
        dst = bytearray(PAY)
        assert not log.read(13, dst)
        log.close()
        log = small(d)
        expect(log, 0, 12)
        fill(log, 13, 4)  # the next seq continues
        expect(log, 0, 16)
        log.close()
        log = small(d)
        expect(log, 0, 16)
        log.close()


def test_fifo_wrap_over_several_ring_turns():
    with TmpDir() as d:
        log = small(d)
        n = 0
        for turn in range(5):
            for _ in range(log.total - 5):  # not a multiple of the ring: every phase occurs
                fill(log, n, 1)
                n += 1
                first = n - 20 if n > 20 else 0
                assert log.count() == n - first and log.base() == first
            expect(log, n - 20, n - 1)
            log.close()  # reboot at a different phase of the ring each turn
            log = small(d)
            expect(log, n - 20, n - 1)
        log.close()


def test_capacity_is_readable_while_the_oldest_segment_is_overwritten():
    # After every append in a turn, all `capacity` records read back (capacity = 3 segments
    # exactly: the fourth, spare segment is the one being rewritten).
    with TmpDir() as d:
        log = small(d, cap=27)
        fill(log, 0, 27)
        for n in range(27, 27 + 2 * log.total):
            fill(log, n, 1)
            if n % 5 == 0 or n % log.per_seg == 0:
                expect(log, n - 26, n)
        log.close()


# **** power cuts and corruption ****


def _cut_sweep(d, n0, cap, small=small):
    # Log holding seqs 0..n0-1; the next append (seq n0) is cut after k bytes for every k, then
    # its bytes are corrupted one at a time. Always: the torn/corrupt record is not served,
    # every earlier one is, and the next append after the reboot works.
    log = small(d, cap)
    fill(log, 0, n0)
    seg, off = where(log, n0)
    path = d + "/lg." + str(seg)
    rec = log.rec
    log.close()
    before = rd(path)
    first = n0 - cap if n0 > cap else 0
    for k in range(rec + 1):
        log = small(d, cap)
        assert log.append(pay(n0, PAY)) == OK
        log.close()
        after = rd(path)
        wr(path, after[: off + k] + before[off + k :])  # power cut after k bytes
        log = small(d, cap)
        if k == rec:
            expect(log, first + 1 if n0 >= cap else 0, n0)
        else:
            expect(log, first, n0 - 1)
            assert log.append(pay(n0, PAY)) == OK  # the slot is written again
            expect(log, first + 1 if n0 >= cap else 0, n0)
        log.close()
        wr(path, before)
    for j in range(rec):
        for x in (0x01, 0x80, 0xFF):
            log = small(d, cap)
            assert log.append(pay(n0, PAY)) == OK
            log.close()
            bad = bytearray(rd(path))
            bad[off + j] ^= x
            wr(path, bad)
            log = small(d, cap)
            expect(log, first, n0 - 1)
            log.close()
            wr(path, before)
    log = small(d, cap)
    expect(log, first, n0 - 1)
    log.close()


def test_power_cut_at_every_byte_of_a_fresh_slot():
    with TmpDir() as d:
        _cut_sweep(d, 12, 20)  # slot 3 of segment 1, past the end of its file


def test_power_cut_at_every_byte_overwriting_the_oldest_segment():
    with TmpDir() as d:
        _cut_sweep(d, 36, 20)  # ring wrapped: slot 0 of segment 0, overwritten in place
    with TmpDir() as d:
        _cut_sweep(d, 36 + 9 + 4, 20)  # middle of segment 1 on the second turn


def test_power_cut_at_every_byte_of_the_first_record():
    with TmpDir() as d:
        _cut_sweep(d, 0, 20)


def test_multi_unit_segments_keep_capacity_and_survive_cuts():
    with TmpDir() as d:
        log = multi(d)
        assert (log.rec, log.per_seg, log.n_seg, log.total) == (14, 18, 4, 72)
        fill(log, 0, 50)
        for n in range(50, 50 + 2 * log.total):  # every phase of two ring turns
            fill(log, n, 1)
            if n % 7 == 0 or n % log.per_seg == 0:
                expect(log, n - 49, n)
        log.close()
    with TmpDir() as d:
        _cut_sweep(d, 72, 50, multi)  # ring wrapped: slot 0 of segment 0, overwritten in place
    with TmpDir() as d:
        _cut_sweep(d, 72 + 18 + 13, 50, multi)  # second unit of segment 1 on the second turn


def test_corrupt_record_in_the_middle_ends_the_run():
    with TmpDir() as d:
        log = small(d)
        fill(log, 0, 30)
        seg, off = where(log, 20)
        log.close()
        path = d + "/lg." + str(seg)
        bad = bytearray(rd(path))
        bad[off + 6] ^= 0x10
        wr(path, bad)
        log = small(d)
        expect(log, 21, 29)  # 10..19 are dropped: the run ends at the corrupt record
        fill(log, 30, 15)
        expect(log, 25, 44)
        log.close()
        log = small(d)
        expect(log, 25, 44)
        log.close()


def test_record_in_the_wrong_slot_is_not_served():
    # A valid record copied to another slot (its seq does not match the slot) is invalid there:
    # it ends the run like any bad record.
    with TmpDir() as d:
        log = small(d)
        fill(log, 0, 5)
        log.close()
        path = d + "/lg.0"
        raw = bytearray(rd(path))
        raw[3 * 14 : 4 * 14] = raw[1 * 14 : 2 * 14]  # seq 1's record into seq 3's slot
        wr(path, raw)
        log = small(d)
        expect(log, 4, 4)
        log.close()


# **** faults through a RAM fake file system: write errors, serve-time corruption ****


class RamFS:
    # Files are bytearrays in self.data. budget >= 0: writes store that many more bytes, then
    # raise OSError (a power cut or a full device); fail_flush: flush() raises.
    def __init__(self):
        self.data = {}
        self.budget = -1
        self.fail_flush = False
        self.no_create = None  # this path cannot be created
        self.opens = 0

    def mkdir(self, path):
        pass

    def open(self, path, mode):
        if mode == "w+b" and path == self.no_create:
            raise OSError(28)  # ENOSPC
        if mode == "w+b":
            self.data[path] = bytearray()
        elif path not in self.data:
            raise OSError(2)  # ENOENT
        self.opens += 1
        return RamFile(self, path)


class RamFile(fakefs.RamFile):
    # fakefs's file (seek, readinto) with this file system's write and flush faults.
    def write(self, buf):
        d = self.fs.data[self.path]
        n = len(buf)
        take = n if self.fs.budget < 0 else min(n, self.fs.budget)
        if self.fs.budget >= 0:
            self.fs.budget -= take
        if len(d) < self.pos:
            d.extend(bytes(self.pos - len(d)))
        d[self.pos : self.pos + take] = bytes(buf)[:take]
        self.pos += take
        if take < n:
            raise OSError(28)  # ENOSPC
        return n

    def flush(self):
        if self.fs.fail_flush:
            raise OSError(5)  # EIO


def test_write_errors_return_a_status_and_change_nothing():
    fs = RamFS()
    log = SegmentLog("/x", "w", PAY, 20, fs, SEG)
    fill(log, 0, 7)
    for budget in (0, 1, 5, 13):  # full device / cut after some bytes
        fs.budget = budget
        assert log.append(pay(7, PAY)) == ERR_IO
        expect(log, 0, 6)
    assert log.clear() == ERR_IO
    expect(log, 0, 6)
    fs.budget = -1
    fs.fail_flush = True
    assert log.append(pay(7, PAY)) == ERR_IO
    expect(log, 0, 6)
    fs.fail_flush = False
    assert log.append(pay(7, PAY)) == OK  # same seq, same slot
    expect(log, 0, 7)
    log = SegmentLog("/x", "w", PAY, 20, fs, SEG)  # reboot
    expect(log, 0, 7)


def test_a_segment_that_cannot_be_created_does_not_stop_the_meter():
    fs = RamFS()
    fs.no_create = "/x/d.2"
    log = SegmentLog("/x", "d", PAY, 20, fs, SEG)
    assert log.count() == 0
    fill(log, 0, 18)  # segments 0 and 1
    assert log.append(pay(18, PAY)) == ERR_IO  # segment 2 is missing: the log stops here
    assert log.append(pay(18, PAY)) == ERR_IO
    expect(log, 0, 17)
    fs.no_create = None
    log = SegmentLog("/x", "d", PAY, 20, fs, SEG)  # next boot: created now
    expect(log, 0, 17)
    fill(log, 18, 30)
    expect(log, 28, 47)


def test_files_are_opened_only_at_construction():
    fs = RamFS()
    log = SegmentLog("/x", "o", PAY, 20, fs, SEG)
    assert fs.opens == log.n_seg == 4
    fill(log, 0, 3 * log.total)
    served(log)
    log.clear()
    assert fs.opens == 4


def test_serve_time_corruption_is_never_served():
    fs = RamFS()
    rows = FlashRows("/x", "r", 30, (4, 4), fs, 256)
    v = bytearray(8)
    for k in range(10):
        v[7] = k
        rows.append(9000, 100 * k, k, v)
    log = rows.log
    slot = (log.base() + 5) % log.total
    path = "/x/r." + str(slot // log.per_seg)
    fs.data[path][(slot % log.per_seg) * log.rec + 9] ^= 0x04  # status byte of row 5
    row = Row(8)
    assert rows.read(4, row) and row.secs == 400
    assert not rows.read(5, row)
    assert (row.days, row.secs, row.status, bytes(row.vals)) == (9000, 400, 0xFFFF, bytes(8))
    assert rows.read(6, row) and (row.secs, row.status, row.vals[7]) == (600, 6, 6)
    dst = bytearray(log.payload_size)
    assert not log.read(5, dst) and dst == bytearray(log.payload_size)  # dst untouched
    # The finds treat row 5 as having row 4's time: a range never starts on it.
    assert rows.find_first_at_or_after(9000, 450) == 6
    assert rows.find_first_at_or_after(9000, 400) == 4
    assert rows.find_last_at_or_before(9000, 550) == 5
    assert rows.count() == 10


# **** clear() ****


def test_clear_survives_reboot():
    with TmpDir() as d:
        log = small(d)
        fill(log, 0, 10)
        assert log.clear() == OK
        assert (log.count(), log.base(), log.newest_seq()) == (0, 11, 10)  # marker = seq 10
        log.close()
        log = small(d)
        assert (log.count(), log.base()) == (0, 11)
        fill(log, 11, 3)
        expect(log, 11, 13)
        log.close()
        log = small(d)
        expect(log, 11, 13)
        assert log.clear() == OK and log.count() == 0
        log.close()
        log = small(d)  # the marker is the newest record
        assert (log.count(), log.base()) == (0, 15)
        fill(log, 15, 2 * log.total)  # the marker is overwritten a turn later
        log.close()
        log = small(d)
        expect(log, 15 + 2 * log.total - 20, 14 + 2 * log.total)
        log.close()


def test_power_cut_during_clear_keeps_the_log_or_clears_it():
    with TmpDir() as d:
        log = small(d)
        fill(log, 0, 10)
        seg, off = where(log, 10)
        path = d + "/lg." + str(seg)
        log.close()
        before = rd(path)
        for k in range(log.rec + 1):
            log = small(d)
            assert log.clear() == OK
            log.close()
            wr(path, rd(path)[: off + k] + before[off + k :])
            log = small(d)
            if k == log.rec:
                assert (log.count(), log.base()) == (0, 11)
            else:
                expect(log, 0, 9)
            log.close()
            wr(path, before)


# **** checkpoints ****


def test_checkpoint_latest_and_power_cut():
    with TmpDir() as d:
        cp = CheckpointStore(d, "cp", 128)
        dst = bytearray(128)
        assert not cp.latest(dst)
        for s in range(70):  # more than a ring turn (60 slots)
            assert cp.save(pay(s, 128)) == OK
        assert cp.latest(dst) and dst == pay(69, 128)
        seg, off = where(cp, 70)
        path = d + "/cp." + str(seg)
        cp.close()
        before = rd(path)
        for k in (0, 1, 4, 64, 133):
            cp = CheckpointStore(d, "cp", 128)
            assert cp.save(pay(70, 128)) == OK
            cp.close()
            wr(path, rd(path)[: off + k] + before[off + k :])
            cp = CheckpointStore(d, "cp", 128)
            assert cp.latest(dst) and dst == pay(69, 128)
            cp.close()
            wr(path, before)


def test_checkpoint_falls_back_when_the_newest_goes_bad():
    fs = RamFS()
    cp = CheckpointStore("/x", "cp", 128, 2, fs)
    for s in range(5):
        cp.save(pay(s, 128))
    fs.data["/x/cp.0"][4 * cp.rec + 20] ^= 1
    dst = bytearray(128)
    assert cp.latest(dst) and dst == pay(3, 128)


# **** FlashRows: finds against a linear scan, read counts ****


class Lcg:
    # Deterministic pseudo-random numbers, the same on every runtime.
    def __init__(self, seed):
        self.x = seed

    def next(self, n):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.x >> 8) % n


def _keys(rows):
    # Effective keys as the finds see them: a bad row has the previous good row's key.
    out = []
    row = Row(rows.size)
    key = -1
    for i in range(rows.count()):
        if rows.read(i, row):
            key = row.days * 86400 + row.secs
        out.append(key)
    return out


def _check_finds(rows, targets):
    keys = _keys(rows)
    n = len(keys)
    for t in targets:
        if t < 0:  # leading bad rows: the reference's -1 stands for minus infinity
            continue
        d, s = t // 86400, t % 86400
        first = 0
        while first < n and keys[first] < t:
            first += 1
        last = n - 1
        while last >= 0 and keys[last] > t:
            last -= 1
        assert rows.find_first_at_or_after(d, s) == first, (t, n)
        assert rows.find_last_at_or_before(d, s) == last, (t, n)


def _random_rows(rows, rnd, n, t0):
    v = bytearray(rows.size)
    t = t0
    for k in range(n):
        t += (0, 0, 1, 60, 900, 3600, 86399)[rnd.next(7)]
        v[0] = k & 0xFF
        assert rows.append(t // 86400, t % 86400, k & 0xFFFF, v) == OK
    return t


def test_finds_match_a_linear_scan():
    rnd = Lcg(7)
    with TmpDir() as d:
        for n, cap in ((0, 10), (1, 10), (2, 10), (7, 10), (10, 10), (55, 40), (90, 40)):
            rows = FlashRows(d, "f%d" % n, cap, (4,), seg_bytes=96)
            t0 = 8000 * 86400 + rnd.next(86400)
            last = _random_rows(rows, rnd, n, t0)
            keys = _keys(rows)
            targets = [0, 86400 * 65535 + 86399, t0, t0 - 1, last, last + 1]
            for k in keys:
                targets += [k - 1, k, k + 1]
            for _ in range(20):
                targets.append(t0 - 5 + rnd.next(last - t0 + 10))
            _check_finds(rows, targets)
            rows.close()


def test_finds_with_all_equal_timestamps():
    with TmpDir() as d:
        rows = FlashRows(d, "eq", 50, (2,), seg_bytes=64)
        v = bytearray(2)
        for k in range(37):
            rows.append(9000, 3600, 0, v)
        assert rows.find_first_at_or_after(9000, 3600) == 0
        assert rows.find_last_at_or_before(9000, 3600) == 36
        assert rows.find_first_at_or_after(9000, 3601) == 37
        assert rows.find_last_at_or_before(9000, 3599) == -1
        assert rows.find_first_at_or_after(8999, 86399) == 0
        assert rows.find_last_at_or_before(9001, 0) == 36
        rows.close()


def test_finds_with_corrupt_rows_match_a_linear_scan():
    fs = RamFS()
    rnd = Lcg(3)
    rows = FlashRows("/x", "c", 60, (4,), fs, 96)
    last = _random_rows(rows, rnd, 75, 8000 * 86400)
    log = rows.log
    for i in (0, 1, 17, 18, 19, 40, 59):  # leading, a run, single, newest
        slot = (log.base() + i) % log.total
        fs.data["/x/c." + str(slot // log.per_seg)][(slot % log.per_seg) * log.rec + 3] ^= 0x20
    keys = _keys(rows)
    targets = [0, last + 1]
    for k in keys:
        targets += [k - 1, k, k + 1]
    _check_finds(rows, targets)


def _day_range_reads(rows, day):
    rows.log.reads = 0
    first = rows.find_first_at_or_after(day, 0)
    last = rows.find_last_at_or_before(day, 86399)
    return rows.log.reads, first, last


def test_last_day_costs_the_same_in_a_deep_log():
    # 96 rows a day (15 min) in the load profile (3360 rows = 35 days). Selecting the last day
    # reads the same number of records whether the log is 2, 7 or 35 days deep, or wrapped
    # after 40 days: the galloping search only goes as far back as the day asked for.
    v = bytearray(16)
    with TmpDir() as d:
        rows = FlashRows(d, "lp", 3360, (4, 4, 4, 4))
        day0 = 9000
        cost = []
        n = 0
        for depth in (1, 2, 7, 35, 40):
            while n < depth * 96:
                t = n * 900
                rows.append(day0 + t // 86400, t % 86400, 0, v)
                n += 1
            reads, first, last = _day_range_reads(rows, day0 + depth - 1)
            assert (first, last) == (rows.count() - 96, rows.count() - 1), (depth, first, last)
            cost.append(reads)
        assert rows.base() == 5 * 96
        assert cost[0] <= cost[1] and cost[1:] == [cost[1]] * 4 and cost[1] <= 15, cost
        # Anywhere in the log: O(log n), at most 2 * log2(n) + 2 reads per find.
        rnd = Lcg(11)
        worst = 0
        for _ in range(200):
            t = day0 * 86400 + rnd.next(41 * 86400)
            rows.log.reads = 0
            rows.find_first_at_or_after(t // 86400, t % 86400)
            worst = max(worst, rows.log.reads)
            rows.log.reads = 0
            rows.find_last_at_or_before(t // 86400, t % 86400)
            worst = max(worst, rows.log.reads)
        assert worst <= 2 * 12 + 2, worst
        rows.close()


def test_flash_rows_reboot_and_clear():
    with TmpDir() as d:
        rows = FlashRows(d, "lp", 30, (4, 2), seg_bytes=128)
        v = bytearray(6)
        for k in range(45):
            v[5] = k
            rows.append(9000, k * 60, k, v)
        rows.close()
        rows = FlashRows(d, "lp", 30, (4, 2), seg_bytes=128)
        assert (rows.count(), rows.base(), rows.capacity()) == (30, 15, 30)
        row = Row(6)
        for i in range(30):
            assert rows.read(i, row)
            k = 15 + i
            assert (row.days, row.secs, row.status, row.vals[5]) == (9000, k * 60, k, k)
        assert rows.clear() == OK
        rows.close()
        rows = FlashRows(d, "lp", 30, (4, 2), seg_bytes=128)
        assert rows.count() == 0 and rows.find_first_at_or_after(0, 0) == 0
        assert rows.find_last_at_or_before(65535, 0) == -1
        rows.close()


# **** allocation and integer range ****


class Ops:
    # Repeatable steady-state calls as bound methods taking one argument (support.assert_no_alloc).
    def __init__(self, rows, cp):
        self.rows = rows
        self.cp = cp
        self.row = Row(rows.size)
        self.v = bytearray(rows.size)
        self.pay = bytearray(cp.payload_size)
        self.rec = bytearray(rows.log.payload_size)
        self.t = 0

    def append(self, _):
        self.t += 900
        self.rows.append(9000 + self.t // 86400, self.t % 86400, 0, self.v)

    def read(self, i):
        self.rows.read(i, self.row)

    def first(self, day):
        self.rows.find_first_at_or_after(day, 43200)

    def last(self, day):
        self.rows.find_last_at_or_before(day, 43200)

    def log_read(self, i):
        self.rows.log.read(i, self.rec)

    def save(self, _):
        self.cp.save(self.pay)

    def latest(self, _):
        self.cp.latest(self.pay)

    def clear(self, _):
        self.rows.clear()


def _alloc_checks(d):
    rows = FlashRows(d, "al", 200, (8, 8, 4, 4, 2), seg_bytes=512)
    cp = CheckpointStore(d, "cp", 128)
    ops = Ops(rows, cp)
    for _ in range(300):  # wrapped, so base() and the slot arithmetic are in steady state
        ops.append(0)
    assert_no_alloc(ops.append, 0, "FlashRows.append")
    assert_no_alloc(ops.read, 57, "FlashRows.read")
    assert_no_alloc(ops.first, 9001, "find_first_at_or_after")
    assert_no_alloc(ops.last, 9001, "find_last_at_or_before")
    assert_no_alloc(ops.save, 0, "CheckpointStore.save")
    assert_no_alloc(ops.latest, 0, "CheckpointStore.latest")
    assert_no_alloc(ops.log_read, 3, "SegmentLog.read")
    assert_no_alloc(ops.clear, 0, "clear")
    rows.close()
    cp.close()


def test_append_read_find_do_not_allocate():
    with TmpDir() as d:
        _alloc_checks(d)


def test_values_past_2_30_stay_bytes():
    # 32-bit counters >= 2**30 and 64-bit ones travel as bytes: same bytes back, no allocation
    # (on the 32-bit ports a heap int would show as one), seq and CRC stay small ints.
    with TmpDir() as d:
        rows = FlashRows(d, "big", 10, (4, 8, 4))
        v = bytearray(b"\xff\xff\xff\xff\x7f\xff\xff\xff\xff\xff\xff\xff\x40\x00\x00\x00")
        ops = Ops(rows, CheckpointStore(d, "cp", 4))
        ops.v[:] = v
        assert_no_alloc(ops.append, 0, "append of values >= 2**30")
        assert_no_alloc(ops.read, 0, "read of values >= 2**30")
        assert ops.row.vals == v
        rows.close()
        ops.cp.close()


def test_sequence_numbers_stop_below_2_30():
    with TmpDir() as d:
        log = small(d)
        top = SMALL_INT_LIMIT - 2
        log._next = top  # as if 2**30 - 2 records had been written
        log._floor = top
        fill(log, top, 2)
        assert log.append(pay(0, PAY)) == ERR_SEQ
        log.close()
        log = small(d)
        expect(log, top, top + 1)
        assert log.newest_seq() < SMALL_INT_LIMIT
        log.close()


# **** LittleFS (unix port: VfsLfs2 on a RAM block device) ****


class RamBlocks:
    # Block device for VfsLfs2 (extended interface) over an io.BytesIO, whose seek, readinto
    # and write allocate nothing (so littlefs' own allocation shows). After `budget` program or
    # erase operations the device "loses power": that operation programs only half its bytes,
    # later ones do nothing. Failures return -EIO, which littlefs handles (an exception raised
    # here would unwind through littlefs' C code and leave it inconsistent).
    def __init__(self, n, image=None):
        self.io = io.BytesIO(image if image else b"\xff" * (n * 4096))
        self.n = n
        self.budget = -1
        self.erases = 0
        self._ff = b"\xff" * 4096

    def image(self):
        return self.io.getvalue()

    def readblocks(self, b, buf, off=0):
        self.io.seek(b * 4096 + off)
        self.io.readinto(buf)

    def _spend(self):
        # False: the device is dead; True: write (the last op writes half).
        if self.budget == 0:
            return False
        if self.budget > 0:
            self.budget -= 1
        return True

    def writeblocks(self, b, buf, off=0):
        if not self._spend():
            return -5
        self.io.seek(b * 4096 + off)
        if self.budget == 0:
            self.io.write(bytes(buf)[: len(buf) // 2])
            return -5
        self.io.write(buf)
        return 0

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return self.n
        if op == 5:  # block size
            return 4096
        if op == 6:  # erase
            if not self._spend():
                return -5
            self.erases += 1
            self.io.seek(arg * 4096)
            self.io.write(self._ff)
        return 0


def _lfs():
    vfs = __import__("vfs") if IS_MICROPYTHON else None
    if vfs is None or not hasattr(vfs, "VfsLfs2"):
        raise SkipTest("no VfsLfs2 on this port (boards and the unix port have it)")
    return vfs


def _mount(vfs, bd, point):
    vfs.mount(vfs.VfsLfs2(bd, progsize=256), point)  # rp2's settings (ports/rp2/modules/_boot.py)


def _lfs_fresh(vfs):
    bd = RamBlocks(64)  # 256 KiB
    vfs.VfsLfs2.mkfs(bd, progsize=256)
    _made[0] += 1
    mp = "/lfs_store_%d" % _made[0]
    _mount(vfs, bd, mp)
    return bd, mp


def test_littlefs_round_trip_reboot_and_allocation():
    need_heap(1180 * 1024, block=282 * 1024)  # 64-bit unix port, fresh process, +10 %
    vfs = _lfs()
    bd, mp = _lfs_fresh(vfs)
    d = mp + "/m"
    rows = FlashRows(d, "lp", 300, (4, 4, 4, 4))
    cp = CheckpointStore(d, "cp", 128)
    ops = Ops(rows, cp)
    for _ in range(650):  # past a ring turn (564 slots): segments rewritten in place
        ops.append(0)
    assert rows.count() == 300 and rows.base() == 350
    assert_no_alloc(ops.append, 0, "FlashRows.append on LittleFS")
    assert_no_alloc(ops.read, 100, "FlashRows.read on LittleFS")
    assert_no_alloc(ops.first, 9003, "find_first_at_or_after on LittleFS")
    assert_no_alloc(ops.save, 0, "CheckpointStore.save on LittleFS")
    assert_no_alloc(ops.latest, 0, "CheckpointStore.latest on LittleFS")
    before = [_row_tuple(rows, i) for i in range(300)]
    rows.close()
    cp.close()
    vfs.umount(mp)
    _mount(vfs, RamBlocks(64, bd.image()), mp)  # reboot
    rows = FlashRows(d, "lp", 300, (4, 4, 4, 4))
    assert rows.base() == 352 and rows.count() == 300
    assert [_row_tuple(rows, i) for i in range(300)] == before
    rows.close()
    vfs.umount(mp)


def _row_tuple(rows, i):
    row = Row(rows.size)
    assert rows.read(i, row)
    return (row.days, row.secs, row.status, bytes(row.vals))


def _lfs_cut_sweep(vfs, n_fill, cap=300):
    # A log of n_fill rows; the next append is cut at each flash operation in turn (the one
    # cut programs half its bytes) until an append completes. After the reboot the log holds
    # the rows before, plus the new one or not, all readable, and takes the next append.
    bd, mp = _lfs_fresh(vfs)
    d = mp + "/m"
    rows = FlashRows(d, "lp", cap, (4, 4, 4, 4))
    v = bytearray(16)
    for k in range(n_fill):
        rows.append(9000, k, 0, v)
    rows.close()
    vfs.umount(mp)
    image = bd.image()
    for budget in range(200):
        bd = RamBlocks(64, image)
        _mount(vfs, bd, mp)
        rows = FlashRows(d, "lp", cap, (4, 4, 4, 4))
        bd.budget = budget
        r = rows.append(9000, n_fill, 7, v)
        _close_quietly(rows)
        vfs.umount(mp)
        _mount(vfs, RamBlocks(64, bd.image()), mp)  # reboot
        rows = FlashRows(d, "lp", cap, (4, 4, 4, 4))
        n = rows.base() + rows.count()
        assert n == n_fill + 1 or (n == n_fill and r == ERR_IO), (budget, n, r)
        assert rows.count() == min(cap, n)
        row = Row(16)
        for i in range(rows.count()):
            assert rows.read(i, row) and row.secs == rows.base() + i, (budget, i)
        assert rows.append(9000, n_fill + 1, 8, v) == OK
        rows.close()
        vfs.umount(mp)
        if r == OK:
            return budget
    return -1


def test_littlefs_power_cut_at_every_flash_operation():
    need_heap(1459 * 1024, block=282 * 1024)  # 64-bit unix port, fresh process, +10 %
    vfs = _lfs()
    for n_fill in (0, 141, 250, 600):  # first record; new segment; a file's end; in place
        assert _lfs_cut_sweep(vfs, n_fill) > 0  # reached a complete append


def test_littlefs_power_cut_in_a_two_block_segment():
    need_heap(1459 * 1024, block=282 * 1024)  # 64-bit unix port, fresh process, +10 %
    # 1000 rows: 5 files of 2 blocks (282 records). Rewriting the first block of a segment in
    # place makes littlefs copy the second one too: cut at every operation of that.
    vfs = _lfs()
    for n_fill in (1410, 1410 + 282 + 200):  # slot 0 of segment 0; 2nd block of segment 1
        assert _lfs_cut_sweep(vfs, n_fill, 1000) > 0


def _erases_per_append(vfs, cap):
    # Erases per append over one full segment in steady state (ring wrapped), and blocks per
    # segment.
    bd, mp = _lfs_fresh(vfs)
    rows = FlashRows(mp + "/m", "w", cap, (4, 4, 4, 4))
    log = rows.log
    v = bytearray(16)
    for k in range(log.total + 5):
        rows.append(9000, k, 0, v)
    e = bd.erases
    for k in range(log.per_seg):
        rows.append(9001, k, 0, v)
    rows.close()
    vfs.umount(mp)
    return (bd.erases - e) / log.per_seg, (log.per_seg * log.rec + 4095) // 4096


def test_littlefs_erases_per_append_grow_with_the_segment():
    need_heap(603 * 1024, block=282 * 1024)  # 64-bit unix port, fresh process, +10 %
    # store.py's price of fewer files: (B + 1) / 2 erases per append on average for segments
    # of B blocks (copy-on-write of the file from the changed block on), 1 for one block.
    vfs = _lfs()
    one, b1 = _erases_per_append(vfs, 300)
    two, b2 = _erases_per_append(vfs, 1000)
    assert (b1, b2) == (1, 2)
    assert 0.9 <= one <= 1.2, one
    assert 1.3 <= two <= 1.5 + 0.2, two


def _close_quietly(rows):
    for f in rows.log._files:
        try:
            f.close()
        except OSError:  # the device "lost power"
            pass
