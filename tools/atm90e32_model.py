# atm90e32_model.py: a register-level model of the Microchip ATM90E32AS for the host, behind a
# fake SPI bus and chip-select pin, so firmware/atm90e32.py runs unchanged against it (through
# the real 4-byte frame encoding). Runs on CPython, the MicroPython unix port and the 32-bit
# WebAssembly port: integer-only, every intermediate below 2**30, and nothing allocates after
# __init__ (SPI frames, run(), the fault switches, clear_counters()) except writes().
# Short forms: "DS" = Atmel-46003 M90E32AS datasheet; "ESPHome" = esphome atm90e32.
#
#   m = ATM90E32Model(scenario)      scenario: loadscenario.Scenario (or anything with
#                                     power(days, secs, out) filling loadscenario's layout)
#   drv = ATM90E32(m.spi, m.cs, ...)  m.spi.write_readinto(tx, rx), m.cs.value(v) / m.cs(v)
#   m.run(ms, days, secs)             ms of metering at the load of that UTC instant
#
# What is modelled:
# - Frames: CS must be low (a frame with CS high is counted in `unselected` and ignored; frames
#   beyond the first in one CS-low period are decoded and counted in `multi`). Address word bit
#   15 = read, bits 9..0 = register; the data word is returned in rx[2..3] (rx[0..1] = 0).
# - A register file of 1024 u16 (`regs`), `reads[addr]` counting every read per address.
# - Energy registers 0x80..0x93 (P+ T/A/B/C, P-, Q+, Q-, S) and fundamental/harmonic
#   0xA0..0xAF clear on read (the latter are not fed: the scenario has no harmonics).
# - LastSPIData (0x78) holds the data of the last read or write frame (reading it changes
#   nothing); SoftReset leaves it 0.
# - SoftReset (0x70 <- 0x789A): every register back to its default (zero except PLconstH/L =
#   0x0861/0xC468, 3200 imp/kWh, and MMode0 = 0x0087 (?)), MeterEn = 0 so metering stops.
# - CfgRegAccEn (0x7F): writes to 0x00..0x6F (status/special, configuration, calibration) take
#   effect only while it holds 0x55AA, as ESPHome's sequence implies (DS wording not checked);
#   refused writes still set LastSPIData (the frame arrived) and count in `denied`. Writes to
#   0x71..0x7F go through; writes to 0x80 and above (measurements) are refused.
# - Metering while MeterEn bit 0 is set: run() takes the scenario's per-phase P, Q, S and adds
#   per phase and in total (forward or reverse by the sign of the phase value, or of the sum of
#   the phases for the totals; S is the arithmetic sum) to the energy registers. Rate: the chip
#   makes meter_constant CF pulses per kWh with PLconst = 450e9 / meter_constant, and counts
#   100 (MMode0 bit 9, "001LSB") or 10 LSBs per pulse, so one LSB = PLconst / (125 * res) W*ms
#   (11250 W*ms = 3.125 mWh by default). Each register keeps its remainder (fractional carry),
#   so nothing is lost between steps; `exact` is False when that divisor is not an integer.
#   On overflow a register WRAPS modulo 2**16 (the DS is not explicit here: chosen, and counted
#   in `wraps[addr - 0x80]`; the per-phase registers nobody polls wrap all the time). No
#   start-up/no-load thresholds (creep) are modelled.
# - Measurement registers, refreshed by run() while metering: Urms 0xD9..DB (0.01 V), Irms
#   0xDD..DF (0.001 A), P/Q/S mean per phase and total as high word 0xB0.. / low word 0xC0..
#   at 0.00032 W per LSB of the 32-bit value (ESPHome's scale), PF 0xBC..BF (0.001, signed),
#   Freq 0xF8 (0.01 Hz), Temp 0xFC.
# Faults for tests: fault_corrupt_lastspi(n) (the next n reads of LastSPIData return a wrong
# value), fault_ignore_write(n, skip) (after `skip` write frames, the next n are lost: nothing
# changes, not even LastSPIData), fault_reset() (a spontaneous reset: defaults, metering stops
# until configured again).
from array import array

from micropython import const

from loadscenario import N_OUT, O_F, O_I, O_P, O_Q, O_S, O_U

