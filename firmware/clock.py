# clock.py: the COSEM Clock object (BB IC 8, class_id 8 version 0) and an allocation-free
# calendar. Spec short forms: "BB" = Blue Book (IEC 62056-6-2): 4.5.1 Clock, 4.1.6.1 date-time.
# The ION document we follow (shared/seeds, "DLMS time synchronization") fixes the SET rules.
#
# Time is kept as UTC: `days` since 2000-01-01, `secs` of that day (0..86399) and `ms`
# (0..999), never as one seconds count (2**30 and above is a heap int on RP2040/ESP32).
# Timestamps other modules keep (profile rows) are the same UTC (days, secs) pair; fill_dt()
# and put_dt() turn one into a local date-time with the deviation and DST bit of that instant.
#
# Sign convention (BB 4.1.6.1, and gurux_dlms _GXCommon.setDateTime: d = -utcoffset minutes
# unless useUtc2NormalTime): deviation = UTC - local in minutes, so CET is -60 and CEST -120.
# Attribute 3 time_zone uses the same sign. The constructor takes the everyday sign instead:
# utc_offset = local standard time - UTC in minutes (CET: 60); time_zone = -utc_offset.
#
# Use: clock.tick(time.ticks_ms()) before each GET/SET and now and then (at least every few
# days: ticks_diff() wraps at 2**29 ms). Nothing here allocates after __init__.
from micropython import const

import axdr
import cosem
from hdlc import ticks_diff

_CLASS_ID = const(8)  # BB 4.5.1
_N_ATTRS = const(9)
_N_METHODS = const(6)  # adjust_to_quarter .. shift_time; none accessible here
_DAY = const(86400)
_EPOCH = const(730425)  # days from 0000-03-01 to 2000-01-01 (proleptic Gregorian)
_ERA = const(146097)  # days in 400 years
_YEAR_MIN = const(2000)  # the range this meter keeps (SET outside it fails)
_YEAR_MAX = const(2099)
_DAYS_MAX = const(36525)  # date_to_days(2100, 1, 1)
_DEV_MAX = const(720)  # BB 4.1.6.1: deviation -720..720 minutes

# Date-time field values, BB 4.1.6.1
_NS8 = const(0xFF)  # not specified (month, day, weekday, hour, minute, second, hundredths)
_NS_YEAR = const(0xFFFF)
_LAST_DAY = const(0xFE)  # day_of_month: last day (0xFD 2nd last; month 0xFD/0xFE: DST end/begin)

# clock_status bits, BB 4.1.6.1
ST_INVALID = const(0x01)  # invalid value
ST_DOUBTFUL = const(0x02)  # doubtful value
ST_DST = const(0x80)  # daylight saving active

# clock_base, BB 4.5.1 attribute 9
BASE_UNDEFINED = const(0)
BASE_CRYSTAL = const(1)

# DST rule (month, week, weekday, hour UTC): week 1..4 = that occurrence of weekday (Monday=1)
# in month, LAST = the last one.
LAST = const(5)
EU_BEGIN = (3, LAST, 7, 1)  # last Sunday of March, 01:00 UTC
EU_END = (10, LAST, 7, 1)  # last Sunday of October, 01:00 UTC

_MDAYS = b"\x1f\x1c\x1f\x1e\x1f\x1e\x1f\x1f\x1e\x1f\x1e\x1f"


# **** CALENDAR (proleptic Gregorian; days since 2000-01-01, negative before it) ****


def is_leap(y):
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def days_in_month(y, m):
    return 29 if m == 2 and is_leap(y) else _MDAYS[m - 1]


def date_to_days(y, m, d):
    # Days since 2000-01-01 (H. Hinnant's days_from_civil, years counted from March).
    if m <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m - 3 if m > 2 else m + 9) + 2) // 5 + d - 1
    return era * _ERA + yoe * 365 + yoe // 4 - yoe // 100 + doy - _EPOCH


def days_to_date(days, out3):
    # out3[0..2] = year, month, day of the date `days` after 2000-01-01.
    z = days + _EPOCH
    era = z // _ERA
    doe = z - era * _ERA
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    m = mp + 3 if mp < 10 else mp - 9
    out3[0] = yoe + era * 400 + (1 if m <= 2 else 0)
    out3[1] = m
    out3[2] = doy - (153 * mp + 2) // 5 + 1


