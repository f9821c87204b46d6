# The default ION object model (model.Meter) read by the real Gurux client through our HDLC
# link, in one process: every object and attribute, the load profile by block transfer, range
# and entry selection, attribute 0, the clock set over LLS, refused writes and passwords.
import datetime

import pytest
from gurux_dlms import GXDateTime
from gurux_dlms.enums import Authentication, ObjectType
from model import Meter
from test_gurux_inprocess import Peer

UTC = datetime.timezone.utc
DAY0 = 9800  # 2026-10-31 (days since 2000-01-01)


def _meter(rows=96 * 35):
    m = Meter({"lls_password": "12345678"})
    m.clock.set_utc(DAY0 + 35, 3600)
    lp = m.profile("1-0:99.1.0*255")
    for k in range(rows):
        day = DAY0 + k // 96
        v = k & 0xFFFF
        vals = bytes([0, 0, v >> 8, v & 0xFF, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3])
        lp.rows.append(day, (k % 96) * 900, 0x40 if k == 0 else 0, vals)
    return m


def _objects_by_ln(peer):
    return {o.logicalName: o for o in peer.objects()}


def test_object_list_is_the_ion_default():
    p = Peer(_meter(0).server)
    p.connect()
    objs = _objects_by_ln(p)
    for ln, kind in (
        ("0.0.40.0.0.255", ObjectType.ASSOCIATION_LOGICAL_NAME),
        ("0.0.41.0.0.255", ObjectType.SAP_ASSIGNMENT),
        ("0.0.42.0.0.255", ObjectType.DATA),
        ("0.0.1.0.0.255", ObjectType.CLOCK),
        ("0.0.97.97.0.255", ObjectType.DATA),
        ("1.0.99.1.0.255", ObjectType.PROFILE_GENERIC),
        ("1.0.98.1.0.255", ObjectType.PROFILE_GENERIC),
    ):
        assert objs[ln].objectType == kind, ln
    for reg in ("1.29.0", "3.29.0", "2.29.0", "4.29.0", "1.8.0", "2.8.0", "16.8.0", "3.8.0",
                "4.8.0", "128.8.0", "9.8.0", "16.4.0", "128.4.0", "9.4.0", "13.0.0"):
        assert objs["1.1." + reg + ".255"].objectType == ObjectType.REGISTER, reg


def test_every_attribute_reads():
    p = Peer(_meter(10).server)
    p.connect()
    objs = p.objects()
    for o in objs:
        if o.objectType == ObjectType.PROFILE_GENERIC:
            p.read(o, 3)  # Gurux needs the columns before it parses the buffer
        for attr in range(1, o.getAttributeCount() + 1):
            if o.objectType == ObjectType.ASSOCIATION_LOGICAL_NAME and attr == 7:
                continue
            reply = p.request(p.c.read(o, attr))
            assert reply.error == 0, (o.logicalName, attr, reply.error)
    lp = [o for o in objs if o.logicalName == "1.0.99.1.0.255"][0]
    assert p.read(lp, 4) == 900 and p.read(lp, 7) == 10 and p.read(lp, 8) == 3360
    power = [o for o in objs if o.logicalName == "1.1.13.0.0.255"][0]
    assert p.read(power, 3) is not None and power.scaler == 0.001


def test_full_load_profile_by_block_transfer():
    m = _meter()
    p = Peer(m.server)
    p.connect()
    lp = _objects_by_ln(p)["1.0.99.1.0.255"]
    p.read(lp, 3)
    rows = p.read(lp, 2)
    assert len(rows) == 3360
    assert [r[2] for r in rows[:3]] == [0, 1, 2] and rows[-1][2] == 3359
    assert rows[0][1] == 0x40  # power up in the first interval
    first = rows[0][0].value
    assert first.astimezone(UTC) == datetime.datetime(2026, 10, 31, 0, 0, tzinfo=UTC)


def test_range_and_entry_selection():
    m = _meter()
    p = Peer(m.server)
    p.connect()
    lp = _objects_by_ln(p)["1.0.99.1.0.255"]
    p.read(lp, 3)
    start = datetime.datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    end = start + datetime.timedelta(hours=1)
    rows = p.request(p.c.readRowsByRange(lp, start, end)).value
    assert [r[2] for r in rows] == [96 + 48 + k for k in range(5)]  # both ends inclusive
    rows = p.request(p.c.readRowsByEntry(lp, 3358, 0)).value
    assert [r[2] for r in rows] == [3357, 3358, 3359]


def test_clock_set_with_lls_and_refusals():
    m = _meter(0)
    p = Peer(m.server, client=1, auth=Authentication.LOW, password="12345678")
    p.connect()
    objs = _objects_by_ln(p)
    clock = objs["0.0.1.0.0.255"]
    clock.time = GXDateTime(datetime.datetime(2027, 3, 1, 10, 20, 30, tzinfo=UTC))
    assert p.request(p.c.write(clock, 2)).error == 0
    assert (m.clock.days, m.clock.secs) == (DAY0 + 121, 10 * 3600 + 20 * 60 + 30)
    assert m.status.raw[1] & 0x20  # "time changed" in the interval in progress
    reg = objs["1.1.1.8.0.255"]
    reg.value = 5
    assert p.request(p.c.write(reg, 2)).error == 3
    # The public client may not set the clock.
    q = Peer(m.server)
    q.connect()
    clock2 = _objects_by_ln(q)["0.0.1.0.0.255"]
    clock2.time = GXDateTime(datetime.datetime(2030, 1, 1, tzinfo=UTC))
    m.status.raw[1] = 0
    assert q.request(q.c.write(clock2, 2)).error == 3
    assert m.clock.days == DAY0 + 121 and m.status.raw[1] == 0


def test_management_association_disabled_without_password():
    m = Meter()  # no lls_password: the boards' default
    p = Peer(m.server, client=1, auth=Authentication.LOW, password="anything")
    p.c.parseUAResponse(p.request(p.c.snrmRequest()).data)
    with pytest.raises(Exception):
        p.c.parseAareResponse(p.request(p.c.aarqRequest()).data)


def test_two_ports_keep_their_own_associations():
    m = _meter(0)
    a = Peer(m.server)
    b = Peer(m.port_server(), client=1, auth=Authentication.LOW, password="12345678")
    a.connect()
    b.connect()
    ln_a = _objects_by_ln(a)["0.0.40.0.0.255"]
    ln_b = _objects_by_ln(b)["0.0.40.0.0.255"]
    assert a.read(ln_a, 3) == [16, 1] and b.read(ln_b, 3) == [1, 1]
    assert a.read(ln_a, 3) == [16, 1]
    a.close()
    assert b.read(ln_b, 8) == 2  # still associated
