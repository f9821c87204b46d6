# Protocol abuse through the whole stack (hdlc.HdlcLink in front of server.Server): two meters
# on one RS-485 bus, broadcasts, link resets in the middle of an association or a block
# transfer, stale and mismatched GET-next requests, invoke-ids, bad sequence numbers, oversize
# frames, an LLS brute force against the lockout, and the timers. Every answer is checked byte
# for byte against frames built by the independent builder in hdlc_util (bitwise CRC), and the
# steady-state paths are proven allocation-free.
#
# Cases already covered elsewhere are not repeated here (README, "Abuse cases"): the link alone
# in test_hdlc_link.py / test_hdlc_robust.py, the server alone in test_server.py.
from app_util import AARQ_LLS_12345678, AARQ_PUBLIC, aarq, build, get, get_list, get_next, set_req
from hdlc import NDM, NRM, HdlcLink
from hdlc_util import (
    C1,
    C16,
    DISC,
    LLC_REQ,
    LLC_RSP,
    MODES,
    SNRM,
    SRV,
    UI,
    EchoApp,
    feed,
    frame,
    i_ctrl,
    new_link,
    rr,
    server_addr,
)
from model import Meter
from support import assert_no_alloc, unhex, need_heap

SRV18 = server_addr(1, 18)
UA = 0x73
DM = 0x1F
FRMR = 0x97
LN_ASSOC = unhex("00 00 28 00 00 FF")
LN_LDN = unhex("00 00 2A 00 00 FF")
LN_STATUS = unhex("00 00 61 61 00 FF")
LDN_ANSWER = unhex("C4 01 C1 00 09 10") + b"SCH0000000000017"
AARE_OK = unhex(
    "61 29 A1 09 06 07 60 85 74 05 08 01 01 A2 03 02 01 00 A3 05 A1 03 02 01 00 BE 10 04 0E"
    " 08 00 06 5F 1F 04 00 00 12 1C 04 00 00 07"
)
# aarq() proposes 00 FF FF: every service we offer, 00 32 1C.
AARE_OK_ALL = AARE_OK[:-6] + unhex("32 1C 04 00 00 07")
AARE_AUTH_FAILURE = unhex(
    "61 17 A1 09 06 07 60 85 74 05 08 01 01 A2 03 02 01 01 A3 05 A1 03 02 01 0D"
)
NOT_ASSOCIATED = unhex("D8 01 01")
UA_DEFAULTS = unhex("81 80 12 05 01 80 06 01 80 07 04 00 00 00 01 08 04 00 00 00 01")


def answer(ctrl, info=b"", client=C16, srv=SRV, seg=False):
    # The frame a meter at address srv sends to client: built independently of firmware/.
    return frame(bytes([client]), srv, ctrl, info, seg)


def params(max_tx, max_rx, wtx=1, wrx=1):
    # SNRM information field (values seen from the client).
    body = bytes([5, 1, max_tx, 6, 1, max_rx, 7, 1, wtx, 8, 1, wrx])
    return bytes([0x81, 0x80, len(body)]) + body


def ua_info(max_tx, max_rx, wtx=1, wrx=1):
    # Our UA's parameters (values seen from the meter), in the form hdlc.py writes them.
    return bytes([0x81, 0x80, 0x12, 5, 1, max_tx, 6, 1, max_rx,
                  7, 4, 0, 0, 0, wtx, 8, 4, 0, 0, 0, wrx])


