# profile_generic.py: the Profile Generic interface class (BB 4.3.6, class_id 7, version 1) over
# a row source (rows.py), streamed one row per piece, with range and entry selective access.
# Spec short forms: "BB" = Blue Book (IEC 62056-6-2 / DLMS UA 1000-1 Ed. 12, interface classes),
# "GB" = Green Book (IEC 62056-5-3). "Seed" = the ION DLMS protocol document (DLMS Log Export).
#
# Capture columns are (class_id, logical_name, attribute_index, data_index, A-XDR tag). Column 0
# must be the clock time (class 8, 0-0:1.0.0*255, attr 2, octet-string date-time); a column with
# class 1 and 0-0:97.97.0*255 is the status (long-unsigned); every other column takes its value
# from the row source column col_map[k] (k counting those other columns from 0), so several
# profiles can export different columns of one recorder (seed "Changing the data exported").
#
# Time: rows hold LOCAL STANDARD time (no DST shift). Timestamps are sent with hundredths 0, the
# weekday computed, deviation = self.deviation (BB: minutes from local time to UTC, so
# UTC = local + deviation; 0x8000 = not specified until the clock sets it) and clock status =
# self.clock_status (0: valid, no DST). Range from/to values (BB 4.3.6 range_descriptor):
# hundredths, weekday and clock status are don't-care (rows have whole seconds); an unspecified
# year/month/day/hour/minute/second becomes its lowest value in from_value and its highest in
# to_value (year 2000 / 2178, day 0xFE = last and 0xFD = second-last day of the month); when
# the client gives a deviation and self.deviation is set, the bound is moved into our local time
# by (client deviation - ours) minutes, otherwise it is taken as our local time. Both ends are
# inclusive and found by binary search.
#
# Selected columns are cur.cols (bit c = capture column c) and always come out in capture order.
# cur.first/cur.last are row-source sequence numbers (rows.base() + index), so an append during
# a block transfer does not shift the rows still to send. next() returns -1, with the cursor
# unchanged, when a piece does not fit in out; the caller flushes and calls again.
from micropython import const

import axdr
from cosem import OTHER_REASON, SEL_ENTRY, SEL_RANGE, SUCCESS, TYPE_UNMATCHED
from cosem import CosemObject, parse_obis
from rows import SECS_PER_DAY, Row, days_from_civil, month_days, put_date

_ATTR_BUFFER = const(2)  # BB 4.3.6 attributes
_ATTR_CAPTURE_OBJECTS = const(3)
_ATTR_CAPTURE_PERIOD = const(4)
_ATTR_SORT_METHOD = const(5)
_ATTR_SORT_OBJECT = const(6)
_ATTR_ENTRIES_IN_USE = const(7)
_ATTR_PROFILE_ENTRIES = const(8)
_SORT_FIFO = const(1)  # BB 4.3.6 sort_method: (1) fifo
_CLASS_CLOCK = const(8)  # BB 4.5.1 Clock
_CLASS_DATA = const(1)  # BB 4.3.1 Data
_CLASS_REGISTER = const(3)  # BB 4.3.2 Register
_DATETIME = const(25)  # BB 4.1.5 Table 2 date-time [25]; accepted in from/to for octet-string
_K_TIME = const(0xFE)  # _kind[c]: the timestamp, the status, else a row-source column
_K_STATUS = const(0xFD)
_YEAR_MIN = const(2000)
_YEAR_MAX = const(2178)  # last whole year of u16 days since 2000
_NO_MATCH = const(-1)  # _read_def results besides a column index
_UNSET = const(-3)  # class 0 and logical name 00*6: a client naming no object
_MALFORMED = const(-2)
_BIG = const(0x3FFFFFFF)  # entry numbers of 2**30 and more mean "past any end"
CLOCK_LN = b"\x00\x00\x01\x00\x00\xff"  # 0-0:1.0.0*255
STATUS_LN = b"\x00\x00\x61\x61\x00\xff"  # 0-0:97.97.0*255 (seed "Status capture object")
CLOCK_COL = (_CLASS_CLOCK, CLOCK_LN, 2, 0, axdr.OCTET_STRING)
STATUS_COL = (_CLASS_DATA, STATUS_LN, 2, 0, axdr.LONG_UNSIGNED)
# Value width in row-source bytes by tag (BB Table 2): tags 0..22 (0 = not a row value)
_WIDTH = (
    b"\x00\x00\x00\x01\x00\x04\x04\x00\x00\x00\x00\x00\x00\x00\x00\x01\x02\x01\x02\x00"
    b"\x08\x08\x01"
)

