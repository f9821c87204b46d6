# energy.py: the meter's energy, demand and power-factor registers, from the front-end's
# per-poll LSB counts. Spec short forms: "BB" = Blue Book (IEC 62056-6-2: 4.3.2 Register,
# 7.5.1 OBIS value groups C/D), "seed" = the ION DLMS document (shared/seeds, "Default COSEM
# objects": values scaled by 1000, i.e. Wh/varh/VAh, W/var/VA and PF * 1000).
#
# Numbers: every value that can pass 2**30 (a heap int on RP2040/ESP32/wasm32) is held as two
# machine words, value = hi * 2**24 + lo with 0 <= lo < 2**24, 0 <= hi < 2**30 (54 bits: 1.8e16
# Wh, 30 million years at 69 kW; hi wraps to 0 there, a meter rollover). Conversion: Wh =
# counts * num / den exactly; each cumulative channel keeps res = the sub-Wh remainder
# (0 <= res < den, in units of 1/den Wh), so Wh * den + res = sum(counts * num) at all times:
# nothing is lost to rounding. Every intermediate stays below 2**30 in magnitude given the
# limits checked in __init__ and add(); nothing allocates after __init__.
#
# Registers (OBIS 1-1:C.D.0*255, tag; "slot" = index in bind()'s table):
#   0..8  1.8.0 +A, 2.8.0 -A, 3.8.0 +R, 4.8.0 -R, 5.8.0..8.8.0 QI..QIV, 9.8.0 +S: long64-unsigned
#         cumulative Wh/varh/VAh (floor of the exact value; presets included)
#   9,10  16.8.0 = 1.8.0 - 2.8.0, 128.8.0 = 3.8.0 - 4.8.0: long64, differences of the
#         published registers (so a billing row adds up to the digit)
#   11..14 1.29.0 +A, 2.29.0 -A, 3.29.0 +R, 4.29.0 -R: double-long-unsigned, the Wh of the
#         last COMPLETED recording interval (0 until the first end_interval(); saturates at
#         2**32 - 1). The sum of them over all intervals equals the growth of 1.8.0..4.8.0
#         exactly: an interval gets the integer Wh that entered the total in each of its polls.
#   15..17 16.4.0 W net (+A - -A), 128.4.0 var net (+R - -R), 9.4.0 VA: double-long sliding
#         demand as of the last end_subinterval() (0 before the first one)
#   18    13.0.0 PF sign mean: long, scaler -3, of the last completed interval
# Registers are rewritten by the call that changes them (add: 0..10, end_interval: 11..14
# and 18, end_subinterval: 15..17); bind() and restore() write all; after set_total(), reset()
# or reset_demand() call publish(), which writes all.
#
# Quadrants (embedded.md A.2; IEC 62053-23 figure): by the sign of the poll's net active
# counts (import - export): QI +P+Q, QII -P+Q, QIII -P-Q, QIV +P-Q. Reactive forward counts go
# to QI (P >= 0) or QII (P < 0), reverse to QIV (P >= 0) or QIII (P < 0). Net P = 0 counts as
# import (QI/QIV), our choice: a poll without net active flow (idle, or a capacitor bank alone)
# stays on the consumer's side, where the PF sign below also puts P = 0. Each quadrant carries
# its own residual, so QI + QII may differ from 3.8.0 by 1 in the last digit (each is exact).
#
# Demand (sliding window, BB "current average" .4.0): n sub-intervals of sub_s seconds; at each
# end_subinterval() the sub-interval's integer Wh (net P, net Q, S) enters a ring of n, and
# demand = (sum of the last k sub-intervals) * 3600 / (k * sub_s), k = min(subs ended, n): before
# n sub-intervals have passed, the average is over those that have (a partial window: a
# head-end sees a plausible value at once instead of one n times too low).
# Truncated toward zero. Exact integer arithmetic without the 3600 * Wh product: with
# g = gcd(3600, k * sub_s), m = 3600 / g, t = k * sub_s / g: W = (E // t) * m + (E % t) * m // t;
# (E % t) * m < m * t, checked < 2**30 for every k in __init__ (always true for windows up to
# 3.4 days: 3600 * 298261 < 2**30). Full scale: 3 x 230 V x 100 A = 69 kW is 17,250 Wh per
# 15 minutes, 1.66 MWh per day-long window. Each sub-interval sum saturates at _elim =
# min(2**28, (2**30 - 1) // n, 2**29 // 3600 * sub_s) Wh, so the window sum and the demand stay
# small ints; that is 149 kWh per second of sub-interval, 7,800 times 69 kW.
#
# PF sign mean (13.0.0): over the completed interval, PF = (import - export) / apparent * 1000,
# rounded, clamped to -1000..1000, signed with the net active energy: import +, export -. That
# is the IEC sign convention, which Schneider manuals call "PF sign" (PM5500 manual, "PF sign
# convention": in IEC mode the PF sign follows the direction of P; the IEEE "PF lead/lag" sign
# follows Q instead; that ION's "PF sign mean" uses the same sign is assumed (?)). It is the
# energy-weighted mean (total P over total S of the interval), not an average of per-second PFs.
# With no apparent energy in the interval it is 1000 (unity: a head-end expects -1000..1000, and
# 0 would raise low-PF alarms on an idle feeder); -1000 if only export was counted. It uses the
# raw counts (the same LSB for every channel, so the ratio is exact), halved together whenever
# one passes 2**28 (the ratio survives, the sums stay small ints).
from array import array
from micropython import const

