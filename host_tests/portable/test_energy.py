# energy.Energy: exact accounting against Python ints, 64-bit registers on the 32-bit runtime,
# net values, quadrants, interval sums, sliding demand, PF, checkpoints, allocation freedom.
# Test-side arithmetic may use big ints (fine on every runtime outside the no-alloc checks).
from array import array

import cosem
import energy
from energy import (
    CHECKPOINT_SIZE,
    T_EXP,
    T_IMP,
    T_Q1,
    T_Q4,
    T_RFWD,
    T_RREV,
    T_S,
    Energy,
)
from model import REGISTERS
from objects import Register
from support import assert_no_alloc, unhex

# Checkpoint layout offsets (energy.py header; module-private consts are not importable on
# MicroPython): first counter, first residual, CRC.
CK_PARTS = 12
CK_RES = 148
CK_CRC = 368


class _Rng:
    # ZX81 LCG: small ints only.
    def __init__(self, seed):
        self.s = seed

    def below(self, n):
        # 0 .. n-1 for n <= 65536
        self.s = (self.s * 75 + 74) % 65537
        return (self.s * n) >> 16 if self.s < 65536 else 0


def _bank():
    regs = {}
    for obis, tag, scaler, unit in REGISTERS:
        ln = cosem.parse_obis(obis)
        regs[ln] = Register(ln, tag, scaler, unit)
    return regs


class _Meter:
    # An Energy bound to its own registers.
    def __init__(self, num=1, den=1, sub_s=900, subs=1):
        self.e = Energy(num, den, sub_s, subs)
        self.regs = _bank()
        assert self.e.bind(self.regs) == 19
        self.d = array("i", [0] * 5)

    def raw(self, obis):
        return self.regs[cosem.parse_obis("1-1:" + obis)].raw

    def u(self, obis):
        v = 0
        for x in self.raw(obis):
            v = v * 256 + x
        return v

    def s(self, obis):
        b = self.raw(obis)
        v = self.u(obis)
        return v - (1 << (8 * len(b))) if b[0] & 0x80 else v

    def hexof(self, obis):
        return bytes(self.raw(obis))

    def add(self, a, b, f, r, s):
        d = self.d
        d[0] = a
        d[1] = b
        d[2] = f
        d[3] = r
        d[4] = s
        return self.e.add(d)


TOTALS = ("1.8.0", "2.8.0", "3.8.0", "4.8.0", "5.8.0", "6.8.0", "7.8.0", "8.8.0", "9.8.0")


def _random_polls(m, rng, n, exact):
    # n polls; exact[k] (Python ints) += counts of cumulative channel k.
    for _ in range(n):
        c = [rng.below(6000) for _ in range(5)]
        if rng.below(10) == 0:
            c[rng.below(5)] = 65535  # a full 16-bit register
        if rng.below(10) == 0:
            c[1] = c[0]  # P = 0
        assert m.add(c[0], c[1], c[2], c[3], c[4])
        exp = c[1] > c[0]
        for k, v in ((0, c[0]), (1, c[1]), (2, c[2]), (3, c[3]), (8, c[4])):
            exact[k] += v
        exact[5 if exp else 4] += c[2]
        exact[6 if exp else 7] += c[3]


def test_exact_accounting():
    for num, den, seed in ((1, 320, 7), (7, 3, 11), (10, 3200, 5), (13, 16383, 3)):
        m = _Meter(num, den)
        rng = _Rng(seed)
        exact = [0] * 9
        for _ in range(4):
            _random_polls(m, rng, 300, exact)
            for k in range(9):
                assert m.u(TOTALS[k]) == exact[k] * num // den, (num, den, k)
                assert m.e.residual(k) == exact[k] * num % den
            assert m.s("16.8.0") == m.u("1.8.0") - m.u("2.8.0")
            assert m.s("128.8.0") == m.u("3.8.0") - m.u("4.8.0")
            assert exact[2] == exact[4] + exact[5] and exact[3] == exact[6] + exact[7]


def test_residual_carried_one_count_at_a_time():
    m = _Meter(1, 320)
    for i in range(1, 1000):
        m.add(1, 0, 0, 0, 0)
        assert m.u("1.8.0") == i // 320 and m.e.residual(T_IMP) == i % 320


