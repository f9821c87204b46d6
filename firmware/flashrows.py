# flashrows.py: the flash-backed profile row source (the interface at the top of rows.py) on a
# store.SegmentLog. Payload: days u16, secs u24, status u16 (rows.py's record layout), then the
# values as raw bytes, so 32/64-bit counters never become ints.
#
# A record that fails its CRC when served (flash gone bad after boot; the boot scan already
# dropped what was bad then) never leaks its bytes: read() gives status 0xFFFF (rows.py:
# invalid), all-zero values and leaves row.days/row.secs as they were, i.e. the timestamp of
# the row this reader read before (in a sequential readout: the previous row's time).
#
# The finds search the stored records: a galloping (exponential) search back from the newest
# row, then a binary search inside the bracket it found. That is O(log n) record reads in
# the worst case and O(log d) for a target d rows from the end, so selecting the last day
# costs the same in a log a year deep as in one a day deep. For the search a bad record takes
# the timestamp of the nearest good record before it (minus infinity if none), which keeps
# the keys in order, so a range never starts on a bad record.
from micropython import const

from store import FILES, SEG_BYTES, SegmentLog

_T_VALS = const(7)  # days u16 at 0, secs u24 at 2, status u16 at 5 (as rows.MemoryRows)
_INVALID = const(0xFFFF)  # rows.py: status 0xFFFF = invalid
_NONE = const(-1)  # _cmp: no good record at or before i (sorts before every timestamp)


class FlashRows:
    def __init__(self, dirpath, name, capacity, widths, fs=FILES, seg_bytes=SEG_BYTES):
        self.widths = bytes(widths)
        self.size = sum(self.widths)
        self.log = SegmentLog(dirpath, name, _T_VALS + self.size, capacity, fs, seg_bytes)
        self._pay = bytearray(_T_VALS + self.size)
        self._vals = memoryview(self._pay)[_T_VALS:]  # made once: a slice read allocates
        self._zeros = bytes(self.size)

    def capacity(self):
        return self.log.capacity()

    def count(self):
        return self.log.count()

    def base(self):
        return self.log.base()

    def clear(self):
        return self.log.clear()

    def close(self):
        self.log.close()

    def append(self, days, secs, status, src):
        # Returns store.OK, or store.ERR_IO / ERR_SEQ with nothing stored.
        p = self._pay
        p[0] = (days >> 8) & 0xFF
        p[1] = days & 0xFF
        p[2] = (secs >> 16) & 0xFF
        p[3] = (secs >> 8) & 0xFF
        p[4] = secs & 0xFF
        p[5] = (status >> 8) & 0xFF
        p[6] = status & 0xFF
        for k in range(self.size):
            p[_T_VALS + k] = src[k]
        return self.log.append(p)

    def read(self, i, row):
        p = self._pay
        if not self.log.read(i, p):
            row.status = _INVALID
            row.vals[0 : self.size] = self._zeros
            return False
        row.days = (p[0] << 8) | p[1]
        row.secs = (p[2] << 16) | (p[3] << 8) | p[4]
        row.status = (p[5] << 8) | p[6]
        row.vals[0 : self.size] = self._vals
        return True

    # **** FINDS (rows.py: rows are in time order) ****

    def _cmp(self, i, days, secs):
        # Sign of (key of record i - (days, secs)); the key of a bad record is that of the
        # nearest good one before it, _NONE when there is none.
        p = self._pay
        while i >= 0:
            if self.log.read(i, p):
                d = ((p[0] << 8) | p[1]) - days
                if d:
                    return d
                return ((p[2] << 16) | (p[3] << 8) | p[4]) - secs
            i -= 1
        return _NONE

    def _first(self, days, secs, strict):
        # First i with key(i) >= (days, secs) (strict=0) or > (strict=1); count() if none.
        # Gallop back from the end: keys at >= hi are known to be above, probe hi - step.
        hi = self.log.count()
        step = 1
        lo = 0
        while hi > 0:
            i = hi - step
            if i < 0:
                i = 0
            if self._cmp(i, days, secs) < strict:
                lo = i + 1
                break
            hi = i
            step <<= 1
        while lo < hi:  # binary search in [lo, hi): key(lo - 1) below, key(hi) above
            mid = (lo + hi) >> 1
            if self._cmp(mid, days, secs) < strict:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def find_first_at_or_after(self, days, secs):
        return self._first(days, secs, 0)

    def find_last_at_or_before(self, days, secs):
        return self._first(days, secs, 1) - 1
