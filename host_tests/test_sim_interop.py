# The interoperability matrix: independent clients against `tools/sim.py` (the firmware under
# the MicroPython unix port, and under CPython). Gurux and dlms-cosem, each over every transport
# the simulator serves: HDLC over TCP, HDLC on a pseudo-terminal (a serial port to the client)
# and the IEC 62056-47 TCP wrapper (host_tests/interop_util.py opens them). On each: associate
# as the public and the LLS client, read every attribute the object list names (refusals as
# its access rights say), the load profile by block transfer, range and entry selection,
# attribute 0, lists of attributes (GET-with-list), set the clock with LLS, and be refused
# register and clock writes and a wrong password. Each transport has an association of its own.
#
# The meter meters while the tests run: registers grow, the clock runs, and the load profile
# gets a row at every interval boundary. So nothing here knows row counts or values: answers
# are checked against what the meter itself reports (entries in use, a full read, single reads
# around a combined one), and load-profile comparisons are retried when a capture fell between
# the reads.
#
# Client quirks worked around: interop_util.LinkIO (dlms-cosem 25.1.0 cuts HDLC frames at any
# 0x7E inside them; its reads never time out), gurux_util (Gurux 1.0.203 refuses read(obj, 0)
# and does not parse a GET-with-list answer that came in blocks), _Entries and
# _check_context_info below (dlms-cosem cannot encode an entry descriptor or decode a
# bit-string). Gurux 1.0.203 receives windows of one frame only: it proposes window 1.
import datetime
import logging
import time

import pytest
import structlog
from dlms_cosem import a_xdr, cosem, dlms_data, enumerations
from dlms_cosem import time as dlms_time
from dlms_cosem.cosem.attribute_with_selection import CosemAttributeWithSelection
from dlms_cosem.cosem.capture_object import CaptureObject
from dlms_cosem.cosem.selective_access import EntryDescriptor, RangeDescriptor
from dlms_cosem.enumerations import (
    AcseServiceUserDiagnostics,
    AssociationResult,
    DataAccessResult,
)
from dlms_cosem.exceptions import DlmsClientException
from dlms_cosem.protocol import xdlms
from dlms_cosem.protocol.acse import ApplicationAssociationResponse
from dlms_cosem.protocol.xdlms.conformance import Conformance as CosemConformance
from dlms_cosem.utils import parse_as_dlms_data
from gurux_dlms import GXDateTime, GXDLMSException
from gurux_dlms.enums import AccessMode, Authentication, Conformance, ObjectType
from gurux_dlms.enums import AssociationResult as GxAssociationResult
from gurux_dlms.enums import SourceDiagnostic
from gurux_dlms.objects import GXDLMSClock, GXDLMSProfileGeneric, GXDLMSRegister
from interop_util import TRANSPORTS, Port, Sim

PASSWORD = "sim-pass-1"
RUNTIMES = ("micropython", "cpython")
ASSOCIATIONS = ("public", "lls")


@pytest.fixture(scope="module", params=RUNTIMES)
def sim(request):
    s = Sim(request.param, "--hdlc-tcp", "127.0.0.1:0", "--pty", "--wrapper-tcp",
            "127.0.0.1:0", "--lls-password", PASSWORD)
    yield s
    s.stop()


@pytest.fixture(params=TRANSPORTS)
def port(request, sim):
    return Port(sim, request.param)


# **** Gurux ****


LP_NAME = "1.0.99.1.0.255"


def _gurux(port, assoc="public"):
    if assoc == "lls":
        p = port.gurux(client=1, auth=Authentication.LOW, password=PASSWORD)
    else:
        p = port.gurux()
    p.connect()
    return p


def _gx_plain(v):
    # A value Gurux decoded, comparable: a GXDateTime as its datetime, rows as lists.
    if isinstance(v, GXDateTime):
        return v.value
    if isinstance(v, (list, tuple)):
        return [_gx_plain(x) for x in v]
    return v


