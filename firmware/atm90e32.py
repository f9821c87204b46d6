# atm90e32.py: the Microchip ATM90E32AS poly-phase metering IC behind the FrontEnd interface
# (frontend.py). Short forms: "DS" = Atmel-46003 M90E32AS datasheet; "ESPHome" = esphome
# components/atm90e32 (setup(), the reference start-up sequence); shared/design/embedded.md A.2.
#
# Bus (DS SPI; ESPHome): SPI mode 3 (polarity=1, phase=1), MSB first, <= 1 MHz is what ESPHome
# runs (CircuitSetup 200 kHz). One frame is 4 bytes under one CS low: a 16-bit address word
# (bit 15 = read, bits 9..0 = register) and 16 data bits. Both are one spi.write_readinto(tx4,
# rx4) on buffers made here; CS setup (200 ns) is far shorter than a MicroPython call. The
# driver gets spi (anything with write_readinto) and cs (anything with value(v)) from the
# board; it never imports machine, so the host model (tools/atm90e32_model.py) plugs in.
#
# Writes are checked: after each one, LastSPIData (0x78) must echo the data written, else the
# write is repeated (at most `retries` times) and the failures counted in spi_errors. Reads are
# not checked that way: the energy registers clear on read, and a re-read returns ~0.
#
# POLL RATE: the energy registers are 16 bits. At 0.01 CF per LSB and 3200 imp/kWh one holds
# 65535 / 320 = 204.8 Wh: 10.7 s at 69 kW (3 x 100 A x 230 V), 60 s at 12.3 kW. Poll at
# 1 Hz (>= 1 Hz at full scale; a 60 s step is only safe below 12 kW, as in the host backfill).
# Per poll: 5 SPI frames (the five totals, each read exactly once), plus 1 frame every
# `meteren_every` polls to check MeterEn (a chip that reset stops metering and reads 0 there).
#
# Config dict (start() writes it; keys missing take these defaults, unknown keys are ERR_CONFIG):
#   meter_constant  3200      imp/kWh; PLconstH/L = 450,000,000,000 / meter_constant (105..16383)
#   resolution      100       energy LSBs per CF pulse: 100 = 0.01 CF (MMode0 bit 9 "001LSB"),
#                             10 = 0.1 CF (?: which one the bit selects is unverified, ESPHome and
#                             a CircuitSetup issue disagree; calibrate against a reference meter)
#   line_freq       50        50 or 60 Hz (MMode0 Freq60Hz; FreqHiTh/FreqLoTh = f +- 3 Hz)
#   wiring          4         4 = 3P4W (EnPA|EnPB|EnPC); 3 = 3P3W (MMode0 3P3W, phase B not summed)
#   mmode1          0x0015    MMode1: PGA gain of the current channels (0 1x, 0x15 2x, 0x2A 4x)
#   ugain, igain    (7305,)*3, (27961,)*3   UgainA..C, IgainA..C: CircuitSetup board starting
#                             values (ESPHome examples, 9 V AC transformer, SCT-013-000 CTs) (?)
#   uoffset, ioffset, poffset, qoffset, pqgain, phi   (0, 0, 0) each, per phase A..C
#   pstartth, qstartth, sstartth  0x1D4C; pphaseth, qphaseth  0x02EE  (ESPHome)
#   sagpeak 0xFF3F (SagPeakDetCfg), zxconfig 0xD654 (ZXConfig)  (ESPHome)
#   meteren_every   8         polls between MeterEn checks
#   retries         3         attempts per checked write
#   reset_ms        6         wait after SoftReset (ESPHome: "minimum 5ms + 1ms")
from array import array

from micropython import const

from frontend import (
    CH_P_EXP, CH_P_IMP, CH_Q_FWD, CH_Q_REV, CH_S, ERR_CONFIG, ERR_NOT_METERING, ERR_SPI_CHECK,
    M_FREQ, M_I, M_P, M_PF, M_Q, M_S, M_U, N_CH, OK, FrontEnd,
)

