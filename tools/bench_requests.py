# bench_requests.py: server-side time per request and wire efficiency, on whatever Python runs
# it: CPython (tools/stubs on the path), the MicroPython unix port, or a board (through
# tools/test_board.py). Figures only; prints "name impl value" lines (tools/bench.py's format).
#
#   <python> tools/bench_requests.py FIRMWARE_DIR board|host [ROWS_DIR]
#   or: import bench_requests; bench_requests.main([FIRMWARE_DIR, "board", ROWS_DIR])
#
# The server side is what the board runs: HdlcLink (deframing, FCS, segmentation, windows)
# over the default meter (model.Meter) with profile rows in flash files (flashrows.FlashRows in
# ROWS_DIR; "-" keeps them in RAM, rows.MemoryRows). A client here first plays each session
# against the link and records every frame it sends; the timed runs then replay those frames
# (SNRM first: the same link state each time) and time only link.receive(), i.e. the server:
# no client work is inside the clock. Each request's figure is the fastest of the timed runs
# (board: 20, host: 5). A replay that gets different answers stops the run.
#   board: heap after the imports and after building the tables; the session's allocations
#          (gc.mem_alloc() delta, then again under heap_lock()); us per request for session
#          set-up, GET register, GET clock, one load-profile block, release; CRC-16 speed.
#   host:  the board figures, plus the whole object_list, the whole 35-day load profile, the
#          last day of a 365-day profile (range), and the wire figures of a 7-day range read
#          with window 1 and window 7 (frames, bytes, exchanges, wire time, server time).
import gc
import sys
import time

IMPL = sys.implementation.name
MP = IMPL == "micropython"
if hasattr(time, "ticks_us"):
    _ticks_us = time.ticks_us
    _ticks_diff = time.ticks_diff
else:
    def _ticks_us():
        return time.perf_counter_ns() // 1000

    def _ticks_diff(a, b):
        return a - b

BAUD = 9600  # 8N1: 10 bits per byte on the line
GUARD_MS = 2  # boards/*/board.py GUARD_US: the meter's quiet time before each answer
CLIENT_MS = 10  # assumed: the client's reaction to a frame (USB adapter, OS); not measured
ROWS_PER_DAY = 96  # 15-minute load profile
DAY0 = 9800  # 2026-10-31: the first day of load-profile rows

SRV = b"\x00\x02\x00\x23"  # server address: logical 1, physical 17 (4 bytes, IEC 62056-46)
CLI = 0x21  # public client, SAP 16
LN_REG = b"\x01\x01\x01\x08\x00\xff"  # 1-1:1.8.0, kWh del (class 3)
LN_CLOCK = b"\x00\x00\x01\x00\x00\xff"  # class 8
LN_ASSOC = b"\x00\x00\x28\x00\x00\xff"  # Association LN, class 15
LN_LP = b"\x01\x00\x63\x01\x00\xff"  # 1-0:99.1.0, load profile, class 7
AARQ = (b"\x60\x1d\xa1\x09\x06\x07\x60\x85\x74\x05\x08\x01\x01\xbe\x10\x04\x0e\x01\x00\x00\x00"
        b"\x06\x5f\x1f\x04\x00\x00\x1e\x1d\xff\xff")  # public, LN, no ciphering, max PDU 65535
RLRQ = b"\x62\x03\x80\x01\x00"


def out(name, value):
    print("%s %s %d" % (name, IMPL, value))


# **** client side (setup only: allocates freely) ****


def _fcs(b):
    from fcs16 import fcs16
    return fcs16(b, 0, len(b))


def frame(ctrl, info=b""):
    body = bytearray([0xA0, 0]) + SRV + bytes([CLI, ctrl])
    n = len(body) + 2 + ((len(info) + 2) if info else 0)
    body[1] = n
    if info:
        h = _fcs(body)
        body += bytes([h & 0xFF, h >> 8]) + info
    f = _fcs(body)
    body += bytes([f & 0xFF, f >> 8])
    return b"\x7e" + bytes(body) + b"\x7e"


def snrm(window):
    # 46 6.4.4.4.3.2: max info field 128 both ways, windows as asked.
    p = b"\x05\x01\x80\x06\x01\x80\x07\x04\x00\x00\x00" + bytes([window]) + \
        b"\x08\x04\x00\x00\x00" + bytes([window])
    return frame(0x93, b"\x81\x80" + bytes([len(p)]) + p)


def get(cls, ln, attr, sel=None):
    b = bytes([0xC0, 1, 0xC1, 0, cls]) + ln + bytes([attr])
    return b + (b"\x00" if sel is None else b"\x01\x01" + sel)