class Client:
    # One HDLC client talking to one meter address: keeps N(S)/N(R) the way a client does.
    def __init__(self, link, srv=SRV, addr=C16):
        self.link = link
        self.srv = srv
        self.addr = addr
        self.vs = 0
        self.vr = 0
        self.now = 0
        self.mode = "whole"

    def x(self, data):
        return feed(self.link, data, self.mode, self.now)

    def snrm(self, info=b""):
        self.vs = self.vr = 0
        return self.x(frame(self.srv, self.addr, SNRM, info))

    def disc(self):
        return self.x(frame(self.srv, self.addr, DISC))

    def i_frame(self, apdu, pf=True):
        # The request as the next I-frame; returns the answer frames. N(R) follows every
        # I-frame answered.
        f = frame(self.srv, self.addr, i_ctrl(self.vs, self.vr, pf), LLC_REQ + apdu)
        self.vs = (self.vs + 1) & 7
        out = self.x(f)
        for a in out:
            c = a[4 + len(self.srv)]
            if c & 1 == 0:
                self.vr = ((c >> 1) + 1) & 7
        return out

    def i_answer(self, apdu):
        # What the meter must send back for an unsegmented answer apdu to the last I-frame.
        return answer(i_ctrl((self.vr - 1) & 7, self.vs), LLC_RSP + apdu, self.addr, self.srv)

    def request(self, apdu, want):
        out = self.i_frame(apdu)
        assert out == [self.i_answer(want)], (apdu, out)


def stack(unit=17, srv=None, **kw):
    srv = srv or build()
    return HdlcLink(srv, unit_id=unit, **kw), srv


def associated(unit=17, req=AARQ_PUBLIC, want=AARE_OK, srv=None, **kw):
    link, srv = stack(unit, srv, **kw)
    c = Client(link, server_addr(1, unit))
    assert c.snrm() == [answer(UA, UA_DEFAULTS, srv=c.srv)]
    c.request(req, want)
    return c, srv


# **** two meters on one bus ****


class Bus:
    # RS-485: every frame written by anyone reaches every other station. Returns the answers
    # as (meter index, frame); a meter's answer is heard by the other meters too.
    def __init__(self, links):
        self.links = links

    def send(self, data, mode="whole", now=0):
        heard = []
        pending = [(-1, data)]
        while pending:
            src, d = pending.pop(0)
            for k, link in enumerate(self.links):
                if k != src:
                    for f in feed(link, d, mode, now):
                        heard.append((k, f))
                        pending.append((k, f))
        return heard


def _bus_script(clients):
    # One client reads meter 0 and meter 1 in turn, sessions open on both at once: SNRM,
    # AARQ, GETs, a segmented answer polled with RR while the other meter is being read, DISC.
    # Yields (meter index, frame) in the order the client sends them.
    a, b = clients
    for k, c in enumerate(clients):
        yield k, frame(c.srv, c.addr, SNRM)
    for k, c in enumerate(clients):
        yield k, frame(c.srv, c.addr, i_ctrl(0, 0), LLC_REQ + aarq())
    yield 0, frame(a.srv, a.addr, i_ctrl(1, 1), LLC_REQ + get(15, LN_ASSOC, 2))  # 3 segments
    for n in range(2, 4):
        req = LLC_REQ + get(1, LN_LDN, 2, iip=0xC0 + n)
        yield 1, frame(b.srv, b.addr, i_ctrl(n - 1, n - 1), req)
        yield 0, frame(a.srv, a.addr, rr(n))
    yield 1, frame(b.srv, b.addr, i_ctrl(3, 3), LLC_REQ + get(1, LN_LDN, 2, iip=0xC4))
    yield 0, frame(a.srv, a.addr, i_ctrl(2, 4), LLC_REQ + get(1, LN_STATUS, 2))
    for k, c in enumerate(clients):
        yield k, frame(c.srv, c.addr, DISC)


def _object_list():
    # The object list as the server alone answers it (test_server proves that answer).
    srv = build()
    resp = bytearray(1024)
    for req in (aarq(), get(15, LN_ASSOC, 2)):
        n = srv.on_pdu(16, req, len(req), resp)
    return bytes(resp[:n])