def test_past_2_32_and_2_48():
    m = _Meter()
    assert m.e.set_total(T_IMP, 0xFF, 0xFFFFFB)  # 2**32 - 5
    assert m.e.set_total(T_S, 0xFFFFFF, 0xFFFFFD)  # 2**48 - 3
    m.e.publish()
    assert m.hexof("1.8.0") == unhex("00 00 00 00 FF FF FF FB")
    assert m.hexof("9.8.0") == unhex("00 00 FF FF FF FF FF FD")
    assert m.add(10, 0, 0, 0, 10)
    assert m.hexof("1.8.0") == unhex("00 00 00 01 00 00 00 05")
    assert m.hexof("9.8.0") == unhex("00 01 00 00 00 00 00 07")
    assert m.hexof("16.8.0") == unhex("00 00 00 01 00 00 00 05")
    assert m.e.total_hi(T_IMP) == 0x100 and m.e.total_lo(T_IMP) == 5
    # the same crossings without allocating on the 32-bit runtime
    m.e.set_total(T_IMP, 0xFF, 0xFFFFFB)
    m.e.set_total(T_S, 0xFFFFFF, 0xFFFFFD)
    assert_no_alloc(m.e.add, m.d, "add across 2**32 and 2**48")
    # the top of the 54-bit range, and the rollover there
    m.e.set_total(T_EXP, 0x3FFFFFFF, 0xFFFFFF)
    m.e.publish()
    assert m.hexof("2.8.0") == unhex("00 3F FF FF FF FF FF FF")
    m.add(0, 2, 0, 0, 0)
    assert m.hexof("2.8.0") == unhex("00 00 00 00 00 00 00 01")
    m.e.set_total(T_EXP, 0x3FFFFFFF, 0xFFFFFF)
    assert_no_alloc(m.e.add, m.d, "add across 2**54")  # two calls of 2 Wh each
    assert m.hexof("2.8.0") == unhex("00 00 00 00 00 00 00 03")
    assert not m.e.set_total(T_EXP, 0x40000000, 0) and not m.e.set_total(9, 0, 0)
    assert not m.e.set_total(T_EXP, 0, 0x1000000)


def test_counts_out_of_range_refused():
    m = _Meter(1, 320)
    m.add(5, 5, 5, 5, 5)
    before = [m.hexof(t) for t in TOTALS]
    assert not m.add(-1, 0, 0, 0, 0)
    assert not m.add(0, 0, 0, 0, (1 << 28) + 1)
    assert [m.hexof(t) for t in TOTALS] == before
    assert m.e.residual(T_IMP) == 5
    assert _Meter(4, 1).add(1 << 26, 0, 0, 0, 0)  # 2**28 // lsb_num counts per poll
    assert not _Meter(4, 1).add((1 << 26) + 1, 0, 0, 0, 0)


def test_net_signed_crossing_zero():
    m = _Meter()
    m.e.set_total(T_IMP, 0, 10)
    m.add(0, 4, 0, 0, 0)
    assert m.hexof("16.8.0") == unhex("00 00 00 00 00 00 00 06")
    m.add(0, 10, 0, 0, 0)
    assert m.hexof("16.8.0") == unhex("FF FF FF FF FF FF FF FC")  # -4
    m.add(4, 0, 0, 0, 0)
    assert m.hexof("16.8.0") == unhex("00 00 00 00 00 00 00 00")
    # borrow across the parts: 2**40 - (2**40 + 1), and back
    m.e.set_total(T_IMP, 1 << 16, 0)
    m.e.set_total(T_EXP, 1 << 16, 1)
    m.e.publish()
    assert m.hexof("16.8.0") == unhex("FF FF FF FF FF FF FF FF")
    m.e.set_total(T_EXP, 0, 1)
    m.e.publish()
    assert m.hexof("16.8.0") == unhex("00 00 00 FF FF FF FF FF")
    # the extremes: -(2**54 - 1) and 2**54 - 1
    m.e.set_total(T_RFWD, 0, 0)
    m.e.set_total(T_RREV, 0x3FFFFFFF, 0xFFFFFF)
    m.e.publish()
    assert m.hexof("128.8.0") == unhex("FF C0 00 00 00 00 00 01")
    assert m.s("128.8.0") == -(1 << 54) + 1
    m.e.set_total(T_RFWD, 0x3FFFFFFF, 0xFFFFFF)
    m.e.set_total(T_RREV, 0, 0)
    m.e.publish()
    assert m.hexof("128.8.0") == unhex("00 3F FF FF FF FF FF FF")
    # reactive net through add: forward 3, reverse 5
    m.e.set_total(T_RFWD, 0, 0)
    m.add(1, 0, 3, 5, 6)
    assert m.s("128.8.0") == -2 and m.hexof("128.8.0") == unhex("FF FF FF FF FF FF FF FE")


