# fuzz_harness.py: the protocol stack under fuzz and the invariants checked on it. Portable:
# the same file runs on CPython, the MicroPython unix port and the 32-bit WebAssembly port
# (tools/fuzz.py drives it; host_tests/test_fuzz*.py and host_tests/portable/test_fuzz_*.py
# test with it).
#
# The stack is the meter's: model.Meter (the default ION object table, a load profile with
# rows) with firmware/hdlc.py HdlcLink over meter.server, configured as tools/simhost.py does
# with the default config, and firmware/wrapper.py WrapperLink over a second port's server.
# A case is one input: bytes for one transport, optionally after a valid prefix (SNRM, an
# association), fed in chunks as a transport would. Invariants, checked on every case:
#   - no exception escapes the link or the server (F_EXCEPTION);
#   - bounded work: every receive() either takes bytes or produces an answer, and the calls per
#     chunk are bounded by its length (F_STALL, F_LOOP); tools/fuzz_mutate.py adds a time
#     limit per case (F_SLOW) and tools/fuzz.py a watchdog per process;
#   - every HDLC answer (each frame of a window) is well formed: flags, format type 3, length, HCS, FCS, a
#     response control field, an information field no longer than the link's limit, our own
#     address (logical 1, physical 17: never a broadcast or another meter's) as source, and a
#     one-byte client address that occurred in the input as destination (F_FRAME);
#   - every wrapper answer is a well-formed WPDU: version 1, our wPort as source, the length
#     field matching, an APDU tag a server may send (F_WPDU);
#   - recovery (recover(), after every case or every N): after the inter-frame timeout a valid
#     SNRM, AARQ and GET of the clock answer exactly the expected frames, and likewise AARQ and
#     GET over the wrapper, reconnected if the case stopped it (F_RECOVERY).
# The seeds of the mutation engine are in tools/fuzz_seeds.py.
# The hot path (feed, checks, recovery) allocates nothing, so whole fuzz runs can go under
# heap_lock() on MicroPython (host_tests/portable/test_fuzz_portable.py).
import sys


def _add_paths():
    # firmware/ (first: it must win over tools/config.py) and the test helpers that build the
    # seeds; tools/stubs on CPython for `micropython`.
    f = globals().get("__file__") or "tools/fuzz_harness.py"
    tools = f.rsplit("/", 1)[0] if "/" in f else "."
    if "/" in tools:
        root = tools.rsplit("/", 1)[0]
    else:
        root = ".." if tools == "." else "."
    subs = ["/host_tests/portable", "/firmware"]
    if sys.implementation.name != "micropython":
        subs.insert(0, "/tools/stubs")
    for s in subs:
        p = root + s
        if p in sys.path:
            sys.path.remove(p)
        sys.path.insert(0, p)


_add_paths()

from micropython import const  # noqa: E402

import hdlc_util  # noqa: E402
from app_util import AARQ_LLS_12345678, aarq, get  # noqa: E402
from hdlc import HdlcLink  # noqa: E402
from model import Meter  # noqa: E402
from wrapper import WrapperLink  # noqa: E402

PASSWORD = "12345678"
UNIT_ID = const(17)
MAX_INFO = const(128)  # the default config's hdlc section (firmware/config.py)
RX_TIMEOUT_MS = const(1000)
INACTIVITY_MS = const(120000)
W_RX_TIMEOUT_MS = const(5000)  # WrapperLink default
PDU = const(1024)
CAP = const(4096)  # the longest case input
CLOCK_DAYS = const(9835)  # 2026-12-05 UTC, set before every recovery check
CLOCK_SECS = const(43200)  # 12:00:00 UTC = 13:00:00 CET

# Prefixes: what precedes the fuzzed bytes (always valid, their answers checked too).
P_NONE = const(0)
P_SNRM = const(1)  # HDLC link open (wrapper: a fresh connection)
P_PUBLIC = const(2)  # ... and a public association (client SAP 16)
P_MGMT = const(3)  # ... and a management association (SAP 1, LLS 12345678)
N_PREFIX = const(4)
HDLC = const(0)
WRAPPER = const(1)

# Failure codes (0: none)
F_EXCEPTION = const(1)
F_STALL = const(2)
F_LOOP = const(3)
F_FRAME = const(4)
F_WPDU = const(5)
F_RECOVERY = const(6)
F_SLOW = const(7)  # set by the driver: a case took longer than its time limit
FAILURES = ("", "exception", "receive() took nothing and sent nothing", "unbounded loop",
            "malformed HDLC answer", "malformed wrapper answer", "no recovery", "slow case")