def test_two_meters_on_one_bus_each_answer_only_their_own_frames():
    need_heap(114 * 1024)  # 64-bit unix port, fresh process, +10 %
    for mode in MODES:
        links = [stack(17)[0], stack(18)[0]]
        alone = [stack(17)[0], stack(18)[0]]
        clients = [Client(links[0], SRV), Client(links[1], SRV18)]
        bus = Bus(links)
        got = [[], []]
        for k, f in _bus_script(clients):
            heard = bus.send(f, mode)
            assert len(heard) == 1 and heard[0][0] == k, (k, heard)  # only the addressed one
            got[k].append(heard[0][1])
            assert feed(alone[k], f) == [heard[0][1]]  # as if it were alone on the line
        a, b = got
        assert a[0] == answer(UA, UA_DEFAULTS) and b[0] == answer(UA, UA_DEFAULTS, srv=SRV18)
        assert a[1] == answer(i_ctrl(0, 1), LLC_RSP + AARE_OK_ALL)
        assert b[1] == answer(i_ctrl(0, 1), LLC_RSP + AARE_OK_ALL, srv=SRV18)
        for n in range(2, 5):
            ldn = unhex("C4 01") + bytes([0xC0 + n]) + LDN_ANSWER[3:]
            assert b[n] == answer(i_ctrl(n - 1, n), LLC_RSP + ldn, srv=SRV18)
        # Meter 17's object list arrived whole across the other meter's traffic.
        body = b"".join(f[11:-3] for f in a[2:5])
        assert body[:3] == LLC_RSP and body[3:7] == unhex("C4 01 C1 00")
        assert [f[1] & 0x08 for f in a[2:5]] == [8, 8, 0]
        assert [(f[8] >> 1) & 7 for f in a[2:5]] == [1, 2, 3]
        assert body == LLC_RSP + _object_list(), body
        assert a[5] == answer(i_ctrl(4, 3), LLC_RSP + unhex("C4 01 C1 00 12 00 40"))
        assert a[6] == answer(UA) and b[5] == answer(UA, srv=SRV18)
        assert links[0].state == NDM and links[1].state == NDM


def test_answers_of_another_meter_are_not_taken_as_requests():
    # Meter 18's answers to the management client (0x03) begin like a frame to our logical
    # device in the 1-byte form (upper address 1); their source address has 4 bytes, which no
    # request has. Whole, split and byte by byte: silence, and our session goes on. (With
    # 1-byte server addresses an answer to client 0x03 is indistinguishable from a request:
    # that form is for point-to-point lines only, 46 6.4.2.2.)
    other = (
        answer(UA, UA_DEFAULTS, C1, SRV18),
        answer(i_ctrl(0, 1), LLC_RSP + AARE_OK, C1, SRV18),
        answer(rr(1), b"", C1, SRV18),
        answer(DM, b"", C1, server_addr(1, 18, 2)),
        answer(i_ctrl(1, 2), LLC_RSP + LDN_ANSWER, C16, SRV18),
    )
    for mode in MODES:
        c, srv = associated()
        c.mode = mode
        for f in other:
            assert c.x(f) == [] and c.link.state == NRM
        c.request(get(1, LN_LDN, 2), LDN_ANSWER)


_BROADCASTS = (
    server_addr(0x3FFF, 0x3FFF),  # every logical device of every physical device
    server_addr(1, 0x3FFF),  # the management logical device of every physical device
    server_addr(0x3FFF, 17),  # every logical device of meter 17
    server_addr(0x7F, 0x7F, 2),
    server_addr(0x7F, 0, 1),
)


def test_broadcasts_are_never_answered_and_leave_the_link_alone():
    # All-station addresses (46 6.4.2.2): every station receives the frame, so an answer would
    # collide on the bus. Commands with the poll bit, connected or not, get silence; nothing
    # connects, disconnects or moves a sequence number.
    cmds = (SNRM, DISC, rr(0), rr(3), i_ctrl(0, 0), 0x19, UI | 0x10)
    for connected in (False, True):
        for mode in MODES:
            link, srv = stack(17)
            c = Client(link)
            c.mode = mode
            if connected:
                c.snrm()
                c.request(AARQ_PUBLIC, AARE_OK)
            for dst in _BROADCASTS:
                for ctrl in cmds:
                    info = LLC_REQ + get(1, LN_LDN, 2) if ctrl & 1 == 0 or ctrl == UI else b""
                    assert feed(link, frame(dst, C16, ctrl, info), mode) == [], (dst, hex(ctrl))
            seq = 1 if connected else 0
            assert link.state == (NRM if connected else NDM) and link.vs == link.vr == seq
            if connected:
                c.request(get(1, LN_LDN, 2), LDN_ANSWER)