from fcs16 import fcs16

# Front-end channels of the deltas array: firmware/frontend.py CH_* (same values, not imported:
# written in parallel; frontend.py is the authority).
_CH_P_IMP = const(0)  # active import, +A
_CH_P_EXP = const(1)  # active export, -A
_CH_Q_FWD = const(2)  # reactive forward, +R
_CH_Q_REV = const(3)  # reactive reverse, -R
_CH_S = const(4)  # apparent, +S

# Cumulative channels (set_total, residual); part indexes 0..8
T_IMP = const(0)  # 1.8.0
T_EXP = const(1)  # 2.8.0
T_RFWD = const(2)  # 3.8.0
T_RREV = const(3)  # 4.8.0
T_Q1 = const(4)  # 5.8.0
T_Q2 = const(5)  # 6.8.0
T_Q3 = const(6)  # 7.8.0
T_Q4 = const(7)  # 8.8.0
T_S = const(8)  # 9.8.0
N_TOTALS = const(9)
_I_RUN = const(9)  # parts 9..12: interval in progress, +A -A +R -R
_I_DONE = const(13)  # parts 13..16: last completed interval (registers 1.29.0 .. 4.29.0)
_N_PARTS = const(17)

SUBS_MAX = const(15)  # demand sub-intervals in the window (fixed: CHECKPOINT_SIZE depends on it)
LSB_MAX = const(0x3FFF)  # lsb_num, lsb_den: 1..2**14 - 1 (residual fits u16, den * num < 2**28)
SUB_S_MAX = const(86400)
_LO_BITS = const(24)
_LO_MASK = const(0xFFFFFF)
_HI_MAX = const(0x3FFFFFFF)  # 2**30 - 1: largest small int
_C_LIM = const(0x10000000)  # 2**28: counts * num per poll and channel
_PF_LIM = const(0x10000000)  # 2**28: PF accumulators are halved at this
_PF_SMALL = const(0x100000)  # 2**20: ratio operands before * 1000
_PF_ONE = const(1000)  # scaler -3

# Register slots (header): OBIS C and D of 1-1:C.D.0*255, and the A-XDR tag bind() expects
# (BB 4.1.5: 0x15 long64-unsigned, 0x14 long64, 0x06 double-long-unsigned, 0x05 double-long,
# 0x10 long), as model.REGISTERS declares them.
_REG_C = b"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x10\x80\x01\x02\x03\x04\x10\x80\x09\x0d"
_REG_D = b"\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x1d\x1d\x1d\x1d\x04\x04\x04\x00"
_REG_TAG = b"\x15\x15\x15\x15\x15\x15\x15\x15\x15\x14\x14\x06\x06\x06\x06\x05\x05\x05\x10"
N_REGS = const(19)
_S_NET_A = const(9)
_S_NET_R = const(10)
_S_INT = const(11)
_S_DEM = const(15)
_S_PF = const(18)

