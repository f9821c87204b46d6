# fuzz_hyp.py: hypothesis strategies for structured fuzz inputs (CPython only), used by
# tools/fuzz.py --engine hypothesis and host_tests/test_fuzz.py. Inputs are built field by
# field, so they get past the checksums and length fields into the parsers behind them:
#   - HDLC frames: server address of 1, 2 or 4 bytes (ours, another meter's, all-station,
#     arbitrary), client address, control (I, RR, RNR, SNRM, DISC, UI, anything), the
#     segmentation bit, length / HCS / FCS right or wrong, an information field carrying an
#     APDU behind the LLC header (or SNRM parameters, or bytes);
#   - APDUs: AARQ (context, mechanism, password, xDLMS InitiateRequest fields, conformance,
#     PDU size, unknown components, BER length forms, padding up to the receive buffer's
#     end), GET normal/next/with-list, SET, ACTION, RLRQ with fuzzed descriptors, selectors
#     and A-XDR data, garbage tags;
#   - streams of frames or WPDUs interleaved with flags and noise, split at random points,
#     with pauses longer than the inter-frame timeout.
import fuzz_harness as fh
from hypothesis import strategies as st

_OBJECTS = (  # (class id, logical name) of the default meter's objects, and strangers
    (15, b"\x00\x00\x28\x00\x00\xFF"), (17, b"\x00\x00\x29\x00\x00\xFF"),
    (1, b"\x00\x00\x2A\x00\x00\xFF"), (8, b"\x00\x00\x01\x00\x00\xFF"),
    (1, b"\x00\x00\x60\x60\x00\xFF"), (3, b"\x01\x01\x01\x08\x00\xFF"),
    (3, b"\x01\x01\x01\x1D\x00\xFF"), (3, b"\x01\x01\x0D\x00\x00\xFF"),
    (7, b"\x01\x00\x63\x01\x00\xFF"), (7, b"\x01\x00\x62\x01\x00\xFF"),
    (1, b"\x00\x00\x63\x63\x63\xFF"))

u8 = st.integers(0, 255)
u16 = st.integers(0, 0xFFFF)


def _b(*parts):
    return b"".join(bytes(p) if isinstance(p, (list, tuple)) else p for p in parts)


@st.composite
def ber_len(draw, n):
    # Definite length n: short, long (81 / 82, also non-minimal) or wrong.
    form = draw(st.sampled_from(("ok", "ok", "ok", "long", "wrong")))
    if form == "wrong":
        n = max(0, n + draw(st.integers(-3, 3)))
        return bytes([n & 0x7F]) if draw(st.booleans()) else bytes([0x82, n >> 8 & 0xFF, n & 0xFF])
    if n < 0x80 and form == "ok":
        return bytes([n])
    if n < 0x100 and draw(st.booleans()):
        return bytes([0x81, n])
    return bytes([0x82, n >> 8 & 0xFF, n & 0xFF])


@st.composite
def tlv(draw, tag, body):
    return bytes([tag]) + draw(ber_len(len(body))) + body


# **** A-XDR data ****


def axdr_data():
    def scalar():
        return st.one_of(
            st.just(b"\x00"), u8.map(lambda v: bytes([0x03, v])),
            st.binary(max_size=6).map(lambda b: bytes([0x04, len(b) * 8]) + b),
            st.binary(min_size=4, max_size=4).map(lambda b: b"\x05" + b),
            st.binary(min_size=4, max_size=4).map(lambda b: b"\x06" + b),
            st.binary(max_size=20).map(lambda b: bytes([0x09, len(b)]) + b),
            st.binary(max_size=12).map(lambda b: bytes([0x0A, len(b)]) + b),
            st.binary(min_size=12, max_size=12).map(lambda b: b"\x09\x0C" + b),
            st.binary(min_size=1, max_size=1).map(lambda b: b"\x0F" + b),
            st.binary(min_size=2, max_size=2).map(lambda b: b"\x10" + b),
            st.binary(min_size=1, max_size=1).map(lambda b: b"\x11" + b),
            st.binary(min_size=2, max_size=2).map(lambda b: b"\x12" + b),
            st.binary(min_size=8, max_size=8).map(lambda b: b"\x14" + b),
            st.binary(min_size=8, max_size=8).map(lambda b: b"\x15" + b),
            u8.map(lambda v: bytes([0x16, v])),
            st.binary(max_size=9).map(lambda b: bytes([0x82, 0x00, len(b)]) + b),
            st.binary(min_size=1, max_size=10))  # anything, maybe a tag we do not know

    def compound(children):
        return st.tuples(st.sampled_from((0x01, 0x02)), st.lists(children, max_size=5),
                         st.integers(-1, 1)).map(
            lambda t: bytes([t[0], max(0, len(t[1]) + t[2]) & 0xFF]) + b"".join(t[1]))

    return st.recursive(scalar(), compound, max_leaves=12)


