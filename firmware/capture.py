# capture.py: what a Profile Generic records and when (BB 4.3.6 capture; seed "DLMS Log
# Export", "Status capture object bitmap"): a Recorder per profile that snapshots its source
# registers into a row, and the calendar of capture instants (interval boundaries aligned to
# the clock, billing instants in local time). Spec short forms: "BB" = Blue Book (IEC 62056-6-2),
# "seed" = the ION DLMS document (shared/seeds).
#
# All instants are UTC (days since 2000-01-01, seconds of day), as the Clock keeps them. A result
# instant is left in .d/.s of the object that computed it (returning a tuple would allocate).
# Nothing here allocates after construction.
from micropython import const

from clock import date_to_days, days_to_date

_DAY = const(86400)

# Seed "Status capture object bitmap" (unsigned 16); all bits set = status invalid.
ST_MASTER_RESET = const(0x0008)  # bit 3
ST_TIME_CHANGED = const(0x0020)  # bit 5
ST_POWER_UP = const(0x0040)  # bit 6
ST_POWER_DOWN = const(0x0080)  # bit 7
ST_DST_STARTED = const(0x0100)  # bit 8
ST_DST_ENDED = const(0x0200)  # bit 9
ST_NOT_PERIODIC = const(0xFFFF)  # seed: a profile not driven by a periodic timer


class Recorder:
    # Captures rows of one profile: the values of its source objects (anything with .raw and
    # .size, i.e. Register and Data), in row-source column order. A capture is taken at the
    # instant it belongs to (snapshot) and written to the row source later (flush), when the
    # bus is idle: on the RP2040 a flash write stops every interrupt (embedded.md C, B).
    def __init__(self, rows, sources):
        self.rows = rows
        self._src = tuple(sources)
        w = 0
        for s in self._src:
            w += s.size
        assert w == rows.size, "sources vs row width"
        self._vals = bytearray(rows.size)
        self.pending = False
        self._d = 0
        self._s = 0
        self._st = 0

    def snapshot(self, days, secs, status):
        if self.pending:
            self.flush()  # never more than one capture waits: write the older one now
        v = self._vals
        p = 0
        for src in self._src:
            raw = src.raw
            for k in range(src.size):
                v[p + k] = raw[k]
            p += src.size
        self._d = days
        self._s = secs
        self._st = status
        self.pending = True

    def zero(self, days, secs, status):
        # A row whose values were lost (the interval power failed in): zeros, never a guess.
        if self.pending:
            self.flush()
        v = self._vals
        for k in range(len(v)):
            v[k] = 0
        self._d = days
        self._s = secs
        self._st = status
        self.pending = True

    def flush(self):
        if self.pending:
            self.pending = False
            self.rows.append(self._d, self._s, self._st, self._vals)

    # The capture waiting to be written, inside an energy checkpoint (metering.py writes the
    # checkpoint before the rows): flag u8 (1 = a capture waits), days u16, secs u24, status
    # u16, the values. A cut between the two writes then loses no row: boot puts it back.
    def held_size(self):
        return 8 + len(self._vals)

    def hold_into(self, b, p):
        v = self._vals
        n = len(v)
        if not self.pending:
            b[p] = 0
            return p + 8 + n
        d = self._d
        s = self._s
        st = self._st
        b[p] = 1
        b[p + 1] = (d >> 8) & 0xFF
        b[p + 2] = d & 0xFF
        b[p + 3] = (s >> 16) & 0xFF
        b[p + 4] = (s >> 8) & 0xFF
        b[p + 5] = s & 0xFF
        b[p + 6] = (st >> 8) & 0xFF
        b[p + 7] = st & 0xFF
        p += 8
        for k in range(n):
            b[p + k] = v[k]
        return p + n

    def restore_held(self, b, p, row):
        # At boot, from the newest checkpoint: append the capture it held unless the rows
        # already end with it (or with something later). True when a row was put back.
        if b[p] != 1:
            return False
        d = (b[p + 1] << 8) | b[p + 2]
        s = (b[p + 3] << 16) | (b[p + 4] << 8) | b[p + 5]
        if self.newest(row) and not before(row.days, row.secs, d, s):
            return False
        v = self._vals
        for k in range(len(v)):
            v[k] = b[p + 8 + k]
        self.rows.append(d, s, (b[p + 6] << 8) | b[p + 7], v)
        return True

    def newest(self, row):
        # Timestamp of the newest stored row into row.days/secs; False when there is none.
        n = self.rows.count()
        if n == 0:
            return False
        self.rows.read(n - 1, row)
        return True


