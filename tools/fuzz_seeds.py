# fuzz_seeds.py: the mutation fuzzer's seeds (tools/fuzz_mutate.py): valid requests of every
# kind the server parses (and some it refuses), and the byte streams of real client sessions
# captured against the harness's own meter. Portable; setup only (allocates).
import hdlc_util
from app_util import AARQ_LLS_12345678, aarq, get, get_list, get_next, set_req
from fuzz_harness import ADDRS, HDLC, LLC, LN_CLOCK, MAX_INFO, P_NONE, RX_TIMEOUT_MS, WRAPPER, wpdu

_LN_ASSOC = b"\x00\x00\x28\x00\x00\xFF"
_LN_LP = b"\x01\x00\x63\x01\x00\xFF"
_LN_BILL = b"\x01\x00\x62\x01\x00\xFF"
_LN_REG = b"\x01\x01\x01\x08\x00\xFF"
_LN_LDN = b"\x00\x00\x2A\x00\x00\xFF"

_DT = bytes([0x09, 0x0C, 0x07, 0xEA, 0x0C, 0x05, 0xFF, 0x0A, 0x00, 0x00, 0xFF, 0x80, 0x00, 0xFF])
_DT2 = bytes([0x09, 0x0C, 0x07, 0xEA, 0x0C, 0x06, 0xFF, 0x00, 0x00, 0x00, 0xFF, 0x80, 0x00, 0xFF])
_TIME_COL = bytes([0x02, 0x04, 0x12, 0x00, 0x08, 0x09, 0x06]) + LN_CLOCK + \
    bytes([0x0F, 0x02, 0x12, 0x00, 0x00])


def seed_apdus():
    # Requests of every kind the server parses, and some it refuses.
    rng = b"\x02\x04" + _TIME_COL + _DT + _DT2 + b"\x01\x00"
    entry = bytes([0x02, 0x04, 0x06, 0, 0, 0, 1, 0x06, 0, 0, 0, 5, 0x12, 0, 1, 0x12, 0, 0])
    return [
        aarq(), AARQ_LLS_12345678, aarq(mech=1, password=b"wrong-pw"),
        aarq(mech=2, password=b"0123456789ABCDEF"), aarq(version=5), aarq(conformance=0),
        aarq(max_pdu=12), aarq(ctx=3), aarq(max_pdu=0),
        get(8, LN_CLOCK, 2), get(8, LN_CLOCK, 0), get(8, LN_CLOCK, 5), get(15, _LN_ASSOC, 2),
        get(1, _LN_LDN, 2), get(3, _LN_REG, 3), get(7, _LN_LP, 2), get(7, _LN_LP, 3),
        get(7, _LN_LP, 2, sel=(1, rng)), get(7, _LN_LP, 2, sel=(2, entry)), get(7, _LN_BILL, 0),
        get(1, b"\x00\x00\x63\x63\x63\xFF", 2), get(3, LN_CLOCK, 2),
        get_next(1), get_next(0),
        get_list([(3, _LN_REG, 2), (3, _LN_REG, 3), (8, LN_CLOCK, 2), (7, _LN_LP, 4)]),
        set_req(8, LN_CLOCK, 2, _DT), set_req(3, _LN_REG, 2, bytes(9)),
        bytes([0xC3, 0x01, 0xC1, 0x00, 0x0F]) + _LN_ASSOC + b"\x01\x01\x09\x04ABCD",
        b"\x62\x00", b"\x62\x03\x80\x01\x00", b"\xC0\x01", b"\xCC\x05\x01\x02\x03\x04\x05",
        b"\x00", b"\xD8\x01\x01",
    ]


def capture_sessions(h):
    # Byte streams of real client sessions against the harness's own meter (each request
    # answered before the next, segmented answers polled with RR, block transfers continued):
    # (transport, prefix, bytes) seeds for the stream mutator.
    apdus = seed_apdus()
    out = [(HDLC, P_NONE, _hdlc_session(h, 0x21, apdus[:1] + apdus[9:22], b"")),
           (HDLC, P_NONE, _hdlc_session(h, 0x03, [AARQ_LLS_12345678] + apdus[24:28] + [b"\x62\x00"],
                                        b"")),
           (HDLC, P_NONE, _hdlc_session(h, 0x21, [aarq(), get(15, _LN_ASSOC, 2)],
                                        bytes([0x81, 0x80, 0x06, 0x05, 0x01, 0x40, 0x06, 0x01,
                                               0x40]))),
           (HDLC, P_NONE, _hdlc_session(h, 0x21, [aarq(), get(7, _LN_LP, 2), get_next(1)],
                                        bytes([0x81, 0x80, 0x0E, 0x05, 0x02, 0x02, 0x00, 0x06,
                                               0x02, 0x02, 0x00, 0x07, 0x01, 0x07, 0x08, 0x01,
                                               0x07]))),  # 512 bytes, window 7, if allowed
           (HDLC, P_NONE, _misc_frames())]
    w = b""
    for a in [aarq()] + apdus[9:13] + [get_next(1), b"\x62\x00"]:
        w += wpdu(16, 1, a)
    out.append((WRAPPER, P_NONE, w))
    out.append((WRAPPER, P_NONE, wpdu(1, 1, AARQ_LLS_12345678) + wpdu(1, 1, apdus[25]) +
                wpdu(16, 99, aarq()) + wpdu(16, 1, b"")))
    h.recover()
    return out


def _hdlc_session(h, client, apdus, snrm_info):
    fr = hdlc_util.frame
    srv = ADDRS[0]
    link = h.link
    h.now += RX_TIMEOUT_MS + 1
    link.poll(h.now)
    rec = bytearray()
    ns = nr = 0

    def send(f):
        rec.extend(f)
        h.now += 1
        return hdlc_util.feed(link, f, now=h.now)

    send(fr(srv, client, 0x93, snrm_info))
    todo = list(apdus)
    while todo:
        info = LLC + todo.pop(0)
        while True:  # segments of at most MAX_INFO
            seg = info[:MAX_INFO]
            info = info[MAX_INFO:]
            ans = send(fr(srv, client, hdlc_util.i_ctrl(ns, nr), seg, seg=bool(info)))
            ns = (ns + 1) & 7
            if not info:
                break
        resp = b""
        while ans:  # a window of I-frames; RR for the next one while segmented
            for f in ans:
                s, d, src, ctrl, data = hdlc_util.parse(f)
                if not ctrl & 1:
                    nr = ((ctrl >> 1) + 1) & 7
                    resp += data
            if ctrl & 1 or not s:
                break
            ans = send(fr(srv, client, hdlc_util.rr(nr), b""))
        resp = resp[3:]
        if len(resp) > 8 and resp[0] == 0xC4 and resp[1] == 2 and resp[3] == 0:
            blk = (resp[4] << 24) | (resp[5] << 16) | (resp[6] << 8) | resp[7]
            if blk < 6:
                todo.insert(0, get_next(blk))
    send(fr(srv, client, 0x53))
    return bytes(rec)


def _misc_frames():
    # UI, broadcast, another meter, RR with nothing pending, REJ, DISC unconnected, noise.
    fr = hdlc_util.frame
    a = ADDRS
    return (fr(a[0], 0x21, 0x13, LLC + b"\x01") + fr(a[4], 0x21, 0x13, LLC + b"\x02") +
            fr(a[3], 0x21, 0x93) + fr(a[0], 0x21, 0x93) + fr(a[0], 0x21, 0x11) +
            b"\x7e\x7e\xa0\x11\x7e" + fr(a[0], 0x21, 0x19) + fr(a[2], 0x21, 0x53) +
            fr(a[1], 0x21, 0x53))