def test_broadcast_for_another_physical_device_is_not_taken():
    # Regression: the all-station upper address with meter 18's lower address is a broadcast
    # to meter 18's logical devices; an all-station lower address with logical device 5 is for
    # logical device 5 everywhere. Neither is for us (logical device 1 at unit 17), not even
    # as an unconfirmed UI frame.
    mine = (server_addr(0x3FFF, 17), server_addr(1, 0x3FFF), server_addr(0x3FFF, 0x3FFF),
            server_addr(0x7F, 17, 2), server_addr(1, 0x7F, 2))
    theirs = (server_addr(0x3FFF, 18), server_addr(5, 0x3FFF), server_addr(0x7F, 18, 2),
              server_addr(5, 0x7F, 2))
    for dst in mine + theirs:
        app = EchoApp()
        link = new_link(app, unit_id=17)
        assert feed(link, frame(dst, C16, UI, LLC_REQ + b"\x01")) == []
        assert app.ui == (1 if dst in mine else 0), dst


# **** link resets in the middle of things ****


def test_snrm_mid_association_releases_it_and_answers_fresh_ua():
    for mode in MODES:
        c, srv = associated()
        c.mode = mode
        c.request(get(1, LN_LDN, 2), LDN_ANSWER)
        # A new SNRM resets the link: negotiated afresh, sequence numbers back to 0.
        assert c.snrm(params(64, 100)) == [answer(UA, ua_info(100, 64))]
        assert not srv.assoc.associated and c.link.max_tx == 100 and c.link.max_rx == 64
        c.request(get(1, LN_LDN, 2), NOT_ASSOCIATED)
        assert c.snrm() == [answer(UA, UA_DEFAULTS)]
        c.request(AARQ_PUBLIC, AARE_OK)
        c.request(get(1, LN_LDN, 2), LDN_ANSWER)


def test_disc_from_another_client_gets_dm_and_leaves_the_session():
    # Only the connected client can disconnect; another one's DISC gets DM (46 6.4.4.4.3.3)
    # and our link, association and sequence numbers stay.
    for mode in MODES:
        c, srv = associated()
        c.mode = mode
        assert c.x(frame(SRV, C1, DISC)) == [answer(DM, client=C1)]
        assert c.link.state == NRM and srv.assoc.associated
        c.request(get(1, LN_LDN, 2), LDN_ANSWER)


def _long_get(c):
    # Starts a block transfer of the object list (the association asked for 40-byte PDUs):
    # returns block 1's APDU.
    out = c.i_frame(get(15, LN_ASSOC, 2))
    assert len(out) == 1
    apdu = out[0][14:-3]
    assert apdu[:9] == unhex("C4 02 C1 00 00 00 00 01 00") and len(apdu) <= 40, apdu
    assert out == [c.i_answer(apdu)]
    return apdu


def test_disc_mid_block_transfer_ends_it():
    for mode in MODES:
        c, srv = associated(req=aarq(max_pdu=40), want=AARE_OK_ALL)
        c.mode = mode
        _long_get(c)
        assert c.disc() == [answer(UA)]
        # Disconnected: the GET-next gets DM, not block 2.
        assert c.i_frame(get_next(1)) == [answer(DM)]
        assert c.snrm() == [answer(UA, UA_DEFAULTS)]
        c.request(get_next(1), NOT_ASSOCIATED)
        c.request(aarq(max_pdu=40), AARE_OK_ALL)
        c.request(get_next(1), unhex("C4 02 C1 01 00 00 00 01 01 10"))  # no long GET


def test_disc_mid_segmented_answer_ends_it():
    # The link's own segmentation: after DISC and SNRM the client's RR gets RR, not the old
    # answer's next segment.
    c, srv = associated(req=aarq(), want=AARE_OK_ALL)
    out = c.i_frame(get(15, LN_ASSOC, 2))
    assert len(out) == 1 and out[0][1] & 0x08  # first of several segments
    assert c.disc() == [answer(UA)]
    assert c.snrm() == [answer(UA, UA_DEFAULTS)]
    assert c.x(frame(SRV, C16, rr(0))) == [answer(rr(0))]
    assert c.x(frame(SRV, C16, rr(1))) == [answer(FRMR, bytes([rr(1), 0, 0x08]))]


