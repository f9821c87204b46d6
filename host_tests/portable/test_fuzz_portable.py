# The mutation fuzzer (tools/fuzz_mutate.py over tools/fuzz_harness.py) on every runtime: a
# few hundred fuzz cases keep every invariant (no exception, bounded work, well-formed
# answers from our address, recovery to an exact SNRM/AARQ/GET session after each case), the
# harness does catch each kind of failure, cases replay alone, and fuzzing allocates nothing:
# whole batches of fuzz cases run under heap_lock() and the heap does not grow over them.
import gc

import support
from support import IS_MICROPYTHON, assert_no_alloc

try:
    import fuzz_harness as fh
    import fuzz_mutate
except ImportError:  # a board: tools/ is not there
    fh = None

CASES = 300


def _need():
    if fh is None:
        raise support.SkipTest("tools/fuzz_*.py not on the path")


_RUN = None


def _run():
    # One harness for the module (building the meter and capturing the seeds takes a while on
    # MicroPython); every test leaves it recovered.
    global _RUN
    _need()
    if _RUN is None:
        _RUN = fuzz_mutate.Run(check_every=1, limit_ms=60000)
    return _RUN


def test_fuzz_cases_keep_every_invariant():
    run = _run()
    h = run.h
    srv = h.meter.server
    before = (h.inputs, h.answers, h.recoveries, srv.associations)
    run.cases(11, 0, CASES)
    assert run.failed == [], [f[:4] for f in run.failed]
    assert h.inputs - before[0] == CASES
    assert h.recoveries - before[2] == CASES
    # The cases reached the application: answers sent, associations made by prefixes and by
    # fuzzed AARQs, and the link refused what it had to (FRMR, dropped frames).
    assert h.answers - before[1] > 2 * CASES
    assert srv.associations - before[3] > CASES // 2
    assert h.link.frmr_sent > 0 and h.link.de.dropped > 0 and h.wlink.faults > 0