@pytest.mark.parametrize("assoc", ASSOCIATIONS)
def test_gurux_reads_every_attribute_of_the_object_list(port, assoc):
    # Every attribute of every object in the association's object_list: each one its access
    # rights let this client read is answered and decodes; each one they withhold (the LLS
    # secret) is refused read-write-denied. The whole load profile comes in many blocks.
    p = _gurux(port, assoc)
    objs = p.objects()
    assert len(objs) == 26  # 5 standard objects, 19 registers, 2 profiles
    refused = []
    for o in objs:
        if o.objectType == ObjectType.PROFILE_GENERIC:
            p.read(o, 3)  # the capture objects first, so the rows can be decoded
        for attr in range(1, o.getAttributeCount() + 1):
            before = p.exchanges
            reply = p.request(p.c.read(o, attr))
            if not o.getAccess(attr) & AccessMode.READ:
                assert reply.error == DataAccessResult.READ_WRITE_DENIED, (o.logicalName, attr)
                refused.append((o.logicalName, attr))
                continue
            assert reply.error == 0, (o.logicalName, attr, reply.error)
            value = p.c.updateValue(o, attr, reply.value)
            if attr == 1:
                assert value == o.logicalName
            if o.logicalName == LP_NAME and attr == 2:
                assert len(value) > 100 and p.exchanges - before > 5, (
                    len(value), p.exchanges - before)  # GET-next requests, block by block
                stamps = [r[0].value for r in value]
                assert stamps == sorted(stamps)
    assert ("0.0.40.0.0.255", SECRET) in refused, refused
    clock = [o for o in objs if o.logicalName == "0.0.1.0.0.255"][0]
    assert bool(clock.getAccess(2) & AccessMode.WRITE) == (assoc == "lls")  # the time
    p.close()


def _gurux_newest(p, lp):
    # Cheap fingerprint of the buffer: entries in use and the newest row (entry selection).
    n = p.read(lp, 7)
    return n, _gx_plain(p.c.updateValue(lp, 2, p.request(p.c.readRowsByEntry(lp, n, 1)).value))


def test_gurux_reads_the_load_profile_by_range_and_entry(port):
    # Gurux's readRowsByRange (restricting object: the profile's sort object, else its first
    # capture object, the clock) and readRowsByEntry, against a full read of the buffer.
    p = _gurux(port)
    lp = GXDLMSProfileGeneric(LP_NAME)
    p.read(lp, 3)

    def selected(request, columns=None):  # the columns asked for, to decode the rows by
        return _gx_plain(p.c.updateValue(lp, 2, p.request(request).value, columns))

    for _ in range(3):
        mark = _gurux_newest(p, lp)
        lp.buffer = []  # Gurux appends the rows it decodes to those of the last read
        rows = _gx_plain(p.read(lp, 2))
        n = len(rows)
        assert n == mark[0] and rows[-1:] == mark[1] and n >= 10
        times = [r[0] for r in rows]
        second = datetime.timedelta(seconds=1)
        i, j = n // 2, n // 2 + 4
        got = [
            (selected(p.c.readRowsByRange(lp, times[i], times[j])), rows[i:j + 1]),
            (selected(p.c.readRowsByRange(lp, times[i] + second, times[j] - second)),
             rows[i + 1:j]),
            (selected(p.c.readRowsByRange(lp, times[-1] + second, times[-1] + 1000 * second)),
             []),
            (selected(p.c.readRowsByEntry(lp, 1, 10)), rows[:10]),
            (selected(p.c.readRowsByEntry(lp, i + 1, 5)), rows[i:i + 5]),
            (selected(p.c.readRowsByEntry(lp, n - 2, 0)), rows[n - 3:]),  # 0: to the last
            (selected(p.c.readRowsByEntry(lp, n + 1, 0)), []),
            (selected(p.c.readRowsByEntry(lp, i + 1, 3, lp.captureObjects[:1]),
                      lp.captureObjects[:1]), [r[:1] for r in rows[i:i + 3]]),  # column 1
        ]
        if _gurux_newest(p, lp) == mark:  # no capture meanwhile
            for k, (a, b) in enumerate(got):
                assert a == b, (k, a, b)
            p.close()
            return
    raise AssertionError("the load profile changed during every one of 3 attempts")


def test_gurux_lls_sets_the_clock_and_is_refused_other_writes(port):
    # The management client sets the time (inside the current capture interval, and back, so
    # no row is captured and the clock runs on for the other tests); the energy register and
    # the clock's time zone are refused and keep their values.
    p = _gurux(port, "lls")
    clock = GXDLMSClock("0.0.1.0.0.255")
    period = p.read(GXDLMSProfileGeneric(LP_NAME), 4)
    assert period > 120
    t0 = time.monotonic()
    was = p.read(clock, 2).value
    for when in (_interval_target(was, period), None):
        if when is None:  # back to where the meter's time would be
            when = was + datetime.timedelta(seconds=time.monotonic() - t0)
        clock.time = GXDateTime(when)
        assert p.request(p.c.write(clock, 2)).error == 0
        got = p.read(clock, 2).value
        assert abs((got - when).total_seconds()) < 2, (when, got)
    _gurux_refused_writes(p, clock, p.read(clock, 3))
    p.close()


