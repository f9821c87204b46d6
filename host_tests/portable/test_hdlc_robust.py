# HDLC robustness: corruption at every byte offset, truncation at every length, noise on the
# line, back-to-back frames; and the allocation proof: thousands of frames of every kind
# through the deframer and the link under heap_lock() with gc.mem_alloc() unchanged.
from hdlc_util import (
    C16,
    DISC,
    LLC_REQ,
    LLC_RSP,
    SNRM,
    SRV,
    connect,
    feed,
    frame,
    i_ctrl,
    new_link,
    parse,
    rr,
    server_addr,
)
from support import assert_no_alloc, need_heap


def _echo_of(out):
    assert len(out) == 1, out
    return parse(out[0])[4]


def test_corruption_at_every_offset_loses_only_that_frame():
    a = frame(SRV, C16, i_ctrl(0, 0), LLC_REQ + b"\x0A\x7E\x0B")  # a flag byte inside info
    b = frame(SRV, C16, i_ctrl(0, 0), LLC_REQ + b"\x0B")
    for mode in ("whole", "byte"):
        for i in range(len(a)):
            for bad in (a[i] ^ 0xFF, a[i] ^ 0x01, 0x7E, 0xA0):
                if bad == a[i]:
                    continue
                link = new_link()
                connect(link)
                c = bytearray(a)
                c[i] = bad
                out = feed(link, bytes(c) + b, mode)
                assert _echo_of(out) == LLC_RSP + b"\x0B", (mode, i, hex(bad), out)
                assert link.vr == 1


def test_truncation_at_every_length_loses_only_that_frame():
    # A truncated frame is followed by the next one after the client's retry pause, longer
    # than the inter-frame timeout (a truncated header may claim more bytes than follow).
    a = frame(SRV, C16, i_ctrl(0, 0), LLC_REQ + bytes(range(40)))
    b = frame(SRV, C16, i_ctrl(0, 0), LLC_REQ + b"\x0B")
    for k in range(1, len(a)):
        link = new_link(rx_timeout_ms=500)
        connect(link)
        assert feed(link, a[:k], "whole", now=0) == []
        out = feed(link, b, "whole", now=501)
        assert _echo_of(out) == LLC_RSP + b"\x0B", (k, out)


def _noise(seed, n):
    # Deterministic line noise, rich in flags and format-like bytes.
    x = seed
    out = bytearray()
    for _ in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        r = (x >> 16) & 0xFF
        if r < 40:
            r = 0x7E
        elif r < 70:
            r = 0xA0 | (r & 0x0F)
        out.append(r)
    return bytes(out)


def test_noise_between_frames_is_skipped():
    need_heap(155 * 1024)  # 64-bit unix port, fresh process, +10 %
    link = new_link()
    stream = _noise(1, 50) + frame(SRV, C16, SNRM)
    expected = 1
    for k in range(16):
        stream += _noise(k + 2, 7 + k * 5)
        stream += frame(SRV, C16, i_ctrl(k & 7, k & 7), LLC_REQ + bytes([k]))
        expected += 1
    stream += _noise(99, 30) + frame(SRV, C16, DISC)
    expected += 1
    for mode in ("whole", "half", "byte"):
        link = new_link()
        out = feed(link, stream, mode)
        assert len(out) == expected, (mode, len(out))
        assert parse(out[0])[3] == 0x73 and parse(out[-1])[3] == 0x73
        for k in range(16):
            assert parse(out[1 + k])[4] == LLC_RSP + bytes([k])


def test_back_to_back_frames_with_and_without_shared_flags():
    f1 = frame(SRV, C16, SNRM)
    f2 = frame(SRV, C16, i_ctrl(0, 0), LLC_REQ + b"\x01")
    f3 = frame(SRV, C16, DISC)
    shared = f1[:-1] + f2[:-1] + f3  # one flag closes a frame and opens the next
    for stream in (f1 + f2 + f3, shared, f1 + b"\x7e\x7e" + f2 + f3):
        for mode in ("whole", "half", "byte"):
            out = feed(new_link(), stream, mode)
            assert [parse(f)[3] for f in out] == [0x73, i_ctrl(0, 1), 0x73], (mode, out)


# **** allocation proof ****


def _session():
    # One complete client session touching every path: SNRM with parameters, I-frames,
    # RR polls, a segmented request and a segmented answer, an I-frame repeat, noise, a
    # frame for another meter, an oversize frame for another meter, FRMR and DISC.
    s = frame(SRV, C16, SNRM, bytes([0x81, 0x80, 0x06, 0x05, 0x01, 0x80, 0x06, 0x01, 0x80]))
    s += frame(SRV, C16, i_ctrl(0, 0), LLC_REQ + b"\x01\x02")
    s += frame(SRV, C16, i_ctrl(0, 0), LLC_REQ + b"\x01\x02")  # repeat: answer resent
    s += frame(SRV, C16, rr(1))
    data = LLC_REQ + bytes(range(200)) + bytes(100)
    s += frame(SRV, C16, i_ctrl(1, 1), data[:128], seg=True)
    s += frame(SRV, C16, i_ctrl(2, 1), data[128:256], seg=True)
    s += frame(SRV, C16, i_ctrl(3, 1), data[256:])
    s += frame(SRV, C16, rr(2))
    s += frame(SRV, C16, rr(3))
    s += _noise(7, 40)
    s += frame(server_addr(1, 99), C16, SNRM)
    s += frame(server_addr(1, 99), C16, i_ctrl(0, 0), LLC_REQ + bytes(400))
    s += frame(SRV, C16, 0x19)  # REJ: FRMR
    s += frame(SRV, C16, DISC)
    return s


def _check_session(out):
    ctrls = [parse(f)[3] for f in out]
    assert ctrls == [0x73, i_ctrl(0, 1), i_ctrl(0, 1), rr(1), rr(2), rr(3)] + [
        i_ctrl(1, 4),
        i_ctrl(2, 4),
        i_ctrl(3, 4),
        0x97,
        0x73,
    ], [hex(c) for c in ctrls]


class _Driver:
    # Feeds a byte stream to a link in chunks, as a transport would, counting what is sent.
    # Allocation-free: offsets instead of slices, no per-call objects.
    def __init__(self, link, stream):
        self.link = link
        self.stream = stream
        self.sent = 0
        self.frames = 0

    def run(self, chunk):
        link = self.link
        s = self.stream
        n = len(s)
        off = 0
        now = 0
        while off < n:
            end = off + chunk
            if end > n:
                end = n
            while True:
                off += link.receive(s, off, end - off, now)
                if not link.tx_len:
                    break
                self.sent += link.tx_len
                self.frames += 1
                link.tx_len = 0
            now += 1


def test_thousands_of_frames_allocate_nothing():
    need_heap(139 * 1024, block=88 * 1024)  # 64-bit unix port, fresh process, +10 %
    one = _session()
    _check_session(feed(new_link(), one))
    repeats = 100
    stream = one * repeats
    link = new_link()
    drv = _Driver(link, stream)
    drv.run(len(stream))  # warm-up, and the reference figures
    per_run = drv.sent
    answers = drv.frames
    assert answers == 11 * repeats
    for chunk in (1, 7, 64, len(stream)):
        drv.sent = 0
        assert_no_alloc(drv.run, chunk, "HDLC link, chunks of %d bytes" % chunk)
        # assert_no_alloc runs the stream twice (measured, then locked): same answers both.
        assert drv.sent == 2 * per_run, (chunk, drv.sent, per_run)