def get_next(block):
    return bytes([0xC0, 2, 0xC1, block >> 24, (block >> 16) & 0xFF, (block >> 8) & 0xFF,
                  block & 0xFF])


def utc_dt(days):
    # date-time (tagged) of 00:00 UTC of `days`: deviation 0, so no local-time rule applies.
    from clock import days_to_date
    d = [0, 0, 0]
    days_to_date(days, d)
    return bytes([0x09, 0x0C, d[0] >> 8, d[0] & 0xFF, d[1], d[2], 0xFF, 0, 0, 0, 0, 0, 0, 0])


def lp_range(first_day, last_day):
    # range_descriptor (BB 4.3.6): the clock column, from 00:00 of first_day to 00:00 after
    # last_day, all columns.
    col = b"\x02\x04\x12\x00\x08\x09\x06" + LN_CLOCK + b"\x0f\x02\x12\x00\x00"
    return b"\x02\x04" + col + utc_dt(first_day) + utc_dt(last_day + 1) + b"\x01\x00"


class Client:
    # Plays requests against the link, records the frames it sends in labelled groups (one
    # group per APDU: its I-frame and the RR polls that fetch the rest of the answer) and
    # counts what crosses the line.
    def __init__(self, link):
        self.link = link
        self.frames = []
        self.starts = []
        self.labels = []
        self.resp_bytes = []  # per group: answer bytes (the replay checks it)
        self.ns = self.nr = 0
        self.wire = [0, 0, 0, 0, 0]  # client frames, client bytes, server frames, bytes, exch.

    def _send(self, f):
        link = self.link
        self.frames.append(f)
        n = link.receive(f, 0, len(f), 0)
        assert n == len(f) and link.tx_len, "no answer"
        tx = bytes(link.tx[:link.tx_len])
        link.tx_len = 0
        self.resp_bytes[-1] += len(tx)
        w = self.wire
        w[0] += 1
        w[1] += len(f)
        w[3] += len(tx)
        w[4] += 1
        fr = []
        i = 0
        while i < len(tx):
            n = ((tx[i + 1] & 7) << 8) | tx[i + 2]
            fr.append(tx[i:i + n + 2])
            i += n + 2
        w[2] += len(fr)
        return fr

    def group(self, label):
        self.starts.append(len(self.frames))
        self.labels.append(label)
        self.resp_bytes.append(0)

    def connect(self, window, label="setup"):
        self.group(label)
        self._send(snrm(window))
        self.ns = self.nr = 0
        return self.apdu(AARQ, None)

    def release(self, label="release"):
        self.group(label)
        self.apdu(RLRQ, None)
        self._send(frame(0x53))

    def apdu(self, req, label):
        # One confirmed service; returns the answer APDU.
        if label:
            self.group(label)
        ctrl = (self.nr << 5) | 0x10 | (self.ns << 1)
        self.ns = (self.ns + 1) & 7
        fr = self._send(frame(ctrl, b"\xe6\xe6\x00" + req))
        msdu = b""
        while True:
            more = False
            for f in fr:
                c = f[4 + len(SRV)]
                assert c & 1 == 0, "not an I-frame: %02x" % c
                self.nr = ((c >> 1) + 1) & 7
                msdu += f[7 + len(SRV):-3]
                more = f[1] & 0x08
            if not more:
                break
            fr = self._send(frame((self.nr << 5) | 0x11))
        assert msdu[:3] == b"\xe6\xe7\x00", msdu[:3]
        return msdu[3:]

    def read(self, req, label, block_label=None, block_no=2):
        # GET with block transfer followed to the last block; returns the first block's data
        # (enough for count()).
        r = self.apdu(req, label)
        data = None
        while r[:2] == b"\xc4\x02":
            if data is None:
                data = _raw(r)
            if r[3]:
                return data
            block = (r[4] << 24) | (r[5] << 16) | (r[6] << 8) | r[7]
            nxt = block_label if (block_label and block + 1 == block_no) else label
            r = self.apdu(get_next(block), nxt)
        assert r[:2] == b"\xc4\x01" and r[3] == 0, r[:6]
        return r[4:]


def _raw(r):
    # raw-data of a GET-Response-With-Datablock: C4 02 iip last block(4) 00 length data
    assert r[8] == 0, "block error"
    n = r[9]
    p = 10
    if n & 0x80:
        k = n & 0x7F
        n = 0
        for i in range(k):
            n = (n << 8) | r[p + i]
        p += k
    return r[p:p + n]


def count(data):
    # Elements of the array that starts the data (01 length).
    assert data[0] == 1
    n = data[1]
    if n & 0x80:
        k = n & 0x7F
        n = 0
        for i in range(k):
            n = (n << 8) | data[2 + i]
    return n