def _gurux_refused_writes(p, clock, zone):
    reg = GXDLMSRegister("1.1.1.8.0.255")
    before = p.read(reg, 2)
    reg.value = before + 10**9
    assert p.request(p.c.write(reg, 2)).error == DataAccessResult.READ_WRITE_DENIED
    assert before <= p.read(reg, 2) < before + 10**9
    clock.timeZone = zone + 60
    assert p.request(p.c.write(clock, 3)).error == DataAccessResult.READ_WRITE_DENIED
    assert p.read(clock, 3) == zone


def test_gurux_public_client_is_refused_writes(port):
    p = _gurux(port)
    clock = GXDLMSClock("0.0.1.0.0.255")
    was = p.read(clock, 2).value
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((was - now).total_seconds()) < 60  # the simulator keeps the PC's time
    clock.time = GXDateTime(was + datetime.timedelta(hours=5))
    assert p.request(p.c.write(clock, 2)).error == DataAccessResult.READ_WRITE_DENIED
    assert abs((p.read(clock, 2).value - was).total_seconds()) < 5
    _gurux_refused_writes(p, clock, p.read(clock, 3))
    p.close()


def test_gurux_wrong_password_is_refused(port):
    # The AARE rejects it permanently with authentication-failure (an LLS success first resets
    # the meter's count of consecutive failures; 3 lock LLS out for a minute), and the
    # right password still gets in afterwards.
    _gurux(port, "lls").close()
    p = port.gurux(client=1, auth=Authentication.LOW, password="nope")
    try:
        with pytest.raises(GXDLMSException) as refused:
            p.connect()
        assert refused.value.result == GxAssociationResult.PERMANENT_REJECTED
        assert refused.value.diagnostic == SourceDiagnostic.AUTHENTICATION_FAILURE
        if not p.wrapper:
            p.request(p.c.disconnectRequest(True))  # end the data link too
    finally:
        p.link.close()
    p = _gurux(port, "lls")
    assert p.read(GXDLMSClock("0.0.1.0.0.255"), 2)
    p.close()


def test_gurux_reads_attribute_0_and_lists(port):
    # Attribute 0 (Gurux's GET encoder with attribute-id 0: its read() refuses it) and
    # readList (GET-with-list): each value as the single reads around it give, a refused item
    # (the LLS secret) answered in place with read-write-denied, and a list whose answer takes
    # many blocks (it holds the whole load profile).
    p = port.gurux()
    p.c.proposedConformance |= Conformance.ATTRIBUTE_0_SUPPORTED_WITH_GET
    p.connect()
    assert p.c.negotiatedConformance & Conformance.ATTRIBUTE_0_SUPPORTED_WITH_GET
    objs = {o.logicalName: o for o in p.objects()}

    def single(o, a):
        reply = p.request(p.c.read(o, a))
        assert reply.error == 0, (o.logicalName, a, reply.error)
        return reply.value

    for ln in ("0.0.1.0.0.255", "0.0.42.0.0.255", "1.1.1.8.0.255", "1.1.16.4.0.255"):
        o = objs[ln]
        attrs = [a for a in range(1, o.getAttributeCount() + 1)
                 if o.getAccess(a) & AccessMode.READ]
        before = [single(o, a) for a in attrs]
        whole = p.request(p.attribute0_request(o))
        after = [single(o, a) for a in attrs]
        assert whole.error == 0
        assert _agrees(before, list(whole.value), after), (ln, before, whole.value, after)
    assoc = objs["0.0.40.0.0.255"]
    assert not assoc.getAccess(SECRET) & AccessMode.READ
    items = [(objs[ln], a) for ln, a in (
        ("0.0.1.0.0.255", 2), ("0.0.1.0.0.255", 3), ("1.1.1.8.0.255", 2),
        ("1.1.1.8.0.255", 3), ("1.1.16.4.0.255", 2), ("0.0.42.0.0.255", 2),
        ("1.0.99.1.0.255", 7), ("1.0.99.1.0.255", 8), ("0.0.97.97.0.255", 2))]

    def listed(its, refused_at=None):
        plain = [it for k, it in enumerate(its) if k != refused_at]
        before = [single(o, a) for o, a in plain]
        reply = p.read_list(its)
        after = [single(o, a) for o, a in plain]
        got = list(reply.value)
        assert len(got) == len(its)
        if refused_at is None:
            assert reply.error == 0
        else:
            assert reply.error == DataAccessResult.READ_WRITE_DENIED
            assert got.pop(refused_at) is None
        return before, got, after

    before, got, after = listed(items)
    assert _agrees(before, got, after), (before, got, after)
    before, got, after = listed(items[:2] + [(assoc, SECRET)] + items[2:4], 2)
    assert _agrees(before, got, after), (before, got, after)
    # An answer of many blocks: the whole load profile between two small items (read again
    # if a row was captured meanwhile).
    for _ in range(3):
        before, got, after = listed([items[0], (objs["1.0.99.1.0.255"], 2), items[2]])
        if before[1] == after[1]:
            break
    assert before[1] == after[1] and len(before[1]) > 4
    assert _agrees(before, got, after), (before[::2], got[::2], after[::2])
    p.close()