# Checkpoint record (big-endian): version, n, num u16, den u16, sub_s u32, ring index, subs
# ended (12); 17 parts as u64 (136); 9 residuals u16 (18); pf i16, pf accumulators i32 x 2 (10);
# sub-interval in progress i32 x 3 (12); ring i32 x 3 x SUBS_MAX (180); CRC-16/X.25 (2).
_CK_SIZE = const(370)
CHECKPOINT_SIZE = _CK_SIZE
_CK_VERSION = const(0xE1)
_CK_PARTS = const(12)
_CK_RES = const(148)
_CK_PF = const(166)
_CK_SUB = const(176)
_CK_RING = const(188)
_CK_CRC = const(368)


def _gcd(a, b):
    while b:
        a, b = b, a % b
    return a


def _sat(v, d, lim):
    # v + d limited to -lim..lim; |v| <= lim <= 2**28 and |d| < 2**29 keep it all small.
    if d >= 0:
        return lim if d > lim - v else v + d
    return -lim if d < -lim - v else v + d


def _muldiv(e, m, t):
    # e * m / t truncated toward zero, without the product (see the header).
    neg = e < 0
    if neg:
        e = -e
    q = e // t
    w = q * m + ((e - q * t) * m) // t
    return -w if neg else w


def _put64(b, p, hi, lo):
    # hi * 2**24 + lo as 8 big-endian bytes; hi may be negative (two's complement, long64).
    b[p] = 0xFF if hi < 0 else 0
    b[p + 1] = (hi >> 24) & 0xFF
    b[p + 2] = (hi >> 16) & 0xFF
    b[p + 3] = (hi >> 8) & 0xFF
    b[p + 4] = hi & 0xFF
    b[p + 5] = (lo >> 16) & 0xFF
    b[p + 6] = (lo >> 8) & 0xFF
    b[p + 7] = lo & 0xFF


def _put32(b, p, v):
    b[p] = (v >> 24) & 0xFF
    b[p + 1] = (v >> 16) & 0xFF
    b[p + 2] = (v >> 8) & 0xFF
    b[p + 3] = v & 0xFF


def _fits32(b, p):
    # The i32 at p is a small int (top two bits equal).
    t = b[p] & 0xC0
    return t == 0 or t == 0xC0


def _get32(b, p):
    # Signed; call _fits32 first.
    h = b[p]
    if h & 0x80:
        h -= 0x100
    return (h << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]


