# fuzz_mutate.py: the mutation engine of tools/fuzz.py, portable (CPython, MicroPython unix and
# WebAssembly ports): a PRNG made of small ints, mutations in place in preallocated buffers,
# seeds captured from real sessions and valid APDUs (tools/fuzz_seeds.py).
# Case I of seed S comes from a PRNG seeded from (S, I) alone, so any case replays by itself,
# whatever ran before it (the harness recovers after every case by default).
#
#   <python> tools/fuzz_mutate.py --seed S --start I --cases N [--check-every K] [--limit-ms T]
#                                 [--window W] [--max-info B]
#
# runs cases [I, I + N) and prints "PROGRESS i" every 1000 cases, a "FAIL ..." line per failed
# case (input in hex) and one "FIGURES ..." line; tools/fuzz.py starts it on MicroPython.
import sys
import time

_HERE = globals().get("__file__", "")
if "/" in _HERE and _HERE.rsplit("/", 1)[0] not in sys.path:
    sys.path.insert(0, _HERE.rsplit("/", 1)[0])  # the WebAssembly runner does not add it

import fuzz_harness as fh  # noqa: E402
import fuzz_seeds  # noqa: E402
from fuzz_harness import CAP, HDLC, P_MGMT, P_NONE, P_PUBLIC, P_SNRM, WRAPPER, Harness  # noqa
from micropython import const  # noqa: E402

_A1 = const(16380)  # multiply-with-carry multipliers: a * 2**16 - 1 and its half are prime,
_A2 = const(16365)  # and a * 0xFFFF + carry < 2**30 stays a small int on 32-bit ports
_SEED_MASK = const(0xFFFFF)  # seeds are taken modulo 2**20


class Rng:
    # Two 16-bit multiply-with-carry generators (Marsaglia): 30 bits per step, no long ints.
    def __init__(self):
        self.x = 1
        self.y = 1

    def seed(self, s, i):
        # Distinct (s, i) give distinct states for s < 2**20, i < 2**32.
        s &= _SEED_MASK
        self.x = 1 + (((s & 0x3FF) << 16) | (i & 0xFFFF))
        mix = ((i >> 16) ^ ((i & 0xFFFF) * 16381)) & 0xFFFF  # both halves see all of i
        self.y = 1 + ((((s >> 10) & 0x3FF) << 16) | mix)
        for _ in range(6):
            self.next()

    def next(self):
        x = _A1 * (self.x & 0xFFFF) + (self.x >> 16)
        y = _A2 * (self.y & 0xFFFF) + (self.y >> 16)
        self.x = x
        self.y = y
        return ((x & 0x7FFF) << 15) | ((y ^ (x >> 16)) & 0x7FFF)

    def below(self, n):
        return self.next() % n


# Byte values that mean something somewhere in the stack: flags, format types, LLC, tags,
# A-XDR long lengths, address bits.
_MAGIC = bytes([0x00, 0x01, 0x02, 0x7E, 0x7F, 0x80, 0x81, 0x82, 0x84, 0xA0, 0xA8, 0xFF,
                0xFE, 0xE6, 0xE7, 0x60, 0x61, 0x62, 0xC0, 0xC1, 0xC3, 0xC4, 0x09, 0x01, 0x10,
                0x93, 0x53, 0x13, 0x11, 0x1F, 0x03, 0x21, 0x23, 0x0C, 0x12, 0x06])
_N_OPS = const(13)


