# Clock (BB IC 8): calendar, ticking, EU DST, attribute encodings and the SET rules of the ION
# document ("DLMS time synchronization"). Byte vectors are hand-built from BB 4.1.6.1 and
# checked against gurux_dlms in host_tests/test_clock_peers.py.
import axdr
import clock
import cosem
from clock import Clock, date_to_days, days_in_month, days_to_date, is_leap, weekday
from support import assert_no_alloc, unhex

ADMIN = cosem.Profile(1, "admin", True)
PUBLIC = cosem.Profile(16, "public", False)
BEGIN_2026 = date_to_days(2026, 3, 29)  # EU DST 2026: 29 March 01:00 UTC ..
END_2026 = date_to_days(2026, 10, 25)  # .. 25 October 01:00 UTC
H1 = 3600


def _cet(y=2026, m=1, d=15, hh=12, mi=0, s=0, ms=0):
    # A CET/CEST meter whose UTC time is the given one.
    c = Clock(utc_offset=60)
    c.set_utc(date_to_days(y, m, d), hh * 3600 + mi * 60 + s, ms)
    return c


def _utc(c):
    ymd = [0, 0, 0]
    days_to_date(c.days, ymd)
    s = c.secs
    return (ymd[0], ymd[1], ymd[2], s // 3600, s // 60 % 60, s % 60, c.ms)


def _read(c, attr):
    out = bytearray(32)
    cur = cosem.Cursor()
    assert c.begin(attr, cur, None) == cosem.SUCCESS
    n = c.next(cur, out, 0)
    assert n > 0 and c.next(cur, out, n) == n  # one piece, then the end
    return bytes(out[:n])


def _set(c, hexs, profile=ADMIN):
    b = unhex(hexs)
    return c.set(2, axdr.Reader(b, 0, len(b)), profile)


# **** CALENDAR ****


def test_known_dates_and_weekdays():
    for y, m, d, days, wd in (
        (2000, 1, 1, 0, 6), (2000, 2, 29, 59, 2), (2024, 2, 29, 8825, 4), (2026, 3, 29, 9584, 7),
        (2026, 10, 25, 9794, 7), (2038, 1, 19, 13898, 2), (2099, 12, 31, 36524, 4),
        (2100, 1, 1, 36525, 5), (1999, 12, 31, -1, 5),
    ):
        assert date_to_days(y, m, d) == days, (y, m, d)
        assert weekday(days) == wd, (y, m, d)
        out = [0, 0, 0]
        days_to_date(days, out)
        assert out == [y, m, d], out


def test_every_day_2000_to_2099_round_trips():
    ymd = [0, 0, 0]
    prev = [1999, 12, 31]
    for days in range(36525):
        days_to_date(days, ymd)
        assert date_to_days(ymd[0], ymd[1], ymd[2]) == days, days
        # the next calendar day after prev
        y, m, d = prev
        if d < days_in_month(y, m):
            d += 1
        elif m < 12:
            m, d = m + 1, 1
        else:
            y, m, d = y + 1, 1, 1
        assert ymd == [y, m, d], (days, ymd)
        prev = [y, m, d]
    assert prev == [2099, 12, 31]


def test_leap_years():
    assert is_leap(2000) and is_leap(2024) and not is_leap(2023) and not is_leap(2100)
    assert days_in_month(2024, 2) == 29 and days_in_month(2023, 2) == 28
    assert days_in_month(2100, 2) == 28 and days_in_month(2000, 2) == 29
    assert date_to_days(2100, 3, 1) - date_to_days(2100, 2, 28) == 1


def test_compare():
    assert clock.compare(1, 5, 1, 5) == 0
    assert clock.compare(1, 86399, 2, 0) == -1 and clock.compare(2, 0, 1, 86399) == 1
    assert clock.compare(3, 10, 3, 9) == 1 and clock.compare(3, 9, 3, 10) == -1


# **** TICKING ****


def test_tick_across_ms_wrap():
    c = _cet(2026, 1, 15, 12, 0, 0, 0)
    c.tick(0x3FFFFE0C)  # 500 ms before the 2**30 wrap of ticks_ms
    assert _utc(c) == (2026, 1, 15, 12, 0, 0, 0)  # the first tick only starts counting
    c.tick(0x3FFFFFFF)
    assert _utc(c) == (2026, 1, 15, 12, 0, 0, 499)
    c.tick(0x000002BC)  # 700 after the wrap
    assert _utc(c) == (2026, 1, 15, 12, 0, 1, 200)
    c.tick(0x000002BC)
    assert _utc(c) == (2026, 1, 15, 12, 0, 1, 200) and c.status == 0
    c.tick(0x200002BC)  # 2**29 ms later: seen as backwards; time kept but doubtful, restarts
    assert _utc(c) == (2026, 1, 15, 12, 0, 1, 200) and c.status == clock.ST_DOUBTFUL
    c.tick(0x200002BC + 800)
    assert _utc(c) == (2026, 1, 15, 12, 0, 2, 0)


def test_tick_across_midnight_month_and_year():
    c = _cet(2023, 12, 31, 23, 59, 59, 500)
    c.tick(1000)
    c.tick(1600)
    assert _utc(c) == (2024, 1, 1, 0, 0, 0, 100)
    c = _cet(2024, 2, 28, 23, 59, 59, 0)
    c.tick(0)
    c.tick(1000)
    assert _utc(c) == (2024, 2, 29, 0, 0, 0, 0)
    c.tick(1000 + 86400 * 1000)  # a whole day in one step
    assert _utc(c) == (2024, 3, 1, 0, 0, 0, 0)
    c = _cet(2023, 2, 28, 23, 0, 0, 0)
    c.tick(5)
    c.tick(5 + 3 * 3600 * 1000 + 1)
    assert _utc(c) == (2023, 3, 1, 2, 0, 0, 1)


# **** DST (EU rule, CET) ****


def test_dst_switch_instants_2026():
    c = Clock(utc_offset=60)
    assert not c.dst_at(BEGIN_2026, H1 - 1) and c.dst_at(BEGIN_2026, H1)
    assert c.dst_at(END_2026, H1 - 1) and not c.dst_at(END_2026, H1)
    assert not c.dst_at(date_to_days(2026, 1, 1), 0) and c.dst_at(date_to_days(2026, 7, 1), 0)
    assert c.dst_at(date_to_days(2024, 3, 31), H1) and not c.dst_at(date_to_days(2024, 3, 30), H1)
    assert not c.dst_at(date_to_days(2024, 10, 27), H1)
    c.dst_enabled = False
    assert not c.dst_at(date_to_days(2026, 7, 1), 0)


def test_time_attribute_around_dst_begin():
    c = _cet(2026, 3, 29, 0, 59, 59, 990)
    assert _read(c, 2) == unhex("09 0C 07 EA 03 1D 07 01 3B 3B 63 FF C4 00")  # 01:59:59.99, -60
    assert _read(c, 4) == unhex("11 00")
    c.tick(0)
    c.tick(10)
    assert _read(c, 2) == unhex("09 0C 07 EA 03 1D 07 03 00 00 00 FF 88 80")  # 03:00, -120, DST
    assert _read(c, 4) == unhex("11 80")


def test_time_attribute_around_dst_end():
    c = _cet(2026, 10, 25, 0, 59, 59, 0)
    assert _read(c, 2) == unhex("09 0C 07 EA 0A 19 07 02 3B 3B 00 FF 88 80")  # 02:59:59 CEST
    c.tick(0)
    c.tick(1000)
    assert _read(c, 2) == unhex("09 0C 07 EA 0A 19 07 02 00 00 00 FF C4 00")  # 02:00:00 CET


def test_southern_rule_spans_new_year():
    # A made-up rule for UTC+10: first Sunday of October to first Sunday of April, 16:00 UTC.
    c = Clock(utc_offset=600, dst_begin=(10, 1, 7, 16), dst_end=(4, 1, 7, 16))
    assert c.dst_at(date_to_days(2026, 1, 10), 0) and c.dst_at(date_to_days(2026, 12, 1), 0)
    assert not c.dst_at(date_to_days(2026, 7, 1), 0)
    assert c.dst_at(date_to_days(2026, 4, 5), 16 * 3600 - 1)  # Sunday 5 April 2026
    assert not c.dst_at(date_to_days(2026, 4, 5), 16 * 3600)
    assert _read(c, 5) == unhex("09 0C FF FF 0A 01 07 02 00 00 FF 80 00 FF")
    assert _read(c, 6) == unhex("09 0C FF FF 04 01 07 03 00 00 FF 80 00 FF")


# **** READING ****


def test_other_attributes_byte_exact():
    c = _cet()
    assert _read(c, 1) == unhex("09 06 00 00 01 00 00 FF")
    assert _read(c, 3) == unhex("10 FF C4")  # time_zone -60 (CET)
    assert _read(c, 4) == unhex("11 00")
    assert _read(c, 5) == unhex("09 0C FF FF 03 FE 07 02 00 00 FF 80 00 FF")  # last Sun Mar 02:00
    assert _read(c, 6) == unhex("09 0C FF FF 0A FE 07 03 00 00 FF 80 00 FF")  # last Sun Oct 03:00
    assert _read(c, 7) == unhex("0F 3C")
    assert _read(c, 8) == unhex("03 01")
    assert _read(c, 9) == unhex("16 01")
    c = Clock(utc_offset=-300, dst_enabled=False, clock_base=clock.BASE_UNDEFINED)
    assert _read(c, 3) == unhex("10 01 2C")
    assert _read(c, 4) == unhex("11 01")  # never set: invalid value
    assert _read(c, 8) == unhex("03 00") and _read(c, 9) == unhex("16 00")
    assert _read(c, 2) == unhex("09 0C 07 CF 0C 1F 05 13 00 00 00 01 2C 01")  # 1999-12-31 19:00
    assert (c.class_id, c.version, c.n_attrs, c.n_methods) == (8, 0, 9, 6)


def test_access_rights():
    c = _cet()
    for a in range(1, 10):
        assert c.access(a, PUBLIC) == cosem.READ
        assert c.access(a, ADMIN) == (cosem.READ_WRITE if a == 2 else cosem.READ)
    for m in range(1, 7):
        assert c.method_access(m, ADMIN) == cosem.NO_ACCESS


def test_now_dt_and_put_dt():
    c = _cet(2026, 7, 1, 10, 15, 30, 250)
    dt = [0] * 10
    c.now_dt(dt)
    assert dt == [2026, 7, 1, 3, 12, 15, 30, 25, -120, 0x80]
    out = bytearray(16)
    n = c.put_dt(out, 1, date_to_days(2026, 12, 31), 23 * 3600 + 30 * 60, 0)
    assert n == 15 and bytes(out[1:n]) == unhex("09 0C 07 EB 01 01 05 00 1E 00 00 FF C4 00")
    assert c.put_time(bytearray(13), 0) == -1


# **** SET of attribute 2 ****


def test_set_full_value_in_our_offset():
    c = _cet()
    calls = []
    c.on_time_set = lambda od, os_, nd, ns: calls.append((od, os_, nd, ns))
    assert _set(c, "09 0C 07 EA 02 0A FF 0E 1E 00 00 FF C4 00") == cosem.SUCCESS
    assert _utc(c) == (2026, 2, 10, 13, 30, 0, 0)  # 14:30 CET
    new = 13 * H1 + 1800
    assert calls == [(date_to_days(2026, 1, 15), 12 * H1, date_to_days(2026, 2, 10), new)]
    assert _read(c, 4) == unhex("11 00")


def test_set_deviation_selects_the_writers_offset():
    c = _cet()
    assert _set(c, "09 0C 07 EA 02 0A 01 0E 1E 00 32 00 00 00") == cosem.SUCCESS  # UTC
    assert _utc(c) == (2026, 2, 10, 14, 30, 0, 500)
    assert _set(c, "09 0C 07 EA 02 0A 02 0E 1E 00 00 01 2C 00") == cosem.SUCCESS  # EST
    assert _utc(c) == (2026, 2, 10, 19, 30, 0, 0)
    assert _set(c, "09 0C 07 EA 07 01 FF 0E 1E 00 00 FF 88 80") == cosem.SUCCESS  # CEST
    assert _utc(c) == (2026, 7, 1, 12, 30, 0, 0)


def test_set_unspecified_deviation_is_our_local_time():
    c = _cet()
    assert _set(c, "09 0C 07 EA 02 0A FF 0E 1E 00 00 80 00 FF") == cosem.SUCCESS
    assert _utc(c) == (2026, 2, 10, 13, 30, 0, 0)  # winter: CET
    assert _set(c, "09 0C 07 EA 07 01 FF 0E 1E 00 00 80 00 FF") == cosem.SUCCESS
    assert _utc(c) == (2026, 7, 1, 12, 30, 0, 0)  # summer: CEST, though set in winter
    # skipped hour 02:30 on 29 March: standard time counts (01:30 UTC, shown 03:30 CEST)
    assert _set(c, "09 0C 07 EA 03 1D FF 02 1E 00 00 80 00 FF") == cosem.SUCCESS
    assert _utc(c) == (2026, 3, 29, 1, 30, 0, 0)
    # repeated hour 02:30 on 25 October: DST unless the status says otherwise
    assert _set(c, "09 0C 07 EA 0A 19 FF 02 1E 00 00 80 00 FF") == cosem.SUCCESS
    assert _utc(c) == (2026, 10, 25, 0, 30, 0, 0)
    assert _set(c, "09 0C 07 EA 0A 19 FF 02 1E 00 00 80 00 00") == cosem.SUCCESS
    assert _utc(c) == (2026, 10, 25, 1, 30, 0, 0)
    assert _set(c, "09 0C 07 EA 0A 19 FF 02 1E 00 00 80 00 80") == cosem.SUCCESS
    assert _utc(c) == (2026, 10, 25, 0, 30, 0, 0)


def test_set_merges_unspecified_fields():
    c = _cet(2026, 1, 15, 12, 0, 0, 370)  # 13:00:00.37 CET
    assert _set(c, "09 0C FF FF FF FF FF 08 00 00 FF 80 00 FF") == cosem.SUCCESS
    assert _utc(c) == (2026, 1, 15, 7, 0, 0, 370)  # time only; ms kept
    assert _set(c, "09 0C 07 E9 FF FF FF FF FF FF 0A 80 00 FF") == cosem.SUCCESS
    assert _utc(c) == (2025, 1, 15, 7, 0, 0, 100)  # year and hundredths only
    assert _set(c, "09 0C FF FF 06 FF FF FF 2D FF FF 80 00 FF") == cosem.SUCCESS
    assert _utc(c) == (2025, 6, 15, 6, 45, 0, 100)  # June: 08:45 CEST
    assert _set(c, "09 0C FF FF FF FF FF FF FF FF FF 80 00 FF") == cosem.SUCCESS
    assert _utc(c) == (2025, 6, 15, 6, 45, 0, 100)  # nothing specified: unchanged
    # Local date differs from the UTC date: 23:30 UTC is 00:30 CET the next day.
    c = _cet(2026, 1, 15, 23, 30)
    assert _set(c, "09 0C FF FF FF FF FF 0A 00 00 00 80 00 FF") == cosem.SUCCESS
    assert _utc(c) == (2026, 1, 16, 9, 0, 0, 0)  # 10:00 local on the 16th
    c = _cet(2026, 1, 15, 23, 30)
    assert _set(c, "09 0C FF FF FF FF FF 0A 00 00 00 00 00 FF") == cosem.SUCCESS
    assert _utc(c) == (2026, 1, 15, 10, 0, 0, 0)  # 10:00 UTC on the UTC date


def test_set_ignores_day_of_week():
    for wd in ("01", "07", "FF", "00", "99"):
        c = _cet()
        assert _set(c, "09 0C 07 E8 02 1D " + wd + " 00 00 00 00 FF C4 00") == cosem.SUCCESS
        assert _utc(c) == (2024, 2, 28, 23, 0, 0, 0)  # 2024-02-29 00:00 CET


INVALID = (
    "09 0C 07 EA FD 0A FF 0E 1E 00 00 FF C4 00",  # month 0xFD (DST end)
    "09 0C 07 EA FE 0A FF 0E 1E 00 00 FF C4 00",  # month 0xFE (DST begin)
    "09 0C 07 EA 00 0A FF 0E 1E 00 00 FF C4 00",  # month 0
    "09 0C 07 EA 0D 0A FF 0E 1E 00 00 FF C4 00",  # month 13
    "09 0C 07 EA 02 FD FF 0E 1E 00 00 FF C4 00",  # day 0xFD (2nd last)
    "09 0C 07 EA 02 FE FF 0E 1E 00 00 FF C4 00",  # day 0xFE (last)
    "09 0C 07 EA 02 00 FF 0E 1E 00 00 FF C4 00",  # day 0
    "09 0C 07 EA 01 20 FF 0E 1E 00 00 FF C4 00",  # 32 January
    "09 0C 07 E7 02 1D FF 0E 1E 00 00 FF C4 00",  # 2023-02-29
    "09 0C 07 E8 02 1E FF 0E 1E 00 00 FF C4 00",  # 2024-02-30
    "09 0C 07 EA 04 1F FF 0E 1E 00 00 FF C4 00",  # 31 April
    "09 0C FF FF 02 1F FF 0E 1E 00 00 FF C4 00",  # 31 February of the current year
    "09 0C FF FF FF 1F FF 0E 1E 00 00 FF C4 00",  # the 31st of the current month (June)
    "09 0C 07 EA 02 0A FF 18 1E 00 00 FF C4 00",  # hour 24
    "09 0C 07 EA 02 0A FF 0E 3C 00 00 FF C4 00",  # minute 60
    "09 0C 07 EA 02 0A FF 0E 1E 3C 00 FF C4 00",  # second 60
    "09 0C 07 EA 02 0A FF 0E 1E 00 64 FF C4 00",  # hundredths 100
    "09 0C 07 EA 02 0A FF 0E 1E 00 00 02 D1 00",  # deviation 721
    "09 0C 07 EA 02 0A FF 0E 1E 00 00 FD 2F 00",  # deviation -721
    "09 0C 07 EA 02 0A FF 0E 1E 00 00 7F FF 00",  # deviation 0x7FFF
    "09 0C 07 CF 0C 1F FF 0E 1E 00 00 FF C4 00",  # year 1999
    "09 0C 08 34 01 01 FF 0E 1E 00 00 FF C4 00",  # year 2100
    "09 0C 07 D0 01 01 FF 00 1E 00 00 FF C4 00",  # 2000-01-01 00:30 CET is 1999 in UTC
    "09 0C 08 33 0C 1F FF 17 1E 00 00 01 2C 00",  # 2099-12-31 23:30 EST is 2100 in UTC
)
WRONG_TYPE = (
    "0A 0C 07 EA 02 0A FF 0E 1E 00 00 FF C4 00",  # visible-string
    "19 07 EA 02 0A FF 0E 1E 00 00 FF C4 00",  # date-time type [25]
    "09 0B 07 EA 02 0A FF 0E 1E 00 00 FF C4",  # 11 bytes
    "09 0D 07 EA 02 0A FF 0E 1E 00 00 FF C4 00 00",  # 13 bytes
    "09 0C 07 EA 02 0A FF 0E 1E 00 00 FF C4",  # truncated
    "09",  # no length
    "00",  # null-data
)


def test_invalid_values_leave_the_clock_unchanged():
    calls = []
    for hexs in INVALID + WRONG_TYPE:
        c = _cet(2026, 6, 15, 12, 0, 0, 120)
        c.on_time_set = lambda *a: calls.append(a)
        want = cosem.OTHER_REASON if hexs in INVALID else cosem.TYPE_UNMATCHED
        assert _set(c, hexs) == want, hexs
        assert _utc(c) == (2026, 6, 15, 12, 0, 0, 120), hexs
    assert calls == []


def test_valid_edges():
    for hexs, want in (
        ("09 0C 07 E8 02 1D FF 17 3B 3B 63 FF C4 00", (2024, 2, 29, 22, 59, 59, 990)),
        ("09 0C 07 D0 01 01 FF 01 00 00 00 FF C4 00", (2000, 1, 1, 0, 0, 0, 0)),
        ("09 0C 08 33 0C 1F FF 17 3B 3B 00 FD 30 00", (2099, 12, 31, 11, 59, 59, 0)),
        ("09 0C 07 EA 01 01 FF 00 00 00 00 02 D0 00", (2026, 1, 1, 12, 0, 0, 0)),
    ):
        c = _cet()
        assert _set(c, hexs) == cosem.SUCCESS, hexs
        assert _utc(c) == want, (hexs, _utc(c))


def test_set_refused_without_the_right():
    c = _cet()
    v = "09 0C 07 EA 02 0A FF 0E 1E 00 00 FF C4 00"
    assert _set(c, v, PUBLIC) == cosem.READ_WRITE_DENIED
    assert _utc(c) == (2026, 1, 15, 12, 0, 0, 0)
    b = unhex("10 FF 88")
    for a in (1, 3, 4, 5, 6, 7, 8, 9):
        assert c.set(a, axdr.Reader(b, 0, 3), ADMIN) == cosem.READ_WRITE_DENIED
    assert _read(c, 3) == unhex("10 FF C4")


def test_set_clears_invalid_status():
    c = Clock(utc_offset=60)
    assert _read(c, 4) == unhex("11 01")
    assert _set(c, "09 0C 07 EA 02 0A FF 0E 1E 00 00 FF C4 00") == cosem.SUCCESS
    assert _read(c, 4) == unhex("11 00")


# **** NO ALLOCATION ****

_T1 = 0x3FFFFF00
_T2 = 0x05000000  # 23.3 hours after _T1, across the ticks wrap


def _tick_run(c):
    c._last = _T1
    c.tick(_T2)


def test_no_alloc_tick():
    c = _cet(2026, 3, 28, 12)
    assert_no_alloc(_tick_run, c, "tick across the wrap and midnight")
    assert c.days > date_to_days(2026, 3, 28)


def test_no_alloc_read_time():
    c = _cet(2026, 3, 29, 1)
    ctx = (c, cosem.Cursor(), bytearray(16))

    def run(x):
        x[0]._cy = -1  # recompute the DST instants too
        x[0].begin(2, x[1], None)
        x[0].next(x[1], x[2], 0)
        x[0].next(x[1], x[2], 14)

    assert_no_alloc(run, ctx, "read attribute 2")
    assert bytes(ctx[2][:14]) == unhex("09 0C 07 EA 03 1D 07 03 00 00 00 FF 88 80")


def test_no_alloc_set_time():
    c = _cet()
    b = unhex("09 0C 07 EA 0A 19 FF 02 1E 00 32 80 00 FF")
    ctx = (c, axdr.Reader(), b)

    res = [0]

    def run(x):
        x[1].attach(x[2], 0, len(x[2]))
        res[0] = x[0].set(2, x[1], ADMIN)

    assert_no_alloc(run, ctx, "SET attribute 2")
    assert res[0] == cosem.SUCCESS and _utc(c) == (2026, 10, 25, 0, 30, 0, 500)
    bad = unhex("09 0C 07 EA 02 1E FF 02 1E 00 32 80 00 FF")
    assert_no_alloc(run, (c, axdr.Reader(), bad), "refused SET attribute 2")
    assert res[0] == cosem.OTHER_REASON and _utc(c) == (2026, 10, 25, 0, 30, 0, 500)