LLC = b"\xE6\xE6\x00"  # the LLC header of a request (46 annex)
LN_CLOCK = b"\x00\x00\x01\x00\x00\xFF"
# GB 9.5 AARE accepting aarq() (conformance & 0x00321C, server max receive PDU 1024), and the
# GET-Response-Normal of the clock at CLOCK_DAYS/CLOCK_SECS: 2026-12-05 Saturday 13:00:00.00
# local, deviation -60 (CET), status 0.
AARE_OK = bytes([0x61, 0x29, 0xA1, 0x09, 0x06, 0x07, 0x60, 0x85, 0x74, 0x05, 0x08, 0x01, 0x01,
                 0xA2, 0x03, 0x02, 0x01, 0x00, 0xA3, 0x05, 0xA1, 0x03, 0x02, 0x01, 0x00,
                 0xBE, 0x10, 0x04, 0x0E, 0x08, 0x00, 0x06, 0x5F, 0x1F, 0x04, 0x00, 0x00, 0x32,
                 0x1C, 0x04, 0x00, 0x00, 0x07])
CLOCK_RESP = bytes([0xC4, 0x01, 0xC1, 0x00, 0x09, 0x0C, 0x07, 0xEA, 0x0C, 0x05, 0x06, 0x0D,
                    0x00, 0x00, 0x00, 0xFF, 0xC4, 0x00])
# UA of an SNRM without parameters: 46 6.4.4.4.3.2 defaults 128/128, windows 1.
UA_PARAMS = bytes([0x81, 0x80, 0x12, 0x05, 0x01, 0x80, 0x06, 0x01, 0x80,
                   0x07, 0x04, 0, 0, 0, 1, 0x08, 0x04, 0, 0, 0, 1])


# **** CRC-16/X.25, built bit by bit here (independent of firmware/fcs16.py) ****


def _crc_table():
    t = []
    for b in range(256):
        c = b
        for _ in range(8):
            c = (c >> 1) ^ 0x8408 if c & 1 else c >> 1
        t.append(c)
    return t


_TABLE = _crc_table()


def crc(buf, off, n):
    t = _TABLE
    c = 0xFFFF
    for i in range(off, off + n):
        c = (c >> 8) ^ t[(c ^ buf[i]) & 0xFF]
    return c ^ 0xFFFF


# **** frames and WPDUs into a buffer (allocation-free) ****

# Our address in the three forms a client may use (46 6.4.2.2); other addresses for the fuzzer.
ADDRS = (hdlc_util.server_addr(1, UNIT_ID, 4), hdlc_util.server_addr(1, UNIT_ID, 2),
         hdlc_util.server_addr(1, UNIT_ID, 1), hdlc_util.server_addr(1, 99, 4),
         hdlc_util.server_addr(0x7F, 0x7F, 2), hdlc_util.server_addr(0x3FFF, 0x3FFF, 4),
         hdlc_util.server_addr(1, 0x3FFF, 4), hdlc_util.server_addr(0x7F, 0, 1))


def put_frame(out, p, dst, client, ctrl, src, soff, n, seg):
    # 7E | format | dst | client | ctrl | [HCS info] | FCS | 7E at out[p]; returns the end.
    length = 6 + len(dst) + ((n + 2) if n else 0)
    out[p] = 0x7E
    out[p + 1] = 0xA0 | (0x08 if seg else 0) | (length >> 8)
    out[p + 2] = length & 0xFF
    q = p + 3
    for k in range(len(dst)):
        out[q + k] = dst[k]
    q += len(dst)
    out[q] = client
    out[q + 1] = ctrl
    q += 2
    if n:
        h = crc(out, p + 1, q - p - 1)
        out[q] = h & 0xFF
        out[q + 1] = h >> 8
        q += 2
        for k in range(n):
            out[q + k] = src[soff + k]
        q += n
    f = crc(out, p + 1, q - p - 1)
    out[q] = f & 0xFF
    out[q + 1] = f >> 8
    out[q + 2] = 0x7E
    return q + 3


def put_wpdu(out, p, src_port, dst_port, src, soff, n):
    out[p] = 0
    out[p + 1] = 1
    out[p + 2] = src_port >> 8
    out[p + 3] = src_port & 0xFF
    out[p + 4] = dst_port >> 8
    out[p + 5] = dst_port & 0xFF
    out[p + 6] = (n >> 8) & 0xFF
    out[p + 7] = n & 0xFF
    for k in range(n):
        out[p + 8 + k] = src[soff + k]
    return p + 8 + n