class Mutator:
    # Fills harness.buf with case I of seed S; allocation-free after __init__.
    def __init__(self, h):
        self.h = h
        self.rng = Rng()
        self.apdus = fuzz_seeds.seed_apdus()
        self.streams = fuzz_seeds.capture_sessions(h)
        self.tmp = bytearray(CAP)
        self.transport = HDLC
        self.prefix = P_NONE

    def case(self, seed, i):
        # Returns the input length; sets transport and prefix, and the harness's chunking.
        r = self.rng
        r.seed(seed, i)
        h = self.h
        mode = r.below(8)
        if mode < 4:
            n = self._apdu_case()
        elif mode < 7:
            n = self._stream_case()
        else:
            n = self._noise_case()
        c = r.below(16)
        h.chunk = 0 if c < 8 else (1 if c < 10 else 2 + r.below(63))
        h.gap_every = 1 + r.below(4) if r.below(16) == 0 else 0
        return n

    # **** case kinds ****

    def _apdu_case(self):
        # A seed APDU, mutated, in well-formed I-frames or a WPDU after a prefix that makes
        # it reach the application layer.
        r = self.rng
        a = self.apdus[r.below(len(self.apdus))]
        t = self.tmp
        t[0] = 0xE6  # the LLC header travels with it
        t[1] = 0xE6
        t[2] = 0
        n = len(a)
        for k in range(n):
            t[3 + k] = a[k]
        n += 3
        if r.below(8):
            for _ in range(1 + r.below(3)):
                n = 3 + self.mutate(t, 3, n - 3, fh.PDU)
        if a[0] == 0x60:
            p = r.below(4)
            prefix = P_SNRM if p < 2 else p
        else:
            p = r.below(20)
            prefix = P_PUBLIC if p < 9 else (P_MGMT if p < 18 else p - 18)
        self.prefix = prefix
        if r.below(4) == 0:
            self.transport = WRAPPER
            return self._wrap(t, n, prefix)
        self.transport = HDLC
        out = self.h.buf
        q = self._frames(out, t, n, prefix)
        if r.below(8) == 0:  # now and then break the framing too (HCS, FCS, lengths)
            q = self.mutate(out, 0, q, CAP)
        return q

    def _frames(self, out, t, n, prefix):
        r = self.rng
        ns = nr = 1 if prefix >= P_PUBLIC else 0
        client = 0x03 if prefix == P_MGMT else 0x21
        if r.below(16) == 0:
            client = r.below(256)
        dst = fh.ADDRS[r.below(3) if r.below(16) else r.below(len(fh.ADDRS))]
        size = fh.MAX_INFO if r.below(4) else 1 + r.below(fh.MAX_INFO)
        q = 0
        off = 0
        while off < n and q + size + 32 < CAP:
            k = n - off if n - off <= size else size
            ctrl = (nr << 5) | 0x10 | (ns << 1)
            q = fh.put_frame(out, q, dst, client, ctrl, t, off, k, off + k < n)
            off += k
            ns = (ns + 1) & 7
        # Poll for the rest of a segmented answer, as a client would (N(R) of the answer's
        # segments: the AARE of the prefix was the meter's I-frame 0).
        polls = r.below(4)
        vr = 2 if prefix >= P_PUBLIC else 1
        for _ in range(polls):
            if q + 16 >= CAP:
                break
            q = fh.put_frame(out, q, dst, client, 0x11 | (vr << 5), t, 0, 0, False)
            vr = (vr + 1) & 7
        return q

    def _wrap(self, t, n, prefix):
        r = self.rng
        src = 1 if prefix == P_MGMT else 16
        if r.below(16) == 0:
            src = r.below(0x10000)
        dst = 1 if r.below(16) else r.below(0x10000)
        q = fh.put_wpdu(self.h.buf, 0, src, dst, t, 3, n - 3)
        if r.below(6) == 0:
            q = self.mutate(self.h.buf, 0, q, CAP)  # header fields too
        return q

    def _stream_case(self):
        r = self.rng
        transport, prefix, s = self.streams[r.below(len(self.streams))]
        out = self.h.buf
        n = len(s)
        for k in range(n):
            out[k] = s[k]
        for _ in range(1 + r.below(4)):
            n = self.mutate(out, 0, n, CAP)
        if transport == HDLC and r.below(2):
            fh.fix_frames(out, n)
        self.transport = transport
        self.prefix = prefix
        return n

    def _noise_case(self):
        r = self.rng
        out = self.h.buf
        n = 1 + r.below(300)
        for k in range(n):
            v = r.below(16)
            out[k] = 0x7E if v < 4 else (0xA0 | r.below(16) if v < 6 else r.below(256))
        self.transport = WRAPPER if r.below(4) == 0 else HDLC
        self.prefix = r.below(fh.N_PREFIX)
        return n

    # **** mutations on buf[off:off+n], at most cap bytes from off; return the new n ****

    def mutate(self, b, off, n, cap):
        r = self.rng
        op = r.below(_N_OPS)
        if op == 12 and (cap > fh.PDU or r.below(3)):
            op = 3  # rarer (costly), and not for whole streams: growing them only adds noise
        if n == 0 and op != 12:
            op = 3
        p = off + r.below(n) if n else off
        if op == 0:  # bit flip
            b[p] ^= 1 << r.below(8)
        elif op == 1:
            b[p] = _MAGIC[r.below(len(_MAGIC))]
        elif op == 2:
            b[p] = r.below(256)
        elif op == 3:  # insert random bytes
            k = 1 + r.below(8)
            if n + k <= cap:
                _open(b, p, off + n, k)
                for j in range(k):
                    b[p + j] = r.below(256)
                n += k
        elif op == 4:  # delete a range
            k = 1 + r.below(16)
            if p + k > off + n:
                k = off + n - p
            _close(b, p, off + n, k)
            n -= k
        elif op == 5:  # repeat a range
            k = 1 + r.below(64)
            if p + k > off + n:
                k = off + n - p
            if n + k <= cap:
                _open(b, p + k, off + n, k)
                for j in range(k):
                    b[p + k + j] = b[p + j]
                n += k
        elif op == 6:
            n = self._splice(b, off, n, cap, p)
        elif op == 7:  # truncation
            n = r.below(n + 1)
        elif op == 8:  # small arithmetic
            b[p] = (b[p] + 1 + r.below(16) if r.below(2) else b[p] - 1 - r.below(16)) & 0xFF
        elif op == 9:
            self._length(b, off, n, p)
        elif op == 10:  # a flag inside
            if n < cap:
                _open(b, p, off + n, 1)
                b[p] = 0x7E
                n += 1
        elif op == 12:  # grow to exactly cap: parsers meet the end of the buffer
            k = cap - n
            _open(b, p, off + n, k)
            v = r.below(256)
            for j in range(k):
                b[p + j] = v
            n = cap
        else:  # 16 bits at once: A-XDR lengths, class ids, wPorts, block numbers
            if p + 1 < off + n:
                v = r.below(4)
                b[p] = 0xFF if v == 0 else (0 if v == 1 else r.below(256))
                b[p + 1] = 0xFF if v == 0 else (0 if v == 1 else r.below(256))
        return n

    def _splice(self, b, off, n, cap, p):
        # Bytes of another seed, inserted (or, half the time, overwriting from p on).
        r = self.rng
        if r.below(2):
            s = self.apdus[r.below(len(self.apdus))]
        else:
            s = self.streams[r.below(len(self.streams))][2]
        q = r.below(len(s))
        k = 1 + r.below(len(s) - q)
        if r.below(2):
            if n + k > cap:
                return n
            _open(b, p, off + n, k)
            for j in range(k):
                b[p + j] = s[q + j]
            return n + k
        if p + k > off + cap:
            k = off + cap - p
        for j in range(k):
            b[p + j] = s[q + j]
        if p + k > off + n:
            n = p + k - off
        return n

    def _length(self, b, off, n, p):
        # Edit a length field: the next HDLC format/length pair from p on, else the byte at p
        # read as a BER/A-XDR length.
        r = self.rng
        end = off + n
        q = p
        while q + 2 < end and not (b[q] == 0x7E and b[q + 1] & 0xF0 == 0xA0):
            q += 1
        if q + 2 < end:
            v = r.below(4)
            if v == 0:
                b[q + 1] ^= 0x08  # the segmentation bit
            elif v == 1:
                b[q + 1] = 0xA0 | r.below(8)
                b[q + 2] = r.below(256)
            else:
                b[q + 2] = (b[q + 2] + (1 if v == 2 else 255)) & 0xFF
            return
        v = r.below(4)
        b[p] = (b[p] + 1) & 0xFF if v == 0 else ((b[p] - 1) & 0xFF if v == 1 else
                                                 (0x80 | r.below(5) if v == 2 else 0))