_READ = const(0x80)  # bit 15 of the address word, in its high byte
_METEREN = const(0x00)  # MeterEn: 1 = metering enabled
_SAGPEAKDETCFG = const(0x05)
_ZXCONFIG = const(0x07)
_FREQLOTH = const(0x0C)
_FREQHITH = const(0x0D)
_PLCONSTH = const(0x31)  # high word of PL_constant
_PLCONSTL = const(0x32)
_MMODE0 = const(0x33)  # metering method configuration
_MMODE1 = const(0x34)  # PGA gain
_PSTARTTH = const(0x35)  # .. QStartTh 0x36, SStartTh 0x37, PPhaseTh 0x38, QPhaseTh 0x39
_POFFSETA = const(0x41)  # PoffsetA, QoffsetA, then B, C (stride 2)
_PQGAINA = const(0x47)  # PQGainA, PhiA, then B, C (stride 2)
_UGAINA = const(0x61)  # UgainA, IgainA, UoffsetA, IoffsetA, then B, C (stride 4)
_SOFTRESET = const(0x70)  # write 0x789A: software reset
_LASTSPIDATA = const(0x78)  # last data read or written over SPI
_CFGREGACCEN = const(0x7F)  # 0x55AA: configuration registers writable
_APENERGYT = const(0x80)  # total forward active energy (read-clear)
_ANENERGYT = const(0x84)  # total reverse active energy
_RPENERGYT = const(0x88)  # total forward reactive energy
_RNENERGYT = const(0x8C)  # total reverse reactive energy
_SAENERGYT = const(0x90)  # total (arithmetic sum) apparent energy
_PMEANA = const(0xB1)  # PmeanA..C, QmeanA..C 0xB5, SmeanA..C 0xB9: high words
_PFMEANT = const(0xBC)  # total power factor, signed, 0.001
_PMEANALSB = const(0xC1)  # low words: +0x10
_URMSA = const(0xD9)  # 0.01 V
_IRMSA = const(0xDD)  # 0.001 A
_FREQ = const(0xF8)  # 0.01 Hz

_MMODE0_001LSB = const(0x0200)  # energy LSB = 0.01 CF (else 0.1 CF) (?)
_MMODE0_3P3W = const(0x0100)
_MMODE0_FREQ60HZ = const(0x1000)
_MMODE0_CF2VARH = const(0x0080)  # CF2 pin pulses reactive energy (ESPHome sets it)
_MMODE0_ENPABC = const(0x0007)  # EnPA, EnPB, EnPC: phases counted into the totals
_MMODE0_ENPB = const(0x0002)

_DEFAULTS = {
    "meter_constant": 3200, "resolution": 100, "line_freq": 50, "wiring": 4, "mmode1": 0x0015,
    "ugain": (7305, 7305, 7305), "igain": (27961, 27961, 27961),
    "uoffset": (0, 0, 0), "ioffset": (0, 0, 0), "poffset": (0, 0, 0), "qoffset": (0, 0, 0),
    "pqgain": (0, 0, 0), "phi": (0, 0, 0),
    "pstartth": 0x1D4C, "qstartth": 0x1D4C, "sstartth": 0x1D4C,
    "pphaseth": 0x02EE, "qphaseth": 0x02EE, "sagpeak": 0xFF3F, "zxconfig": 0xD654,
    "meteren_every": 8, "retries": 3, "reset_ms": 6,
}


def plconst(mc):
    # (PLconstH, PLconstL) = 450,000,000,000 // mc (DS; 3200 imp/kWh -> 0x0861C468), by long
    # division in base 2**16 so no value reaches 2**30: 450e9 = 6866455 * 2**16 + 5120.
    hi = 6866455 // mc
    lo = ((6866455 % mc) << 16 | 5120) // mc
    return hi, lo