# **** GET-next out of turn ****


def test_get_next_of_an_earlier_transfer_after_a_new_get():
    # Transfer 1 reaches block 2; a new GET-Request-Normal starts transfer 2 at block 1 (it
    # abandons transfer 1, GB 9.4.6); a GET-next still counting transfer 1's blocks does not
    # match: data-block-number-invalid, and transfer 2 ends too (as any wrong number does).
    c, srv = associated(req=aarq(max_pdu=40), want=AARE_OK_ALL)
    first = _long_get(c)
    out = c.i_frame(get_next(1))
    assert out[0][14:-3][:9] == unhex("C4 02 C1 00 00 00 00 02 00")
    assert _long_get(c) == first  # numbering starts again at 1
    c.request(get_next(2), unhex("C4 02 C1 01 00 00 00 02 01 13"))
    c.request(get_next(1), unhex("C4 02 C1 01 00 00 00 01 01 10"))
    # Block number 0 (before the first) is a wrong number as well.
    _long_get(c)
    c.request(get_next(0), unhex("C4 02 C1 01 00 00 00 00 01 13"))


def test_answers_carry_each_requests_invoke_id():
    # GB 9.3.x: every response carries the invoke-id-and-priority of the request it answers,
    # byte for byte (all 256 values). A GET-next with another invoke-id than the GET that
    # began the transfer (a client that counts invoke-ids per request) continues the transfer
    # by its block number and is answered with its own invoke-id, as Gurux's server does.
    c, srv = associated(req=aarq(max_pdu=40), want=AARE_OK_ALL)
    for iip in (0x00, 0x01, 0x4F, 0x81, 0xC1, 0xFF):
        c.request(get(1, LN_STATUS, 2, iip=iip), bytes([0xC4, 1, iip, 0, 0x12, 0, 0x40]))
        c.request(get(1, LN_LDN, 3, iip=iip), bytes([0xC4, 1, iip, 1, 4]))
        one = get_list([(1, LN_STATUS, 2)], iip=iip)
        c.request(one, bytes([0xC4, 3, iip, 1, 0, 0x12, 0, 0x40]))
        c.request(set_req(1, LN_LDN, 2, b"\x09\x00", iip=iip), bytes([0xC5, 1, iip, 3]))
        c.request(get_next(9, iip=iip), bytes([0xC4, 2, iip, 1, 0, 0, 0, 9, 1, 0x10]))
    first = _long_get(c)
    out = c.i_frame(get_next(1, iip=0x47))
    apdu = out[0][14:-3]
    assert apdu[:9] == unhex("C4 02 47 00 00 00 00 02 00") and out == [c.i_answer(apdu)]
    c.request(get_next(7, iip=0x2A), unhex("C4 02 2A 01 00 00 00 07 01 13"))
    assert first[2] == 0xC1


# **** sequence numbers ****


def test_i_frame_with_invalid_nr_gets_frmr_until_disc():
    for mode in MODES:
        c, srv = associated()
        c.mode = mode
        # N(R) = 3 acknowledges frames we never sent (V(S) = 1): FRMR with reason Z, our
        # V(S) = 1 and V(R) = 1 in the second byte.
        bad = frame(SRV, C16, i_ctrl(1, 3), LLC_REQ + get(1, LN_LDN, 2))
        frmr = answer(FRMR, bytes([i_ctrl(1, 3), 0x22, 0x08]))
        assert c.x(bad) == [frmr]
        assert c.x(frame(SRV, C16, rr(1))) == [answer(FRMR, bytes([rr(1), 0x22, 0x08]))]
        assert c.disc() == [answer(UA)]
        assert c.x(bad) == [answer(DM)]
        assert not srv.assoc.associated