# **** the timed replay (allocation-free) ****


class Replay:
    def __init__(self, client):
        self.link = client.link
        self.frames = client.frames
        self.lens = [len(f) for f in client.frames]
        self.starts = client.starts + [len(client.frames)]
        self.labels = client.labels
        self.expect = client.resp_bytes
        self.n = len(client.labels)
        self.us = [0] * self.n  # per group: the fastest of the runs, us
        self.got = [0] * self.n
        self.reps = 0

    def run(self, reps):
        link = self.link
        frames = self.frames
        lens = self.lens
        starts = self.starts
        us = self.us
        got = self.got
        for _ in range(reps):
            for g in range(self.n):
                b = 0
                t0 = _ticks_us()
                for i in range(starts[g], starts[g + 1]):
                    link.receive(frames[i], 0, lens[i], 0)
                    b += link.tx_len
                    link.tx_len = 0
                d = _ticks_diff(_ticks_us(), t0)
                if self.reps == 0 or d < us[g]:
                    us[g] = d
                got[g] += b
            self.reps += 1

    def check(self):
        for g in range(self.n):
            if self.got[g] != self.expect[g] * self.reps:
                raise SystemExit("replay of %s: %d answer bytes, recorded %d" %
                                 (self.labels[g], self.got[g] // max(self.reps, 1),
                                  self.expect[g]))

    def clear(self):
        for g in range(self.n):
            self.us[g] = self.got[g] = 0
        self.reps = 0

    def total_us(self, label):
        # Server time of the label's groups, each the fastest of the runs (other load on the
        # machine only ever adds time).
        t = 0
        for g in range(self.n):
            if self.labels[g] == label:
                t += self.us[g]
        return t

    def timed(self, reps):
        self.run(1)  # warm-up
        self.clear()
        self.run(reps)
        self.check()


# **** the meter ****


def build(days, rows_dir, capacity=None):
    # The default meter (public and LLS clients), `days` of 15-minute rows ending at the clock,
    # behind a link that allows windows up to 7 (the client's SNRM chooses).
    import model
    from hdlc import HdlcLink

    cfg = {"lls_password": "12345678"}
    if capacity:
        lp = dict(model.LOAD_PROFILE)
        lp["entries"] = capacity
        cfg["log_exports"] = [lp, model.BILLING]
    factory = None
    if rows_dir != "-":
        _mkdir(rows_dir)
        factory = _Flash(rows_dir).rows
    m = model.Meter(cfg, rows_factory=factory)
    fill(m, days)
    link = HdlcLink(m.server, window_tx=7, window_rx=7)
    return m, link


class _Flash:
    def __init__(self, d):
        self.d = d

    def rows(self, name, capacity, widths):
        from flashrows import FlashRows
        r = FlashRows(self.d, name, capacity, widths)
        r.clear()  # a fresh profile (the directory may hold an earlier run's rows)
        return r


def _mkdir(d):
    import os
    try:
        os.mkdir(d)
    except OSError:
        pass


