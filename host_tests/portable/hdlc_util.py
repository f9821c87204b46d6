# hdlc_util.py: an independent HDLC frame builder/parser for tests (bitwise CRC, its own
# address rules), and a harness that feeds bytes to an HdlcLink in several ways.
from hdlc import HdlcLink


def crc_x25(data, off=0, n=None):
    if n is None:
        n = len(data) - off
    crc = 0xFFFF
    for i in range(off, off + n):
        crc ^= data[i]
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


def server_addr(logical, physical, size=4):
    if size == 1:
        return bytes([(logical << 1) | 1])
    if size == 2:
        return bytes([logical << 1, (physical << 1) | 1])
    return bytes(
        [(logical >> 7) << 1, (logical & 0x7F) << 1, (physical >> 7) << 1, ((physical & 0x7F) << 1) | 1]
    )


SRV = server_addr(1, 17)  # 00 02 00 23
C16 = 0x21  # public client, SAP 16
C1 = 0x03  # management client, SAP 1
SNRM = 0x93
DISC = 0x53
UI = 0x13
LLC_REQ = b"\xE6\xE6\x00"
LLC_RSP = b"\xE6\xE7\x00"


def frame(dst, src, ctrl, info=b"", seg=False):
    # dst: address bytes; src: a one-byte client address, or address bytes (a meter's answer).
    src = bytes([src]) if isinstance(src, int) else src
    body = bytearray()
    length = 2 + len(dst) + len(src) + 1 + 2 + ((len(info) + 2) if info else 0)
    body.append(0xA0 | (0x08 if seg else 0) | (length >> 8))
    body.append(length & 0xFF)
    body += dst
    body += src
    body.append(ctrl)
    if info:
        h = crc_x25(body)
        body += bytes([h & 0xFF, h >> 8])
        body += info
    f = crc_x25(body)
    body += bytes([f & 0xFF, f >> 8])
    return b"\x7e" + bytes(body) + b"\x7e"


def i_ctrl(ns, nr, pf=True):
    return (nr << 5) | (0x10 if pf else 0) | (ns << 1)


def rr(nr, pf=True):
    return (nr << 5) | (0x10 if pf else 0) | 0x01


def parse(f):
    # One whole frame (with flags) -> (seg, dst, src, ctrl, info); checks HCS/FCS/length.
    assert f[0] == 0x7E and f[-1] == 0x7E, f
    body = f[1:-1]
    assert body[0] & 0xF0 == 0xA0
    length = ((body[0] & 7) << 8) | body[1]
    assert length == len(body), (length, len(body))
    fcs = crc_x25(body, 0, len(body) - 2)
    assert body[-2] == fcs & 0xFF and body[-1] == fcs >> 8, "bad FCS"
    p = 2
    while not body[p] & 1:
        p += 1
    dst = bytes(body[2 : p + 1])
    p += 1
    q = p
    while not body[p] & 1:
        p += 1
    src = bytes(body[q : p + 1])
    p += 1
    ctrl = body[p]
    p += 1
    info = b""
    if len(body) > p + 2:
        h = crc_x25(body, 0, p)
        assert body[p] == h & 0xFF and body[p + 1] == h >> 8, "bad HCS"
        info = bytes(body[p + 2 : -2])
    return bool(body[0] & 0x08), dst, src, ctrl, info


def split_frames(out):
    # Our transmitter writes each frame with both flags; split on length fields.
    frames = []
    i = 0
    while i < len(out):
        assert out[i] == 0x7E
        length = ((out[i + 1] & 7) << 8) | out[i + 2]
        frames.append(bytes(out[i : i + length + 2]))
        i += length + 2
    return frames


class EchoApp:
    # Answers every PDU with itself; counts upcalls. Allocation-free.
    def __init__(self, answer=True):
        self.answer = answer
        self.pdus = 0
        self.ui = 0
        self.lost = 0
        self.last_len = 0

    def on_pdu(self, client, req, n, resp):
        self.pdus += 1
        self.last_len = n
        if not self.answer:
            return 0
        for i in range(n):
            resp[i] = req[i]
        return n

    def on_ui(self, client, req, n):
        self.ui += 1
        self.last_len = n

    def on_link_lost(self):
        self.lost += 1


MODES = ("whole", "half", "byte")


def feed(link, data, mode="whole", now=0):
    # Feeds data the way a transport would, returns every frame sent back.
    out = bytearray()
    if mode == "whole":
        chunks = [data]
    elif mode == "half":
        h = len(data) // 2
        chunks = [data[:h], data[h:]]
    else:
        chunks = [data[i : i + 1] for i in range(len(data))]
    for c in chunks:
        off = 0
        while True:
            off += link.receive(c, off, len(c) - off, now)
            if not link.tx_len:
                break
            out += link.tx[: link.tx_len]
            link.tx_len = 0
        assert off == len(c)
    return split_frames(out)


def new_link(app=None, **kw):
    return HdlcLink(app or EchoApp(), **kw)


def connect(link, dst=SRV, client=C16, info=b"", now=0):
    out = feed(link, frame(dst, client, SNRM, info), now=now)
    assert len(out) == 1
    seg, d, s, ctrl, ua = parse(out[0])
    assert ctrl == 0x73, hex(ctrl)
    return ua
