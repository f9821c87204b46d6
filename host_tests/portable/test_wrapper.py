# The wrapper sublayer of the TCP transport (IEC 62056-47): WPDU reassembly from a byte stream
# fed whole, split at every offset, byte by byte and back to back; the answer with swapped
# wPorts, byte-exact against the real application layer; bad version and length stop the link;
# other wPorts are ignored; timers; allocation. The Gurux round trip runs on CPython only.
import wrapper
from app_util import AARQ_LLS_12345678, AARQ_PUBLIC, LDN, build, get, set_req
from support import IS_MICROPYTHON, SkipTest, assert_no_alloc, unhex
from wrapper import (
    FAULT_INACTIVE,
    FAULT_LENGTH,
    FAULT_RX_TIMEOUT,
    FAULT_VERSION,
    WrapperLink,
)

LN_LDN = unhex("00 00 2A 00 00 FF")
LN_REG = unhex("01 01 01 08 00 FF")

# The published public AARQ (GXDLMSDirector trace, see test_acse.py) in the WPDU a client
# sends over TCP: version 1, source wPort 16 (public client), destination wPort 1 (management
# logical device), length 0x1F.
WPDU_AARQ = unhex("00 01 00 10 00 01 00 1F") + AARQ_PUBLIC
# Our answer: the wPorts swapped, length 0x2B, then the AARE test_server.py checks byte-exact.
WPDU_AARE = unhex("00 01 00 01 00 10 00 2B") + unhex(
    "61 29 A1 09 06 07 60 85 74 05 08 01 01 A2 03 02 01 00 A3 05 A1 03 02 01 00 BE 10 04 0E"
    " 08 00 06 5F 1F 04 00 00 12 1C 04 00 00 07"
)
# dlms-cosem tests/test_udp_message.py (u9n/dlms-cosem): a WPDU from a meter, wPorts 1 -> 1,
# length 0x46, carrying a general-glo-ciphering data notification (70 bytes).
WPDU_DLMS_COSEM = unhex(
    "00 01 00 01 00 01 00 46 DB 08 2F 19 22 91 99 16 41 03 3B 30 00 00 01 E5 02 5C E9 D2 27 1F"
    " D7 8B E8 C2 04 21 1A 91 6A 9D 7F 58 7E 0A 7A 81 4C AD EA 89 E9 59 3F 01 F9 2E A8 C0 87 B5"
    " BD FD EF EA B6 BE CF 28 2D FE 49 C0 8F 5B E6 DC 84 00"
)


def wpdu(apdu, src=16, dst=1, version=1, length=None):
    if length is None:
        length = len(apdu)
    return bytes([version >> 8, version & 0xFF, src >> 8, src & 0xFF, dst >> 8, dst & 0xFF,
                  length >> 8, length & 0xFF]) + apdu


GET_LDN = wpdu(get(1, LN_LDN, 2))
ANSWER_LDN = unhex("00 01 00 01 00 10 00 16 C4 01 C1 00 09 10") + LDN


class Recorder:
    # Records each APDU with its client; answers with a fixed APDU, or echoes it.
    def __init__(self, answer=None):
        self.answer = answer
        self.got = []
        self.lost = 0

    def on_pdu(self, client, req, n, resp):
        self.got.append((client, bytes(req[:n])))
        a = self.answer if self.answer is not None else bytes(req[:n])
        for i in range(len(a)):
            resp[i] = a[i]
        return len(a)

    def on_link_lost(self):
        self.lost += 1


def new_link(app=None, **kw):
    link = WrapperLink(app if app is not None else build(), **kw)
    link.open(0)
    return link


def run(link, chunks, now=0):
    # Feeds the chunks as a transport would; returns the answers, each a whole WPDU.
    out = []
    for c in chunks:
        off = 0
        while off < len(c):
            off += link.receive(c, off, len(c) - off, now)
            if link.tx_len:
                out.append(bytes(link.tx[: link.tx_len]))
                link.tx_len = 0
            elif link.fault:
                break
            else:
                assert off == len(c)  # nothing to answer: everything was taken
    return out


def bytewise(data):
    return [data[i : i + 1] for i in range(len(data))]


def splits(data):
    # Every way to cut data in two, every byte alone, and whole.
    yield [data]
    for k in range(1, len(data)):
        yield [data[:k], data[k:]]
    yield bytewise(data)


# **** reassembly and answers ****


def test_public_aarq_whole_split_everywhere_and_byte_by_byte():
    for chunks in splits(WPDU_AARQ):
        link = new_link()
        assert run(link, chunks) == [WPDU_AARE], len(chunks)
        assert link.app.assoc.associated and link.app.assoc.client_sap == 16
        assert not link.rx_busy() and link.pdus == 1 and link.fault == 0