# **** xDLMS requests ****


@st.composite
def descriptor(draw, with_selector=True):
    if draw(st.integers(0, 7)):
        cls, ln = draw(st.sampled_from(_OBJECTS))
    else:
        cls, ln = draw(u16), draw(st.binary(min_size=6, max_size=6))
    attr = draw(st.one_of(st.integers(0, 12), u8))
    d = _b(bytes([cls >> 8, cls & 0xFF]), ln, bytes([attr]))
    if not with_selector or draw(st.integers(0, 2)):
        return d + b"\x00"
    return d + bytes([1, draw(st.one_of(st.integers(0, 3), u8))]) + draw(axdr_data())


@st.composite
def xdlms_request(draw):
    iip = draw(st.one_of(st.just(0xC1), u8))
    kind = draw(st.sampled_from(("get", "get", "next", "list", "set", "action", "other")))
    if kind == "get":
        return bytes([0xC0, 1, iip]) + draw(descriptor())
    if kind == "next":
        return bytes([0xC0, 2, iip]) + draw(st.one_of(
            st.integers(0, 4).map(lambda n: bytes([0, 0, 0, n])),
            st.binary(min_size=4, max_size=4), st.binary(max_size=6)))
    if kind == "list":
        items = draw(st.lists(descriptor(), max_size=20))
        count = max(0, len(items) + draw(st.sampled_from((0, 0, 0, -1, 1))))
        return bytes([0xC0, 3, iip, count]) + b"".join(items)
    if kind == "set":
        sub = draw(st.sampled_from((1, 1, 1, 2, 3, 4, 5)))
        return bytes([0xC1, sub, iip]) + draw(descriptor(with_selector=draw(st.booleans()))) + \
            draw(axdr_data())
    if kind == "action":
        cls, ln = draw(st.sampled_from(_OBJECTS))
        body = bytes([0xC3, draw(st.integers(1, 3)), iip, cls >> 8, cls & 0xFF]) + ln + \
            bytes([draw(u8)])
        return body + (b"\x01" + draw(axdr_data()) if draw(st.booleans()) else b"\x00")
    return bytes([draw(st.sampled_from((0xC0, 0xC1, 0xC2, 0xC3, 0xC8, 0xCC, 0xD0, 0xD8,
                                        0x01, 0x00, 0x0E, 0x61)))]) + draw(st.binary(max_size=30))


# **** ACSE ****

_OID = b"\x60\x85\x74\x05\x08"


@st.composite
def initiate_request(draw):
    # GB 9.5 xDLMS-Initiate.request in A-XDR, fields fuzzed one at a time.
    key = b"\x00"
    if draw(st.integers(0, 5)) == 0:
        k = draw(st.binary(max_size=20))
        key = bytes([1, len(k)]) + k
    allowed = draw(st.sampled_from((b"\x00", b"\x01\xFF", b"\x01\x00")))
    qos = draw(st.sampled_from((b"\x00", b"\x01\x02")))
    version = draw(st.sampled_from((6, 6, 6, 5, 7, 0, 255)))
    conf = draw(st.one_of(st.sampled_from((0x00FFFF, 0x001E1D, 0x00321C, 0x000010, 0)),
                          st.integers(0, 0xFFFFFF)))
    pdu = draw(st.one_of(st.sampled_from((0xFFFF, 1024, 512, 16, 15, 0)), u16))
    tail = bytes([version, 0x5F, 0x1F, 4, 0, conf >> 16, conf >> 8 & 0xFF, conf & 0xFF,
                  pdu >> 8, pdu & 0xFF])
    if draw(st.integers(0, 9)) == 0:
        tail = tail[:draw(st.integers(0, len(tail)))]
    tag = b"\x01" if draw(st.integers(0, 9)) else bytes([draw(st.sampled_from((0x21, 0x00)))])
    ini = tag + key + allowed + qos + tail
    if draw(st.integers(0, 3)) == 0:
        ini = ini[:draw(st.integers(0, 3))]  # cut short, down to nothing
    return ini