class Calendar:
    # Capture instants. Intervals are aligned to local STANDARD time (utc_offset, never the DST
    # shift), so every interval lasts `period` seconds across DST changes and 15-minute rows sit
    # on :00/:15/:30/:45 local time; period must divide a day. Billing instants are local wall
    # time (DST included): day `bill_day` (1..28) of each month at `bill_hour`:`bill_minute`.
    def __init__(self, clock, bill_day=1, bill_hour=0, bill_minute=0):
        assert 1 <= bill_day <= 28 and 0 <= bill_hour <= 23 and 0 <= bill_minute <= 59
        self.clock = clock
        self.bill_day = bill_day
        self.bill_secs = bill_hour * 3600 + bill_minute * 60
        self.d = 0  # result instant
        self.s = 0
        self._ymd = [0, 0, 0]

    def _set(self, days, secs):
        self.d = days + secs // _DAY
        self.s = secs % _DAY

    def boundary_after(self, days, secs, period):
        # The first boundary of `period` seconds strictly after (days, secs).
        off = self.clock.utc_offset * 60
        local = secs + off
        b = (local // period + 1) * period  # may exceed a day or be <= 0: _set normalises
        self._set(days, b - off)

    def dst_change(self, days, secs, period):
        # Status bit for the interval [(days, secs) - period, (days, secs)): DST started or
        # ended if the clock's DST state at its first second differs from the second before
        # it, or changes within it. Transitions on a boundary flag the first interval after.
        clk = self.clock
        if not clk.dst_enabled:
            return 0
        self._set(days, secs - period - 1)
        before = clk.dst_at(self.d, self.s)
        self._set(days, secs - 1)
        last = clk.dst_at(self.d, self.s)
        if before == last:
            return 0
        return ST_DST_STARTED if last else ST_DST_ENDED

    def billing_after(self, days, secs):
        # The first billing instant strictly after the UTC instant (days, secs).
        clk = self.clock
        ymd = self._ymd
        off = clk.offset_at(days, secs) * 60
        days_to_date(days + (secs + off) // _DAY, ymd)  # local date now
        y = ymd[0]
        m = ymd[1]
        for _ in range(3):  # this month's instant, else the next month's (one more: margin)
            ld = date_to_days(y, m, self.bill_day)
            clk.local_to_utc(ld, self.bill_secs, False)
            d = clk._d
            s = clk._s
            if d > days or (d == days and s > secs):
                self.d = d
                self.s = s
                return
            m += 1
            if m > 12:
                m = 1
                y += 1
        self.d = d  # unreachable for a valid clock; keep a defined answer
        self.s = s

    def billing_at_or_before(self, days, secs):
        # The latest billing instant at or before (days, secs): billing_after(that month - 1).
        clk = self.clock
        ymd = self._ymd
        off = clk.offset_at(days, secs) * 60
        days_to_date(days + (secs + off) // _DAY, ymd)
        y = ymd[0]
        m = ymd[1]
        for _ in range(3):
            ld = date_to_days(y, m, self.bill_day)
            clk.local_to_utc(ld, self.bill_secs, False)
            d = clk._d
            s = clk._s
            if d < days or (d == days and s <= secs):
                self.d = d
                self.s = s
                return
            m -= 1
            if m < 1:
                m = 12
                y -= 1
        self.d = d
        self.s = s


def before(d1, s1, d2, s2):
    return d1 < d2 or (d1 == d2 and s1 < s2)
