# loadscenario.py: a deterministic load for the host chip model (tools/atm90e32_model.py): a
# 3-phase household / small business with a 6 kWp PV system, in Central Europe.
# Runs unchanged on CPython, the MicroPython unix port and the 32-bit WebAssembly port:
# integer-only, every intermediate below 2**30, and power() allocates nothing.
#
#   s = Scenario(seed)
#   s.power(days, secs, out)   out: array('i', N_OUT), filled for the instant (days since
#                              2000-01-01, seconds of day, UTC) with, per phase A, B, C:
#     out[O_P + p]  active power, W, signed: > 0 import (consumption), < 0 export
#     out[O_Q + p]  reactive power, var, signed: > 0 inductive (+R), < 0 capacitive (-R)
#     out[O_S + p]  apparent power, VA = isqrt(P^2 + Q^2)
#     out[O_U + p]  Urms, 0.01 V
#     out[O_I + p]  Irms, 0.001 A (= S / U)
#   and out[O_F] the line frequency in 0.01 Hz.
# The same (seed, days, secs) gives the same values on every runtime and in any call order: the
# random variation is a hash of (seed, day, minute), not a stream.
#
# The day (UTC; the household lives on CET, so its clock hours are UTC + 1):
#   night base load 280..350 W, capacitive (electronics, LED drivers): QIV
#   morning peak 05..07 UTC (up to 2.2 kW), inductive (pumps, fridge, kettle + motor): QI
#   PV (solar noon ~11:15 UTC) exports from mid-morning to mid-afternoon; the inverter runs at
#     cos phi = 1, so the reactive sign is the house's: capacitive IT load 08..10 and 14..16 UTC
#     while exporting (QIII), inductive 10..14 UTC while exporting (QII)
#   evening peak 16..20 UTC (up to 4 kW, cooking, heat pump), inductive: QI; late evening QIV.
# Load is split 45/30/25 % over phases A/B/C, PV evenly, so a phase can import while the total
# exports (the chip's total registers net the phases).
# Season: load x1.3 in winter .. x0.9 in summer, PV x0.26 (December) .. x1.0 (June/July); each
# day draws a cloud factor 0.55..1.0 and every 5 minutes a flicker 0.85..1.0; load varies by
# 0.9..1.1 per minute.
#
# Limits (so a 60 s poll step in backfill never overflows a 16-bit energy register at 0.01 CF,
# 65535 counts = 204.8 Wh at 3200 imp/kWh, i.e. 12.29 kW for 60 s):
#   total |P| <= 4000 * 1.3 * 1.1 = 5.7 kW import, 6 kW - 0.3 kW = 5.7 kW export
#   total S  <= sum of phase S <= 5.7 kW * 1.1 (|tan phi| <= 0.5) = 6.4 kVA
# Both stay below 9 kW / 9 kVA, checked over a week by host_tests/portable/test_atm90e32.py.
from micropython import const

O_P = const(0)
O_Q = const(3)
O_S = const(6)
O_U = const(9)
O_I = const(12)
O_F = const(15)
N_OUT = const(16)

_MASK30 = const(0x3FFFFFFF)
_PV_PEAK = const(6000)  # W, rated output of the inverter
_U_NOM = const(23000)  # 0.01 V
_F_NOM = const(5000)  # 0.01 Hz

# House load, W, at the start of each UTC hour 0..24 (interpolated in between).
_LOAD = (350, 300, 280, 280, 300, 900, 2200, 1800, 900, 800, 900, 1200, 1000,
         800, 800, 1200, 2500, 3800, 4000, 3000, 1800, 1000, 600, 400, 350)
# Reactive/active of the house load (tan phi) * 1000 for each UTC hour (a step per hour).
_TANPHI = (-350, -350, -350, -350, -350, 450, 450, 450, -500, -500, 250, 250, 250,
           250, -450, -450, 400, 400, 400, 400, 400, -300, -300, -300)
# PV output per mille of _PV_PEAK on a clear June day, at the start of each UTC hour 0..24.
_PV = (0, 0, 0, 0, 40, 150, 320, 500, 680, 830, 940, 1000, 970,
       870, 720, 540, 350, 170, 50, 0, 0, 0, 0, 0, 0)
# Season per month (per mille): PV yield and load factor.
_PV_SEASON = (260, 420, 600, 800, 930, 1000, 1000, 900, 720, 520, 340, 250)
_LOAD_SEASON = (1300, 1250, 1150, 1050, 950, 900, 900, 900, 950, 1050, 1200, 1300)
_SPLIT = (450, 300, 250)  # load share of phases A, B, C, per mille
_U_OFF = (40, -60, 10)  # 0.01 V: each phase's own offset


def mix(x):
    # A 30-bit xorshift round, used as a hash (every shift is masked first to stay < 2**30).
    x ^= (x & 0x1FFFF) << 13
    x ^= x >> 17
    x ^= (x & 0x1FFFFFF) << 5
    return x & _MASK30


def isqrt(n):
    # floor(sqrt(n)) for 0 <= n < 2**30 (Newton, integers only).
    if n < 2:
        return n
    x = n
    y = (x + 1) >> 1
    while y < x:
        x = y
        y = (x + n // x) >> 1
    return x


def _interp(table, secs):
    h = secs // 3600
    a = table[h]
    return a + (table[h + 1] - a) * (secs - h * 3600) // 3600


class Scenario:
    def __init__(self, seed=1):
        self.seed = mix((seed & _MASK30) ^ 0x2545F49) or 1

    def rand(self, days, slot, salt, n):
        # A value 0..n-1 (n <= 2**15) drawn from (seed, days, slot, salt); days < 2**16.
        x = self.seed ^ ((days & 0xFFFF) * 7919) ^ ((slot & 0xFFFF) * 12289) ^ (salt << 24)
        x = mix(mix(mix(x or 1)))
        return (x >> 8) % n

    def power(self, days, secs, out):
        month = (days % 1461 % 365) * 12 // 365  # month of the year, ~ (leap days ignored)
        minute = secs // 60
        load = _interp(_LOAD, secs) * _LOAD_SEASON[month] // 1000
        load = load * (900 + self.rand(days, minute, 1, 201)) // 1000
        pv = _interp(_PV, secs) * _PV_SEASON[month] // 1000
        pv = pv * (550 + self.rand(days, 0, 2, 451)) // 1000  # the day's clouds
        pv = pv * (850 + self.rand(days, minute // 5, 3, 151)) // 1000  # passing clouds
        pv = pv * _PV_PEAK // 1000
        tanphi = _TANPHI[secs // 3600]
        for p in range(3):
            pl = load * _SPLIT[p] // 1000
            pp = pl - pv // 3
            qp = pl * tanphi // 1000
            sp = isqrt(pp * pp + qp * qp)
            # Voltage rises with export and falls with import on the phase (~0.2 V per 100 W).
            u = _U_NOM + _U_OFF[p] - pp // 5 + self.rand(days, minute, 4 + p, 81) - 40
            out[O_P + p] = pp
            out[O_Q + p] = qp
            out[O_S + p] = sp
            out[O_U + p] = u
            out[O_I + p] = sp * 100000 // u
        out[O_F] = _F_NOM + self.rand(days, minute, 7, 17) - 8
