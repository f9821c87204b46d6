# frontend.py: the metering front-end interface, the one thing the metering engine knows about
# the chip behind it. atm90e32.py implements it for the Microchip ATM90E32AS; an ADE9000 driver
# would implement the same methods (it splits signed accumulators by sign in firmware, see
# shared/design/embedded.md A.3) and nothing above it changes.
#
# Energy: poll(deltas) fills an array('i') of N_CH channels with the energy counted since the
# previous poll, as LSB counts (>= 0, small ints). The channels are the total of the phases:
#   CH_P_IMP  active import, forward, +A   (OBIS 1.8.0)
#   CH_P_EXP  active export, reverse, -A   (2.8.0)
#   CH_Q_FWD  reactive forward, +R         (3.8.0): QI + QII
#   CH_Q_REV  reactive reverse, -R         (4.8.0): QIII + QIV
#   CH_S      apparent                     (9.8.0)
# Wh = counts * lsb_num / lsb_den (3200 imp/kWh at 0.01 CF per LSB: 1 / 320). The engine keeps
# the fraction as counts (or Wh plus a residual) so nothing is ever rounded away.
# Quadrants (embedded.md A.2): a poll's Q delta goes to QI/QIV when the same poll's P delta is
# import, to QII/QIII when it is export; the poll must be short (1 s) for that to be exact.
#
# Status codes: every method returns OK or one of the ERR_* codes, never raises in steady state.
# The values a poll read are delivered whatever the status: the chip's energy registers clear on
# read, so a value not added is energy lost. After ERR_NOT_METERING (or any error from start())
# the caller calls start() again, now and then, until it returns OK.
from micropython import const

CH_P_IMP = const(0)
CH_P_EXP = const(1)
CH_Q_FWD = const(2)
CH_Q_REV = const(3)
CH_S = const(4)
N_CH = const(5)

# measure(vals): instantaneous values, vals is an array('i') of at least N_MEAS, caller-owned
M_U = const(0)  # Urms phase A, B, C at M_U + 0..2, in 0.01 V
M_I = const(3)  # Irms phase A, B, C at M_I + 0..2, in 0.001 A
M_P = const(6)  # total active power, W (signed: < 0 is export)
M_Q = const(7)  # total reactive power, var (signed: < 0 is capacitive while importing)
M_S = const(8)  # total apparent power, VA (arithmetic sum of the phases)
M_PF = const(9)  # total power factor * 1000 (signed like P)
M_FREQ = const(10)  # line frequency, 0.01 Hz
N_MEAS = const(11)

OK = const(0)
ERR_SPI_CHECK = const(1)  # a write was not confirmed by the chip (bounded retries exhausted)
ERR_NOT_METERING = const(2)  # the chip is not metering (reset, lost its configuration): start()
ERR_CONFIG = const(3)  # configuration invalid, or it did not read back after start()
ERR_UNSUPPORTED = const(4)  # this front-end does not implement the method


def gcd(a, b):
    while b:
        a, b = b, a % b
    return a


class FrontEnd:
    # The interface, as a base class. A driver sets lsb_num/lsb_den in __init__ (from its
    # configuration) and overrides the three methods; none of them may allocate after
    # __init__ except start(), which runs at boot and on recovery only.
    def __init__(self):
        self.lsb_num = 1  # Wh = counts * lsb_num / lsb_den
        self.lsb_den = 1

    def set_lsb(self, num, den):
        # Wh per count as a reduced fraction (both small ints).
        g = gcd(num, den)
        self.lsb_num = num // g
        self.lsb_den = den // g

    def start(self):
        # Reset and configure the chip, then start metering. May be called again at any time to
        # recover; energy the chip counted but nobody polled yet is kept and delivered by the
        # next poll() when the driver can read it before the reset. Returns a status.
        return ERR_UNSUPPORTED

    def poll(self, deltas):
        # Fill deltas[0..N_CH-1] with the energy counted since the previous poll (LSB counts,
        # >= 0). Call it at least once a second (a driver documents its limit). Never allocates.
        # Returns OK, or ERR_NOT_METERING when the chip stopped (deltas are still valid).
        for i in range(N_CH):
            deltas[i] = 0
        return ERR_UNSUPPORTED

    def measure(self, vals):
        # Optional: instantaneous values into vals[0..N_MEAS-1] (see M_*). Never allocates.
        return ERR_UNSUPPORTED