# **** dlms-cosem ****


@pytest.fixture(scope="module", autouse=True)
def quiet_dlms_cosem():
    # dlms-cosem logs every frame at debug level through structlog; keep warnings only.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    yield
    structlog.reset_defaults()




# Objects as (class_id, logical name). The tests take whatever else they need from the meter.
ASSOCIATION = (15, b"\x00\x00\x28\x00\x00\xff")  # 0-0:40.0.0*255 Association LN
SAP = (17, b"\x00\x00\x29\x00\x00\xff")  # 0-0:41.0.0*255 SAP assignment
LDN = (1, b"\x00\x00\x2a\x00\x00\xff")  # 0-0:42.0.0*255 logical device name
CLOCK = (8, b"\x00\x00\x01\x00\x00\xff")  # 0-0:1.0.0*255
STATUS = (1, b"\x00\x00\x61\x61\x00\xff")  # 0-0:97.97.0*255 status of the interval in progress
ENERGY = (3, b"\x01\x01\x01\x08\x00\xff")  # 1-1:1.8.0*255 kWh del, long64-unsigned
DEMAND = (3, b"\x01\x01\x10\x04\x00\xff")  # 1-1:16.4.0*255 kW sliding demand del-rec
LOAD_PROFILE = (7, b"\x01\x00\x63\x01\x00\xff")  # 1-0:99.1.0*255
_CONTEXT_INFO = 5  # Association LN attribute 5, xDLMS_context_info
SECRET = 7  # Association LN attribute 7, the LLS secret
# BB 4.4.3 (IC 15 version 1) attribute_access_mode values that allow reading: read_only,
# read_and_write and their authenticated forms.
READABLE = (1, 3, 4, 6)
_BUFFER, _CAPTURE_OBJECTS, _CAPTURE_PERIOD, _ENTRIES_IN_USE = 2, 3, 4, 7


def _attr(obj, attr):
    return cosem.CosemAttribute(interface=enumerations.CosemInterface(obj[0]),
                                instance=cosem.Obis.from_bytes(obj[1]), attribute=attr)


def _decode(data):
    # The one A-XDR value an answer must be. dlms-cosem's parse_as_dlms_data decodes values
    # until its buffer is exactly used up, and loops forever when the last one is truncated;
    # its decoder takes one value first, so a short or overlong answer fails here instead.
    one = a_xdr.AXdrDecoder(encoding_conf=a_xdr.EncodingConf(attributes=[]))
    one.buffer += data
    one.decode_sequence_of()
    assert one.pointer == len(data), "%d bytes for one value of %d: %s" % (
        one.pointer, len(data), bytes(data[:40]).hex())
    return parse_as_dlms_data(data)


def _get(c, obj, attr, selection=None):
    return _decode(c.get(_attr(obj, attr), selection))


def _refusal(c, obj, attr):
    # A GET that must fail: the data-access-result of the answer (None if it succeeded).
    c.send(xdlms.GetRequestNormal(cosem_attribute=_attr(obj, attr)))
    answer = c.next_event()
    return getattr(answer, "error", None)


def _set(c, obj, attr, value):
    answer = c.set(_attr(obj, attr), value.to_bytes())
    assert isinstance(answer, xdlms.SetResponseNormal), answer
    return answer.result