def _open(b, p, end, k):
    # Make room: b[p:end] moves k bytes right (from the end, no allocation).
    for j in range(end - 1, p - 1, -1):
        b[j + k] = b[j]


def _close(b, p, end, k):
    for j in range(p, end - k):
        b[j] = b[j + k]


# **** a run ****


class Run:
    # The mutation fuzzer over cases [start, start + count) of one seed.
    def __init__(self, check_every=1, limit_ms=5000, window=1, max_info=fh.MAX_INFO):
        self.h = Harness(window=window, max_info=max_info)
        self.m = Mutator(self.h)
        self.check_every = check_every
        self.limit_ms = limit_ms  # a case (with its recovery) taking longer fails (F_SLOW)
        self.slowest = 0  # ms, and which case
        self.slowest_case = 0
        self.failed = []  # (case, code, transport, prefix, input, exception) per failure
        self.max_fail = 50

    def cases(self, seed, start, count):
        # Allocation-free while no case fails.
        h = self.h
        m = self.m
        every = self.check_every
        for i in range(start, start + count):
            t = _ticks()
            n = m.case(seed, i)
            code = h.run_case(m.transport, m.prefix, n)
            if not code and (i + 1) % every == 0:
                code = h.recover()
            d = _diff(_ticks(), t)
            if d > self.slowest:
                self.slowest = d
                self.slowest_case = i
            if d > self.limit_ms and not code:
                code = fh.F_SLOW
            if code:
                self._failed(i, code)

    def _failed(self, i, code):
        if len(self.failed) < self.max_fail:
            self.failed.append((i, code, self.m.transport, self.m.prefix,
                                bytes(self.h.buf[:self.h.n]), self.h.detail))
        self.h.detail = None
        self.h.failure = 0
        self.h.recover()  # leave a sane state for the next case
        self.h.failure = 0


