# rows.py: profile row sources: the captured rows a Profile Generic buffer (BB 4.3.6) exports.
# Spec short form: "BB" = Blue Book (IEC 62056-6-2, interface classes).
#
# A row is a timestamp, a status word and N value columns:
#   days    days since 2000-01-01, local standard time (0..65535: until 2179)
#   secs    seconds of that day, 0..86399
#   status  0..0xFFFF (the ION status bitmap; 0xFFFF = invalid)
#   vals    the N column values as raw big-endian bytes, a fixed width per column: 1, 2 (long,
#           long-unsigned), 4 (double-long, double-long-unsigned) or 8 (long64, long64-unsigned).
#           Values stay as bytes so 32/64-bit counters never become heap ints on 32-bit ports.
#
# Row source interface (duck-typed; MemoryRows below, a flash-backed source in the metering code):
#   widths                 bytes: width of each value column
#   size                   bytes of values per row (sum of widths)
#   capacity()             rows it can hold (Profile Generic profile_entries, attribute 8)
#   count()                rows held (entries_in_use, attribute 7)
#   base()                 sequence number of the oldest row held = rows dropped so far; a
#                          reader that began before an append keeps its place with it
#   read(i, row)           fill a Row with row i, 0 = oldest .. count()-1 = newest
#   append(d, s, st, src)  add a row (values from src[0:size]); when full the oldest is dropped
#   find_first_at_or_after(d, s)  first i with (days, secs) >= (d, s), or count() if none
#   find_last_at_or_before(d, s)  last i with (days, secs) <= (d, s), or -1 if none
# ASSUMPTION: rows are appended in time order (the capture side never appends a row older than
# the newest one; after the clock is set back it must clear or restart the profile). The two
# finds are binary searches and rely on it. No method allocates after construction.
from micropython import const

from clock import date_to_days, days_in_month, days_to_date, weekday

# Record layout: days u16 at 0, secs u24 at 2, status u16 at 5, then the values
_T_VALS = const(7)
SECS_PER_DAY = const(86400)


# **** calendar: days since 2000-01-01 <-> proleptic Gregorian dates (setup and per row) ****


# The calendar is clock.py's; these names are kept for the profile code.
days_from_civil = date_to_days
month_days = days_in_month
_YMD = [0, 0, 0]


def put_date(out, p, days):
    # year (2), month, day of month, weekday (1 = Monday) of `days` at out[p].
    days_to_date(days, _YMD)
    y = _YMD[0]
    out[p] = y >> 8
    out[p + 1] = y & 0xFF
    out[p + 2] = _YMD[1]
    out[p + 3] = _YMD[2]
    out[p + 4] = weekday(days)


class Row:
    # One row, filled in place by read(); preallocate one per reader.
    def __init__(self, size):
        self.days = 0
        self.secs = 0
        self.status = 0
        self.vals = bytearray(size)


class MemoryRows:
    # In-memory ring of `capacity` rows in one preallocated bytearray (tests, simulator).
    def __init__(self, capacity, widths):
        assert capacity > 0
        self.widths = bytes(widths)
        self.size = sum(self.widths)
        self._rec = _T_VALS + self.size
        self._cap = capacity
        self._buf = bytearray(capacity * self._rec)
        self._head = 0  # physical slot of the oldest row
        self._n = 0
        self._base = 0

    def capacity(self):
        return self._cap

    def count(self):
        return self._n

    def base(self):
        return self._base

    def clear(self):
        self._base += self._n
        self._head = 0
        self._n = 0

    def _at(self, i):
        # Byte offset of logical row i (0 = oldest).
        p = self._head + i
        if p >= self._cap:
            p -= self._cap
        return p * self._rec

    def append(self, days, secs, status, src):
        if self._n == self._cap:  # full: overwrite the oldest (FIFO, BB sort_method 1)
            p = self._head * self._rec
            self._head = self._head + 1 if self._head + 1 < self._cap else 0
            self._base += 1
        else:
            p = self._at(self._n)
            self._n += 1
        b = self._buf
        b[p] = (days >> 8) & 0xFF
        b[p + 1] = days & 0xFF
        b[p + 2] = (secs >> 16) & 0xFF
        b[p + 3] = (secs >> 8) & 0xFF
        b[p + 4] = secs & 0xFF
        b[p + 5] = (status >> 8) & 0xFF
        b[p + 6] = status & 0xFF
        p += _T_VALS
        for k in range(self.size):
            b[p + k] = src[k]

    def read(self, i, row):
        b = self._buf
        p = self._at(i)
        row.days = (b[p] << 8) | b[p + 1]
        row.secs = (b[p + 2] << 16) | (b[p + 3] << 8) | b[p + 4]
        row.status = (b[p + 5] << 8) | b[p + 6]
        p += _T_VALS
        v = row.vals
        for k in range(self.size):
            v[k] = b[p + k]

    def _cmp(self, i, days, secs):
        # Sign of (row i's timestamp - (days, secs)).
        b = self._buf
        p = self._at(i)
        d = ((b[p] << 8) | b[p + 1]) - days
        if d:
            return d
        return ((b[p + 2] << 16) | (b[p + 3] << 8) | b[p + 4]) - secs

    def find_first_at_or_after(self, days, secs):
        lo = 0
        hi = self._n
        while lo < hi:
            mid = (lo + hi) >> 1
            if self._cmp(mid, days, secs) < 0:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def find_last_at_or_before(self, days, secs):
        lo = 0
        hi = self._n
        while lo < hi:
            mid = (lo + hi) >> 1
            if self._cmp(mid, days, secs) <= 0:
                lo = mid + 1
            else:
                hi = mid
        return lo - 1
