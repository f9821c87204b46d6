# Profile Generic (BB 4.3.6) and the in-memory row source: byte-exact attributes, range and entry
# selective access, FIFO wrap, binary search, the seed's DLMS Log Export example, allocation.
import axdr
import cosem
import profile_generic as pgm
import rows
from support import assert_no_alloc, tohex, unhex, need_heap

D0 = 8780  # 2024-01-15 (Monday), days since 2000-01-01
CLOCK_DEF = "02 04 12 00 08 09 06 00 00 01 00 00 FF 0F 02 12 00 00"
STATUS_DEF = "02 04 12 00 01 09 06 00 00 61 61 00 FF 0F 02 12 00 00"


def reg(c, d=0, e=0, tag=axdr.DOUBLE_LONG_UNSIGNED):
    return (3, cosem.obis(1, 1, c, d, e), 2, 0, tag)


def fill(r, n, step=900, nvals=3):
    # Row k: at D0 + k * step seconds, status k, value column j = k * 10 + j (4 bytes each).
    v = bytearray(4 * nvals)
    for k in range(n):
        for j in range(nvals):
            x = k * 10 + j
            v[4 * j + 2] = (x >> 8) & 0xFF
            v[4 * j + 3] = x & 0xFF
        t = k * step
        r.append(D0 + t // 86400, t % 86400, k & 0xFFFF, v)
    return r


def load_profile(n, cap=None, step=900):
    r = fill(rows.MemoryRows(cap or n, (4, 4, 4)), n, step)
    cols = [pgm.CLOCK_COL, pgm.STATUS_COL, reg(1, 29), reg(2, 29), reg(3, 29)]
    return pgm.ProfileGeneric(cosem.obis(1, 0, 99, 1, 0), cols, 900, r)


def drain(obj, attr, params=None, stage=64):
    # begin/next into one bytes object: fills a small stage, flushing when a piece says -1.
    cur = cosem.Cursor()
    rd = None
    if params is not None:
        rd = axdr.Reader(params, 0, len(params))
    res = obj.begin(attr, cur, rd)
    if res != cosem.SUCCESS:
        return res, b""
    out = bytearray(stage)
    acc = bytearray()
    off = 0
    while True:
        p = obj.next(cur, out, off)
        if p < 0:
            assert off > 0, "piece larger than the stage"
            acc += out[:off]
            off = 0
        elif p == off:
            break
        else:
            off = p
    acc += out[:off]
    return res, bytes(acc)


def row_ids(data, row_len=34):
    # The status (= row number) of every row of a full-column buffer.
    rd = axdr.Reader(data, 0, len(data))
    assert rd.tag() == axdr.ARRAY
    n = rd.length()
    ids = []
    for _ in range(n):
        p = rd.pos
        assert rd.skip_value() == p + row_len
        assert data[p + 16] == axdr.LONG_UNSIGNED
        ids.append((data[p + 17] << 8) | data[p + 18])
    assert rd.pos == len(data)
    return ids


def u16(v):
    return bytes(((v >> 8) & 0xFF, v & 0xFF))


def cdef(col):
    return b"\x02\x04\x12" + u16(col[0]) + b"\x09\x06" + bytes(col[1]) + b"\x0f" + \
        bytes((col[2] & 0xFF,)) + b"\x12" + u16(col[3])


def dt(y, mo, d, h, mi, s, dev=0x8000):
    return u16(y) + bytes((mo, d, 0xFF, h, mi, s, 0xFF)) + u16(dev) + b"\xff"


def rng(frm, to, cols=(), restrict=pgm.CLOCK_COL, tag=b"\x09\x0c"):
    body = b"\x02\x04" + cdef(restrict) + tag + frm + tag + to + b"\x01" + bytes((len(cols),))
    for c in cols:
        body += cdef(c)
    return body


def u32(v):
    return bytes(((v >> 24) & 0xFF, (v >> 16) & 0xFF, (v >> 8) & 0xFF, v & 0xFF))


def ent(fe, te, fs=1, ts=0):
    return b"\x02\x04\x06" + u32(fe) + b"\x06" + u32(te) + b"\x12" + u16(fs) + b"\x12" + u16(ts)


# **** attributes, byte-exact ****

ROW0 = "02 05 09 0C 07 E8 01 0F 01 00 0F 00 00 80 00 00 12 00 00 06 00 00 01 02" \
    " 14 FF FF FF FF FF FF FF FE 10 FC 18"
ROW1 = "02 05 09 0C 07 E8 01 0F 01 00 1E 00 00 80 00 00 12 00 20 06 12 34 56 78" \
    " 14 01 02 03 04 05 06 07 08 10 7F FF"
ROW2 = "02 05 09 0C 07 E8 01 10 02 00 00 00 00 80 00 00 12 FF FF 06 FF FF FF FF" \
    " 14 80 00 00 00 00 00 00 00 10 80 00"


def small_profile():
    r = rows.MemoryRows(10, (4, 8, 2))
    r.append(D0, 900, 0, unhex("00000102 FFFFFFFFFFFFFFFE FC18"))
    r.append(D0, 1800, 0x20, unhex("12345678 0102030405060708 7FFF"))
    r.append(D0 + 1, 0, 0xFFFF, unhex("FFFFFFFF 8000000000000000 8000"))
    cols = [pgm.CLOCK_COL, pgm.STATUS_COL, reg(1, 29), reg(2, 29, tag=axdr.LONG64),
            reg(13, 0, tag=axdr.LONG)]
    return pgm.ProfileGeneric(cosem.obis(1, 0, 99, 1, 0), cols, 900, r)


def test_small_profile_attributes_byte_exact():
    pg = small_profile()
    assert (pg.class_id, pg.version, pg.n_attrs, pg.n_methods) == (7, 1, 8, 2)
    want = {
        1: "09 06 01 00 63 01 00 FF",
        2: "01 03 " + ROW0 + " " + ROW1 + " " + ROW2,
        3: "01 05 " + CLOCK_DEF + " " + STATUS_DEF
        + " 02 04 12 00 03 09 06 01 01 01 1D 00 FF 0F 02 12 00 00"
        + " 02 04 12 00 03 09 06 01 01 02 1D 00 FF 0F 02 12 00 00"
        + " 02 04 12 00 03 09 06 01 01 0D 00 00 FF 0F 02 12 00 00",
        4: "06 00 00 03 84",
        5: "16 01",
        6: "02 04 12 00 08 09 06 00 00 01 00 00 FF 0F 02 12 00 00",  # the time column
        7: "06 00 00 00 03",
        8: "06 00 00 00 0A",
    }
    for attr in range(1, 9):
        res, got = drain(pg, attr)
        assert res == cosem.SUCCESS
        assert got == unhex(want[attr]), (attr, tohex(got))


def test_access_and_selectors():
    pg = small_profile()
    prof = cosem.Profile(16, "public", False)
    for attr in range(1, 9):
        assert pg.access(attr, prof) == cosem.READ
        assert pg.selectors(attr) == (6 if attr == 2 else 0)
    assert pg.method_access(1, prof) == cosem.NO_ACCESS
    assert pg.method_access(2, prof) == cosem.NO_ACCESS


def test_deviation_and_clock_status_in_timestamps():
    pg = small_profile()
    pg.deviation = -60
    pg.clock_status = 0x80
    _, got = drain(pg, 2, ent(2, 2, 1, 1))
    assert got == unhex("01 01 02 01 09 0C 07 E8 01 0F 01 00 1E 00 00 FF C4 80")


def test_empty_profile():
    pg = load_profile(0, cap=5)
    assert drain(pg, 2) == (cosem.SUCCESS, unhex("01 00"))
    assert drain(pg, 7)[1] == unhex("06 00 00 00 00")
    assert drain(pg, 2, ent(1, 0)) == (cosem.SUCCESS, unhex("01 00"))


def test_35_days_of_15_minute_rows():
    need_heap(353 * 1024, block=123 * 1024)  # 64-bit unix port, fresh process, +10 %
    pg = load_profile(3360)
    res, got = drain(pg, 2, stage=cosem.STAGE_SIZE)
    assert res == cosem.SUCCESS
    assert len(got) == 4 + 3360 * 34
    assert got[:4] == unhex("01 82 0D 20")
    assert got[4:38] == unhex(
        "02 05 09 0C 07 E8 01 0F 01 00 00 00 00 80 00 00 12 00 00"
        " 06 00 00 00 00 06 00 00 00 01 06 00 00 00 02"
    )
    assert got[-34:] == unhex(  # 2024-02-18 (Sunday) 23:45, row 3359
        "02 05 09 0C 07 E8 02 12 07 17 2D 00 00 80 00 00 12 0D 1F"
        " 06 00 00 83 36 06 00 00 83 37 06 00 00 83 38"
    )
    assert row_ids(got) == list(range(3360))


# **** range selection (selector 1) ****


def ids_for(pg, params):
    res, got = drain(pg, 2, params)
    assert res == cosem.SUCCESS, res
    return row_ids(got)


def test_range_inclusive_on_row_timestamps():
    pg = load_profile(10)  # rows 0..9 at 00:00, 00:15 .. 02:15 on 2024-01-15
    assert ids_for(pg, rng(dt(2024, 1, 15, 0, 30, 0), dt(2024, 1, 15, 1, 15, 0))) == [2, 3, 4, 5]
    assert ids_for(pg, rng(dt(2024, 1, 15, 0, 0, 0), dt(2024, 1, 15, 0, 0, 0))) == [0]
    assert ids_for(pg, rng(dt(2024, 1, 15, 2, 15, 0), dt(2024, 1, 15, 2, 15, 0))) == [9]


def test_range_restricted_by_no_object_means_the_time_column():
    # Gurux sends {0, 00*6, 2, 0} when it has no sort object; that names no column.
    pg = load_profile(10)
    unset = (0, b"\x00" * 6, 2, 0, 0)
    frm, to = dt(2024, 1, 15, 0, 30, 0), dt(2024, 1, 15, 1, 15, 0)
    assert ids_for(pg, rng(frm, to, restrict=unset)) == [2, 3, 4, 5]
    other = (3, b"\x01\x01\x01\x08\x00\xff", 2, 0, 0)
    assert drain(pg, 2, rng(frm, to, restrict=other))[0] == cosem.OTHER_REASON


def test_range_between_rows_empty_and_whole():
    pg = load_profile(10)
    assert ids_for(pg, rng(dt(2024, 1, 15, 0, 31, 0), dt(2024, 1, 15, 1, 14, 59))) == [3, 4]
    assert ids_for(pg, rng(dt(2024, 1, 15, 0, 16, 0), dt(2024, 1, 15, 0, 29, 0))) == []
    assert ids_for(pg, rng(dt(2024, 1, 15, 3, 0, 0), dt(2024, 1, 16, 0, 0, 0))) == []
    assert ids_for(pg, rng(dt(2023, 1, 1, 0, 0, 0), dt(2024, 1, 14, 23, 59, 59))) == []
    assert ids_for(pg, rng(dt(2024, 1, 15, 1, 0, 0), dt(2024, 1, 15, 0, 0, 0))) == []  # to < from
    assert ids_for(pg, rng(dt(2020, 1, 1, 0, 0, 0), dt(2030, 1, 1, 0, 0, 0))) == list(range(10))


def test_range_unspecified_fields_and_deviation():
    pg = load_profile(200)  # 2024-01-15 00:00 .. 2024-01-17 01:45
    unspec = dt(0xFFFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF)
    assert ids_for(pg, rng(unspec, unspec)) == list(range(200))
    # day unspecified: from = the 1st, to = the last day of January 2024
    day_any = dt(2024, 1, 0xFF, 0xFF, 0xFF, 0xFF)
    assert ids_for(pg, rng(day_any, day_any)) == list(range(200))
    # hour/minute/second unspecified: the whole of 2024-01-16
    assert ids_for(pg, rng(dt(2024, 1, 16, 0xFF, 0xFF, 0xFF), dt(2024, 1, 16, 0xFF, 0xFF, 0xFF))) \
        == list(range(96, 192))
    # client in UTC (deviation 0), meter at deviation -60 (local = UTC + 1 h): 00:00..00:30 UTC
    # is 01:00..01:30 local
    pg.deviation = -60
    assert ids_for(pg, rng(dt(2024, 1, 15, 0, 0, 0, 0), dt(2024, 1, 15, 0, 30, 0, 0))) == [4, 5, 6]
    # across midnight backwards: 2024-01-15 23:00 UTC+2 (deviation -120) = 22:00 local
    assert ids_for(pg, rng(dt(2024, 1, 15, 23, 0, 0, 0xFF88), dt(2024, 1, 15, 23, 0, 0, 0xFF88))) \
        == [88]
    # deviation unspecified in the request: taken as our local time
    assert ids_for(pg, rng(dt(2024, 1, 15, 1, 0, 0), dt(2024, 1, 15, 1, 0, 0))) == [4]


def test_range_datetime_tag_25_accepted():
    pg = load_profile(10)
    p = rng(dt(2024, 1, 15, 0, 30, 0), dt(2024, 1, 15, 0, 45, 0), tag=b"\x19")
    assert ids_for(pg, p) == [2, 3]


def test_range_column_subset():
    pg = load_profile(10)
    p = rng(dt(2024, 1, 15, 0, 30, 0), dt(2024, 1, 15, 0, 45, 0), cols=(reg(2, 29), pgm.CLOCK_COL))
    res, got = drain(pg, 2, p)
    assert res == cosem.SUCCESS
    assert got == unhex(  # columns in capture order, whatever order they were asked in
        "01 02 02 02 09 0C 07 E8 01 0F 01 00 1E 00 00 80 00 00 06 00 00 00 15"
        " 02 02 09 0C 07 E8 01 0F 01 00 2D 00 00 80 00 00 06 00 00 00 1F"
    )


def test_range_errors():
    pg = load_profile(10)
    a, b = dt(2024, 1, 15, 0, 0, 0), dt(2024, 1, 15, 1, 0, 0)
    assert drain(pg, 2, rng(a, b, restrict=pgm.STATUS_COL))[0] == cosem.OTHER_REASON
    assert drain(pg, 2, rng(a, b, cols=(reg(9, 29),)))[0] == cosem.OTHER_REASON
    assert drain(pg, 2, rng(a, b, tag=b"\x09\x0b")[:-1])[0] == cosem.TYPE_UNMATCHED
    good = rng(a, b)
    assert drain(pg, 2, good)[0] == cosem.SUCCESS
    for n in range(len(good)):  # every truncation is refused, none crashes
        assert drain(pg, 2, good[:n])[0] != cosem.SUCCESS, n


# **** entry selection (selector 2) ****


def test_entry_rows():
    pg = load_profile(10)
    assert ids_for(pg, ent(1, 0)) == list(range(10))
    assert ids_for(pg, ent(2, 4)) == [1, 2, 3]
    assert ids_for(pg, ent(3, 0)) == list(range(2, 10))
    assert ids_for(pg, ent(8, 100)) == [7, 8, 9]  # clipped at the end
    assert ids_for(pg, ent(10, 10)) == [9]
    assert ids_for(pg, ent(11, 0)) == []  # from past the end
    assert ids_for(pg, ent(11, 20)) == []
    big = unhex("02 04 06 00 00 00 05 06 FF FF FF FF 12 00 01 12 00 00")  # to_entry 2**32-1
    assert ids_for(pg, big) == [4, 5, 6, 7, 8, 9]
    assert ids_for(pg, ent(1, 0, 0, 0)) == list(range(10))  # (0, 0) columns = all


def test_entry_errors():
    pg = load_profile(10)
    assert drain(pg, 2, ent(0, 5))[0] == cosem.OTHER_REASON
    assert drain(pg, 2, ent(5, 3))[0] == cosem.OTHER_REASON
    assert drain(pg, 2, ent(1, 0, 4, 3))[0] == cosem.OTHER_REASON  # 4..3, nor 4..6 (count)
    assert drain(pg, 2, ent(1, 0, 2, 6))[0] == cosem.OTHER_REASON
    assert drain(pg, 2, ent(1, 0, 0, 3))[0] == cosem.OTHER_REASON
    bad = bytearray(ent(1, 0))
    bad[2] = axdr.LONG_UNSIGNED
    assert drain(pg, 2, bytes(bad))[0] == cosem.TYPE_UNMATCHED
    assert drain(pg, 2, unhex("02 04 12 00 01"))[0] == cosem.TYPE_UNMATCHED


def test_entry_columns():
    pg = load_profile(10)
    res, got = drain(pg, 2, ent(3, 4, 2, 3))
    assert res == cosem.SUCCESS
    assert got == unhex("01 02 02 02 12 00 02 06 00 00 00 14 02 02 12 00 03 06 00 00 00 1E")
    res, got = drain(pg, 2, ent(10, 0, 4, 0))
    assert got == unhex("01 01 02 02 06 00 00 00 5B 06 00 00 00 5C")
    # to < from: read as a column count, as Gurux's readRowsByEntry sends it (3, 2 = 3..4)
    assert drain(pg, 2, ent(3, 4, 3, 2)) == drain(pg, 2, ent(3, 4, 3, 4))


# **** row source ****


def test_memory_rows_fifo_wrap():
    r = fill(rows.MemoryRows(100, (4, 4, 4)), 250, step=60)
    assert (r.count(), r.capacity(), r.base()) == (100, 100, 150)
    row = rows.Row(r.size)
    for i in range(100):
        k = 150 + i
        r.read(i, row)
        t = k * 60
        assert (row.days, row.secs, row.status) == (D0 + t // 86400, t % 86400, k)
        assert row.vals[2:4] == u16(k * 10) and row.vals[10:12] == u16(k * 10 + 2)
    pg = load_profile(0, cap=1)
    pg.rows = r
    assert ids_for(pg, ent(1, 3)) == [150, 151, 152]
    assert drain(pg, 7)[1] == unhex("06 00 00 00 64")


def test_append_during_transfer_keeps_place():
    r = fill(rows.MemoryRows(5, (4, 4, 4)), 5)
    pg = load_profile(0, cap=1)
    pg.rows = r
    cur = cosem.Cursor()
    out = bytearray(64)
    assert pg.begin(2, cur, None) == cosem.SUCCESS
    pg.next(cur, out, 0)  # header: 5 rows
    v = bytearray(12)
    seen = []
    for _ in range(5):
        n = pg.next(cur, out, 0)
        seen.append((out[17] << 8) | out[18])
        if len(seen) == 2:
            r.append(D0 + 1, 0, 99, v)  # drops row 0 (already sent)
    assert seen == [0, 1, 2, 3, 4] and n == 34
    assert pg.next(cur, out, 0) == 0


def test_binary_search_every_row():
    r = rows.MemoryRows(1000, (4,))
    v = bytearray(4)
    for k in range(1200):  # wraps: 1000 rows from k = 200, every 317 s across many days
        t = k * 317
        r.append(t // 86400, t % 86400, 0, v)
    for i in range(1000):
        t = (200 + i) * 317
        d, s = t // 86400, t % 86400
        assert r.find_first_at_or_after(d, s) == i
        assert r.find_last_at_or_before(d, s) == i
        d1, s1 = (t + 1) // 86400, (t + 1) % 86400
        d2, s2 = (t - 1) // 86400, (t - 1) % 86400
        assert r.find_first_at_or_after(d1, s1) == i + 1
        assert r.find_last_at_or_before(d2, s2) == i - 1
    assert r.find_first_at_or_after(0, 0) == 0 and r.find_last_at_or_before(0, 0) == -1
    assert r.find_first_at_or_after(9999, 0) == 1000
    assert r.find_last_at_or_before(9999, 0) == 999


# **** seed: DLMS Log Export example ****

TYPES = {"1-1:%d.29.0*255" % c: axdr.DOUBLE_LONG_UNSIGNED for c in range(1, 7)}
NONE3 = ["none", "NONE", "none"]


def test_log_export_two_profiles_from_one_recorder():
    rec = fill(rows.MemoryRows(50, (4,) * 6), 3, nvals=6)
    src1 = ["1-1:1.29.0*255", "1-1:2.29.0*255", "1-1:3.29.0*255"] + NONE3 + ["none"] * 10
    src2 = NONE3 + ["1-1:4.29.0*255", "1-1:5.29.0*255", "1-1:6.29.0*255"] + ["none"] * 10
    p1 = pgm.from_log_export({"obis": "1-0.99.1.0.255", "status": True, "sources": src1},
                             TYPES, rec, 900)
    p2 = pgm.from_log_export({"obis": "1-0:99.1.1*255", "status": True, "sources": src2},
                             TYPES, rec, 900)
    assert p1.ln == cosem.obis(1, 0, 99, 1, 0) and p2.ln == cosem.obis(1, 0, 99, 1, 1)
    d = " 09 06 01 01 %02X 1D 00 FF 0F 02 12 00 00"
    for pg, first in ((p1, 1), (p2, 4)):
        want = "01 05 " + CLOCK_DEF + " " + STATUS_DEF
        for c in range(first, first + 3):
            want += " 02 04 12 00 03" + d % c
        assert drain(pg, 3)[1] == unhex(want)
    ts = "09 0C 07 E8 01 0F 01 00 0F 00 00 80 00 00"  # row 1: 00:15
    assert drain(p1, 2, ent(2, 2))[1] == unhex(
        "01 01 02 05 " + ts + " 12 00 01 06 00 00 00 0A 06 00 00 00 0B 06 00 00 00 0C")
    assert drain(p2, 2, ent(2, 2))[1] == unhex(
        "01 01 02 05 " + ts + " 12 00 01 06 00 00 00 0D 06 00 00 00 0E 06 00 00 00 0F")
    p3 = pgm.from_log_export({"obis": "1-0:99.1.2*255", "sources": src2[:4]}, TYPES, rec)
    assert drain(p3, 2, ent(2, 2))[1] == unhex("01 01 02 02 " + ts + " 06 00 00 00 0D")
    assert drain(p3, 4)[1] == unhex("06 00 00 00 00")


# **** allocation ****


def test_no_alloc_append_and_search():
    r = fill(rows.MemoryRows(100, (4, 4, 4)), 150)
    v = bytearray(12)

    def append(x):
        r.append(D0 + 5, 0, 1, v)  # a full ring: repeatable

    def search(x):
        r.find_first_at_or_after(D0, 30000)
        r.find_last_at_or_before(D0 + 1, 7)

    assert_no_alloc(append, 0, "append")
    assert_no_alloc(search, 0, "binary searches")


def _read_all(ctx):
    pg, cur, stage, rd, params = ctx
    if params is not None:
        rd.attach(params, 0, len(params))
    pg.begin(2, cur, rd if params is not None else None)
    while pg.next(cur, stage, 0) > 0:
        pass


def test_no_alloc_full_read_and_selections():
    need_heap(92 * 1024, block=52 * 1024)  # 64-bit unix port, fresh process, +10 %
    pg = load_profile(3360)
    stage = bytearray(cosem.STAGE_SIZE)
    rd = axdr.Reader()
    cur = cosem.Cursor()
    assert_no_alloc(_read_all, (pg, cur, stage, rd, None), "3360-row read")
    assert cur.i == 3361
    p = rng(dt(2024, 2, 1, 0, 0, 0), dt(2024, 2, 1, 23, 59, 59), cols=(pgm.CLOCK_COL, reg(3, 29)))
    assert_no_alloc(_read_all, (pg, cur, stage, rd, p), "range selection")
    assert (cur.n, cur.ncols, cur.sel) == (96, 2, cosem.SEL_RANGE)
    p = ent(100, 300, 2, 0)
    assert_no_alloc(_read_all, (pg, cur, stage, rd, p), "entry selection")
    assert (cur.n, cur.ncols, cur.sel) == (201, 4, cosem.SEL_ENTRY)
