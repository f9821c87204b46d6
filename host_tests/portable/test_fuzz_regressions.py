# Regressions for the bugs the fuzzer (tools/fuzz.py) found, one test per bug, each with the
# input that showed it. Each must fail on the code before its fix.
import acse
from app_util import build
from hdlc import HdlcLink
from hdlc_util import C16, LLC_REQ, SNRM, SRV, feed, frame, i_ctrl, parse
from support import assert_no_alloc
from wrapper import WrapperLink

PDU = 1024


def _full_aarq_empty_user_info():
    # An AARQ exactly PDU bytes long whose last component is user-information holding an
    # empty OCTET STRING (BE 02 04 00), so the InitiateRequest tag would lie just past the
    # request's end. Found by the hypothesis engine (AARQ padded to the receive buffer's end,
    # InitiateRequest cut to nothing); acse.Aarq._user_info read buf[end].
    ctx = bytes([0xA1, 0x09, 0x06, 0x07, 0x60, 0x85, 0x74, 0x05, 0x08, 0x01, 0x01])
    pad = PDU - 4 - len(ctx) - 4 - 4  # AARQ header 4, padding header 4, user-info 4
    body = bytes([0x88, 0x82, pad >> 8, pad & 0xFF]) + bytes(pad) + ctx + b"\xBE\x02\x04\x00"
    return bytes([0x60, 0x82, len(body) >> 8, len(body) & 0xFF]) + body


def test_aarq_with_empty_user_information_at_the_buffer_end_is_refused():
    req = _full_aarq_empty_user_info()
    assert len(req) == PDU
    a = acse.Aarq()
    # The request as the wrapper hands it up: a view that ends where the APDU ends.
    assert a.parse(memoryview(req), 0, PDU) == acse.MALFORMED
    srv = build(pdu_size=PDU)
    resp = bytearray(PDU)
    n = srv.on_pdu(16, memoryview(req), PDU, resp)
    # AARE rejected-permanent (result 1), no reason given (acse-service-user 1).
    assert resp[0] == acse.AARE and n > 20
    assert bytes(resp[13:18]) == b"\xA2\x03\x02\x01\x01"
    assert not srv.assoc.associated


class _Wpdus:
    # The full-size AARQ over the wrapper, then a valid one: the link stays in step.
    def __init__(self):
        self.link = WrapperLink(build(pdu_size=PDU), pdu_size=PDU)
        req = _full_aarq_empty_user_info()
        self.stream = bytes([0, 1, 0, 16, 0, 1, PDU >> 8, PDU & 0xFF]) + req
        self.answers = bytearray(4)

    def run(self, _):
        link = self.link
        link.close()
        link.open(0)
        s = self.stream
        off = 0
        k = 0
        while off < len(s):
            off += link.receive(s, off, len(s) - off, 0)
            if link.tx_len:
                self.answers[k & 3] = link.tx[8]
                k += 1
                link.tx_len = 0
        return k


def test_full_size_aarq_over_the_wrapper_is_answered_and_allocates_nothing():
    w = _Wpdus()
    assert w.run(0) == 1
    assert w.answers[0] == acse.AARE and not w.link.fault
    assert_no_alloc(w.run, 0, "refusing a full-size malformed AARQ over the wrapper")


def test_full_size_aarq_over_hdlc_segments_is_refused():
    link = HdlcLink(build(pdu_size=PDU), unit_id=17)
    feed(link, frame(SRV, C16, SNRM))
    info = LLC_REQ + _full_aarq_empty_user_info()
    out = []
    ns = 0
    for off in range(0, len(info), 128):
        seg = info[off:off + 128]
        more = off + 128 < len(info)
        out = feed(link, frame(SRV, C16, i_ctrl(ns, 0), seg, seg=more))
        ns = (ns + 1) & 7
    seg, d, s, ctrl, data = parse(out[-1])
    assert data[3] == acse.AARE and data[3 + 17] == 0x01  # rejected-permanent