_METEREN = const(0x00)
_PLCONSTH = const(0x31)
_PLCONSTL = const(0x32)
_MMODE0 = const(0x33)
_SOFTRESET = const(0x70)
_LASTSPIDATA = const(0x78)
_CFGREGACCEN = const(0x7F)
_CFG_OPEN = const(0x55AA)
_RESET_KEY = const(0x789A)
_EN_FIRST = const(0x80)  # APenergyT .. SenergyC: read-clear, fed by run()
_EN_LAST = const(0x93)
_FH_FIRST = const(0xA0)  # fundamental/harmonic energy: read-clear, not fed
_FH_LAST = const(0xAF)
_AP = const(0x80)  # + 0 total, + 1..3 phase A..C
_AN = const(0x84)
_RP = const(0x88)
_RN = const(0x8C)
_SA = const(0x90)
_PMEAN = const(0xB0)  # PmeanT, A..C; QmeanT.. 0xB4; SAmeanT.. 0xB8; low words + 0x10
_PFMEAN = const(0xBC)
_URMSA = const(0xD9)
_IRMSA = const(0xDD)
_FREQ = const(0xF8)
_TEMP = const(0xFC)
_MAX_STEP_MS = const(60000)
_LOG = const(256)  # writes kept in the log


class FakeSPI:
    def __init__(self, model):
        self._m = model

    def write_readinto(self, tx, rx):
        m = self._m
        m.frames += 1
        if len(tx) != 4 or len(rx) != 4 or m.cs_level:
            m.unselected += 1
            for i in range(len(rx)):
                rx[i] = 0xFF
            return
        if m.in_select:
            m.multi += 1
        m.in_select += 1
        w = (tx[0] << 8) | tx[1]
        rx[0] = 0
        rx[1] = 0
        if w & 0x8000:
            v = m.read_reg(w & 0x3FF)
            rx[2] = v >> 8
            rx[3] = v & 0xFF
        else:
            m.write_reg(w & 0x3FF, (tx[2] << 8) | tx[3])
            rx[2] = 0
            rx[3] = 0


class FakePin:
    # Chip select, like machine.Pin: value(v) sets, value() reads, pin(v) is value(v).
    def __init__(self, model):
        self._m = model

    def value(self, v=None):
        m = self._m
        if v is None:
            return m.cs_level
        if not v and m.cs_level:
            m.in_select = 0  # falling edge: a new selection
        m.cs_level = 1 if v else 0

    def __call__(self, v=None):
        return self.value(v)


