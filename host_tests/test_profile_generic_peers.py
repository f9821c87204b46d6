# CPython only: firmware/profile_generic.py against two independent DLMS stacks. Gurux and
# dlms_cosem parse our buffer and capture_objects encodings (and Gurux's client loads them into
# its Profile Generic model); the selective-access parameters Gurux's readRowsByRange and
# readRowsByEntry build are fed, byte for byte, to our begin().
import datetime

from dlms_cosem import dlms_data
from gurux_dlms import GXByteBuffer, GXDLMSClient, GXDLMSSettings
from gurux_dlms.enums import DataType
from gurux_dlms.internal._GXCommon import _GXCommon
from gurux_dlms.internal._GXDataInfo import _GXDataInfo
from gurux_dlms.objects import (
    GXDLMSCaptureObject,
    GXDLMSClock,
    GXDLMSData,
    GXDLMSProfileGeneric,
    GXDLMSRegister,
)

import axdr
import cosem
import rows
from test_profile_generic import D0, drain, load_profile, row_ids, small_profile


def gurux_decode(data):
    bb = GXByteBuffer(data)
    info = _GXDataInfo()
    value = _GXCommon.getData(None, bb, info)
    assert info.complete and bb.position == len(data)
    return value


def gurux_client_profile(pg_ours):
    # A Gurux client-side Profile Generic loaded from our attribute 3 then attribute 2.
    client = GXDLMSClient(True)
    pg = GXDLMSProfileGeneric("1.0.99.1.0.255")
    client.updateValue(pg, 3, gurux_decode(drain(pg_ours, 3)[1]))
    return client, pg


def captured_requests(pg, call):
    # The selective-access bytes Gurux's client builds: selector, then the parameters (Data).
    client = GXDLMSClient(True)
    sent = []
    client._read = lambda name, ot, attr, data: sent.append(bytes(data.array()))
    call(client, pg)
    return sent


def test_gurux_parses_capture_objects():
    v = gurux_decode(drain(small_profile(), 3)[1])
    assert [(c[0], bytes(c[1]), c[2], c[3]) for c in v] == [
        (8, b"\x00\x00\x01\x00\x00\xff", 2, 0),
        (1, b"\x00\x00\x61\x61\x00\xff", 2, 0),
        (3, b"\x01\x01\x01\x1d\x00\xff", 2, 0),
        (3, b"\x01\x01\x02\x1d\x00\xff", 2, 0),
        (3, b"\x01\x01\x0d\x00\x00\xff", 2, 0),
    ]
    _, pg = gurux_client_profile(small_profile())
    names = [(o.objectType, o.logicalName, c.attributeIndex) for o, c in pg.captureObjects]
    assert names[0] == (8, "0.0.1.0.0.255", 2) and names[1] == (1, "0.0.97.97.0.255", 2)
    assert names[4] == (3, "1.1.13.0.0.255", 2)


def test_gurux_parses_buffer_and_timestamps():
    ours = small_profile()
    v = gurux_decode(drain(ours, 2)[1])
    assert len(v) == 3
    assert [r[1:] for r in v] == [
        [0, 0x102, -2, -1000],
        [0x20, 0x12345678, 0x0102030405060708, 0x7FFF],
        [0xFFFF, 2**32 - 1, -(2**63), -0x8000],
    ]
    settings = GXDLMSSettings(True, None)
    times = [_GXCommon.changeType(settings, bytes(r[0]), DataType.DATETIME) for r in v]
    assert [t.value.replace(tzinfo=None) for t in times] == [
        datetime.datetime(2024, 1, 15, 0, 15),
        datetime.datetime(2024, 1, 15, 0, 30),
        datetime.datetime(2024, 1, 16, 0, 0),
    ]
    assert [t.dayOfWeek for t in times] == [1, 1, 2]
    ours.deviation = -60
    v = gurux_decode(drain(ours, 2)[1])
    t = _GXCommon.changeType(settings, bytes(v[0][0]), DataType.DATETIME)
    assert t.value == datetime.datetime(
        2024, 1, 15, 0, 15, tzinfo=datetime.timezone(datetime.timedelta(minutes=60)))