def test_out_of_sequence_i_frames_are_not_delivered():
    c, srv = associated()
    before = srv.svc.iip
    # N(S) = 4 where 1 is due: without the poll bit silence, with it RR(1); not delivered.
    assert c.x(frame(SRV, C16, i_ctrl(4, 1, pf=False), LLC_REQ + get(1, LN_LDN, 2, iip=9))) == []
    polled = frame(SRV, C16, i_ctrl(4, 1), LLC_REQ + get(1, LN_LDN, 2, iip=9))
    assert c.x(polled) == [answer(rr(1))]
    assert srv.svc.iip == before
    # The AARQ's frame again after its AARE was acknowledged (N(R) = 1): a duplicate, RR(1);
    # the association is not made twice.
    assoc = srv.associations
    assert c.x(frame(SRV, C16, i_ctrl(0, 1), LLC_REQ + AARQ_PUBLIC)) == [answer(rr(1))]
    # N(R) going back (0 after 1 acknowledged our frame 0) is invalid: FRMR Z.
    assert c.x(frame(SRV, C16, i_ctrl(1, 0), LLC_REQ + AARQ_PUBLIC)) == [
        answer(FRMR, bytes([i_ctrl(1, 0), 0x22, 0x08]))]
    assert srv.associations == assoc and srv.svc.iip == before


# **** oversize frames ****


def test_oversize_frames_get_frmr_or_silence_then_recover():
    need_heap(101 * 1024)  # 64-bit unix port, fresh process, +10 %
    # Longer than the receive buffer (max_info_rx 128 + header): connected and from our
    # client FRMR Y (rejected control, V(S)/V(R), reason), the FCS could not be checked;
    # disconnected or from another client: silence. DISC or SNRM clears the condition.
    for mode in MODES:
        link, srv = stack(17)
        c = Client(link)
        c.mode = mode
        big = LLC_REQ + get(1, LN_LDN, 2) + bytes(300)
        assert c.x(frame(SRV, C16, i_ctrl(0, 0), big)) == []  # NDM
        c.snrm()
        c.request(AARQ_PUBLIC, AARE_OK)
        assert c.x(frame(SRV, C1, i_ctrl(0, 0), big)) == []  # another client
        assert c.x(frame(SRV, C16, i_ctrl(1, 1), big)) == [
            answer(FRMR, bytes([i_ctrl(1, 1), 0x22, 0x04]))]
        assert c.disc() == [answer(UA)]
        assert c.snrm() == [answer(UA, UA_DEFAULTS)]
        c.request(AARQ_PUBLIC, AARE_OK)
        # Longer than negotiated but inside the buffer: the same FRMR, cleared by SNRM.
        link2, _ = stack(17, max_info_rx=256)
        c2 = Client(link2)
        c2.mode = mode
        c2.snrm()
        assert c2.x(frame(SRV, C16, i_ctrl(0, 0), LLC_REQ + bytes(130))) == [
            answer(FRMR, bytes([i_ctrl(0, 0), 0x00, 0x04]))]
        assert c2.snrm() == [answer(UA, UA_DEFAULTS)]
        c2.request(AARQ_PUBLIC, AARE_OK)


# **** LLS brute force ****


def test_lls_brute_force_hits_the_configured_lockout():
    # Config lls_lockout_failures = 2, lls_lockout_s = 30. Link resets do not clear the count,
    # the public association keeps working during the lockout, and the right password is
    # refused until it ends.
    meter = Meter({"lls_password": "12345678", "lls_lockout_failures": 2, "lls_lockout_s": 30,
                   "log_exports": []})
    srv = meter.server
    link = HdlcLink(srv, unit_id=17)
    mgmt = Client(link, SRV, C1)
    pub = Client(link, SRV, C16)
    wrong = aarq(mech=1, password=b"12345679")
    srv.poll(1000)
    for k in range(2):
        assert mgmt.snrm() == [answer(UA, UA_DEFAULTS, C1)]  # a fresh link every time
        mgmt.request(wrong, AARE_AUTH_FAILURE)
    assert srv.lockout.locked
    mgmt.snrm()
    mgmt.request(AARQ_LLS_12345678, AARE_AUTH_FAILURE)  # right password, locked out
    pub.snrm()
    pub.request(AARQ_PUBLIC, AARE_OK)
    pub.request(get(1, LN_LDN, 2), LDN_ANSWER)
    srv.poll(30999)
    mgmt.snrm()
    mgmt.request(AARQ_LLS_12345678, AARE_AUTH_FAILURE)
    srv.poll(31000)
    mgmt.request(AARQ_LLS_12345678, AARE_OK)
    assert srv.assoc.client_sap == 1 and not srv.lockout.locked