class Energy:
    CHECKPOINT_SIZE = _CK_SIZE

    def __init__(self, lsb_num, lsb_den, demand_sub_s=900, demand_subs=1):
        if not (0 < lsb_num <= LSB_MAX and 0 < lsb_den <= LSB_MAX):
            raise ValueError("lsb")
        n = demand_subs
        if not (0 < n <= SUBS_MAX and 0 < demand_sub_s <= SUB_S_MAX):
            raise ValueError("demand window")
        self._num = lsb_num
        self._den = lsb_den
        self.demand_sub_s = demand_sub_s
        self.demand_subs = n
        self._cmax = _C_LIM // lsb_num  # counts per poll and channel accepted by add()
        # demand factors per k sub-intervals ended: W = E * m[k] / t[k]
        self._m = array("i", [0] * (n + 1))
        self._t = array("i", [0] * (n + 1))
        for k in range(1, n + 1):
            w = k * demand_sub_s
            g = _gcd(3600, w)
            if (3600 // g) * (w // g) > _HI_MAX:
                raise ValueError("demand window")
            self._m[k] = 3600 // g
            self._t[k] = w // g
        self._elim = min(_C_LIM, _HI_MAX // n, (0x20000000 // 3600) * demand_sub_s)
        self._hi = array("i", [0] * _N_PARTS)
        self._lo = array("i", [0] * _N_PARTS)
        self._res = array("i", [0] * N_TOTALS)
        self._sub = array("i", [0] * 3)  # sub-interval in progress: net P Wh, net Q varh, S VAh
        self._ring = array("i", [0] * (3 * SUBS_MAX))
        self._dem = array("i", [0] * 3)  # W, var, VA
        self._raw = [None] * N_REGS
        self.reset()

    # **** setup, presets ****

    def bind(self, registers):
        # registers: {6-byte logical name: Register} (model.Meter.registers). Keeps each
        # register's .raw; a missing OBIS is skipped, a wrong type raises. Returns slots bound.
        bound = 0
        for s in range(N_REGS):
            reg = registers.get(bytes((1, 1, _REG_C[s], _REG_D[s], 0, 255)))
            if reg is not None and reg.tag != _REG_TAG[s]:
                raise ValueError("register type")
            self._raw[s] = None if reg is None else reg.raw
            bound += reg is not None
        self.publish()
        return bound

    def reset(self):
        # Master reset: every counter, residual, interval, demand and PF to zero (PF to 1000).
        for k in range(_N_PARTS):
            self._hi[k] = 0
            self._lo[k] = 0
        for k in range(N_TOTALS):
            self._res[k] = 0
        self._pfp = 0
        self._pfs = 0
        self._pf = _PF_ONE
        self.reset_demand()

    def reset_demand(self):
        # Empties the window (e.g. after a clock step); the demand registers read 0.
        for j in range(3 * SUBS_MAX):
            self._ring[j] = 0
        for j in range(3):
            self._sub[j] = 0
            self._dem[j] = 0
        self._idx = 0
        self._ended = 0

    def set_total(self, k, hi, lo):
        # Commissioning/tests: cumulative channel k (T_*) = hi * 2**24 + lo Wh, residual 0. Not
        # energy: intervals, demand and the other channels are untouched. False if out of range.
        if not (0 <= k < N_TOTALS and 0 <= hi <= _HI_MAX and 0 <= lo <= _LO_MASK):
            return False
        self._hi[k] = hi
        self._lo[k] = lo
        self._res[k] = 0
        return True

    def total_hi(self, k):
        return self._hi[k]

    def total_lo(self, k):
        return self._lo[k]

    def residual(self, k):
        # Sub-Wh remainder of channel k in 1/lsb_den Wh.
        return self._res[k]

    def demand(self, j):
        # j = 0 W net, 1 var net, 2 VA
        return self._dem[j]

    def pf(self):
        return self._pf

    # **** per poll ****

    def add(self, d):
        # d: 5 counts (array('i'), frontend CH_* order), each 0 .. 2**28 // lsb_num. False (and
        # nothing counted) if one is out of range: a front-end fault, not energy.
        ca = d[_CH_P_IMP]
        cb = d[_CH_P_EXP]
        cf = d[_CH_Q_FWD]
        cr = d[_CH_Q_REV]
        cs = d[_CH_S]
        lim = self._cmax
        if not (0 <= ca <= lim and 0 <= cb <= lim and 0 <= cf <= lim and 0 <= cr <= lim
                and 0 <= cs <= lim):
            return False
        a = self._acc(T_IMP, ca)
        b = self._acc(T_EXP, cb)
        f = self._acc(T_RFWD, cf)
        r = self._acc(T_RREV, cr)
        s = self._acc(T_S, cs)
        exp = cb > ca  # net export this poll; P = 0 counts as import
        self._acc(T_Q2 if exp else T_Q1, cf)
        self._acc(T_Q3 if exp else T_Q4, cr)
        self._inc(_I_RUN, a)
        self._inc(_I_RUN + 1, b)
        self._inc(_I_RUN + 2, f)
        self._inc(_I_RUN + 3, r)
        sub = self._sub
        e = self._elim
        sub[0] = _sat(sub[0], a - b, e)
        sub[1] = _sat(sub[1], f - r, e)
        sub[2] = _sat(sub[2], s, e)
        self._pf_add(ca - cb, cs)
        self._pub_totals()
        return True

    def _acc(self, k, c):
        # c counts into channel k with its residual; returns the integer Wh added (< 2**29).
        den = self._den
        q = c // den
        x = self._res[k] + (c - q * den) * self._num
        carry = x // den
        self._res[k] = x - carry * den
        wh = q * self._num + carry
        self._inc(k, wh)
        return wh

    def _inc(self, k, wh):
        lo = self._lo[k] + wh
        if lo > _LO_MASK:
            c = lo >> _LO_BITS
            lo &= _LO_MASK
            h = self._hi[k]
            self._hi[k] = h + c if h <= _HI_MAX - c else (h - _HI_MAX) + c - 1  # wraps at 2**54
        self._lo[k] = lo

    def _pf_add(self, dp, ds):
        p = self._pfp + dp
        s = self._pfs + ds
        while s >= _PF_LIM or p >= _PF_LIM or p <= -_PF_LIM:
            s >>= 1
            p = -((-p) >> 1) if p < 0 else p >> 1
        self._pfp = p
        self._pfs = s

    # **** boundaries ****

    def end_interval(self):
        # Recording-interval boundary: the interval in progress becomes the published one.
        hi = self._hi
        lo = self._lo
        for j in range(4):
            hi[_I_DONE + j] = hi[_I_RUN + j]
            lo[_I_DONE + j] = lo[_I_RUN + j]
            hi[_I_RUN + j] = 0
            lo[_I_RUN + j] = 0
        p = self._pfp
        s = self._pfs
        a = -p if p < 0 else p
        if a >= s:  # no apparent energy (or a front-end inconsistency): unity
            v = _PF_ONE
        else:
            while s >= _PF_SMALL:
                s >>= 1
                a >>= 1
            v = (a * _PF_ONE + (s >> 1)) // s
        self._pf = -v if p < 0 else v
        self._pfp = 0
        self._pfs = 0
        self._pub_interval()

    def end_subinterval(self):
        # Demand sub-interval boundary (the engine calls it on the clock's boundaries).
        i = self._idx * 3
        ring = self._ring
        sub = self._sub
        for j in range(3):
            ring[i + j] = sub[j]
            sub[j] = 0
        self._idx = self._idx + 1 if self._idx + 1 < self.demand_subs else 0
        if self._ended < self.demand_subs:
            self._ended += 1
        self._demand()
        self._pub_demand()

    def _demand(self):
        k = self._ended
        ring = self._ring
        for j in range(3):
            e = 0
            for i in range(j, 3 * self.demand_subs, 3):
                e += ring[i]  # slots not yet used are 0
            self._dem[j] = _muldiv(e, self._m[k], self._t[k]) if k else 0

    # **** registers ****

    def publish(self):
        self._pub_totals()
        self._pub_interval()
        self._pub_demand()

    def _pub_totals(self):
        raw = self._raw
        hi = self._hi
        lo = self._lo
        for k in range(N_TOTALS):
            if raw[k] is not None:
                _put64(raw[k], 0, hi[k], lo[k])
        self._pub_net(raw[_S_NET_A], T_IMP, T_EXP)
        self._pub_net(raw[_S_NET_R], T_RFWD, T_RREV)

    def _pub_net(self, b, ka, kb):
        # long64 a - b from the parts: |hi difference| < 2**30, one borrow.
        if b is None:
            return
        dh = self._hi[ka] - self._hi[kb]
        dl = self._lo[ka] - self._lo[kb]
        if dl < 0:
            dl += _LO_MASK + 1
            dh -= 1
        _put64(b, 0, dh, dl)

    def _pub_interval(self):
        raw = self._raw
        for j in range(4):
            b = raw[_S_INT + j]
            if b is not None:
                h = self._hi[_I_DONE + j]
                if h > 0xFF:  # 2**32 Wh and more: double-long-unsigned saturates
                    _put32(b, 0, -1)
                else:
                    _put32(b, 0, self._lo[_I_DONE + j])
                    b[0] = h
        b = raw[_S_PF]
        if b is not None:
            b[0] = (self._pf >> 8) & 0xFF
            b[1] = self._pf & 0xFF

    def _pub_demand(self):
        for j in range(3):
            b = self._raw[_S_DEM + j]
            if b is not None:
                _put32(b, 0, self._dem[j])

    # **** persistence ****

    def checkpoint(self, buf, off):
        # The whole state as a CHECKPOINT_SIZE record at buf[off]; off + size, or -1 (no room).
        if off < 0 or off + _CK_SIZE > len(buf):
            return -1
        buf[off] = _CK_VERSION
        buf[off + 1] = self.demand_subs
        _put32(buf, off + 2, (self._num << 16) | self._den)
        _put32(buf, off + 6, self.demand_sub_s)
        buf[off + 10] = self._idx
        buf[off + 11] = self._ended
        for k in range(_N_PARTS):
            _put64(buf, off + _CK_PARTS + 8 * k, self._hi[k], self._lo[k])
        for k in range(N_TOTALS):
            p = off + _CK_RES + 2 * k
            buf[p] = self._res[k] >> 8
            buf[p + 1] = self._res[k] & 0xFF
        buf[off + _CK_PF] = (self._pf >> 8) & 0xFF
        buf[off + _CK_PF + 1] = self._pf & 0xFF
        _put32(buf, off + _CK_PF + 2, self._pfp)
        _put32(buf, off + _CK_PF + 6, self._pfs)
        for j in range(3):
            _put32(buf, off + _CK_SUB + 4 * j, self._sub[j])
        for j in range(3 * SUBS_MAX):
            _put32(buf, off + _CK_RING + 4 * j, self._ring[j])
        c = fcs16(buf, off, _CK_CRC)
        buf[off + _CK_CRC] = c >> 8
        buf[off + _CK_CRC + 1] = c & 0xFF
        return off + _CK_SIZE

    def restore(self, buf, off):
        # Loads a checkpoint() record; False (state untouched) for anything else. A record made
        # with another lsb_num/lsb_den restores the counters but not the residuals (< 1 Wh per
        # channel lost); another demand window restores everything but the window (demand
        # restarts). Registers are republished.
        if off < 0 or off + _CK_SIZE > len(buf) or buf[off] != _CK_VERSION:
            return False
        if (buf[off + _CK_CRC] << 8) | buf[off + _CK_CRC + 1] != fcs16(buf, off, _CK_CRC):
            return False
        if not self._load(buf, off, False):
            return False
        self._load(buf, off, True)
        self._demand()
        self.publish()
        return True

    def _load(self, b, off, commit):
        # Validates (commit False) or loads (commit True) the record at b[off].
        n = b[off + 1]
        same_lsb = (b[off + 2] << 8 | b[off + 3]) == self._num and \
            (b[off + 4] << 8 | b[off + 5]) == self._den
        same_dem = n == self.demand_subs and b[off + 6] == 0 and \
            (b[off + 7] << 16 | b[off + 8] << 8 | b[off + 9]) == self.demand_sub_s
        if not (0 < n <= SUBS_MAX and b[off + 10] < n and b[off + 11] <= n):
            return False
        for k in range(_N_PARTS):
            p = off + _CK_PARTS + 8 * k
            if b[p] or b[p + 1] & 0xC0:  # hi < 2**30
                return False
            if commit:
                self._hi[k] = (b[p + 1] << 24) | (b[p + 2] << 16) | (b[p + 3] << 8) | b[p + 4]
                self._lo[k] = (b[p + 5] << 16) | (b[p + 6] << 8) | b[p + 7]
        for k in range(N_TOTALS):
            p = off + _CK_RES + 2 * k
            r = (b[p] << 8) | b[p + 1]
            if same_lsb and r >= self._den:
                return False
            if commit:
                self._res[k] = r if same_lsb else 0
        p = off + _CK_PF
        pf = (b[p] << 8) | b[p + 1]
        pf = pf - 0x10000 if pf & 0x8000 else pf
        if not (-_PF_ONE <= pf <= _PF_ONE and _fits32(b, p + 2) and _fits32(b, p + 6)):
            return False
        pp = _get32(b, p + 2)
        ps = _get32(b, p + 6)
        if not (-_PF_LIM < pp < _PF_LIM and 0 <= ps < _PF_LIM):
            return False
        if commit:
            self._pf = pf
            self._pfp = pp
            self._pfs = ps
        for j in range(3 + 3 * SUBS_MAX):
            p = off + _CK_SUB + 4 * j
            if not _fits32(b, p):
                return False
            v = _get32(b, p)
            if same_dem and (v > self._elim or v < -self._elim):
                return False
            if commit:
                if j < 3:
                    self._sub[j] = v if same_dem else 0
                else:
                    self._ring[j - 3] = v if same_dem else 0
        if commit:
            self._idx = b[off + 10] if same_dem else 0
            self._ended = b[off + 11] if same_dem else 0
        return True