_DT = [0] * 10  # from/to date-time being parsed (axdr DT_* indexes); requests are one at a time


def _field(v, top, upper, lo, hi):
    # A date-time field: v if specified (<= top), else the bound's extreme.
    if v <= top:
        return v
    return hi if upper else lo


def _u32_clipped(rd):
    # double-long-unsigned at rd, clipped to _BIG (no heap int); -1 if another type.
    if rd.tag() != axdr.DOUBLE_LONG_UNSIGNED:
        return -1
    hi = rd.u16()
    lo = rd.u16()
    if hi < 0 or lo < 0:
        return -1
    return _BIG if hi >= 0x4000 else (hi << 16) | lo


def _u16_tagged(rd):
    return rd.u16() if rd.tag() == axdr.LONG_UNSIGNED else -1


class ProfileGeneric(CosemObject):
    class_id = 7  # BB 4.3.6
    version = 1
    n_attrs = 8
    n_methods = 2  # reset, capture: present in IC 7, not accessible (NO_ACCESS)

    def __init__(self, ln, columns, period, rows, col_map=None):
        CosemObject.__init__(self, ln)
        assert tuple(columns[0]) == CLOCK_COL, "column 0 must be the clock time"
        n = len(columns)
        assert n <= 30
        self.capture_period = period  # seconds (seed "Recording interval"), 0 if not periodic
        self.deviation = axdr.DEVIATION_UNSPECIFIED
        self.clock_status = 0
        # With a clock (the meter), row timestamps are UTC instants rendered in local time
        # with the deviation and DST status of that instant, and range bounds are converted
        # to UTC by the clock's rules; without one, rows are local time as described above.
        self.clock = None
        self.rows = rows
        self._row = Row(rows.size)
        self._ncap = n
        self._all = (1 << n) - 1
        self._key = [0, 0, 0, 0]  # from days, secs, to days, secs
        self._setup(columns, col_map)

    def _setup(self, columns, col_map):
        cls, lns, attrs, didx, tags, kind, offs = [], b"", [], [], [], [], []
        k = 0
        for c in columns:
            cls.append(c[0])
            lns += bytes(c[1])
            attrs.append(c[2] & 0xFF)
            didx.append(c[3])
            tags.append(c[4])
            if tuple(c) == CLOCK_COL:
                kind.append(_K_TIME)
            elif c[0] == _CLASS_DATA and bytes(c[1]) == STATUS_LN:
                kind.append(_K_STATUS)
            else:
                s = col_map[k] if col_map else k
                k += 1
                assert _WIDTH[c[4]] == self.rows.widths[s], "column type vs row width"
                kind.append(s)
        offs = [sum(self.rows.widths[:s]) if s < _K_STATUS else 0 for s in kind]
        self._cls, self._lns, self._didx = tuple(cls), lns, tuple(didx)
        self._attrs, self._tags = bytes(attrs), bytes(tags)
        self._kind, self._offs = bytes(kind), bytes(offs)

    def selectors(self, attr):
        return (1 << SEL_RANGE) | (1 << SEL_ENTRY) if attr == _ATTR_BUFFER else 0

    # **** BEGIN: resolve the selection ****

    def begin_attr(self, attr, cur, params):
        if attr == _ATTR_CAPTURE_OBJECTS:
            cur.n = self._ncap
        if attr != _ATTR_BUFFER:
            return SUCCESS
        cur.cols = self._all
        cur.ncols = self._ncap
        cur.first = 0
        cur.last = self.rows.count() - 1
        r = SUCCESS if params is None else self._select(cur, params)
        cur.n = cur.last - cur.first + 1 if cur.last >= cur.first else 0
        cur.first += self.rows.base()
        cur.last += self.rows.base()
        return r

    def _select(self, cur, rd):
        # begin() gets no selector: the two descriptors differ in their first element (GB
        # 9.4.4 selective-access-descriptor; xdlms has checked the selector against selectors()).
        p = rd.pos
        if rd.remaining() < 3 or rd.buf[p] != axdr.STRUCTURE or rd.buf[p + 1] != 4:
            return TYPE_UNMATCHED
        t = rd.buf[p + 2]
        rd.pos = p + 2
        if t == axdr.STRUCTURE:
            cur.sel = SEL_RANGE
            return self._range(cur, rd)
        if t == axdr.DOUBLE_LONG_UNSIGNED:
            cur.sel = SEL_ENTRY
            return self._entry(cur, rd)
        return TYPE_UNMATCHED

    def _range(self, cur, rd):
        # BB 4.3.6 range_descriptor {restricting_object, from_value, to_value, selected_values}
        c = self._read_def(rd)
        if c == _MALFORMED:
            return TYPE_UNMATCHED
        if c == _UNSET:
            c = 0  # {0, 00*6, ...}: no object named, the default is the time column
        if c != 0:
            return OTHER_REASON  # only the clock time column restricts
        key = self._key
        if not self._read_bound(rd, False, key, 0) or not self._read_bound(rd, True, key, 2):
            return TYPE_UNMATCHED
        r = self._read_columns(rd, cur)
        cur.first = self.rows.find_first_at_or_after(key[0], key[1])
        cur.last = self.rows.find_last_at_or_before(key[2], key[3])
        return r

    def _entry(self, cur, rd):
        # BB 4.3.6 entry_descriptor {from_entry, to_entry (0 = last), from_selected_value,
        # to_selected_value (0 = last)}: 1-based, inclusive.
        fe = _u32_clipped(rd)
        te = _u32_clipped(rd)
        fs = _u16_tagged(rd)
        ts = _u16_tagged(rd)
        if fe < 0 or te < 0 or fs < 0 or ts < 0 or rd.err:
            return TYPE_UNMATCHED
        if fe == 0 or (te and fe > te):
            return OTHER_REASON
        if fs or ts:  # (0, 0) = all columns, as some clients send
            t = ts if ts else self._ncap
            if 0 < t < fs:  # Gurux's client sends a column COUNT here (fs=3, ts=2: cols 3..4)
                t += fs - 1
            if fs == 0 or t > self._ncap:
                return OTHER_REASON
            cur.cols = ((1 << t) - 1) ^ ((1 << (fs - 1)) - 1)
            cur.ncols = t - fs + 1
        n = self.rows.count()
        cur.first = fe - 1  # past the end: first > last, an empty array
        cur.last = n - 1 if te == 0 or te > n else te - 1
        return SUCCESS

    def _read_def(self, rd):
        # capture_object_definition {class_id, logical_name, attribute_index, data_index}:
        # the matching column index, _NO_MATCH or _MALFORMED.
        if rd.tag() != axdr.STRUCTURE or rd.length() != 4 or rd.tag() != axdr.LONG_UNSIGNED:
            return _MALFORMED
        cls = rd.u16()
        if rd.tag() != axdr.OCTET_STRING or rd.length() != 6:
            return _MALFORMED
        p = rd.take(6)
        if rd.tag() != axdr.INTEGER:
            return _MALFORMED
        a = rd.u8()
        di = _u16_tagged(rd)
        if rd.err or di < 0:
            return _MALFORMED
        for c in range(self._ncap):
            if self._cls[c] == cls and self._attrs[c] == a and self._didx[c] == di:
                if self._ln_at(c, rd.buf, p):
                    return c
        if cls == 0:
            b = rd.buf
            if b[p] | b[p + 1] | b[p + 2] | b[p + 3] | b[p + 4] | b[p + 5] == 0:
                return _UNSET
        return _NO_MATCH

    def _ln_at(self, c, buf, p):
        lns = self._lns
        q = c * 6
        for k in range(6):
            if lns[q + k] != buf[p + k]:
                return False
        return True

    def _read_columns(self, rd, cur):
        # selected_values: array of capture_object_definition; empty = all columns.
        if rd.tag() != axdr.ARRAY:
            return TYPE_UNMATCHED
        n = rd.length()
        if n <= 0:
            return SUCCESS if n == 0 else TYPE_UNMATCHED
        cols = 0
        for _ in range(n):
            c = self._read_def(rd)
            if c < 0:
                return TYPE_UNMATCHED if c == _MALFORMED else OTHER_REASON
            cols |= 1 << c
        cur.cols = cols
        cur.ncols = 0
        for c in range(self._ncap):
            cur.ncols += (cols >> c) & 1
        return SUCCESS

    def _read_bound(self, rd, upper, key, k):
        # from_value / to_value: a date-time into key[k] (days) and key[k + 1] (secs).
        t = rd.tag()
        if t == axdr.OCTET_STRING:
            if rd.length() != axdr.DATETIME_LEN:
                return False
        elif t != _DATETIME:
            return False
        dt = _DT
        if rd.dt12(dt) < 0:
            return False
        y = _field(dt[axdr.DT_YEAR], 0xFFFE, upper, _YEAR_MIN, _YEAR_MAX)
        m = _field(dt[axdr.DT_MONTH], 12, upper, 1, 12)
        m = m if m else 1
        last = month_days(y, m)
        d = dt[axdr.DT_DAY]
        d = last if d == 0xFE else (last - 1 if d == 0xFD else _field(d, 31, upper, 1, last))
        d = d if d else 1
        s = _field(dt[axdr.DT_HOUR], 23, upper, 0, 23) * 3600
        s += _field(dt[axdr.DT_MINUTE], 59, upper, 0, 59) * 60
        s += _field(dt[axdr.DT_SECOND], 59, upper, 0, 59)
        dev = dt[axdr.DT_DEVIATION]
        if self.clock is not None:
            if dev != axdr.DEVIATION_UNSPECIFIED:
                s += dev * 60  # UTC = local + deviation
            else:
                clk = self.clock
                clk.local_to_utc(days_from_civil(y, m, d), s, True)
                key[k] = clk._d
                key[k + 1] = clk._s
                return True
        elif dev != axdr.DEVIATION_UNSPECIFIED and self.deviation != axdr.DEVIATION_UNSPECIFIED:
            s += (dev - self.deviation) * 60  # UTC = local + deviation, on both sides
        key[k] = days_from_civil(y, m, d) + s // SECS_PER_DAY
        key[k + 1] = s % SECS_PER_DAY
        return True

    # **** NEXT: one piece per call ****

    def next_attr(self, cur, out, off):
        a = cur.attr
        if a == _ATTR_BUFFER or a == _ATTR_CAPTURE_OBJECTS:
            if cur.i == 0:
                p = _put_count(out, off, cur.n)
            elif cur.i > cur.n:
                return off
            elif a == _ATTR_BUFFER:
                p = self._put_row(out, off, cur)
            else:
                p = self._put_def(out, off, cur.i - 1)
            if p >= 0:
                cur.i += 1
            return p
        if cur.i:
            return off
        p = self._put_scalar(a, out, off)
        if p >= 0:
            cur.i = 1
        return p

    def _put_scalar(self, a, out, off):
        if a == _ATTR_CAPTURE_PERIOD:
            return axdr.put_u32(out, off, self.capture_period)
        if a == _ATTR_SORT_METHOD:
            return axdr.put_enum(out, off, _SORT_FIFO)
        if a == _ATTR_SORT_OBJECT:
            # The first column, the clock time: rows are in time order. Clients (Gurux)
            # take the sort object as the restricting object of their range reads.
            return self._put_def(out, off, 0)
        if a == _ATTR_ENTRIES_IN_USE:
            return axdr.put_u32(out, off, self.rows.count())
        if a == _ATTR_PROFILE_ENTRIES:
            return axdr.put_u32(out, off, self.rows.capacity())
        return off

    def _put_def(self, out, off, c):
        p = axdr.put_struct(out, off, 4)
        p = axdr.put_u16(out, p, self._cls[c])
        p = axdr.put_octets(out, p, self._lns, c * 6, 6)
        p = axdr.put_i8(out, p, self._attrs[c])
        return axdr.put_u16(out, p, self._didx[c])

    def _put_row(self, out, off, cur):
        rows = self.rows
        i = cur.first + cur.i - 1 - rows.base()
        n = rows.count()
        i = 0 if i < 0 else (n - 1 if i >= n else i)  # a row dropped mid-transfer
        row = self._row
        if n:
            rows.read(i, row)
        p = axdr.put_struct(out, off, cur.ncols)
        for c in range(self._ncap):
            if (cur.cols >> c) & 1:
                p = self._put_col(out, p, c, row)
        return p

    def _put_col(self, out, p, c, row):
        k = self._kind[c]
        if k == _K_TIME:
            if p < 0 or p + 14 > len(out):
                return -1
            if self.clock is not None:
                return self.clock.put_dt(out, p, row.days, row.secs, 0)
            out[p] = axdr.OCTET_STRING
            out[p + 1] = axdr.DATETIME_LEN
            put_date(out, p + 2, row.days)
            s = row.secs
            out[p + 7] = s // 3600
            out[p + 8] = (s // 60) % 60
            out[p + 9] = s % 60
            out[p + 10] = 0  # hundredths
            dev = self.deviation
            out[p + 11] = (dev >> 8) & 0xFF
            out[p + 12] = dev & 0xFF
            out[p + 13] = self.clock_status
            return p + 14
        if k == _K_STATUS:
            return axdr.put_u16(out, p, row.status)
        w = _WIDTH[self._tags[c]]
        if p < 0 or p + 1 + w > len(out):
            return -1
        out[p] = self._tags[c]
        return axdr.raw_bytes(out, p + 1, row.vals, self._offs[c], w)


def _put_count(out, off, n):
    # Array tag and element count; counts over 0xFFFF take the 0x83 form (XDR length).
    if n <= 0xFFFF:
        return axdr.put_array(out, off, n)
    if off < 0 or off + 5 > len(out):
        return -1
    out[off] = axdr.ARRAY
    out[off + 1] = 0x83
    out[off + 2] = (n >> 16) & 0xFF
    out[off + 3] = (n >> 8) & 0xFF
    out[off + 4] = n & 0xFF
    return off + 5


def from_log_export(cfg, types, rows, period=0):
    # Setup: a ProfileGeneric from a seed "DLMS Log Export" config {"obis": "1-0:99.1.0*255",
    # "status": true, "sources": [up to 16 OBIS codes or "none"]}. Source k maps to row-source
    # column k; "none" sources are not exported. types: OBIS (text or 6 bytes) -> value tag,
    # or (class_id, tag); a bare tag means a Register (class 3), attribute 2.
    ln = parse_obis(cfg["obis"])
    assert ln, "bad Profile Generic OBIS"
    tmap = {}
    for key, t in types.items():
        tmap[parse_obis(key) if isinstance(key, str) else bytes(key)] = t
    cols = [CLOCK_COL]
    if cfg.get("status"):
        cols.append(STATUS_COL)
    col_map = []
    srcs = cfg.get("sources", ())
    assert len(srcs) <= 16
    for k, src in enumerate(srcs):
        if src is None or src.strip().lower() == "none":
            continue
        o = parse_obis(src)
        assert o and o in tmap, "no type for source " + src
        t = tmap[o]
        cls, tag = (t[0], t[1]) if isinstance(t, tuple) else (_CLASS_REGISTER, t)
        cols.append((cls, o, 2, 0, tag))
        col_map.append(k)
    return ProfileGeneric(ln, cols, period, rows, col_map)