def test_quadrants():
    m = _Meter()
    m.add(10, 0, 3, 0, 11)  # +P +Q: QI
    m.add(10, 0, 0, 4, 11)  # +P -Q: QIV
    m.add(0, 10, 5, 0, 11)  # -P +Q: QII
    m.add(0, 10, 0, 6, 11)  # -P -Q: QIII
    assert [m.u(t) for t in ("5.8.0", "6.8.0", "7.8.0", "8.8.0")] == [3, 5, 6, 4]
    m.add(7, 7, 1, 2, 3)  # P = 0: QI / QIV
    assert [m.u(t) for t in ("5.8.0", "6.8.0", "7.8.0", "8.8.0")] == [4, 5, 6, 6]
    m.add(3, 5, 8, 9, 10)  # net export, both reactive directions in one poll
    assert [m.u(t) for t in ("5.8.0", "6.8.0", "7.8.0", "8.8.0")] == [4, 13, 15, 6]
    m.add(6, 5, 1, 1, 2)  # net import by one count
    assert [m.u(t) for t in ("5.8.0", "6.8.0", "7.8.0", "8.8.0")] == [5, 13, 15, 7]
    assert m.u("3.8.0") == 5 + 13 and m.u("4.8.0") == 15 + 7
    assert m.e.total_lo(T_Q1) == 5 and m.e.total_lo(T_Q4) == 7


def test_interval_energies_sum_to_growth():
    m = _Meter(1, 320)
    m.e.set_total(T_IMP, 3, 0xFFFF00)
    m.e.set_total(T_RREV, 0, 999)
    m.e.publish()
    start = [m.u(t) for t in TOTALS[:4]]
    sums = [0, 0, 0, 0]
    rng = _Rng(99)
    ints = ("1.29.0", "2.29.0", "3.29.0", "4.29.0")
    exact = [0] * 9
    for _ in range(40):
        before = [m.hexof(t) for t in ints]
        _random_polls(m, rng, 1 + rng.below(40), exact)
        assert [m.hexof(t) for t in ints] == before  # the completed interval until the next end
        m.e.end_interval()
        for j in range(4):
            sums[j] += m.u(ints[j])
    for j in range(4):
        assert sums[j] == m.u(TOTALS[j]) - start[j], j
    assert sums[0] > 0 and sums[3] > 0
    m.e.end_interval()  # an empty interval
    assert [m.u(t) for t in ints] == [0, 0, 0, 0]


def test_interval_saturates_at_u32():
    m = _Meter()
    for _ in range(17):
        assert m.add(1 << 28, 0, 0, 0, 0)
    m.e.end_interval()
    assert m.hexof("1.29.0") == unhex("FF FF FF FF")
    assert m.u("1.8.0") == 17 << 28
    m.add(1 << 28, 0, 0, 0, 0)
    m.e.end_interval()
    assert m.hexof("1.29.0") == unhex("10 00 00 00")