def fill(m, days):
    lp = m.profile("1-0:99.1.0*255")
    vals = bytearray(lp.rows.size)
    for k in range(days * ROWS_PER_DAY):
        for c in range(0, len(vals), 4):  # four double-long-unsigned interval energies
            vals[c + 2] = (k >> 4) & 0xFF
            vals[c + 3] = (k * 7 + c) & 0xFF
        lp.rows.append(DAY0 + k // ROWS_PER_DAY, (k % ROWS_PER_DAY) * 900, 0, vals)
    m.clock.set_utc(DAY0 + days, 0)


# **** figures ****


def heap():
    gc.collect()
    return (gc.mem_alloc(), gc.mem_free()) if MP else (0, 0)


def alloc_check(replay):
    # The session's allocations: gc.mem_alloc() delta with the collector off, then the same
    # run under heap_lock() (an allocation there raises MemoryError on the unix port and the
    # boards). Prints alloc.session_bytes and alloc.heap_lock_ok (1 = passed).
    if not MP:
        return
    import micropython
    gc.collect()
    gc.disable()
    a = gc.mem_alloc()
    replay.run(1)
    used = gc.mem_alloc() - a
    ok = 0
    micropython.heap_lock()
    try:
        replay.run(1)
        ok = 1
    except MemoryError:
        pass
    micropython.heap_unlock()
    gc.enable()
    out("alloc.session_bytes", used)
    out("alloc.heap_lock_ok", ok)


def crc_speed():
    from fcs16 import fcs16
    buf = bytearray(1024)
    for i in range(len(buf)):
        buf[i] = (i * 31) & 0xFF
    reps = 20
    fcs16(buf, 0, 1024)
    t0 = _ticks_us()
    for _ in range(reps):
        fcs16(buf, 0, 1024)
    us = _ticks_diff(_ticks_us(), t0)
    out("crc.bytes_per_s", 1024 * reps * 1000000 // us)
    out("crc.us_per_128_bytes", us * 128 // (1024 * reps))


def board(rows_dir, reps=20):
    a0 = heap()
    import mainloop  # noqa: F401  (the whole firmware, as the board's main.py imports it)

    a1 = heap()
    m, link = build(1, rows_dir)
    a2 = heap()
    if MP:
        out("heap.firmware_bytes", a1[0] - a0[0])
        out("heap.free_after_import", a1[1])
        out("heap.tables_bytes", a2[0] - a1[0])
        out("heap.free_after_tables", a2[1])
    c = Client(link)
    c.connect(1)
    c.apdu(get(3, LN_REG, 2), "get_register")
    c.apdu(get(8, LN_CLOCK, 2), "get_clock")
    c.read(get(7, LN_LP, 2), "lp_rest", "lp_block")
    c.release()
    r = Replay(c)
    alloc_check(r)
    r.timed(reps)
    for label in ("setup", "get_register", "get_clock", "lp_block", "release"):
        out("req.%s_us" % label, r.total_us(label))
    crc_speed()


def host(rows_dir, reps=5):
    if rows_dir != "-":
        _mkdir(rows_dir)
    sub = rows_dir if rows_dir == "-" else rows_dir + "/35"
    m, link = build(35, sub)
    c = Client(link)
    c.connect(1)
    c.apdu(get(3, LN_REG, 2), "get_register")
    c.apdu(get(8, LN_CLOCK, 2), "get_clock")
    data = c.read(get(15, LN_ASSOC, 2), "object_list")
    out("rows.object_list", count(data))
    blocks = len(c.labels)
    data = c.read(get(7, LN_LP, 2), "lp35", "lp_block")
    out("blocks.lp35", len(c.labels) - blocks)
    out("rows.lp35", count(data))
    c.release()
    r = Replay(c)
    alloc_check(r)
    r.timed(reps)
    for label in ("setup", "get_register", "get_clock", "object_list", "release"):
        out("req.%s_us" % label, r.total_us(label))
    out("req.lp_block_us", r.total_us("lp_block"))
    out("req.lp35_us", r.total_us("lp35") + r.total_us("lp_block"))
    for window in (1, 7):
        wire(link, window, reps)
    m = link = c = r = None
    gc.collect()
    sub = rows_dir if rows_dir == "-" else rows_dir + "/365"
    m, link = build(365, sub, 365 * ROWS_PER_DAY)
    c = Client(link)
    c.connect(1)
    last = DAY0 + 364
    data = c.read(get(7, LN_LP, 2, lp_range(last, last)), "lp365_day")
    out("rows.lp365_day", count(data))
    c.release()
    r = Replay(c)
    r.timed(reps)
    out("req.lp365_day_us", r.total_us("lp365_day"))
    crc_speed()


def wire(link, window, reps):
    # A head-end's 7-day read: the last 7 days of the 35-day profile by range, block
    # transfer, 128-byte frames, the given window. Wire time: every byte at 10 bits, plus per
    # exchange (client frame -> server answer) the meter's guard and the client's reaction.
    c = Client(link)
    c.connect(window)
    c.wire = [0, 0, 0, 0, 0]
    last = DAY0 + 34
    data = c.read(get(7, LN_LP, 2, lp_range(last - 6, last)), "lp7")
    w = c.wire
    c.release()
    r = Replay(c)
    r.timed(reps)
    p = "wire.w%d." % window
    out(p + "rows", count(data))
    out(p + "client_frames", w[0])
    out(p + "client_bytes", w[1])
    out(p + "server_frames", w[2])
    out(p + "server_bytes", w[3])
    out(p + "exchanges", w[4])
    bytes_ms = (w[1] + w[3]) * 10 * 1000 // BAUD
    out(p + "bytes_ms", bytes_ms)
    out(p + "wire_ms", bytes_ms + w[4] * (GUARD_MS + CLIENT_MS))
    out(p + "server_us", r.total_us("lp7"))


def main(argv):
    fw = argv[0]
    if fw not in sys.path:
        sys.path.insert(0, fw)
    mode = argv[1] if len(argv) > 1 else "host"
    rows_dir = argv[2] if len(argv) > 2 else "-"
    if mode == "board":
        board(rows_dir)
    else:
        host(rows_dir)
    print("bench_requests done")


if __name__ == "__main__":
    main(sys.argv[1:])