def fix_frames(buf, n):
    # Rewrites HCS and FCS of every frame found in buf[0:n] whose length fits (after a
    # mutation inside frames, so the mutated content gets past the checksums).
    p = 0
    while p + 9 < n:
        if buf[p] != 0x7E or buf[p + 1] & 0xF0 != 0xA0:
            p += 1
            continue
        length = ((buf[p + 1] & 7) << 8) | buf[p + 2]
        if length < 7 or p + 1 + length > n:
            p += 1
            continue
        s = p + 1
        c = s + 2
        while c < s + 6 and not buf[c] & 1:
            c += 1
        c += 2  # from the last server address byte past the client address: the control field
        if s + length > c + 3:  # an information field: HCS over format .. control
            h = crc(buf, s, c + 1 - s)
            buf[c + 1] = h & 0xFF
            buf[c + 2] = h >> 8
        f = crc(buf, s, length - 2)
        buf[s + length - 2] = f & 0xFF
        buf[s + length - 1] = f >> 8
        p = s + length


class Harness:
    def __init__(self, rows=200, window=1, max_info=MAX_INFO):
        # window, max_info: the link's limits (config hdlc.window_*, max_info_*); a client
        # gets more than 1 and 128 only by asking in its SNRM.
        m = Meter({"lls_password": PASSWORD})
        lp = m.profile("1-0:99.1.0*255")
        vals = bytearray(16)
        for k in range(rows):  # load-profile rows before the clock: selective access finds some
            vals[3] = k & 0xFF
            lp.rows.append(CLOCK_DAYS - 3 + k // 96, (k % 96) * 900, 0, vals)
        m.clock.set_utc(CLOCK_DAYS, CLOCK_SECS)
        self.meter = m
        self.link = HdlcLink(m.server, unit_id=UNIT_ID, max_info_tx=max_info,
                             max_info_rx=max_info, window_tx=window, window_rx=window,
                             rx_timeout_ms=RX_TIMEOUT_MS, inactivity_ms=INACTIVITY_MS)
        self.wlink = WrapperLink(m.port_server(), pdu_size=PDU)
        self.now = 0
        self.wlink.open(0)
        self.buf = bytearray(CAP)  # the case's input
        self.n = 0
        self.got = bytearray(CAP)  # answers collected during a recovery exchange
        self.got_n = 0
        self.collect = False
        self.chunk = 0  # chunk size (0: whole, else fixed size), see feed()
        self.gap_every = 0  # a pause longer than the inter-frame timeout every k chunks
        self.cuts = None  # or chunk end offsets, and self.gaps: pause after chunk k (hypothesis)
        self.gaps = None
        self.prefix_client = 0x21
        self._prefixes()
        self._expected()
        # Figures
        self.inputs = 0
        self.bytes = 0
        self.answers = 0
        self.recoveries = 0
        self.failure = 0  # F_* of the last case (0: passed)
        self.detail = None  # the exception of an F_EXCEPTION
        self.fail_at = 0

    # **** setup: prefixes and expected answers ****

    def _prefixes(self):
        fr = hdlc_util.frame
        srv = ADDRS[0]
        i00 = hdlc_util.i_ctrl(0, 0)
        snrm = fr(srv, 0x21, 0x93)
        self.hdlc_prefix = (b"", snrm, snrm + fr(srv, 0x21, i00, LLC + aarq()),
                            fr(srv, 0x03, 0x93) + fr(srv, 0x03, i00, LLC + AARQ_LLS_12345678))
        self.w_prefix = (b"", b"", wpdu(16, 1, aarq()), wpdu(1, 1, AARQ_LLS_12345678))

    def _expected(self):
        fr = hdlc_util.frame
        srv = ADDRS[0]
        self.rec_hdlc = (fr(srv, 0x21, 0x93), fr(srv, 0x21, hdlc_util.i_ctrl(0, 0), LLC + aarq()),
                         fr(srv, 0x21, hdlc_util.i_ctrl(1, 1), LLC + get(8, LN_CLOCK, 2)))
        # Answers go from our 4-byte address to client 0x21: build them with swapped roles.
        self.exp_hdlc = (_answer(0x73, UA_PARAMS), _answer(0x30, b"\xE6\xE7\x00" + AARE_OK),
                         _answer(0x52, b"\xE6\xE7\x00" + CLOCK_RESP))
        self.rec_w = (wpdu(16, 1, aarq()), wpdu(16, 1, get(8, LN_CLOCK, 2)))
        self.exp_w = (wpdu(1, 16, AARE_OK), wpdu(1, 16, CLOCK_RESP))

    # **** one case ****

    def run_case(self, transport, prefix, n):
        # The case input is buf[0:n], chunked per self.chunk / self.gap_every. Returns F_* or 0.
        self.inputs += 1
        self.bytes += n
        self.n = n
        self.failure = 0
        try:
            if transport == HDLC:
                self._hdlc_case(prefix, n)
            else:
                self._wrapper_case(prefix, n)
        except Exception as e:  # noqa: BLE001 - the invariant: nothing escapes
            self._fail(F_EXCEPTION)
            self.detail = e
        return self.failure

    def _hdlc_case(self, prefix, n):
        link = self.link
        self.now += RX_TIMEOUT_MS + 1  # a client starts after the inter-frame timeout
        link.poll(self.now)
        p = self.hdlc_prefix[prefix]
        self.prefix_client = 0x03 if prefix == P_MGMT else 0x21
        if len(p):
            self._feed(link, p, 0, len(p), False)
        self._feed(link, self.buf, 0, n, False, True)

    def _wrapper_case(self, prefix, n):
        w = self.wlink
        w.close()  # every wrapper case is a fresh connection
        w.open(self.now)
        p = self.w_prefix[prefix]
        if len(p):
            self._feed(w, p, 0, len(p), True)
        self._feed(w, self.buf, 0, n, True, True)

    # **** feeding, as a transport does ****

    def _feed(self, link, data, off, end, wrapper, fuzzed=False):
        # The case input (fuzzed) comes in chunks: of self.chunk bytes (0: all at once), or
        # cut at the offsets in self.cuts; a pause longer than the inter-frame timeout after
        # every gap_every-th chunk, or after chunk k when self.gaps[k]. Prefixes and recovery
        # requests come whole.
        chunk = self.chunk if fuzzed else 0
        gap = self.gap_every if fuzzed else 0
        cuts = self.cuts if fuzzed else None
        k = 0
        while off < end and not self.failure:
            e = end if chunk == 0 else off + chunk
            if cuts is not None:
                e = cuts[k] if k < len(cuts) and cuts[k] > off else end
            if e > end:
                e = end
            off = self._chunk(link, data, off, e, wrapper)
            pause = (gap and (k + 1) % gap == 0) or (cuts is not None and self.gaps[k])
            k += 1
            self.now += RX_TIMEOUT_MS + 1 if pause else 1
            link.poll(self.now)
            if wrapper and link.fault:  # the transport closes; the client reconnects
                link.close()
                link.open(self.now)

    def _chunk(self, link, data, off, end, wrapper):
        # Calls per chunk: each takes a byte or sends an answer; frames replayed from the
        # deframer's buffer after a resync (at most its size / 9 bytes each) come on top.
        budget = 2 * (end - off) + 64
        while True:
            k = link.receive(data, off, end - off, self.now)
            off += k
            if link.tx_len:
                if wrapper:
                    self._check_wpdu(link.tx, link.tx_len)
                else:
                    self._check_frame(link.tx, link.tx_len)
                if self.collect:
                    self._keep(link.tx, link.tx_len)
                else:
                    self.answers += 1
                link.tx_len = 0
            elif wrapper and link.fault:
                link.close()  # a fault stops the link: the transport drops the connection
                link.open(self.now)
                if off < end:
                    continue
                return end
            elif off < end:
                self._fail(F_STALL)
                return end
            else:
                return off
            budget -= 1
            if budget < 0:
                self._fail(F_LOOP)
                return end

    def _keep(self, t, n):
        g = self.got
        p = self.got_n
        if p + n > len(g):
            return
        for k in range(n):
            g[p + k] = t[k]
        self.got_n = p + n

    def _fail(self, code):
        if not self.failure:
            self.failure = code
            self.fail_at = self.inputs

    # **** answer checks ****

    def _check_frame(self, t, n):
        # Every frame of the answer (a window of up to 7 I-frames comes in one go).
        s = 0
        while s < n:
            k = (((t[s + 1] & 7) << 8) | t[s + 2]) + 2 if s + 2 < n else n - s
            if s + k > n or not frame_ok(t, s, k, self.link._lim_tx) or \
                    not self._client_seen(t[s + 3]):
                self._fail(F_FRAME)
                return
            s += k

    def _client_seen(self, c):
        # The answer's destination is the client address of a frame that was fed.
        if c == self.prefix_client or c == 0x21:
            return True
        b = self.buf
        for i in range(self.n):
            if b[i] == c:
                return True
        return False

    def _check_wpdu(self, t, n):
        if not wpdu_ok(t, n, PDU):
            self._fail(F_WPDU)

    # **** recovery ****

    def recover(self):
        # A valid client session must succeed whatever the last case left behind.
        self.recoveries += 1
        self.meter.clock.set_utc(CLOCK_DAYS, CLOCK_SECS)  # a fuzzed SET may have moved it
        try:
            if not self._recover_hdlc() or not self._recover_wrapper():
                self._fail(F_RECOVERY)
        except Exception as e:  # noqa: BLE001
            self._fail(F_EXCEPTION)
            self.detail = e
        return self.failure

    def _recover_hdlc(self):
        link = self.link
        self.now += RX_TIMEOUT_MS + 1
        link.poll(self.now)
        self.prefix_client = 0x21
        for i in range(3):
            if not self._exchange(link, self.rec_hdlc[i], self.exp_hdlc[i], False):
                return False
        return True

    def _recover_wrapper(self):
        w = self.wlink
        if w.rx_busy():
            self.now += W_RX_TIMEOUT_MS + 1  # the client waits out its own timeout
            w.poll(self.now)
        if w.fault:
            w.close()
            w.open(self.now)
        for i in range(2):
            if not self._exchange(w, self.rec_w[i], self.exp_w[i], True):
                return False
        return True

    def _exchange(self, link, req, exp, wrapper):
        self.collect = True
        self.got_n = 0
        try:
            self._feed(link, req, 0, len(req), wrapper)
        finally:
            self.collect = False
        if self.failure or self.got_n != len(exp):
            return False
        g = self.got
        for k in range(len(exp)):
            if g[k] != exp[k]:
                return False
        return True


def _answer(ctrl, info):
    # A frame from our 4-byte address to client 0x21 (the answers of the recovery session).
    body = bytearray([0xA0, 0, 0x21]) + ADDRS[0] + bytes([ctrl])
    body[1] = len(body) + 2 + ((len(info) + 2) if info else 0)
    if info:
        h = crc(body, 0, len(body))
        body += bytes([h & 0xFF, h >> 8]) + info
    f = crc(body, 0, len(body))
    return b"\x7e" + bytes(body) + bytes([f & 0xFF, f >> 8]) + b"\x7e"


def wpdu(src, dst, apdu):
    b = bytearray(8 + len(apdu))
    put_wpdu(b, 0, src, dst, apdu, 0, len(apdu))
    return bytes(b)


# HDLC responses (46 6.4.3.3): I, RR, RNR, and the U-frames UA, DM, FRMR with F set.
def frame_ok(t, s, n, max_info):
    # The frame t[s:s+n]: flags, format, length, addresses (to a client, from us), a response
    # control field, FCS, and HCS with 1..max_info information bytes when there is a field.
    e = s + n
    if n < 9 or t[s] != 0x7E or t[e - 1] != 0x7E or t[s + 1] & 0xF0 != 0xA0:
        return False
    if ((t[s + 1] & 7) << 8 | t[s + 2]) != n - 2 or not t[s + 3] & 1:
        return False
    p = s + 4
    while p < s + 8 and not t[p] & 1:
        p += 1
    alen = p - s - 3
    a = s + 4
    if alen == 1:
        ours = t[a] >> 1 == 1
    elif alen == 2:
        ours = t[a] >> 1 == 1 and t[a + 1] >> 1 == UNIT_ID
    elif alen == 4:
        ours = ((t[a] >> 1) << 7 | (t[a + 1] >> 1)) == 1 and \
            ((t[a + 2] >> 1) << 7 | (t[a + 3] >> 1)) == UNIT_ID
    else:
        return False
    c = p + 1
    ctrl = t[c]
    if not ours or (ctrl & 1 and ctrl & 0x0F not in (0x01, 0x05) and
                    ctrl not in (0x73, 0x1F, 0x97)):
        return False
    f = crc(t, s + 1, n - 4)
    if t[e - 3] != f & 0xFF or t[e - 2] != f >> 8:
        return False
    if e - 3 == c + 1:
        return True  # no information field
    info = e - c - 6  # bytes between HCS and FCS
    h = crc(t, s + 1, c - s)
    return 1 <= info <= max_info and t[c + 1] == h & 0xFF and t[c + 2] == h >> 8


# APDUs a server sends (GB 9.5): AARE, RLRE, GET/SET/ACTION responses, exception response,
# confirmed-service-error.
_SERVER_TAGS = b"\x61\x63\xC4\xC5\xC7\xD8\x0E"


def wpdu_ok(t, n, pdu):
    if n < 9 or t[0] != 0 or t[1] != 1 or t[2] != 0 or t[3] != 1:
        return False
    m = (t[6] << 8) | t[7]
    if m != n - 8 or m > pdu:
        return False
    tag = t[8]
    for k in range(len(_SERVER_TAGS)):
        if _SERVER_TAGS[k] == tag:
            return True
    return False