def test_demand_sliding_window_n3():
    m = _Meter(1, 1, 60, 3)
    assert [m.s(t) for t in ("16.4.0", "128.4.0", "9.4.0")] == [0, 0, 0]
    # (net Wh, net varh, VAh) per sub-interval; demand = window sum * 3600 / (k * 60 s)
    m.add(60, 0, 30, 0, 100)
    m.add(40, 0, 0, 0, 20)
    m.e.end_subinterval()  # window [100, 30, 120] over 60 s
    assert [m.s(t) for t in ("16.4.0", "128.4.0", "9.4.0")] == [6000, 1800, 7200]
    m.add(50, 0, 0, 20, 60)
    m.e.end_subinterval()  # + [50, -20, 60]: [150, 10, 180] over 120 s
    assert [m.s(t) for t in ("16.4.0", "128.4.0", "9.4.0")] == [4500, 300, 5400]
    m.add(0, 90, 0, 40, 100)
    m.e.end_subinterval()  # + [-90, -40, 100]: [60, -30, 280] over 180 s
    assert [m.s(t) for t in ("16.4.0", "128.4.0", "9.4.0")] == [1200, -600, 5600]
    m.add(10, 0, 0, 0, 10)
    m.e.end_subinterval()  # the first leaves: [-30, -60, 170] over 180 s
    assert [m.s(t) for t in ("16.4.0", "128.4.0", "9.4.0")] == [-600, -1200, 3400]
    assert m.hexof("16.4.0") == unhex("FF FF FD A8")
    m.e.end_subinterval()  # + nothing: [-80, -40, 110]
    assert [m.s(t) for t in ("16.4.0", "128.4.0", "9.4.0")] == [-1600, -800, 2200]
    assert m.e.demand(0) == -1600
    m.e.reset_demand()
    m.e.publish()
    assert [m.s(t) for t in ("16.4.0", "128.4.0", "9.4.0")] == [0, 0, 0]


def test_demand_truncates_toward_zero():
    m = _Meter(1, 1, 900, 3)
    m.add(1, 0, 0, 1, 1)
    m.e.end_subinterval()  # 1 Wh in 900 s = 4 W
    assert [m.s(t) for t in ("16.4.0", "128.4.0", "9.4.0")] == [4, -4, 4]
    m.e.end_subinterval()  # 1 Wh in 1800 s = 2 W
    m.e.end_subinterval()  # 1 Wh in 2700 s = 1.33 W
    assert [m.s(t) for t in ("16.4.0", "128.4.0", "9.4.0")] == [1, -1, 1]


def test_demand_full_scale_long_window():
    # 69 kW (3 x 230 V x 100 A) over a 15-hour window of 1-hour sub-intervals: the window holds
    # 1,035,000 Wh, and 3600 * Wh would pass 2**31.
    m = _Meter(1, 1, 3600, 15)
    for k in range(15):
        m.add(69000, 0, 0, 69000, 72000)
        m.e.end_subinterval()
        assert [m.s(t) for t in ("16.4.0", "128.4.0", "9.4.0")] == [69000, -69000, 72000], k
    m.add(69000, 0, 0, 69000, 72000)
    c = _Calls(m)
    assert_no_alloc(c.end_subinterval, 0, "end_subinterval at full scale")
    # 69 kW at 3.125 mWh per count (1/320 Wh), polled once a second for 15 minutes
    m = _Meter(1, 320, 900, 1)
    for i in range(900):
        m.add(6133 if i % 3 else 6134, 0, 0, 0, 6134)
    m.e.end_subinterval()
    assert 68996 <= m.s("16.4.0") <= 69000 and 68996 <= m.s("9.4.0") <= 69004


def test_demand_window_limits():
    for args in ((1, 1, 900, 0), (1, 1, 900, 16), (1, 1, 0, 1), (1, 1, 86401, 1),
                 (1, 1, 86399, 15), (0, 1, 900, 1), (1, 0x4000, 900, 1)):
        try:
            Energy(*args)
        except ValueError:
            continue
        assert False, args
    Energy(1, 1, 86400, 15)  # a 15-day window: gcd(3600, k * 86400) = 3600
    Energy(1, 1, 5760, 15)  # one day of 15 sub-intervals


