# Capture calendar and recorder (firmware/capture.py): interval boundaries in local standard
# time, DST status bits, billing instants in local wall time; all runtimes, allocation-checked.
import capture
import rows
from clock import Clock, date_to_days, days_to_date
from objects import Data, Register
from support import assert_no_alloc

import axdr

CET = 60  # minutes local standard time is ahead of UTC


def cal(offset=CET, dst=True, day=1, hour=0):
    return capture.Calendar(Clock(utc_offset=offset, dst_enabled=dst), day, hour)


def ymd_hms(c, d, s, local_off_min=0):
    # (y, m, d, hh, mm, ss) of a UTC instant shifted by local_off_min (test helper).
    s += local_off_min * 60
    d += s // 86400
    s %= 86400
    out = [0, 0, 0]
    days_to_date(d, out)
    return (out[0], out[1], out[2], s // 3600, s // 60 % 60, s % 60)


def test_boundary_after_is_strict_and_aligned_to_local_standard_time():
    c = cal()
    d = date_to_days(2024, 3, 10)
    c.boundary_after(d, 0, 900)  # 00:00 UTC = 01:00 CET: next boundary 00:15 UTC
    assert (c.d, c.s) == (d, 900)
    c.boundary_after(d, 899, 900)
    assert (c.d, c.s) == (d, 900)
    c.boundary_after(d, 900, 900)  # strictly after
    assert (c.d, c.s) == (d, 1800)
    c.boundary_after(d, 86399, 900)  # crosses midnight UTC
    assert (c.d, c.s) == (d + 1, 0)
    # 1-hour intervals with a half-hour zone (India, +5:30): boundaries on local hours
    c = cal(330, False)
    c.boundary_after(d, 0, 3600)  # 00:00 UTC = 05:30 local -> 06:00 local = 00:30 UTC
    assert (c.d, c.s) == (d, 1800)
    # daily intervals end at local midnight: 23:00 UTC in CET
    c = cal(CET, False)
    c.boundary_after(d, 12 * 3600, 86400)
    assert (c.d, c.s) == (d, 23 * 3600)
    c.boundary_after(d, 23 * 3600, 86400)
    assert (c.d, c.s) == (d + 1, 23 * 3600)


def test_boundaries_stay_uniform_over_dst_changes():
    c = cal()
    for y in (2024, 2025, 2028):
        for m in (3, 10):
            d = date_to_days(y, m, 20)
            s = 0
            for _ in range(14 * 96):  # two weeks over the switch: every step is 900 s
                c.boundary_after(d, s, 900)
                assert (c.d - d) * 86400 + c.s - s == 900 - s % 900
                d, s = c.d, c.s


def test_dst_bits_mark_the_first_interval_in_the_new_time():
    c = cal()
    flagged = []
    for y in (2024, 2025, 2026, 2100 - 1):
        for m in (3, 10):
            d = date_to_days(y, m, 20)
            s = 900
            for _ in range(14 * 96):
                bit = c.dst_change(d, s, 900)
                if bit:
                    flagged.append((ymd_hms(c, d, s), bit))
                s += 900
                if s >= 86400:
                    d += 1
                    s -= 86400
    # EU rule: last Sunday of March/October at 01:00 UTC; the row ending 01:15 UTC is flagged.
    assert flagged == [
        ((2024, 3, 31, 1, 15, 0), capture.ST_DST_STARTED),
        ((2024, 10, 27, 1, 15, 0), capture.ST_DST_ENDED),
        ((2025, 3, 30, 1, 15, 0), capture.ST_DST_STARTED),
        ((2025, 10, 26, 1, 15, 0), capture.ST_DST_ENDED),
        ((2026, 3, 29, 1, 15, 0), capture.ST_DST_STARTED),
        ((2026, 10, 25, 1, 15, 0), capture.ST_DST_ENDED),
        ((2099, 3, 29, 1, 15, 0), capture.ST_DST_STARTED),
        ((2099, 10, 25, 1, 15, 0), capture.ST_DST_ENDED),
    ]
    # a switch inside an interval (hourly rows, DST at 01:00 UTC = 02:00 CET): the hour
    # 01:00-02:00 UTC holds it
    d = date_to_days(2024, 3, 31)
    assert c.dst_change(d, 2 * 3600, 3600) == capture.ST_DST_STARTED
    assert c.dst_change(d, 1 * 3600, 3600) == 0
    assert c.dst_change(d, 3 * 3600, 3600) == 0
    assert cal(dst=False).dst_change(d, 4500, 900) == 0


def test_billing_instants_local_midnight_on_the_1st_across_dst_and_years():
    c = cal()
    d = date_to_days(2023, 11, 15)
    s = 12 * 3600
    seen = []
    for _ in range(14):
        c.billing_after(d, s)
        assert (c.d, c.s) > (d, s)
        d, s = c.d, c.s
        seen.append(ymd_hms(c, d, s, c.clock.offset_at(d, s)))
    # local midnight on each 1st, winter (CET) and summer (CEST) alike
    want = []
    y, m = 2023, 12
    for _ in range(14):
        want.append((y, m, 1, 0, 0, 0))
        m += 1
        if m > 12:
            y, m = y + 1, 1
    assert seen == want
    # the UTC hour differs with DST: 1 Jan 00:00 CET = 23:00 UTC, 1 Jul 00:00 CEST = 22:00
    c.billing_after(date_to_days(2024, 6, 15), 0)
    assert ymd_hms(c, c.d, c.s) == (2024, 6, 30, 22, 0, 0)
    c.billing_after(date_to_days(2024, 12, 15), 0)
    assert ymd_hms(c, c.d, c.s) == (2024, 12, 31, 23, 0, 0)


def test_billing_at_or_before_and_a_custom_schedule():
    c = cal(CET, True, 15, 6)  # the 15th at 06:00 local
    d = date_to_days(2024, 2, 15)
    c.billing_at_or_before(d, 5 * 3600)  # 06:00 CET = 05:00 UTC: exactly at the instant
    assert (c.d, c.s) == (d, 5 * 3600)
    c.billing_at_or_before(d, 5 * 3600 - 1)  # a second before: January's
    assert (c.d, c.s) == (date_to_days(2024, 1, 15), 5 * 3600)
    c.billing_at_or_before(date_to_days(2024, 1, 10), 0)  # before this month's: December's
    assert (c.d, c.s) == (date_to_days(2023, 12, 15), 5 * 3600)
    c.billing_after(d, 5 * 3600)
    assert (c.d, c.s) == (date_to_days(2024, 3, 15), 5 * 3600)
    c.billing_after(date_to_days(2024, 2, 29), 0)  # leap day
    assert (c.d, c.s) == (date_to_days(2024, 3, 15), 5 * 3600)


def test_calendar_allocation_free():
    c = cal()
    d = date_to_days(2024, 10, 27)

    def work(x):
        c.boundary_after(d, 3000, 900)
        c.dst_change(d, 4500, 900)
        c.billing_after(d, 3000)
        c.billing_at_or_before(d, 3000)

    assert_no_alloc(work, 0, "calendar")


def test_recorder_snapshot_flush_and_zero():
    a = Register(b"\x01\x01\x01\x1d\x00\xff", axdr.DOUBLE_LONG_UNSIGNED, 0, 30)
    b = Register(b"\x01\x01\x02\x08\x00\xff", axdr.LONG64_UNSIGNED, 0, 30)
    st = Data(b"\x00\x00\x61\x61\x00\xff", axdr.LONG_UNSIGNED, 2)
    r = rows.MemoryRows(4, b"\x04\x08")
    rec = capture.Recorder(r, [a, b])
    a.raw[:] = b"\x00\x00\x01\x02"
    b.raw[:] = b"\x00\x00\x00\x01\x00\x00\x00\x07"
    rec.snapshot(9000, 900, 0x40)
    a.raw[3] = 0x99  # values change after the capture instant: the row keeps the snapshot
    assert r.count() == 0 and rec.pending
    rec.flush()
    assert r.count() == 1 and not rec.pending
    row = rows.Row(12)
    r.read(0, row)
    assert (row.days, row.secs, row.status) == (9000, 900, 0x40)
    assert bytes(row.vals) == b"\x00\x00\x01\x02\x00\x00\x00\x01\x00\x00\x00\x07"
    rec.zero(9000, 1800, capture.ST_POWER_DOWN)
    rec.snapshot(9000, 2700, 0)  # a second capture writes the waiting one first
    assert r.count() == 2
    rec.flush()
    r.read(1, row)
    assert (row.secs, row.status, bytes(row.vals)) == (1800, 0x80, bytes(12))
    assert rec.newest(row) and row.secs == 2700
    assert st.size == 2

    def cycle(x):
        rec.snapshot(9001, 0, 0)
        rec.flush()

    assert_no_alloc(cycle, 0, "recorder")