class ATM90E32Model:
    def __init__(self, scenario):
        self._scen = scenario
        self.regs = array("H", [0] * 1024)
        self.reads = array("i", [0] * 1024)
        self._rem = array("i", [0] * 20)  # carry of 0x80..0x93, W*ms below one LSB
        self.wraps = array("i", [0] * 20)  # overflows of 0x80..0x93 (wraps[addr - 0x80])
        self._out = array("i", [0] * N_OUT)
        self._log = array("H", [0] * (2 * _LOG))
        self.spi = FakeSPI(self)
        self.cs = FakePin(self)
        self.cs_level = 1
        self.in_select = 0
        self.div = 1
        self.exact = True
        self.lastspi = 0
        self.resets = 0  # soft resets done (SoftReset writes and fault_reset())
        self._corrupt = 0
        self._ignore = 0
        self._skip = 0
        self.clear_counters()
        self._reset()
        self.resets = 0

    # **** tests ****

    def clear_counters(self):
        for i in range(1024):
            self.reads[i] = 0
        self.frames = self.unselected = self.multi = 0
        self.denied = self.ignored = 0
        for i in range(20):
            self.wraps[i] = 0
        self.n_log = 0

    def writes(self):
        # The logged write frames (those that arrived), [(addr, value), ...]; allocates.
        n = self.n_log if self.n_log < _LOG else _LOG
        return [(self._log[2 * i], self._log[2 * i + 1]) for i in range(n)]

    def fault_corrupt_lastspi(self, n=1):
        self._corrupt += n

    def fault_ignore_write(self, n=1, skip=0):
        # Lose n write frames, after letting `skip` write frames through.
        self._ignore += n
        self._skip = skip

    def fault_reset(self):
        self._reset()

    def metering(self):
        return self.regs[_METEREN] & 1 == 1

    # **** registers ****

    def read_reg(self, addr):
        self.reads[addr] += 1
        if addr == _LASTSPIDATA:
            v = self.lastspi
            if self._corrupt:
                self._corrupt -= 1
                v ^= 0x8001
            return v
        v = self.regs[addr]
        if _EN_FIRST <= addr <= _EN_LAST or _FH_FIRST <= addr <= _FH_LAST:
            self.regs[addr] = 0
        self.lastspi = v
        return v

    def write_reg(self, addr, v):
        if self._ignore:
            if self._skip:
                self._skip -= 1
            else:
                self._ignore -= 1
                self.ignored += 1
                return
        self.lastspi = v
        if self.n_log < _LOG:
            self._log[2 * self.n_log] = addr
            self._log[2 * self.n_log + 1] = v
        self.n_log += 1
        if addr == _SOFTRESET:
            if v == _RESET_KEY:
                self._reset()
        elif addr < _SOFTRESET:
            if self.regs[_CFGREGACCEN] != _CFG_OPEN:
                self.denied += 1
            else:
                self.regs[addr] = v
                if _PLCONSTH <= addr <= _MMODE0:
                    self._rate()
        elif addr < _EN_FIRST and addr != _LASTSPIDATA:
            self.regs[addr] = v
        else:
            self.denied += 1

    def _reset(self):
        for i in range(1024):
            self.regs[i] = 0
        for i in range(20):
            self._rem[i] = 0
        self.regs[_PLCONSTH] = 0x0861
        self.regs[_PLCONSTL] = 0xC468
        self.regs[_MMODE0] = 0x0087
        self.lastspi = 0
        self.resets += 1
        self._rate()

    def _rate(self):
        # W*ms per energy LSB: PLconst / (125 * res); PLconst must stay below 2**30 here
        # (meter constants above 420 imp/kWh).
        k = 12500 if self.regs[_MMODE0] & 0x0200 else 1250
        pl = (self.regs[_PLCONSTH] << 16) | self.regs[_PLCONSTL]
        self.div = pl // k if pl >= k else 1
        self.exact = pl % k == 0

    # **** metering ****

    def run(self, ms, days, secs):
        # ms of metering at the scenario's load at (days, secs); nothing while MeterEn = 0.
        if not self.regs[_METEREN] & 1:
            return
        o = self._out
        self._scen.power(days, secs, o)
        self._measure(o)
        while ms > 0:
            step = ms if ms < _MAX_STEP_MS else _MAX_STEP_MS
            self._accumulate(o, step)
            ms -= step

    def _accumulate(self, o, ms):
        pt = 0
        qt = 0
        st = 0
        for p in range(3):
            v = o[O_P + p]
            pt += v
            self._signed(_AP + 1 + p, _AN + 1 + p, v * ms)
            v = o[O_Q + p]
            qt += v
            self._signed(_RP + 1 + p, _RN + 1 + p, v * ms)
            v = o[O_S + p]
            st += v
            self._add(_SA + 1 + p, v * ms)
        self._signed(_AP, _AN, pt * ms)
        self._signed(_RP, _RN, qt * ms)
        self._add(_SA, st * ms)

    def _signed(self, fwd, rev, x):
        if x > 0:
            self._add(fwd, x)
        elif x < 0:
            self._add(rev, -x)

    def _add(self, addr, x):
        i = addr - _EN_FIRST
        r = self._rem[i] + x
        c = r // self.div
        self._rem[i] = r - c * self.div
        v = self.regs[addr] + c
        if v > 0xFFFF:
            self.wraps[i] += 1
            v &= 0xFFFF
        self.regs[addr] = v

    def _measure(self, o):
        r = self.regs
        pt = 0
        qt = 0
        st = 0
        for p in range(3):
            r[_URMSA + p] = o[O_U + p] & 0xFFFF
            r[_IRMSA + p] = o[O_I + p] & 0xFFFF
            self._mean(_PMEAN + 1 + p, o[O_P + p])
            self._mean(_PMEAN + 5 + p, o[O_Q + p])
            self._mean(_PMEAN + 9 + p, o[O_S + p])
            self._pf(_PFMEAN + 1 + p, o[O_P + p], o[O_S + p])
            pt += o[O_P + p]
            qt += o[O_Q + p]
            st += o[O_S + p]
        self._mean(_PMEAN, pt)
        self._mean(_PMEAN + 4, qt)
        self._mean(_PMEAN + 8, st)
        self._pf(_PFMEAN, pt, st)
        r[_FREQ] = o[O_F]
        r[_TEMP] = 30

    def _mean(self, hi, w):
        v = w * 3125  # 0.00032 W per LSB of (high << 16 | low)
        self.regs[hi] = (v >> 16) & 0xFFFF
        self.regs[hi + 0x10] = v & 0xFFFF

    def _pf(self, addr, p, s):
        self.regs[addr] = (p * 1000 // s if s else 0) & 0xFFFF