class _Entries(EntryDescriptor):
    # dlms-cosem 25.1.0 has the EntryDescriptor but its to_bytes() raises NotImplementedError:
    # BB 4.3.6 entry_descriptor, selector 2: {from_entry, to_entry double-long-unsigned,
    # from_selected_value, to_selected_value long-unsigned}, 1-based, 0 = the last.
    def to_bytes(self):
        return (bytes([self.ACCESS_DESCRIPTOR, 0x02, 0x04])
                + dlms_data.DoubleLongUnsignedData(self.from_entry).to_bytes()
                + dlms_data.DoubleLongUnsignedData(self.to_entry).to_bytes()
                + dlms_data.UnsignedLongData(self.from_selected_value).to_bytes()
                + dlms_data.UnsignedLongData(self.to_selected_value).to_bytes())


def _check_context_info(c, raw):
    # Association LN attribute 5, xDLMS_context_info {conformance bit-string(24),
    # max_receive_pdu_size, max_send_pdu_size long-unsigned, dlms_version_number unsigned,
    # quality_of_service integer, cyphering_info octet-string}. dlms-cosem 25.1.0 cannot
    # decode a bit-string (BitStringData.from_bytes raises NotImplementedError, and its decoder
    # takes the length, which counts bits, for bytes): the bit string is checked here, as the
    # conformance dlms-cosem negotiated, and dlms-cosem decodes the rest.
    assert raw[:4] == b"\x02\x06\x04\x18", raw.hex()
    assert CosemConformance.from_bytes(b"\x00" + raw[4:7]) == c.dlms_connection.conformance
    max_receive, max_send, version, _qos, ciphering = _decode(b"\x02\x05" + raw[7:])
    assert max_receive == c.dlms_connection.max_pdu_size  # the AARE's server max receive
    assert 0 < max_send <= 0xFFFF and version == 6 and ciphering == b""


def _rights(olist, obj):
    # The attribute access items {attribute_id, access_mode, access_selectors} of obj.
    rights = [e[3] for e in olist if (e[0], bytes(e[2])) == obj]
    assert len(rights) == 1, obj
    return rights[0][0]


def _readable(olist, obj):
    # The attributes the object_list entry of obj gives read access to.
    return [m[0] for m in _rights(olist, obj) if m[1] in READABLE]


def _datetime(octets):
    return dlms_time.datetime_from_bytes(bytes(octets))[0]


def _clock(c):
    return _datetime(_get(c, CLOCK, 2))


# **** the load profile, which the meter appends to at every interval boundary ****


def _newest(c):
    # Cheap fingerprint of the buffer: entries in use and the newest row (entry selection).
    n = _get(c, LOAD_PROFILE, _ENTRIES_IN_USE)
    return n, (_get(c, LOAD_PROFILE, _BUFFER, _Entries(n, n)) if n else [])


def _stable(c, read):
    # read() with the buffer unchanged around it (a capture in between would make two reads
    # disagree for no fault of the meter): (fingerprint, value).
    for _ in range(3):
        mark = _newest(c)
        value = read()
        if _newest(c) == mark:
            return mark, value
    raise AssertionError("the load profile changed during every one of 3 reads")


def _full_buffer(c):
    # Every row by one plain GET (block transfer): (fingerprint, rows).
    mark, rows = _stable(c, lambda: _get(c, LOAD_PROFILE, _BUFFER))
    assert len(rows) == mark[0] and (not rows or rows[-1] == mark[1][0])
    return mark, rows


# **** dlms-cosem: reading ****