def weekday(days):
    # COSEM day_of_week, Monday = 1 .. Sunday = 7; 2000-01-01 was a Saturday.
    return (days + 5) % 7 + 1


def compare(d1, s1, d2, s2):
    # -1, 0 or 1 as instant (d1, s1) is before, at or after (d2, s2).
    if d1 != d2:
        return -1 if d1 < d2 else 1
    return 0 if s1 == s2 else (-1 if s1 < s2 else 1)


def rule_day(y, rule):
    # The day (since 2000-01-01) a DST rule (month, week, weekday, hour) falls on in year y.
    m = rule[0]
    if rule[1] == LAST:
        d = date_to_days(y, m, days_in_month(y, m))
        return d - (weekday(d) - rule[2]) % 7
    d = date_to_days(y, m, 1)
    return d + (rule[2] - weekday(d)) % 7 + 7 * (rule[1] - 1)


# **** THE CLOCK OBJECT ****


class Clock(cosem.CosemObject):
    class_id = _CLASS_ID
    version = 0
    n_attrs = _N_ATTRS
    n_methods = _N_METHODS

    def __init__(self, ln=b"\x00\x00\x01\x00\x00\xff", utc_offset=0, dst_enabled=True,
                 dst_begin=EU_BEGIN, dst_end=EU_END, dst_deviation=60, clock_base=BASE_CRYSTAL):
        super().__init__(ln)
        self.utc_offset = utc_offset  # minutes local standard time is ahead of UTC
        self.dst_enabled = dst_enabled
        self.dst_begin = dst_begin
        self.dst_end = dst_end
        self.dst_deviation = dst_deviation  # minutes added while DST is active (BB attr 7)
        self.clock_base = clock_base
        self.days = 0  # UTC now
        self.secs = 0
        self.ms = 0
        self.status = ST_INVALID  # until set_utc() or a SET: the time is not known
        self.on_time_set = None  # hook(old_days, old_secs, new_days, new_secs), UTC
        self._last = -1  # last tick; ticks_ms() values are never negative
        self._d = 0  # results of _norm()
        self._s = 0
        self._cy = -1  # year of the cached DST instants; set -1 after changing dst_begin/end
        self._bd = self._bs = self._ed = self._es = 0
        self._ymd = [0, 0, 0]
        self._dt = [0] * 10  # scratch date-time (axdr DT_* indexes)
        self._w = [0] * 10  # the date-time a SET writes

    # **** TIME KEEPING ****

    def tick(self, now_ms):
        # Advances by the ms elapsed since the previous tick (the first only starts counting).
        # A negative difference means ticks stopped for over 2**29 ms: restart, time doubtful.
        if self._last >= 0:
            d = ticks_diff(now_ms, self._last)
            if d == 0:
                return
            if d < 0:
                self.status |= ST_DOUBTFUL
                self._last = now_ms
                return
            ms = self.ms + d
            self.ms = ms % 1000
            s = self.secs + ms // 1000
            self.days += s // _DAY
            self.secs = s % _DAY
        self._last = now_ms

    def set_utc(self, days, secs, ms=0):
        # From a battery-backed RTC or a test: the time is valid from now on.
        self.days = days
        self.secs = secs
        self.ms = ms
        self.status &= ~(ST_INVALID | ST_DOUBTFUL)

    def _norm(self, days, secs):
        # (days, secs) with secs outside 0..86399 carried into days; result in _d, _s.
        self._d = days + secs // _DAY
        self._s = secs % _DAY

    def _dst_cache(self, y):
        b = self.dst_begin
        e = self.dst_end
        self._bd = rule_day(y, b)
        self._bs = b[3] * 3600
        self._ed = rule_day(y, e)
        self._es = e[3] * 3600
        self._cy = y

    def dst_at(self, days, secs):
        # Is DST active at the UTC instant (days, secs)? Begin inclusive, end exclusive.
        if not self.dst_enabled:
            return False
        days_to_date(days, self._ymd)
        if self._ymd[0] != self._cy:
            self._dst_cache(self._ymd[0])
        after_begin = compare(days, secs, self._bd, self._bs) >= 0
        before_end = compare(days, secs, self._ed, self._es) < 0
        if compare(self._bd, self._bs, self._ed, self._es) < 0:
            return after_begin and before_end
        return after_begin or before_end  # southern hemisphere: DST spans the new year

    def offset_at(self, days, secs):
        # Minutes local time is ahead of UTC at that UTC instant (standard + DST).
        return self.utc_offset + (self.dst_deviation if self.dst_at(days, secs) else 0)

    def fill_dt(self, dt, days, secs, ms):
        # dt (10 ints, axdr DT_*) = the UTC instant as local date-time, deviation and status.
        off = self.offset_at(days, secs)
        dst = off != self.utc_offset
        self._norm(days, secs + off * 60)
        _split(dt, self._d, self._s)
        dt[axdr.DT_HUNDREDTHS] = ms // 10
        dt[axdr.DT_DEVIATION] = -off
        dt[axdr.DT_STATUS] = self.status | (ST_DST if dst else 0)

    def now_dt(self, dt):
        self.fill_dt(dt, self.days, self.secs, self.ms)

    def put_dt(self, out, off, days, secs, ms):
        # 09 0C + the 12-byte local date-time of a UTC instant (a profile row timestamp).
        self.fill_dt(self._dt, days, secs, ms)
        return axdr.put_datetime(out, off, self._dt)

    def put_time(self, out, off):
        return self.put_dt(out, off, self.days, self.secs, self.ms)

    # **** ATTRIBUTES ****

    def access(self, attr, profile):
        if attr == 2 and profile.may_set_clock:
            return cosem.READ_WRITE
        return cosem.READ

    def next_attr(self, cur, out, off):
        if cur.i:
            return off
        cur.i = 1
        a = cur.attr
        if a == 2:
            return self.put_time(out, off)
        if a == 3:
            return axdr.put_i16(out, off, -self.utc_offset)  # time_zone, BB sign
        if a == 4:
            return axdr.put_u8(out, off, self.status | (
                ST_DST if self.dst_at(self.days, self.secs) else 0))
        if a == 5 or a == 6:
            self._rule_dt(self._dt, a == 6)
            return axdr.put_datetime(out, off, self._dt)
        if a == 7:
            return axdr.put_i8(out, off, self.dst_deviation)
        if a == 8:
            return axdr.put_bool(out, off, self.dst_enabled)
        if a == 9:
            return axdr.put_enum(out, off, self.clock_base)
        return off

    def _rule_dt(self, dt, end):
        # daylight_savings_begin/end as a recurring date-time: month, day 0xFE with the
        # weekday for "last <weekday>" (else the first day the weekday can fall on), and the
        # local wall-clock time of the switch (standard time at begin, DST at end).
        r = self.dst_end if end else self.dst_begin
        mins = (r[3] * 60 + self.utc_offset + (self.dst_deviation if end else 0)) % 1440
        dt[axdr.DT_YEAR] = _NS_YEAR
        dt[axdr.DT_MONTH] = r[0]
        dt[axdr.DT_DAY] = _LAST_DAY if r[1] == LAST else 1 + 7 * (r[1] - 1)
        dt[axdr.DT_WEEKDAY] = r[2]
        dt[axdr.DT_HOUR] = mins // 60
        dt[axdr.DT_MINUTE] = mins % 60
        dt[axdr.DT_SECOND] = 0
        dt[axdr.DT_HUNDREDTHS] = _NS8
        dt[axdr.DT_DEVIATION] = axdr.DEVIATION_UNSPECIFIED
        dt[axdr.DT_STATUS] = _NS8

    # **** SET of attribute 2 (seed: "DLMS time synchronization") ****

    def set(self, attr, rd, profile):
        if attr != 2 or not profile.may_set_clock:
            return cosem.READ_WRITE_DENIED
        w = self._w
        if rd.tag() != axdr.OCTET_STRING or rd.length() != axdr.DATETIME_LEN:
            return cosem.TYPE_UNMATCHED
        if rd.dt12(w) < 0:
            return cosem.TYPE_UNMATCHED
        if not _fields_ok(w):
            return cosem.OTHER_REASON
        dev = w[axdr.DT_DEVIATION]
        dev_given = dev != axdr.DEVIATION_UNSPECIFIED
        if dev_given:  # unspecified fields: now, in the writer's offset (local = UTC - dev)
            self._norm(self.days, self.secs - dev * 60)
            _split(self._dt, self._d, self._s)
        else:
            self.now_dt(self._dt)
        dt = self._dt
        for i in range(axdr.DT_SECOND + 1):
            if i != axdr.DT_WEEKDAY and w[i] != (_NS_YEAR if i == 0 else _NS8):
                dt[i] = w[i]
        if dt[axdr.DT_DAY] > days_in_month(dt[axdr.DT_YEAR], dt[axdr.DT_MONTH]):
            return cosem.OTHER_REASON
        days = date_to_days(dt[axdr.DT_YEAR], dt[axdr.DT_MONTH], dt[axdr.DT_DAY])
        secs = dt[axdr.DT_HOUR] * 3600 + dt[axdr.DT_MINUTE] * 60 + dt[axdr.DT_SECOND]
        if dev_given:
            self._norm(days, secs + dev * 60)  # UTC = local + deviation
        else:
            st = w[axdr.DT_STATUS]
            self.local_to_utc(days, secs, st == _NS8 or st & ST_DST)
        if self._d < 0 or self._d >= _DAYS_MAX:
            return cosem.OTHER_REASON
        h = w[axdr.DT_HUNDREDTHS]
        self._apply(self._d, self._s, self.ms if h == _NS8 else h * 10)
        return cosem.SUCCESS

    def local_to_utc(self, days, secs, prefer_dst):
        # Our local wall-clock time -> UTC in self._d, self._s (read them right after). In the repeated hour after DST ends,
        # prefer_dst picks the first pass; in the skipped hour at begin, standard time counts.
        std = secs - self.utc_offset * 60
        if prefer_dst and self.dst_enabled:
            self._norm(days, std - self.dst_deviation * 60)
            if self.dst_at(self._d, self._s):
                return
        self._norm(days, std)
        if not prefer_dst and self.dst_at(self._d, self._s):
            self._norm(days, std - self.dst_deviation * 60)

    def _apply(self, days, secs, ms):
        od = self.days
        os_ = self.secs
        self.set_utc(days, secs, ms)
        h = self.on_time_set
        if h is not None:
            h(od, os_, days, secs)