def test_back_to_back_wpdus_in_one_read_and_split_everywhere():
    # AARQ and GET in one TCP segment: receive() stops at the AARE, the GET follows it.
    both = WPDU_AARQ + GET_LDN
    for chunks in splits(both):
        link = new_link()
        assert run(link, chunks) == [WPDU_AARE, ANSWER_LDN], len(chunks)
    link = new_link()
    assert link.receive(both, 0, len(both), 0) == len(WPDU_AARQ)
    assert link.receive(both, len(WPDU_AARQ), len(GET_LDN), 0) == 0  # answer not sent yet
    link.tx_len = 0
    assert link.receive(both, len(WPDU_AARQ), len(GET_LDN), 0) == len(GET_LDN)
    assert bytes(link.tx[: link.tx_len]) == ANSWER_LDN


def test_management_client_is_its_own_source_wport():
    link = new_link()
    out = run(link, [wpdu(AARQ_LLS_12345678, src=1)])
    assert out[0][:8] == unhex("00 01 00 01 00 01 00 2B"), out
    assert out[0][8 + 17] == 0  # AARE result: accepted
    assert link.app.assoc.client_sap == 1
    # The management association may not write an energy register either (read-only).
    reg = set_req(3, LN_REG, 2, unhex("15 00 00 00 00 00 00 00 00"))
    out = run(link, [wpdu(reg, src=1)])
    assert out == [unhex("00 01 00 01 00 01 00 04 C5 01 C1 03")], out


def test_published_dlms_cosem_wpdu_reaches_the_app_byte_exact():
    for chunks in splits(WPDU_DLMS_COSEM):
        app = Recorder()
        link = new_link(app)
        out = run(link, chunks)
        assert app.got == [(1, WPDU_DLMS_COSEM[8:])]
        assert out == [WPDU_DLMS_COSEM]  # echoed: wPorts 1 <-> 1, length 0x46


def test_the_answer_swaps_wports_and_carries_the_app_length():
    app = Recorder(answer=b"\xAA\xBB\xCC")
    link = new_link(app, logical=1)
    out = run(link, [wpdu(b"\x01\x02", src=0x0123)])
    assert app.got == [(0x0123, b"\x01\x02")]
    assert out == [unhex("00 01 00 01 01 23 00 03 AA BB CC")]


def test_no_answer_from_the_app_sends_nothing():
    app = Recorder(answer=b"")
    link = new_link(app)
    assert run(link, [wpdu(b"\x01"), wpdu(b"\x02")]) == []
    assert [c for c, _ in app.got] == [16, 16] and link.tx_len == 0


def test_empty_apdu_is_delivered_and_the_stream_stays_in_step():
    app = Recorder(answer=b"")
    link = new_link(app)
    out = run(link, [wpdu(b"") + wpdu(b"\x07")])
    assert out == [] and app.got == [(16, b""), (16, b"\x07")]
    link = new_link()  # the real server answers an empty APDU with nothing
    assert run(link, [wpdu(b"") + WPDU_AARQ]) == [WPDU_AARE]


def test_largest_apdu_fills_the_buffer_exactly():
    big = bytes((i * 7) & 0xFF for i in range(1024))
    app = Recorder(answer=b"\x01")
    link = new_link(app, pdu_size=1024)
    assert len(link.rx) == 8 + 1024 and len(link.tx) == 8 + 1024
    assert run(link, [wpdu(big)[:500], wpdu(big)[500:]]) == [unhex("00 01 00 01 00 10 00 01 01")]
    assert app.got == [(16, big)]


# **** bad input ****


def test_wrong_version_stops_the_link_and_ends_the_association():
    for version in (0x0000, 0x0002, 0x0100, 0xFFFF):
        for chunks in splits(wpdu(b"\x01\x02\x03", version=version)):
            link = new_link()
            run(link, [WPDU_AARQ])
            assert link.app.assoc.associated
            run(link, chunks)
            assert link.fault == FAULT_VERSION, (hex(version), len(chunks))
            assert not link.app.assoc.associated  # on_link_lost reached the server
            assert not link.rx_busy() and link.tx_len == 0
            # Nothing more is taken until the transport closes the connection.
            assert link.receive(WPDU_AARQ, 0, len(WPDU_AARQ), 0) == 0


def test_version_is_checked_before_the_length_and_the_wport():
    link = new_link(Recorder())
    bad = wpdu(b"", version=2, dst=9, length=0xFFFF)
    assert link.receive(bad, 0, len(bad), 0) == 8
    assert link.fault == FAULT_VERSION and link.app.lost == 0  # no PDU yet: nothing to lose