@pytest.mark.parametrize("assoc", ASSOCIATIONS)
def test_dlms_cosem_reads_every_attribute_of_the_object_list(port, assoc):
    # Every attribute of every object the association's object_list names, as the meter
    # describes it (class, logical name, access rights): each readable one decodes to one
    # value, and each one the rights withhold (the LLS secret) is refused read-write-denied.
    # The whole load profile is larger than an APDU: it comes by block transfer.
    c = port.dlms_cosem(client=1, password=PASSWORD) if assoc == "lls" else port.dlms_cosem()
    with c.session():
        olist = _get(c, ASSOCIATION, 2)
        names = [bytes(e[2]) for e in olist]
        assert len(set(names)) == len(names)
        for need in (ASSOCIATION, SAP, LDN, CLOCK, STATUS, ENERGY, DEMAND, LOAD_PROFILE):
            assert [e[0] for e in olist if bytes(e[2]) == need[1]] == [need[0]], need
        refused = []
        for class_id, _version, ln, rights in olist:
            obj = (class_id, bytes(ln))
            modes = rights[0]  # {attribute_id, access_mode, access_selectors}
            assert [m[0] for m in modes] == list(range(1, len(modes) + 1)), obj
            for attr, mode, _selectors in modes:
                if mode not in READABLE:
                    refused.append((obj, attr, mode))
                    assert _refusal(c, obj, attr) == DataAccessResult.READ_WRITE_DENIED
                    continue
                if obj == LOAD_PROFILE and attr == _BUFFER:
                    rows = _full_buffer(c)[1]
                    assert rows and all(len(r) == len(rows[0]) for r in rows)
                    # each row holds at least its date-time (14 bytes encoded)
                    assert len(rows) * 14 > c.dlms_connection.max_pdu_size
                    continue
                if obj == ASSOCIATION and attr == _CONTEXT_INFO:
                    _check_context_info(c, c.get(_attr(obj, attr)))
                    continue
                value = _get(c, obj, attr)
                if attr == 1:
                    assert value == obj[1]  # logical_name
        assert (ASSOCIATION, SECRET, 0) in refused  # no_access
        clock_time = [m[1] for m in _rights(olist, CLOCK) if m[0] == 2]
        assert clock_time == ([3] if assoc == "lls" else [1])  # read_and_write, read_only
        lp_modes = [e[3][0] for e in olist if bytes(e[2]) == LOAD_PROFILE[1]][0]
        assert lp_modes[_BUFFER - 1][2] == [1, 2]  # range and entry selective access
        assert _get(c, LDN, 2) == b"SCH0000000000017"
        assert isinstance(_get(c, ENERGY, 2), int)


def test_dlms_cosem_reads_the_load_profile_by_range_and_entry(port):
    # Range (selector 1) and entry (selector 2) descriptors against a full read of the buffer:
    # the same rows, in time order, both bounds inclusive, column subsets by entry.
    c = port.dlms_cosem()
    with c.session():
        for _ in range(3):
            mark, rows = _full_buffer(c)
            try:
                _check_selections(c, rows)
            except _Changed:
                continue
            if _newest(c) == mark:
                return
        raise AssertionError("the load profile changed during every one of 3 attempts")


class _Changed(Exception):
    pass


def _check_selections(c, rows):
    n = len(rows)
    assert n >= 6, "too few load-profile rows to select from: %d" % n
    times = [_datetime(r[0]) for r in rows]
    assert all(a < b for a, b in zip(times, times[1:])), "rows out of time order"
    cap = _get(c, LOAD_PROFILE, _CAPTURE_OBJECTS)
    assert (cap[0][0], bytes(cap[0][1]), cap[0][2]) == (CLOCK[0], CLOCK[1], 2)
    when = CaptureObject(cosem_attribute=_attr(CLOCK, 2), data_index=cap[0][3])
    second = datetime.timedelta(seconds=1)

    def by_range(start, end):
        return _get(c, LOAD_PROFILE, _BUFFER, RangeDescriptor(when, start, end))

    def by_entry(first, last, col_from=1, col_to=0):
        return _get(c, LOAD_PROFILE, _BUFFER, _Entries(first, last, col_from, col_to))

    def same(got, want):
        if got != want:  # a capture since the full read moves the newest rows: try again
            if _newest(c) != (n, [rows[-1]]):
                raise _Changed()
        assert got == want

    i, j = n // 3, n // 3 + 4
    same(by_range(times[i], times[j]), rows[i:j + 1])  # bounds on row stamps: inclusive
    same(by_range(times[i] + second, times[j] - second), rows[i + 1:j])
    same(by_range(times[i], times[i]), rows[i:i + 1])
    utc = datetime.timezone.utc  # the same instants with deviation 0: the meter converts
    same(by_range(times[i].astimezone(utc), times[j].astimezone(utc)), rows[i:j + 1])
    if len({t.utcoffset() for t in times[max(i - 8, 0):j + 9]}) == 1:
        # No deviation (0x8000, "not specified"): the bounds are the meter's local time.
        naive = [t.replace(tzinfo=None) for t in (times[i], times[j])]
        same(by_range(naive[0], naive[1]), rows[i:j + 1])
    for k in range(1, n):  # across a DST change (the deviation of the rows changes)
        if times[k].utcoffset() != times[k - 1].utcoffset() and 4 <= k <= n - 5:
            same(by_range(times[k - 4], times[k + 4]), rows[k - 4:k + 5])
    same(by_range(times[0] - datetime.timedelta(days=1), times[-1] + second), rows)
    same(by_range(times[-1] + second, times[-1] + datetime.timedelta(days=1)), [])
    same(by_range(times[j], times[i]), [])  # from after to
    same(by_entry(1, 1), rows[:1])
    same(by_entry(i + 1, j + 1), rows[i:j + 1])
    same(by_entry(n - 2, 0), rows[n - 3:])  # to_entry 0: the last
    same(by_entry(n - 2, n + 5), rows[n - 3:])  # past the end: up to the last
    same(by_entry(n + 1, 0), [])
    same(by_entry(i + 1, i + 3, 3, 4), [r[2:4] for r in rows[i:i + 3]])  # columns 3..4
    same(by_entry(i + 1, i + 3, 1, 1), [r[:1] for r in rows[i:i + 3]])
    same(by_entry(n, 0, 2, 0), [rows[-1][1:]])  # column 0 = up to the last