@st.composite
def aarq(draw):
    parts = []
    ctx = draw(st.sampled_from((1, 1, 1, 2, 3, 4, 0)))
    if draw(st.integers(0, 9)):
        parts.append(b"\xA1" + draw(ber_len(9)) + b"\x06\x07" + _OID + bytes([1, ctx]))
    mech = draw(st.sampled_from((None, None, 0, 1, 1, 2, 5, 7)))
    if mech is not None:
        parts.append(b"\x8A\x02\x07\x80")
        parts.append(b"\x8B" + draw(ber_len(7)) + _OID + bytes([2, mech]))
    if mech or draw(st.integers(0, 5)) == 0:
        pw = draw(st.one_of(st.just(fh.PASSWORD.encode()), st.binary(max_size=40)))
        choice = draw(st.sampled_from((0x80, 0x80, 0x81, 0x04)))
        parts.append(draw(tlv(0xAC, bytes([choice]) + draw(ber_len(len(pw))) + pw)))
    if draw(st.integers(0, 9)):
        ini = draw(initiate_request())
        parts.append(draw(tlv(0xBE, draw(tlv(0x04, ini)))))
    for _ in range(draw(st.integers(0, 2))):  # components we do not know: skipped
        tag = draw(st.sampled_from((0x80, 0xA2, 0xA6, 0xA7, 0x88, 0xBD, 0xFF)))
        parts.insert(draw(st.integers(0, len(parts))), draw(tlv(tag, draw(st.binary(max_size=16)))))
    body = b"".join(parts)
    if draw(st.integers(0, 2)) == 0:
        # Padded with an unknown component so the AARQ ends exactly at the receive buffer's
        # end: parsers meet the end of a full buffer.
        room = fh.PDU - 4 - len(body) - 4
        if room > 0:
            pad = bytes([0x88, 0x82, room >> 8, room & 0xFF]) + bytes(room)
            body = pad + body if draw(st.booleans()) else body + pad
    return b"\x60" + draw(ber_len(len(body))) + body


@st.composite
def rlrq(draw):
    body = b""
    if draw(st.booleans()):
        body += bytes([0x80, 1, draw(st.integers(0, 3))])
    if draw(st.booleans()):
        body += draw(tlv(0xBE, draw(tlv(0x04, draw(initiate_request())))))
    return b"\x62" + draw(ber_len(len(body))) + body


def apdu():
    return st.one_of(aarq(), aarq(), xdlms_request(), xdlms_request(), rlrq(),
                     st.binary(min_size=1, max_size=40))


# **** HDLC ****


@st.composite
def server_address(draw):
    form = draw(st.sampled_from((4, 4, 2, 1, "other", "raw")))
    if form == "other":
        return draw(st.sampled_from(fh.ADDRS[3:]))
    if form == "raw":
        n = draw(st.sampled_from((1, 2, 3, 4, 5)))
        b = bytearray(draw(st.binary(min_size=n, max_size=n)))
        for i in range(n):
            b[i] = (b[i] & 0xFE) | (1 if i == n - 1 else 0)
        return bytes(b)
    return fh.ADDRS[(4, 2, 1).index(form)]


@st.composite
def snrm_params(draw):
    params = b""
    for pid in draw(st.lists(st.sampled_from((5, 6, 7, 8, 9, 0)), max_size=5)):
        v = draw(st.binary(max_size=5))
        params += bytes([pid, len(v)]) + v
    return bytes([0x81, 0x80, len(params) & 0xFF]) + params