def test_lls_lockout_holds_on_every_port_of_the_meter():
    # RS-485 and the TCP wrapper (or the simulator's transports) each have a server: the
    # guesses of both count together, and the lockout one earns holds on the other.
    meter = Meter({"lls_password": "12345678", "lls_lockout_failures": 2, "lls_lockout_s": 30,
                   "log_exports": []})
    other = meter.port_server()
    a = Client(HdlcLink(meter.server, unit_id=17), SRV, C1)
    b = Client(HdlcLink(other, unit_id=17), SRV, C1)
    wrong = aarq(mech=1, password=b"12345679")
    meter.server.poll(1000)
    other.poll(1000)
    a.snrm()
    a.request(wrong, AARE_AUTH_FAILURE)
    b.snrm()
    b.request(wrong, AARE_AUTH_FAILURE)  # the second guess, on the other port: locked
    a.snrm()
    a.request(AARQ_LLS_12345678, AARE_AUTH_FAILURE)
    b.snrm()
    b.request(AARQ_LLS_12345678, AARE_AUTH_FAILURE)
    other.poll(31000)
    b.request(AARQ_LLS_12345678, AARE_OK)
    assert other.assoc.client_sap == 1 and not meter.server.assoc.associated


# **** timers ****


def test_inactivity_drops_the_link_and_association_then_snrm_works():
    c, srv = associated(inactivity_ms=10000)
    c.now = 10000
    c.request(get(1, LN_LDN, 2), LDN_ANSWER)
    c.link.poll(20000)
    assert c.link.state == NRM
    c.now = 20001
    assert c.i_frame(get(1, LN_LDN, 2)) == [answer(DM)]
    assert c.link.state == NDM and not srv.assoc.associated
    assert c.snrm() == [answer(UA, UA_DEFAULTS)]
    c.request(get(1, LN_LDN, 2), NOT_ASSOCIATED)
    c.request(AARQ_PUBLIC, AARE_OK)
    c.request(get(1, LN_LDN, 2), LDN_ANSWER)