def _agrees(before, got, after):
    # got, read between two reads of the same thing: equal to them if they agree, else
    # between them (energy grows, the clock runs), element by element.
    if before == after:
        return got == before
    if isinstance(before, list) and isinstance(after, list) and isinstance(got, list):
        return len(got) == len(before) == len(after) and all(
            _agrees(b, g, a) for b, g, a in zip(before, got, after))
    if all(isinstance(v, int) for v in (before, got, after)):
        return min(before, after) <= got <= max(before, after)
    if all(isinstance(v, (bytes, bytearray)) and len(v) == 12 for v in (before, got, after)):
        b, g, a = (_datetime(v) for v in (before, got, after))  # a date-time that moved
        return b <= g <= a
    return False


def test_dlms_cosem_reads_attribute_0(port):
    # GET attribute 0 (negotiated attribute0-supported-with-get) of the clock, the interval
    # status, an energy and a demand register and the load profile: the structure of the
    # attributes the association may read, equal to their single reads.
    c = port.dlms_cosem(attribute0=True)
    with c.session():
        assert c.dlms_connection.conformance.attribute_0_supported_with_get
        olist = _get(c, ASSOCIATION, 2)
        for obj in (CLOCK, STATUS, ENERGY, DEMAND):
            readable = _readable(olist, obj)
            before = [_get(c, obj, a) for a in readable]
            got = _get(c, obj, 0)
            after = [_get(c, obj, a) for a in readable]
            assert _agrees(before, got, after), (obj, before, got, after)
        readable = _readable(olist, LOAD_PROFILE)
        assert _BUFFER in readable
        for _ in range(3):
            mark, whole = _stable(c, lambda: _get(c, LOAD_PROFILE, 0))
            rows = _full_buffer(c)[1]
            parts = [rows if a == _BUFFER else _get(c, LOAD_PROFILE, a) for a in readable]
            if _newest(c) == mark:
                assert whole == parts
                return
        raise AssertionError("the load profile changed during every one of 3 attempts")


def test_dlms_cosem_without_attribute_0_negotiated_is_refused_it(port):
    c = port.dlms_cosem()
    with c.session():
        assert not c.dlms_connection.conformance.attribute_0_supported_with_get
        assert _refusal(c, CLOCK, 0) == DataAccessResult.READ_WRITE_DENIED


def test_dlms_cosem_get_with_list(port):
    # GET-with-list: each answer as the single reads around it give, a refusal in place, and
    # an item with selective access (the oldest two load-profile rows by entry).
    c = port.dlms_cosem()
    with c.session():
        items = [(LDN, 2, None), (CLOCK, 2, None), (CLOCK, 3, None), (ENERGY, 2, None),
                 (ENERGY, 3, None), (DEMAND, 2, None), (ASSOCIATION, SECRET, None),
                 (LOAD_PROFILE, _ENTRIES_IN_USE, None), (LOAD_PROFILE, _BUFFER, _Entries(1, 2)),
                 (STATUS, 2, None)]
        secret = 6
        assert items[secret][:2] == (ASSOCIATION, SECRET)
        readable = items[:secret] + items[secret + 1:]
        before = [_get(c, o, a, s) for o, a, s in readable]
        answer = c.get_many([CosemAttributeWithSelection(_attr(o, a), s) for o, a, s in items])
        after = [_get(c, o, a, s) for o, a, s in readable]
        got = answer.result
        assert len(got) == len(items)
        assert got.pop(secret) == DataAccessResult.READ_WRITE_DENIED
        assert _agrees(before, got, after), [
            (k, b, g, a) for k, (b, g, a) in enumerate(zip(before, got, after))
            if not _agrees(b, g, a)]