@st.composite
def hdlc_frame(draw):
    kind = draw(st.sampled_from(("i", "i", "i", "rr", "snrm", "disc", "ui", "raw")))
    ns, nr = draw(st.sampled_from((1, 1, 0, 2))), draw(st.sampled_from((1, 1, 0, 2)))
    if draw(st.integers(0, 3)) == 0:
        ns, nr = draw(st.integers(0, 7)), draw(st.integers(0, 7))
    pf = 0x10 if draw(st.integers(0, 7)) else 0
    info = b""
    if kind == "i":
        ctrl = nr << 5 | pf | ns << 1
        info = fh.LLC + draw(apdu()) if draw(st.integers(0, 7)) else draw(st.binary(max_size=140))
    elif kind == "rr":
        ctrl = nr << 5 | pf | draw(st.sampled_from((0x01, 0x05, 0x09, 0x0D)))
    elif kind == "snrm":
        ctrl = 0x83 | pf
        info = draw(st.one_of(st.just(b""), snrm_params()))
    elif kind == "disc":
        ctrl = 0x43 | pf
    elif kind == "ui":
        ctrl = 0x03 | pf
        info = fh.LLC + draw(apdu())
    else:
        ctrl = draw(u8)
        info = draw(st.binary(max_size=20))
    info = info[:draw(st.sampled_from((fh.MAX_INFO, fh.MAX_INFO, 2030, 17)))]
    dst = draw(server_address())
    client = draw(st.sampled_from((0x21, 0x21, 0x03, 0x01, 0x7F, 0x20)))
    seg = draw(st.integers(0, 9)) == 0
    b = bytearray(len(info) + 40)
    n = fh.put_frame(b, 0, dst, client, ctrl, info, 0, len(info), seg)
    f = b[:n]
    spoil = draw(st.integers(0, 15))
    if spoil == 0:  # length field
        f[2] = (f[2] + draw(st.sampled_from((1, 255, 2, 254)))) & 0xFF
    elif spoil == 1 and info:  # HCS
        f[4 + len(dst) + 1] ^= 1 << draw(st.integers(0, 7))
    elif spoil == 2:  # FCS
        f[-2] ^= 1 << draw(st.integers(0, 7))
    return bytes(f)


@st.composite
def segmented(draw):
    # One APDU in consecutive I-frames with the segmentation bit on all but the last (46
    # 6.4.3.1), as a client sends an MSDU longer than the information field.
    info = fh.LLC + draw(apdu())
    size = draw(st.sampled_from((fh.MAX_INFO, fh.MAX_INFO, 1, 7, 64)))
    dst = draw(server_address())
    client = draw(st.sampled_from((0x21, 0x21, 0x03)))
    ns = draw(st.sampled_from((1, 1, 0)))
    nr = ns
    out = b""
    b = bytearray(fh.MAX_INFO + 40)
    for off in range(0, len(info), size):
        chunk = info[off:off + size]
        n = fh.put_frame(b, 0, dst, client, nr << 5 | 0x10 | ns << 1, chunk, 0, len(chunk),
                         off + size < len(info))
        out += b[:n]
        ns = (ns + 1) & 7
    return out


@st.composite
def wpdu(draw):
    a = draw(apdu())
    n = len(a)
    if draw(st.integers(0, 9)) == 0:
        n = draw(st.one_of(u16, st.integers(max(0, n - 3), n + 3)))
    version = 1 if draw(st.integers(0, 15)) else draw(u16)
    src = draw(st.sampled_from((16, 16, 1, 0x66))) if draw(st.integers(0, 9)) else draw(u16)
    dst = 1 if draw(st.integers(0, 9)) else draw(u16)
    return bytes([version >> 8, version & 0xFF, src >> 8, src & 0xFF, dst >> 8, dst & 0xFF,
                  n >> 8 & 0xFF, n & 0xFF]) + a


_NOISE = st.one_of(st.just(b"\x7e"), st.just(b"\x7e\x7e"), st.binary(min_size=1, max_size=12))


@st.composite
def case(draw):
    # (transport, prefix, stream bytes, chunk cut offsets, pause-after-chunk flags)
    transport = draw(st.sampled_from((fh.HDLC, fh.HDLC, fh.HDLC, fh.WRAPPER)))
    prefix = draw(st.sampled_from((fh.P_PUBLIC, fh.P_PUBLIC, fh.P_MGMT, fh.P_SNRM, fh.P_NONE)))
    item = st.one_of(hdlc_frame(), hdlc_frame(), segmented()) if transport == fh.HDLC else wpdu()
    parts = draw(st.lists(st.one_of(item, item, item, _NOISE), min_size=1, max_size=6))
    data = b"".join(parts)[:fh.CAP]
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=8))))
    cuts = [c for c in cuts if 0 < c < len(data)]
    gaps = draw(st.lists(st.integers(0, 9).map(lambda v: v == 0), min_size=len(cuts) + 1,
                         max_size=len(cuts) + 1))
    return transport, prefix, data, cuts, gaps


def run_example(h, c):
    # Feeds one case and checks recovery; returns 0 or the fh.F_* failure code.
    transport, prefix, data, cuts, gaps = c
    h.buf[:len(data)] = data
    h.cuts = cuts
    h.gaps = gaps
    try:
        code = h.run_case(transport, prefix, len(data))
    finally:
        h.cuts = None
        h.gaps = None
    if code:
        h.recover()
        return code
    return h.recover()
