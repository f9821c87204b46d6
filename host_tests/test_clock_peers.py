# CPython only: firmware/clock.py checked against gurux_dlms and the tz database. For the same
# instant, attribute 2 must equal Gurux's encoding (_GXCommon.setData of a GXDateTime, deviation
# = -utcoffset as Gurux writes it by default), Gurux must parse our bytes back to that instant,
# and a date-time Gurux encodes for a SET must land on that instant. Local time and DST come
# from zoneinfo Europe/Berlin, independently of our rule code. Attributes 3..9 are compared
# with GXDLMSClock.getValue() encoded with GXDLMSClock.getDataType().
import datetime
import random

import pytest
from gurux_dlms import GXByteBuffer, GXDateTime, GXDLMSSettings
from gurux_dlms.enums import ClockStatus, DataType, DateTimeExtraInfo, DateTimeSkips
from gurux_dlms.GXTimeZone import GXTimeZone
from gurux_dlms.internal._GXCommon import _GXCommon
from gurux_dlms.objects import GXDLMSClock

zoneinfo = pytest.importorskip("zoneinfo")

import axdr  # noqa: E402
import clock  # noqa: E402
import cosem  # noqa: E402

UTC = datetime.timezone.utc
EPOCH = datetime.datetime(2000, 1, 1, tzinfo=UTC)
ADMIN = cosem.Profile(1, "admin", True)
SETTINGS = GXDLMSSettings(True, None)
try:
    BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
except Exception:  # no tz database on this host
    BERLIN = None

RNG = random.Random(8)
EDGES = [
    datetime.datetime(2026, 3, 29, 0, 59, 59, 990000, tzinfo=UTC),
    datetime.datetime(2026, 3, 29, 1, 0, 0, tzinfo=UTC),
    datetime.datetime(2026, 10, 25, 0, 59, 59, tzinfo=UTC),
    datetime.datetime(2026, 10, 25, 1, 0, 0, tzinfo=UTC),
    datetime.datetime(2024, 2, 29, 23, 30, tzinfo=UTC),
    datetime.datetime(2026, 12, 31, 23, 30, tzinfo=UTC),
    datetime.datetime(2099, 12, 31, 22, 59, 59, tzinfo=UTC),
]
INSTANTS = EDGES + [
    EPOCH + datetime.timedelta(seconds=RNG.randrange(36524 * 86400), milliseconds=10 * h)
    for h in (RNG.randrange(100) for _ in range(200))
]


def _clock_at(t):
    c = clock.Clock(utc_offset=60)
    d = t - EPOCH
    c.set_utc(d.days, d.seconds, d.microseconds // 1000)
    return c


def _ours(c):
    out = bytearray(14)
    assert c.put_time(out, 0) == 14
    return bytes(out)


def _gurux_encode(local, minutes, dst, status=0):
    g = GXDateTime(local.replace(tzinfo=GXTimeZone(minutes)))
    g.dayOfWeek = 0  # 0: Gurux derives the weekday (its default 0xFF would be written as is)
    g.status = ClockStatus(status | (ClockStatus.DAYLIGHT_SAVE_ACTIVE if dst else 0))
    bb = GXByteBuffer()
    _GXCommon.setData(None, bb, DataType.OCTET_STRING, g)
    return bytes(bb.array())


@pytest.mark.skipif(BERLIN is None, reason="no tz database")
@pytest.mark.parametrize("t", INSTANTS, ids=lambda t: t.isoformat())
def test_time_matches_gurux_and_tzdata(t):
    local = t.astimezone(BERLIN)
    minutes = int(local.utcoffset().total_seconds()) // 60
    dst = bool(local.dst())
    ours = _ours(_clock_at(t))
    assert ours == _gurux_encode(local.replace(tzinfo=None), minutes, dst)
    assert ours[11:13] == (-minutes).to_bytes(2, "big", signed=True)  # CET -60, CEST -120
    # Gurux parses our bytes back to the same instant and status.
    g = _GXCommon.changeType(SETTINGS, ours[2:], DataType.DATETIME)
    assert g.value == t.replace(microsecond=t.microsecond // 10000 * 10000)
    assert bool(g.status & ClockStatus.DAYLIGHT_SAVE_ACTIVE) == dst


@pytest.mark.parametrize("minutes", [-720, -300, 0, 60, 120, 330, 720])
@pytest.mark.parametrize("t", EDGES + INSTANTS[-20:], ids=lambda t: t.isoformat())
def test_set_from_gurux_encoding_lands_on_the_instant(t, minutes):
    # A client in any offset writes the instant t; we keep it as the same UTC instant.
    local = t.astimezone(GXTimeZone(minutes)).replace(tzinfo=None)
    b = _gurux_encode(local, minutes, False)
    c = clock.Clock(utc_offset=60)
    res = c.set(2, axdr.Reader(b, 0, len(b)), ADMIN)
    if not 2000 <= local.year <= 2099:  # t itself is always in 2000..2099
        assert res == cosem.OTHER_REASON
        return
    assert res == cosem.SUCCESS
    d = t - EPOCH
    assert (c.days, c.secs, c.ms) == (d.days, d.seconds, d.microseconds // 10000 * 10)


def _gurux_rule(month, hour):
    g = GXDateTime(datetime.datetime(2000, month, 1, hour, 0, 0))
    g.skip = DateTimeSkips.YEAR | DateTimeSkips.MILLISECOND | DateTimeSkips.DEVITATION
    g.skip |= DateTimeSkips.STATUS
    g.extra = DateTimeExtraInfo.LAST_DAY
    g.dayOfWeek = 7
    return g


def _gurux_attr(obj, index):
    bb = GXByteBuffer()
    _GXCommon.setData(None, bb, obj.getDataType(index), obj.getValue(None, _Arg(index)))
    return bytes(bb.array())


class _Arg:
    def __init__(self, index):
        self.index = index
        self.error = 0


def _read(c, attr):
    out = bytearray(32)
    cur = cosem.Cursor()
    assert c.begin(attr, cur, None) == cosem.SUCCESS
    return bytes(out[: c.next(cur, out, 0)])


def test_attributes_3_to_9_match_gurux_clock():
    c = _clock_at(datetime.datetime(2026, 1, 15, 12, tzinfo=UTC))
    g = GXDLMSClock("0.0.1.0.0.255")
    g.timeZone = -60  # BB sign: UTC - local
    g.status = ClockStatus.OK
    g.begin = _gurux_rule(3, 2)
    g.end = _gurux_rule(10, 3)
    g.deviation = 60
    g.enabled = True
    g.clockBase = 1
    for attr in range(3, 10):
        assert _read(c, attr) == _gurux_attr(g, attr), attr
    assert _read(c, 1) == b"\x09\x06" + bytes([0, 0, 1, 0, 0, 255])


def test_gurux_parses_our_dst_rules():
    c = clock.Clock(utc_offset=60)
    for attr, month, hour in ((5, 3, 2), (6, 10, 3)):
        g = _GXCommon.changeType(SETTINGS, _read(c, attr)[2:], DataType.DATETIME)
        assert g.skip & DateTimeSkips.YEAR and g.extra & DateTimeExtraInfo.LAST_DAY
        assert (g.value.month, g.value.hour, g.value.minute, g.dayOfWeek) == (month, hour, 0, 7)
        assert g.skip & DateTimeSkips.DEVITATION