# **** dlms-cosem: the management association (LLS), SET and refusals ****


def _interval_target(now, period):
    # A time in the same capture interval as `now`, a minute inside its far end: setting the
    # clock there and back closes no interval, so no row is captured by the test.
    if now.tzinfo is None:  # deviation 0: dlms-cosem gives a naive datetime, in UTC
        now = now.replace(tzinfo=datetime.timezone.utc)
    ts = now.timestamp()
    start = ts - ts % period
    target = start + period - 60 if ts - start < period / 2 else start + 60
    return datetime.datetime.fromtimestamp(target, now.tzinfo)


def test_dlms_cosem_lls_sets_the_clock_and_is_refused_a_register(port):
    c = port.dlms_cosem(client=1, password=PASSWORD)
    with c.session():
        period = _get(c, LOAD_PROFILE, _CAPTURE_PERIOD)
        assert period > 120
        t0 = time.monotonic()
        was = _clock(c)
        target = _interval_target(was, period)
        octets = dlms_time.datetime_to_bytes(target)
        assert _set(c, CLOCK, 2, dlms_data.OctetStringData(octets)) == DataAccessResult.SUCCESS
        got = _clock(c)
        assert abs((got - target).total_seconds()) < 2, (target, got)
        assert abs((got - was).total_seconds()) > period / 2 - 90  # it moved
        # Back to where the meter's time would be, so later tests see a running clock.
        back = was + datetime.timedelta(seconds=time.monotonic() - t0)
        back_octets = dlms_time.datetime_to_bytes(back)
        assert _set(c, CLOCK, 2, dlms_data.OctetStringData(back_octets)) == \
            DataAccessResult.SUCCESS
        assert abs((_clock(c) - back).total_seconds()) < 2
        # Only the time may be written: the energy register is refused and keeps counting.
        before = _get(c, ENERGY, 2)
        forged = dlms_data.UnsignedLong64Data(before + 10**9)
        assert _set(c, ENERGY, 2, forged) == DataAccessResult.READ_WRITE_DENIED
        assert before <= _get(c, ENERGY, 2) < before + 10**9
        zone = _get(c, CLOCK, 3)
        assert _set(c, CLOCK, 3, dlms_data.LongData(zone + 60)) == \
            DataAccessResult.READ_WRITE_DENIED
        assert _get(c, CLOCK, 3) == zone


def test_dlms_cosem_public_client_may_not_set_the_clock(port):
    c = port.dlms_cosem()
    with c.session():
        was = _clock(c)
        octets = dlms_time.datetime_to_bytes(was + datetime.timedelta(hours=5))
        assert _set(c, CLOCK, 2, dlms_data.OctetStringData(octets)) == \
            DataAccessResult.READ_WRITE_DENIED
        assert abs((_clock(c) - was).total_seconds()) < 5


def test_dlms_cosem_wrong_password_is_refused(port):
    # Refused with the ACSE diagnostic, by hand and through associate(). An LLS success first
    # resets the meter's count of consecutive failures (3 lock LLS out for a minute).
    good = port.dlms_cosem(client=1, password=PASSWORD)
    with good.session():
        pass
    bad = port.dlms_cosem(client=1, password="nope")
    bad.connect()
    try:
        bad.send(bad.dlms_connection.get_aarq())
        aare = bad.next_event()
    finally:
        bad.disconnect()
    assert isinstance(aare, ApplicationAssociationResponse), aare
    assert aare.result == AssociationResult.REJECTED_PERMANENT
    assert aare.result_source_diagnostics == AcseServiceUserDiagnostics.AUTHENTICATION_FAILED
    bad = port.dlms_cosem(client=1, password="nope")
    bad.connect()
    try:
        with pytest.raises(DlmsClientException):
            bad.associate()
    finally:
        bad.disconnect()
    # Two failures are under the lockout: the right password still gets in.
    good = port.dlms_cosem(client=1, password=PASSWORD)
    with good.session():
        assert _get(good, ASSOCIATION, 3)[0] == 1  # associated_partners_id: client SAP 1