def _fields_ok(w):
    # Range checks of a written date-time before merging (BB 4.1.6.1, seed: 0xFD/0xFE invalid).
    y = w[axdr.DT_YEAR]
    if y != _NS_YEAR and (y < _YEAR_MIN or y > _YEAR_MAX):
        return False
    m = w[axdr.DT_MONTH]
    if m != _NS8 and (m < 1 or m > 12):  # also rejects 0xFD, 0xFE (DST end/begin)
        return False
    d = w[axdr.DT_DAY]
    if d != _NS8 and (d < 1 or d > 31):  # also rejects 0xFD, 0xFE (2nd last, last day)
        return False
    if not (_in(w[axdr.DT_HOUR], 23) and _in(w[axdr.DT_MINUTE], 59)):
        return False
    if not (_in(w[axdr.DT_SECOND], 59) and _in(w[axdr.DT_HUNDREDTHS], 99)):
        return False
    dev = w[axdr.DT_DEVIATION]
    return dev == axdr.DEVIATION_UNSPECIFIED or -_DEV_MAX <= dev <= _DEV_MAX


def _split(dt, days, secs):
    # Date, weekday and time-of-day fields of dt from a (local) days, secs.
    days_to_date(days, dt)
    dt[axdr.DT_WEEKDAY] = weekday(days)
    dt[axdr.DT_HOUR] = secs // 3600
    dt[axdr.DT_MINUTE] = secs // 60 % 60
    dt[axdr.DT_SECOND] = secs % 60


def _in(v, top):
    return v == _NS8 or 0 <= v <= top