def test_gurux_client_model_loads_buffer():
    ours = small_profile()
    client, pg = gurux_client_profile(ours)
    client.updateValue(pg, 2, gurux_decode(drain(ours, 2)[1]))
    assert len(pg.buffer) == 3
    assert pg.buffer[2][1:] == [0xFFFF, 2**32 - 1, -(2**63), -0x8000]


def test_dlms_cosem_parses_buffer():
    data = drain(load_profile(3), 2)[1]
    (arr,) = dlms_data.DlmsDataParser().parse(data)
    got = arr.to_python()
    assert [r[1:] for r in got] == [[0, 0, 1, 2], [1, 10, 11, 12], [2, 20, 21, 22]]
    assert bytes(got[2][0])[:9] == bytes.fromhex("07e8010f01001e0000")


def _gurux_pg():
    pg = GXDLMSProfileGeneric("1.0.99.1.0.255")
    pg.captureObjects.append((GXDLMSClock(), GXDLMSCaptureObject(2, 0)))
    pg.captureObjects.append((GXDLMSData("0.0.97.97.0.255"), GXDLMSCaptureObject(2, 0)))
    for c in (1, 2, 3):
        reg = GXDLMSRegister("1.1.%d.29.0.255" % c)
        pg.captureObjects.append((reg, GXDLMSCaptureObject(2, 0)))
    return pg


def ours_with(params):
    # Our answer to Gurux's parameters (selector byte stripped, as xdlms hands them over).
    return drain(load_profile(10), 2, params[1:])


def test_we_accept_gurux_range_descriptor():
    start = datetime.datetime(2024, 1, 15, 0, 30)
    end = datetime.datetime(2024, 1, 15, 1, 15)
    (req,) = captured_requests(_gurux_pg(), lambda c, pg: c.readRowsByRange(pg, start, end))
    assert req[0] == cosem.SEL_RANGE
    res, data = ours_with(req)
    assert res == cosem.SUCCESS and row_ids(data) == [2, 3, 4, 5]


def test_we_accept_gurux_range_with_columns():
    pg = _gurux_pg()
    cols = [pg.captureObjects[0], pg.captureObjects[3]]
    start = datetime.datetime(2024, 1, 15, 0, 45)
    end = datetime.datetime(2024, 1, 15, 1, 0)
    (req,) = captured_requests(pg, lambda c, p: c.readRowsByRange(p, start, end, cols))
    res, data = ours_with(req)
    assert res == cosem.SUCCESS
    v = gurux_decode(data)
    assert [r[1] for r in v] == [31, 41]  # row k, column j=1: k * 10 + 1
    assert [len(r) for r in v] == [2, 2]


def test_we_accept_gurux_entry_descriptor():
    reqs = captured_requests(_gurux_pg(), lambda c, pg: (
        c.readRowsByEntry(pg, 2, 3), c.readRowsByEntry(pg, 1, 0), c.readRowsByEntry(pg, 9, 5)))
    assert [r[0] for r in reqs] == [cosem.SEL_ENTRY] * 3
    assert [row_ids(ours_with(r)[1]) for r in reqs] == [[1, 2, 3], list(range(10)), [8, 9]]


def test_we_accept_gurux_entry_with_columns():
    pg = _gurux_pg()
    cols = [pg.captureObjects[2], pg.captureObjects[3]]
    (req,) = captured_requests(pg, lambda c, p: c.readRowsByEntry(p, 4, 2, cols))
    res, data = ours_with(req)
    assert res == cosem.SUCCESS
    assert gurux_decode(data) == [[30, 31], [40, 41]]


def test_timestamps_match_python_calendar_over_decades():
    # rows.put_date and rows.days_from_civil against datetime, every 97th day of 2000..2179.
    out = bytearray(5)
    for days in list(range(0, 65536, 97)) + [0, 59, 60, 366, D0, 65535]:
        rows.put_date(out, 0, days)
        d = datetime.date(2000, 1, 1) + datetime.timedelta(days=days)
        assert bytes(out) == bytes((d.year >> 8, d.year & 0xFF, d.month, d.day, d.isoweekday()))
        assert rows.days_from_civil(d.year, d.month, d.day) == days
    assert axdr.DATETIME_LEN == 12