if hasattr(time, "ticks_ms"):
    _ticks = time.ticks_ms
    _diff = time.ticks_diff
else:

    def _ticks():
        return int(time.monotonic() * 1000)

    def _diff(a, b):
        return a - b


def report_line(run, ms):
    h = run.h
    return ("FIGURES inputs=%d bytes=%d answered=%d recoveries=%d failures=%d ms=%d "
            "slowest_ms=%d slowest_case=%d") % (h.inputs, h.bytes, h.answers, h.recoveries,
                                                len(run.failed), ms, run.slowest,
                                                run.slowest_case)


def fail_line(seed, f):
    i, code, transport, prefix, data, detail = f
    return "FAIL seed=%d case=%d kind=%s transport=%s prefix=%d detail=%s input=%s" % (
        seed, i, fh.FAILURES[code].replace(" ", "_"), ("hdlc", "wrapper")[transport], prefix,
        repr(detail).replace(" ", "_"), "".join("%02x" % x for x in data))


def run_here(opts):
    # The mutation engine in this process (any runtime); prints FAIL and FIGURES lines.
    seed = opts["seed"]
    start = opts["start"]
    count = opts["cases"]
    run = Run(opts["check_every"], opts["limit_ms"], opts["window"], opts["max_info"])
    t0 = _ticks()
    step = 1000
    done = 0
    while done < count:
        k = count - done if count - done < step else step
        run.cases(seed, start + done, k)
        done += k
        print("PROGRESS %d" % (start + done))
    for f in run.failed:
        print(fail_line(seed, f))
    print(report_line(run, _diff(_ticks(), t0)))
    return 1 if run.failed else 0


_DEFAULTS = {"cases": 10000, "seed": 1, "start": 0, "check_every": 1, "limit_ms": 5000,
             "window": 1, "max_info": 128}


def parse_args(argv):
    # --name value pairs of integers (MicroPython has no argparse).
    opts = dict(_DEFAULTS)
    for i in range(0, len(argv) - 1, 2):
        k = argv[i][2:].replace("-", "_")
        if k not in opts:
            print("fuzz_mutate.py: unknown option " + argv[i])
            sys.exit(2)
        opts[k] = int(argv[i + 1])
    return opts


if __name__ == "__main__":
    sys.exit(run_here(parse_args(sys.argv[1:])))