def test_fuzz_cases_with_windows_of_7_and_512_byte_frames_keep_every_invariant():
    # The link's limits widened (config hdlc.window_*, max_info_*): clients that ask for more
    # in their SNRM get bursts of up to 7 I-frames, each answer checked frame by frame.
    _need()
    run = fuzz_mutate.Run(check_every=1, limit_ms=60000, window=7, max_info=512)
    run.cases(21, 0, CASES // 3)
    assert run.failed == [], [f[:4] for f in run.failed]
    assert run.h.recoveries == CASES // 3 + 1


def test_a_case_replays_alone():
    run = _run()
    m = run.m
    h = run.h
    n = m.case(5, 123)
    first = bytes(h.buf[:n])
    kind = (m.transport, m.prefix, h.chunk, h.gap_every)
    for i in range(3):
        m.case(5, i)  # whatever came before
    assert m.case(5, 123) == n and bytes(h.buf[:n]) == first
    assert (m.transport, m.prefix, h.chunk, h.gap_every) == kind
    n6 = m.case(6, 123)  # another seed, another input
    assert n6 != n or bytes(h.buf[:n6]) != first


class _FailingApp:
    # The meter's server, except that an APDU starting with 0xEE raises.
    def __init__(self, srv):
        self.srv = srv

    def on_pdu(self, client, req, n, resp):
        if n and req[0] == 0xEE:
            raise ValueError("boom")
        return self.srv.on_pdu(client, req, n, resp)

    def on_ui(self, client, req, n):
        pass

    def on_link_lost(self):
        self.srv.on_link_lost()


class _StallLink:
    # Takes no byte and sends nothing: a transport would spin forever.
    tx_len = 0

    def receive(self, data, off, n, now):
        return 0

    def poll(self, now):
        pass


def _case(h, data, transport=0, prefix=2):
    h.buf[:len(data)] = data
    h.chunk = 0
    h.gap_every = 0
    return h.run_case(transport, prefix, len(data))


def test_the_harness_catches_each_kind_of_failure():
    run = _run()
    h = run.h
    link = h.link
    srv = link.app
    ee = fh.wpdu(16, 1, b"\xEE\x00")
    framed = bytearray(64)
    n = fh.put_frame(framed, 0, fh.ADDRS[0], 0x21, 0x32, b"\xE6\xE6\x00\xEE\x00", 0, 5, False)
    try:
        link.app = _FailingApp(srv)
        assert _case(h, framed[:n]) == fh.F_EXCEPTION
        assert repr(h.detail).startswith("ValueError")
        link.app = srv
        assert _case(h, framed[:n]) == 0 and h.recover() == 0
        h.link = _StallLink()
        assert _case(h, b"\x7e\xa0") == fh.F_STALL
        h.link = link
        h.failure = 0
        # An answer with a bad FCS, or from another meter's address, is malformed.
        good = h.exp_hdlc[0]
        assert fh.frame_ok(good, 0, len(good), 128)
        bad = bytearray(good)
        bad[-2] ^= 1
        assert not fh.frame_ok(bad, 0, len(bad), 128)
        other = fh.ADDRS[3]  # unit 99
        stranger = fh.hdlc_util.frame(b"\x21" + other[:3], other[3], 0x73)
        assert not fh.frame_ok(stranger, 0, len(stranger), 128)
        ua = fh.hdlc_util.frame(b"\x21" + fh.ADDRS[0][:3], fh.ADDRS[0][3], 0x73)
        assert fh.frame_ok(ua, 0, len(ua), 128)  # the same frame from our address passes
        assert fh.wpdu_ok(h.exp_w[0], len(h.exp_w[0]), 1024)
        assert not fh.wpdu_ok(ee, len(ee), 1024)  # 0xEE is no tag a server sends
        # The meter's clock moved out of step: the recovery's GET no longer matches.
        h.meter.clock.utc_offset = 0
        assert h.recover() == fh.F_RECOVERY
    finally:
        link.app = srv
        h.link = link
        h.meter.clock.utc_offset = 60
        h.failure = 0
    assert h.recover() == 0


class _Batch:
    # A fixed batch of fuzz cases, repeatable, for the allocation checks.
    def __init__(self, run, seed, count):
        self.run = run
        self.seed = seed
        self.count = count

    def go(self, _):
        self.run.cases(self.seed, 0, self.count)


def test_fuzzing_allocates_nothing_and_the_heap_does_not_grow():
    run = _run()
    b = _Batch(run, 12, 60)
    b.go(0)  # warm-up: one-time allocations of every path the batch takes
    assert_no_alloc(b.go, 0, "60 fuzz cases with recovery")
    assert run.failed == []
    if not IS_MICROPYTHON:
        return
    gc.collect()
    before = gc.mem_alloc()
    run.cases(13, 0, CASES)
    gc.collect()
    grown = gc.mem_alloc() - before
    assert run.failed == []
    assert grown <= 0, "heap grew by %d bytes over %d fuzz cases" % (grown, CASES)


class _Rejected:
    # Inputs the meter rejects, each fed as a fuzz case (after a public association).
    def __init__(self, h):
        self.h = h
        fr = fh.hdlc_util.frame
        srv = fh.ADDRS[0]
        good = fr(srv, 0x21, 0x32, b"\xE6\xE6\x00" + bytes([0xC0, 1, 0xC1, 0, 8]) +
                  b"\x00\x00\x01\x00\x00\xFF\x02\x00")
        bad_fcs = bytearray(good)
        bad_fcs[-2] ^= 0x40
        bad_hcs = bytearray(good)
        bad_hcs[11] ^= 0x01
        self.hdlc = [bytes(bad_fcs), bytes(bad_hcs),
                     fr(fh.ADDRS[3], 0x21, 0x32, b"\xE6\xE6\x00\xC0"),  # another meter
                     fr(srv, 0x21, 0x32, b"\xE6\xE6\x00" + bytes(200)),  # too long: FRMR
                     fr(srv, 0x21, 0x19),  # REJ: FRMR
                     fr(srv, 0x21, 0x32, b"\xE6\xE6\x00\x60\x03\xA1\x01\x00"),  # bad AARQ
                     fr(srv, 0x21, 0x32, b"\xE6\xE6\x00\xC0\x01\xC1\x00"),  # short GET
                     b"\x7e\xa0\x7e\xa8\x10\x00\x7e" + bytes(40)]  # noise
        self.wrapper = [b"\x00\x02\x00\x10\x00\x01\x00\x02\x62\x00",  # version 2: fault
                        b"\x00\x01\x00\x10\x00\x01\x08\x00",  # longer than the buffer
                        fh.wpdu(16, 1, b"\xC0\x01\xC1")]  # short GET

    def go(self, _):
        h = self.h
        for d in self.hdlc:
            _case(h, d)
        for d in self.wrapper:
            _case(h, d, transport=1)
        h.recover()


def test_rejected_inputs_allocate_nothing():
    run = _run()
    r = _Rejected(run.h)
    r.go(0)
    assert run.h.failure == 0
    assert_no_alloc(r.go, 0, "rejected HDLC frames and WPDUs")
    assert run.h.failure == 0