def test_pf_sign_mean():
    m = _Meter()
    assert m.hexof("13.0.0") == unhex("03 E8")  # no interval yet: unity
    m.add(800, 0, 600, 0, 1000)
    m.e.end_interval()
    assert m.s("13.0.0") == 800
    m.add(0, 800, 600, 0, 1000)
    m.e.end_interval()
    assert m.s("13.0.0") == -800 and m.hexof("13.0.0") == unhex("FC E0")
    m.add(900, 100, 0, 0, 1000)  # net over the interval
    m.e.end_interval()
    assert m.s("13.0.0") == 800 and m.e.pf() == 800
    m.add(2, 0, 0, 0, 3)  # 0.667 rounded
    m.e.end_interval()
    assert m.s("13.0.0") == 667
    m.e.end_interval()  # no energy: unity
    assert m.s("13.0.0") == 1000
    m.add(0, 5, 0, 0, 0)  # export without apparent energy (inconsistent front-end)
    m.e.end_interval()
    assert m.s("13.0.0") == -1000
    m.add(50, 0, 0, 0, 40)  # |P| > S: clamped
    m.e.end_interval()
    assert m.s("13.0.0") == 1000
    m.add(3, 3, 0, 0, 40)  # P = 0 with S: 0
    m.e.end_interval()
    assert m.s("13.0.0") == 0
    for _ in range(40):  # past 2**28 counts: the sums are halved together
        m.add(0, 1 << 27, 0, 0, (1 << 27) + (1 << 25))
    m.e.end_interval()
    assert m.s("13.0.0") == -800


class _Calls:
    # Steady-state calls taking one argument, for assert_no_alloc (bound methods, no closures).
    def __init__(self, m):
        self.m = m
        self.e = m.e
        self.buf = bytearray(CHECKPOINT_SIZE + 4)
        self.e.checkpoint(self.buf, 4)

    def end_interval(self, _):
        self.e.end_interval()

    def end_subinterval(self, _):
        self.e.end_subinterval()

    def publish(self, _):
        self.e.publish()

    def checkpoint(self, _):
        assert self.e.checkpoint(self.buf, 4) == 4 + CHECKPOINT_SIZE

    def restore(self, _):
        assert self.e.restore(self.buf, 4)


def test_no_alloc_steady_state():
    # The large-value paths: counters near 2**54, net near -2**54, demand at full scale,
    # PF sums halved, a 15-sub-interval window with residuals.
    m = _Meter(10, 3200, 60, 15)
    m.e.set_total(T_IMP, 0x3FFFFFF0, 0xFFFFF0)
    m.e.set_total(T_EXP, 0x3FFFFFFF, 0xFFFFFF)
    m.e.set_total(T_RREV, 0x3FFFFFFE, 0xFFFFFF)
    m.d[0] = 1 << 20
    m.d[1] = (1 << 20) + 7
    m.d[2] = 65535
    m.d[3] = 1 << 24
    m.d[4] = (1 << 25) - 3
    c = _Calls(m)
    for _ in range(20):
        m.e.add(m.d)
        m.e.end_subinterval()
    assert_no_alloc(m.e.add, m.d, "add")
    assert_no_alloc(c.end_interval, 0, "end_interval")
    assert_no_alloc(c.end_subinterval, 0, "end_subinterval")
    assert_no_alloc(c.publish, 0, "publish")
    assert_no_alloc(c.checkpoint, 0, "checkpoint")
    assert_no_alloc(c.restore, 0, "restore")
    c.buf[100] ^= 1
    assert not m.e.restore(c.buf, 4)


def _state(m):
    buf = bytearray(CHECKPOINT_SIZE)
    m.e.checkpoint(buf, 0)
    return bytes(buf)


def _all_regs(m):
    return [bytes(r.raw) for r in m.regs.values()]