def test_oversize_length_stops_the_link():
    for length in (1025, 0x8000, 0xFFFF):
        app = Recorder()
        link = new_link(app)
        run(link, [wpdu(b"\x01")])
        hdr = wpdu(b"", length=length)
        data = hdr + bytes(40)
        assert link.receive(data, 0, len(data), 0) == 8  # stops right after the header
        assert link.fault == FAULT_LENGTH and app.lost == 1, length
        assert link.receive(data, 8, 40, 0) == 0
    # ... also for another wPort: an oversize length means the stream cannot be trusted.
    link = new_link(Recorder())
    run(link, [wpdu(b"", dst=2, length=2000)])
    assert link.fault == FAULT_LENGTH


def test_close_and_open_start_a_fresh_stream():
    app = Recorder()
    link = new_link(app)
    run(link, [wpdu(b"\x01") + wpdu(b"\x02", version=3)])
    assert link.fault == FAULT_VERSION and app.lost == 1
    link.close()
    assert link.fault == 0 and not link.connected and app.lost == 1  # told once, not twice
    link.open(10)
    assert run(link, [wpdu(b"\x05")]) == [unhex("00 01 00 01 00 10 00 01 05")]
    run(link, [wpdu(b"\x06")[:3]])  # a connection ending mid-WPDU
    assert link.rx_busy()
    link.close()
    assert app.lost == 2 and not link.rx_busy()
    link.open(20)
    assert run(link, [wpdu(b"\x07")]) == [unhex("00 01 00 01 00 10 00 01 07")]


def test_other_destination_wports_are_ignored_in_step():
    # No such logical device (0 = no-station, 2, 16, ...) or all-station (127): not answered;
    # the AARQ after it, echoed by the recorder, shows the stream is still in step.
    echo = unhex("00 01 00 01 00 10 00 1F") + AARQ_PUBLIC
    for dst in (0, 2, 16, 127, 0x0101, 0xFFFF):
        data = wpdu(bytes(range(200)), dst=dst) + WPDU_AARQ
        ways = splits(data) if dst == 127 else ([data], bytewise(data))
        for chunks in ways:
            app = Recorder()
            link = new_link(app)
            assert run(link, chunks) == [echo], (dst, len(chunks))
            assert app.got == [(16, AARQ_PUBLIC)] and link.ignored == 1 and link.fault == 0


def test_logical_device_address_is_configurable():
    app = Recorder()
    link = new_link(app, logical=2)
    assert run(link, [wpdu(b"\x01", dst=1), wpdu(b"\x02", dst=2)]) == [
        unhex("00 01 00 02 00 10 00 01 02")]


# **** timers and the busy signal ****


def test_partial_wpdu_is_busy_until_rx_timeout_stops_the_link():
    app = Recorder()
    link = new_link(app, rx_timeout_ms=5000)
    run(link, [wpdu(b"\x01")])
    half = wpdu(b"\x01\x02\x03")[:5]
    run(link, [half], now=1000)
    assert link.rx_busy()
    link.poll(6000)
    assert link.rx_busy() and link.fault == 0  # 5000 ms since the last byte: not yet
    link.poll(6001)
    assert link.fault == FAULT_RX_TIMEOUT and not link.rx_busy() and app.lost == 1


def test_rest_of_a_wpdu_arriving_late_is_refused():
    link = new_link(Recorder(), rx_timeout_ms=100)
    w = wpdu(b"\x01\x02")
    run(link, [w[:4]], now=0)
    assert link.receive(w, 4, len(w) - 4, 101) == 0 and link.fault == FAULT_RX_TIMEOUT


def test_slow_bytes_within_the_timeout_are_fine():
    app = Recorder()
    link = new_link(app, rx_timeout_ms=100)
    w = wpdu(b"\x01\x02")
    now = 0
    for i in range(len(w)):
        now += 90  # each byte 90 ms after the one before: 900 ms for the WPDU
        link.poll(now)
        assert link.receive(w, i, 1, now) == 1
    assert link.tx_len == 18 - 8 and app.got == [(16, b"\x01\x02")]


def test_inactivity_stops_the_link_and_zero_disables_it():
    app = Recorder()
    link = WrapperLink(app, inactivity_ms=120000)
    link.poll(10**6)
    assert link.fault == 0  # not connected: no timers
    link.open(1000)
    run(link, [wpdu(b"\x01")], now=50000)
    link.poll(170000)
    assert link.fault == 0
    link.poll(170001)
    assert link.fault == FAULT_INACTIVE and app.lost == 1
    link = WrapperLink(Recorder(), inactivity_ms=0)
    link.open(0)
    link.poll(10**8)
    assert link.fault == 0