def test_half_frame_then_silence_leaves_the_session_in_step():
    # The first half of a GET, then silence past rx_timeout: the half is dropped, nothing was
    # delivered or acknowledged, and the whole GET that follows is answered with the
    # sequence numbers it would have had.
    c, srv = associated(rx_timeout_ms=500)
    f = frame(SRV, C16, i_ctrl(1, 1), LLC_REQ + get(1, LN_LDN, 2, iip=0x99))
    c.now = 1000
    assert c.x(f[: len(f) // 2]) == []
    c.link.poll(1501)
    c.now = 1502
    assert c.link.vr == 1
    c.request(get(1, LN_LDN, 2), LDN_ANSWER)


# **** allocation ****


class _BusDriver:
    # Frames in turn onto a bus of links, each link's answer forwarded to the others, as
    # Bus does but allocation-free: frames are offsets into one stream. Counts the answers
    # per link and any answer to an answer (there must be none).
    def __init__(self, links, frames):
        self.links = links
        self.stream = b"".join(frames)
        self.offs = []
        p = 0
        for f in frames:
            self.offs.append(p)
            p += len(f)
        self.offs.append(p)
        self.answers = [0] * len(links)
        self.echoes = 0
        self.now = 0

    def _feed(self, k, data, off, n):
        link = self.links[k]
        link.app.poll(self.now)
        end = off + n
        while True:
            off += link.receive(data, off, end - off, self.now)
            if not link.tx_len:
                return
            self.answers[k] += 1
            for j in range(len(self.links)):
                if j != k:
                    other = self.links[j]
                    other.receive(link.tx, 0, link.tx_len, self.now)
                    if other.tx_len:
                        self.echoes += 1
                        other.tx_len = 0
            link.tx_len = 0

    def run(self, _):
        offs = self.offs
        for i in range(len(offs) - 1):
            self.now += 10
            for k in range(len(self.links)):
                self._feed(k, self.stream, offs[i], offs[i + 1] - offs[i])


def _abuse_frames():
    # Every abuse path of this file, as one client's byte stream to meter 17 (meter 18 on the
    # bus hears it all, and meter 17's answers).
    a = []
    mgmt = frame(SRV, C1, SNRM)
    a.append(frame(SRV, C16, SNRM))
    a.append(frame(SRV, C16, i_ctrl(0, 0), LLC_REQ + aarq(max_pdu=40)))
    a.append(frame(SRV, C16, i_ctrl(1, 1), LLC_REQ + get(15, LN_ASSOC, 2)))
    a.append(frame(SRV, C16, i_ctrl(2, 2), LLC_REQ + get_next(1, iip=0x47)))
    a.append(frame(SRV, C16, i_ctrl(3, 3), LLC_REQ + get_next(7)))
    a.append(frame(SRV, C16, i_ctrl(4, 4), LLC_REQ + get(15, LN_ASSOC, 2)))
    a.append(frame(SRV18, C16, SNRM))  # the other meter's traffic in between
    a.append(frame(SRV18, C16, i_ctrl(0, 0), LLC_REQ + AARQ_PUBLIC))
    a.append(frame(SRV, C16, i_ctrl(5, 5), LLC_REQ + get_next(1)))
    for dst in _BROADCASTS:
        a.append(frame(dst, C16, SNRM))
        a.append(frame(dst, C16, UI, LLC_REQ + b"\x01"))
    a.append(frame(server_addr(0x3FFF, 18), C16, UI, LLC_REQ + b"\x01"))
    a.append(frame(SRV, C16, i_ctrl(7, 6, pf=False), LLC_REQ + get(1, LN_LDN, 2)))
    a.append(frame(SRV, C16, i_ctrl(6, 6), LLC_REQ + get(1, LN_LDN, 2, iip=0x81)))
    a.append(frame(SRV, C16, DISC))  # mid association
    a.append(frame(SRV, C16, SNRM, params(64, 100)))
    a.append(frame(SRV, C16, i_ctrl(0, 0), LLC_REQ + get_next(2)))
    a.append(frame(SRV, C16, i_ctrl(1, 3), LLC_REQ + get(1, LN_LDN, 2)))  # bad N(R): FRMR
    a.append(frame(SRV, C16, rr(0)))  # FRMR again
    a.append(frame(SRV, C16, SNRM))
    a.append(frame(SRV, C16, i_ctrl(0, 0), LLC_REQ + get(1, LN_LDN, 2) + bytes(300)))  # oversize
    a.append(frame(SRV, C16, DISC))
    for _ in range(4):
        a.append(mgmt)
        a.append(frame(SRV, C1, i_ctrl(0, 0), LLC_REQ + aarq(mech=1, password=b"nope")))
    a.append(mgmt)
    a.append(frame(SRV, C1, i_ctrl(0, 0), LLC_REQ + AARQ_LLS_12345678))  # locked out
    a.append(frame(SRV, C1, DISC))
    return a


def test_abuse_paths_on_a_bus_allocate_nothing():
    frames = _abuse_frames()
    links = [stack(17)[0], stack(18)[0]]
    drv = _BusDriver(links, frames)
    drv.run(0)
    # Meter 17 answers every frame to it except the I-frame without poll bit; meter 18
    # answers its SNRM and AARQ; nobody answers a broadcast or an answer.
    to17 = sum(1 for f in frames if f[3:7] == SRV) - 1
    assert drv.answers == [to17, 2] and drv.echoes == 0, (drv.answers, to17)
    assert links[0].app.lockout.locked
    drv.answers = [0, 0]
    assert_no_alloc(drv.run, 0, "two meters on a bus, abuse paths")
    # Runs twice (measured, then locked); meter 18 is associated by then (AARQ answered).
    assert drv.answers == [2 * to17, 4] and drv.echoes == 0, drv.answers