def test_checkpoint_round_trip():
    a = _Meter(1, 320, 60, 3)
    rng = _Rng(1234)
    exact = [0] * 9
    for _ in range(5):
        _random_polls(a, rng, 20, exact)
        a.e.end_subinterval()
    a.e.end_interval()
    _random_polls(a, rng, 15, exact)  # interval and sub-interval in progress
    buf = bytearray(CHECKPOINT_SIZE + 5)
    buf[3 + CHECKPOINT_SIZE] = 0xAA
    assert a.e.checkpoint(buf, 3) == 3 + CHECKPOINT_SIZE
    assert buf[3 + CHECKPOINT_SIZE] == 0xAA
    assert a.e.checkpoint(buf, 6) == -1 and a.e.checkpoint(buf, -1) == -1
    b = _Meter(1, 320, 60, 3)
    assert b.e.restore(buf, 3)
    assert _all_regs(b) == _all_regs(a)
    assert _state(b) == _state(a)
    # both go on identically: residuals, interval and window in progress came along
    rb = _Rng(77)
    ra = _Rng(77)
    for _ in range(3):
        _random_polls(a, ra, 10, exact)
        _random_polls(b, rb, 10, [0] * 9)
        a.e.end_subinterval()
        b.e.end_subinterval()
        a.e.end_interval()
        b.e.end_interval()
        assert _all_regs(b) == _all_regs(a)
    for k in range(9):
        assert b.e.residual(k) == exact[k] % 320


def test_restore_refuses_garbage():
    a = _Meter(1, 320, 60, 3)
    _random_polls(a, _Rng(5), 30, [0] * 9)
    a.e.end_subinterval()
    good = bytearray(CHECKPOINT_SIZE)
    a.e.checkpoint(good, 0)
    b = _Meter(1, 320, 60, 3)
    b.add(1, 2, 3, 4, 5)
    keep = _state(b)
    for i in range(CHECKPOINT_SIZE):  # every single-byte corruption
        bad = bytearray(good)
        bad[i] ^= 0x40
        assert not b.e.restore(bad, 0), i
    rng = _Rng(3)
    noise = bytearray(CHECKPOINT_SIZE)
    for i in range(CHECKPOINT_SIZE):
        noise[i] = rng.below(256)
    assert not b.e.restore(noise, 0)
    assert not b.e.restore(bytearray(CHECKPOINT_SIZE), 0)
    assert not b.e.restore(good, 1) and not b.e.restore(good, -1)
    assert not b.e.restore(bytearray(good[:-1]), 0)
    # a correct CRC over impossible contents: a counter of 2**54, a residual >= den, version
    for pos, val in ((CK_PARTS, 1), (CK_RES, 0x02), (0, 0x01), (10, 3)):
        bad = bytearray(good)
        bad[pos] = val
        c = energy.fcs16(bad, 0, CK_CRC)
        bad[CK_CRC] = c >> 8
        bad[CK_CRC + 1] = c & 0xFF
        assert not b.e.restore(bad, 0), pos
    assert _state(b) == keep
    assert b.e.restore(good, 0) and _state(b) == bytes(good)


def test_restore_into_other_configuration():
    a = _Meter(1, 320, 60, 3)
    _random_polls(a, _Rng(8), 30, [0] * 9)
    a.e.end_subinterval()
    _random_polls(a, _Rng(9), 5, [0] * 9)
    buf = bytearray(CHECKPOINT_SIZE)
    a.e.checkpoint(buf, 0)
    assert a.e.demand(2) > 0 and a.e.residual(T_S) > 0
    b = _Meter(1, 160, 60, 3)  # another LSB: counters kept, residuals dropped
    assert b.e.restore(buf, 0)
    assert [b.hexof(t) for t in TOTALS] == [a.hexof(t) for t in TOTALS]
    assert b.e.residual(T_S) == 0 and b.e.demand(2) == a.e.demand(2)
    c = _Meter(1, 320, 60, 2)  # another window: demand restarts
    assert c.e.restore(buf, 0)
    assert [c.hexof(t) for t in TOTALS] == [a.hexof(t) for t in TOTALS]
    assert c.e.residual(T_S) == a.e.residual(T_S)
    assert c.e.demand(2) == 0 and c.s("9.4.0") == 0


def test_bind_checks_types_and_skips_missing():
    e = Energy(1, 1)
    regs = _bank()
    del regs[cosem.parse_obis("1-1:9.4.0")]
    assert e.bind(regs) == 18
    e.add(array("i", [1, 0, 0, 0, 1]))
    e.end_subinterval()
    e.publish()
    ln = cosem.parse_obis("1-1:13.0.0")
    regs[ln] = Register(ln, 6, -3, 255)
    try:
        e.bind(regs)
    except ValueError:
        return
    assert False, "wrong register type accepted"