class ATM90E32(FrontEnd):
    def __init__(self, spi, cs, config=None, sleep_ms=None):
        FrontEnd.__init__(self)
        self._spi = spi
        self._cs = cs
        cs.value(1)  # deselected
        if sleep_ms is None:
            import time

            sleep_ms = time.sleep_ms
        self._sleep_ms = sleep_ms
        self._tx = bytearray(4)
        self._rx = bytearray(4)
        self._pend = array("i", [0] * N_CH)  # energy drained by start(), delivered by poll()
        self._started = False
        self._check = 0
        self.spi_errors = 0  # LastSPIData mismatches after writes (each one was retried)
        self.config_error = None  # why start() always returns ERR_CONFIG (a str), or None
        c = dict(_DEFAULTS)
        for k in config or ():
            if k not in c:
                self.config_error = "unknown key " + k
            c[k] = config[k]
        self._every = c["meteren_every"]
        self._retries = c["retries"]
        self._reset_ms = c["reset_ms"]
        self._seq = self._sequence(c)

    # **** FrontEnd ****

    def start(self):
        # Drain what a running chip still holds, SoftReset, then the configuration sequence
        # (ESPHome order), then read back what defines the energy scale.
        self._started = False
        if self.config_error is not None:
            return ERR_CONFIG
        if self.read(_METEREN) == 1:
            self._drain()
        self._frame(_SOFTRESET >> 8, _SOFTRESET & 0xFF, 0x78, 0x9A)  # LastSPIData resets too
        self._sleep_ms(self._reset_ms)
        seq = self._seq
        for i in range(0, len(seq), 2):
            st = self.write(seq[i], seq[i + 1])
            if st != OK:
                return st
        for i in range(2, 12, 2):  # MeterEn .. MMode1 (pairs 1..5), CfgRegAccEn now closed
            if self.read(seq[i]) != seq[i + 1]:
                return ERR_CONFIG
        self._started = True
        self._check = self._every
        return OK

    def poll(self, deltas):
        p = self._pend
        if not self._started:
            for i in range(N_CH):
                deltas[i] = p[i]
                p[i] = 0
            return ERR_NOT_METERING
        # Each total exactly once: a register read is a register cleared (DS energy registers).
        deltas[CH_P_IMP] = self.read(_APENERGYT) + p[CH_P_IMP]
        deltas[CH_P_EXP] = self.read(_ANENERGYT) + p[CH_P_EXP]
        deltas[CH_Q_FWD] = self.read(_RPENERGYT) + p[CH_Q_FWD]
        deltas[CH_Q_REV] = self.read(_RNENERGYT) + p[CH_Q_REV]
        deltas[CH_S] = self.read(_SAENERGYT) + p[CH_S]
        if p[CH_P_IMP] | p[CH_P_EXP] | p[CH_Q_FWD] | p[CH_Q_REV] | p[CH_S]:
            for i in range(N_CH):
                p[i] = 0
        self._check -= 1
        if self._check <= 0:
            self._check = self._every
            if self.read(_METEREN) != 1:  # reset (brown-out, ESD): defaults, metering off
                self._started = False
                return ERR_NOT_METERING
        return OK

    def measure(self, vals):
        if not self._started:
            return ERR_NOT_METERING
        for p in range(3):
            vals[M_U + p] = self.read(_URMSA + p)
            vals[M_I + p] = self.read(_IRMSA + p)
        vals[M_P] = self._sum3(_PMEANA)
        vals[M_Q] = self._sum3(_PMEANA + 4)
        vals[M_S] = self._sum3(_PMEANA + 8)
        vals[M_PF] = _s16(self.read(_PFMEANT))
        vals[M_FREQ] = self.read(_FREQ)
        return OK

    # **** registers ****

    def read(self, addr):
        # One register (allocation-free). Reading an energy register clears it.
        return self._frame(_READ | (addr >> 8), addr & 0xFF, 0, 0)

    def write(self, addr, val):
        # One register, confirmed through LastSPIData; OK or ERR_SPI_CHECK. Registers below
        # 0x70 only take writes while CfgRegAccEn = 0x55AA (start() opens and closes it).
        # LIMITATION: a lost write of the value the previous transfer carried passes the check.
        for _ in range(self._retries):
            self._frame((addr >> 8) & 0x03, addr & 0xFF, (val >> 8) & 0xFF, val & 0xFF)
            if self._frame(_READ, _LASTSPIDATA, 0, 0) == val:
                return OK
            self.spi_errors += 1
        return ERR_SPI_CHECK

    def _frame(self, a1, a0, d1, d0):
        tx = self._tx
        rx = self._rx
        tx[0] = a1
        tx[1] = a0
        tx[2] = d1
        tx[3] = d0
        cs = self._cs
        cs.value(0)
        self._spi.write_readinto(tx, rx)
        cs.value(1)
        return (rx[2] << 8) | rx[3]

    def _drain(self):
        p = self._pend
        p[CH_P_IMP] += self.read(_APENERGYT)
        p[CH_P_EXP] += self.read(_ANENERGYT)
        p[CH_Q_FWD] += self.read(_RPENERGYT)
        p[CH_Q_REV] += self.read(_RNENERGYT)
        p[CH_S] += self.read(_SAENERGYT)

    def _sum3(self, hi):
        # Sum of phases A..C of a mean power, W / var / VA. ESPHome scales the 32-bit value
        # (high word << 16 | low word) by 0.00032 = 1/3125; 65536 = 20 * 3125 + 3036 keeps
        # every intermediate small. (The per-phase registers are used: the totals' scale is (?).)
        s = 0
        for p in range(3):
            h = _s16(self.read(hi + p))
            s += h * 20 + (h * 3036 + self.read(hi + p + 0x10)) // 3125
        return s

    # **** configuration (setup only: allocates) ****

    def _sequence(self, c):
        # The checked writes of start(), as (register, value) pairs. Pairs 0..5 are fixed:
        # CfgRegAccEn, MeterEn, PLconstH, PLconstL, MMode0, MMode1 (start() reads back 1..5).
        mc = c["meter_constant"]
        res = c["resolution"]
        f = c["line_freq"]
        w = c["wiring"]
        if not (105 <= mc <= 16383 and res in (10, 100) and f in (50, 60) and w in (3, 4)):
            self.config_error = "meter_constant/resolution/line_freq/wiring"
            mc, res, f, w = 3200, 100, 50, 4
        self.set_lsb(1000, mc * res)  # Wh per count = 1 / (mc * res / 1000)
        hi, lo = plconst(mc)
        m0 = _MMODE0_CF2VARH | _MMODE0_ENPABC
        if res == 100:
            m0 |= _MMODE0_001LSB
        if f == 60:
            m0 |= _MMODE0_FREQ60HZ
        if w == 3:
            m0 = (m0 | _MMODE0_3P3W) & ~_MMODE0_ENPB
        s = [_CFGREGACCEN, 0x55AA, _METEREN, 1, _PLCONSTH, hi, _PLCONSTL, lo, _MMODE0, m0,
             _MMODE1, c["mmode1"], _SAGPEAKDETCFG, c["sagpeak"], _ZXCONFIG, c["zxconfig"],
             _FREQHITH, f * 100 + 300, _FREQLOTH, f * 100 - 300]
        for i, k in enumerate(("pstartth", "qstartth", "sstartth", "pphaseth", "qphaseth")):
            s += (_PSTARTTH + i, c[k])
        for p in range(3):
            s += (_POFFSETA + 2 * p, c["poffset"][p], _POFFSETA + 2 * p + 1, c["qoffset"][p])
            s += (_PQGAINA + 2 * p, c["pqgain"][p], _PQGAINA + 2 * p + 1, c["phi"][p])
        for p in range(3):
            r = _UGAINA + 4 * p
            s += (r, c["ugain"][p], r + 1, c["igain"][p], r + 2, c["uoffset"][p])
            s += (r + 3, c["ioffset"][p])
        s += (_CFGREGACCEN, 0)
        return array("H", [v & 0xFFFF for v in s])


def _s16(v):
    return v - 0x10000 if v & 0x8000 else v