def test_timers_across_the_ticks_wrap():
    link = WrapperLink(Recorder(), inactivity_ms=1000)
    top = (1 << 30) - 100  # ticks_ms wraps at 2**30 on the boards
    link.open(top)
    link.poll(800)  # 900 ms later, after the wrap
    assert link.fault == 0
    link.poll(901)
    assert link.fault == FAULT_INACTIVE


# **** allocation ****


class Steady:
    # Repeatable feeds of one WPDU (answer taken each time) for assert_no_alloc.
    def __init__(self, link, data):
        self.link = link
        self.data = data

    def whole(self, now):
        link = self.link
        link.receive(self.data, 0, len(self.data), now)
        link.tx_len = 0

    def halves(self, now):
        link = self.link
        h = len(self.data) // 2
        link.receive(self.data, 0, h, now)
        link.receive(self.data, h, len(self.data) - h, now)
        link.tx_len = 0

    def bytewise(self, now):
        link = self.link
        for i in range(len(self.data)):
            link.receive(self.data, i, 1, now)
        link.tx_len = 0

    def timers(self, now):
        self.link.poll(now)
        self.link.rx_busy()


def test_steady_state_does_not_allocate():
    link = new_link()
    run(link, [WPDU_AARQ])
    s = Steady(link, GET_LDN)
    s.whole(0)
    assert link.pdus == 2  # the GET was answered
    assert_no_alloc(s.whole, 0, "GET WPDU whole")
    assert_no_alloc(s.halves, 0, "GET WPDU in halves")
    assert_no_alloc(s.bytewise, 0, "GET WPDU byte by byte")
    assert_no_alloc(s.timers, 0, "poll and rx_busy")
    ignored = Steady(link, wpdu(bytes(100), dst=5))
    assert_no_alloc(ignored.whole, 0, "WPDU for another wPort")
    both = Steady(link, GET_LDN + GET_LDN)
    assert_no_alloc(both.whole, 0, "back-to-back WPDUs")
    assert link.fault == 0 and link.app.assoc.associated


class Faulty:
    def __init__(self, link, data):
        self.link = link
        self.data = data

    def run(self, now):
        link = self.link
        link.close()
        link.open(now)
        link.receive(self.data, 0, len(self.data), now)


def test_faults_and_reconnects_do_not_allocate():
    link = new_link()
    assert_no_alloc(Faulty(link, wpdu(b"\x00", version=2)).run, 0, "bad version")
    assert_no_alloc(Faulty(link, wpdu(b"", length=5000)).run, 0, "oversize length")
    assert link.fault == FAULT_LENGTH


# **** an independent client: Gurux (CPython only) ****


def test_gurux_wrapper_client_associates_and_reads():
    if IS_MICROPYTHON:
        raise SkipTest("Gurux is a CPython library")
    from gurux_dlms import GXByteBuffer, GXDLMSClient, GXReplyData
    from gurux_dlms.enums import Authentication, InterfaceType
    from gurux_dlms.objects import GXDLMSData, GXDLMSRegister

    for sap, auth, pw in ((16, Authentication.NONE, None), (1, Authentication.LOW, "12345678")):
        c = GXDLMSClient(True, sap, 1, auth, pw, InterfaceType.WRAPPER)
        link = new_link()

        def ask(req):
            reply = GXReplyData()
            out = run(link, [bytes(req)])
            assert len(out) == 1, out
            assert out[0][2:6] == bytes([0, 1, 0, sap])  # from wPort 1 to the client's
            assert c.getData(GXByteBuffer(out[0]), reply, None)
            return reply

        assert c.snrmRequest() in (None, [])  # no link layer connection over the wrapper
        aarq = c.aarqRequest()[0]
        assert bytes(aarq[:6]) == bytes([0, 1, 0, sap, 0, 1])
        c.parseAareResponse(ask(aarq).data)
        assert link.app.assoc.associated and link.app.assoc.client_sap == sap
        ldn = GXDLMSData("0.0.42.0.0.255")
        c.updateValue(ldn, 2, ask(c.read(ldn, 2)[0]).value)
        assert bytes(ldn.value) == LDN
        reg = GXDLMSRegister("1.1.1.8.0.255")
        c.updateValue(reg, 2, ask(c.read(reg, 2)[0]).value)
        assert reg.value == (1 << 32) + 5
        ask(c.releaseRequest()[0])
        assert not link.app.assoc.associated
