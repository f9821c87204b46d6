# metering.py: the metering engine. Polls the front-end (at least once a second), feeds the
# energy registers, and captures the load profile at every recording-interval boundary and the
# billing profile at every billing instant, with the seed's status bits; checkpoints the energy
# counters with every interval so a power cut loses at most the interval in progress.
# "Seed" = the ION DLMS document (shared/seeds): "Status capture object bitmap", "Recording
# interval"; "BB" = Blue Book (IEC 62056-6-2) 4.3.6 Profile Generic.
#
# Time rules (what a head-end sees; README "Metering"):
# - A load-profile row is stamped with the END of its interval (a boundary of the recording
#   period in local standard time) and holds that interval's energies and status.
# - Rows are never out of time order and never share a timestamp:
#   * clock set FORWARD past the interval end: the interval in progress closes with a row at
#     its planned end (bit 5 time changed); the next row is at the first boundary after the new
#     time. The skipped span has no rows, as for a power outage. The poll that first sees the
#     new time (at most a second of energy) still counts in the interval it closes.
#   * clock set BACKWARD: the planned end is kept. No row is written until the clock reaches it
#     again; that row holds all energy since the previous row (nothing lost) and bit 5.
#   * billing: one row at the latest billing instant passed (a forward set over several months
#     gives one row); a backward set never repeats an instant already recorded.
# - Start-up (seed bits 6/7): the checkpoint tells L, the start of the interval in progress
#   (written at every interval end and at start-up). If the meter comes back before that
#   interval's end, it gets power down + power up.
#   Otherwise a row at the end of that interval records power down with zero energies (its
#   energy was lost with the power: never guessed) and the interval now in progress gets
#   power up. A fresh store (factory state) marks the first interval master reset (bit 3).
# - While the clock is invalid (a board without RTC that nobody has set yet) energy still
#   counts but nothing is captured; start-up handling happens once the time is known.
# - DST started/ended (bits 8/9) mark the interval in which the switch happens.
#
# save() (an orderly stop, or a power-fail warning) checkpoints the interval in progress too.
#
# Flash writes are deferred while the bus is busy (a frame is arriving): rows and checkpoints
# are snapshotted at their instant and written once poll() is told the bus is idle, or after
# _MAX_DEFER_MS in any case. Nothing here allocates after construction.
from micropython import const

import array

from capture import (ST_MASTER_RESET, ST_NOT_PERIODIC,
                     ST_POWER_DOWN, ST_POWER_UP, Calendar, Recorder, before)
from clock import ST_INVALID
from hdlc import ticks_diff

_POLL_MS = const(1000)  # front-end poll: 16-bit energy registers hold 204.8 Wh at 0.01 CF
_RESTART_MS = const(10000)  # retry a front-end start-up at most this often
_MAX_DEFER_MS = const(5000)  # a busy bus delays flash writes at most this long
_N_CH = const(5)  # frontend.N_CH
_FE_NOT_METERING = const(2)  # frontend.ERR_NOT_METERING
_CK_VERSION = const(2)  # 2: the captures waiting to be written ride in the checkpoint
_CK_HDR = const(11)  # version u8, last boundary days u16 secs u24, last billing days u16 secs u24
_NONE = const(0xFFFF)  # "no instant" in a checkpoint


def checkpoint_size(meter, energy):
    # Bytes of one checkpoint record (store.CheckpointStore's record size): the header, the
    # energy registers, and per profile the capture that may be waiting (capture.Recorder).
    n = _CK_HDR + energy.CHECKPOINT_SIZE
    for pg in meter.profiles:
        n += 8 + pg.rows.size
    return n


def _put_instant(b, p, days, secs):
    b[p] = (days >> 8) & 0xFF
    b[p + 1] = days & 0xFF
    b[p + 2] = (secs >> 16) & 0xFF
    b[p + 3] = (secs >> 8) & 0xFF
    b[p + 4] = secs & 0xFF


def _days(b, p):
    return (b[p] << 8) | b[p + 1]


def _secs(b, p):
    return (b[p + 2] << 16) | (b[p + 3] << 8) | b[p + 4]


class Engine:
    # meter: model.Meter (clock, status object, registers, profiles with .periodic/.sources);
    # frontend: frontend.FrontEnd; energy: energy.Energy bound to the meter's registers;
    # checkpoints: a store.CheckpointStore (or None: nothing survives a restart). The billing
    # schedule comes from meter.cfg["billing"], the recording interval from the meter too.
    def __init__(self, meter, frontend, energy, checkpoints=None):
        self.clock = meter.clock
        self.status = meter.status
        self.frontend = frontend
        self.energy = energy
        self.period = meter.cfg["recording_interval"]
        self.sub = energy.demand_sub_s
        bill = meter.cfg["billing"]
        self.cal = Calendar(meter.clock, bill["day"], bill["hour"], bill["minute"])
        self.periodic = tuple(Recorder(pg.rows, pg.sources) for pg in meter.profiles
                              if pg.periodic)
        self.billing = tuple(Recorder(pg.rows, pg.sources) for pg in meter.profiles
                             if not pg.periodic)
        self.ck = checkpoints
        self._ckbuf = bytearray(checkpoint_size(meter, energy))
        self._ck_pending = False
        self._deltas = array.array("i", [0] * _N_CH)
        self._row = None  # a rows.Row for reading timestamps back (made in boot)
        self.armed = False  # capture calendar set up (needs a valid clock)
        self.fresh = True  # no checkpoint found at boot
        self.end_d = self.end_s = 0  # end of the interval in progress
        self.sub_d = self.sub_s = 0  # end of the demand sub-interval in progress
        self.bill_d = self.bill_s = 0  # next billing instant
        self.last_d = self.last_s = -1  # at boot: start of the interval the power failed in
        self.lastb_d = self.lastb_s = -1  # last billing instant recorded
        self._poll_ms = -1
        self._start_ms = -1
        self._defer_ms = -1
        self.fe_status = 0  # last front-end status (0 = OK)
        self.fe_errors = 0  # front-end polls that reported an error
        self.captures = 0  # load-profile rows captured since boot

    # **** start-up ****

    def boot(self, row):
        # row: a rows.Row wide enough for every profile (timestamps only are used).
        self._row = row
        ck = self.ck
        if ck is not None and ck.latest(self._ckbuf) and self._ckbuf[0] == _CK_VERSION:
            if self.energy.restore(self._ckbuf, _CK_HDR):
                self.fresh = False
                b = self._ckbuf
                if _days(b, 1) != _NONE:
                    self.last_d = _days(b, 1)
                    self.last_s = _secs(b, 1)
                if _days(b, 6) != _NONE:
                    self.lastb_d = _days(b, 6)
                    self.lastb_s = _secs(b, 6)
                # Captures the checkpoint holds that the cut kept off the rows (flush()).
                p = _CK_HDR + self.energy.CHECKPOINT_SIZE
                for r in self.periodic + self.billing:
                    r.restore_held(b, p, row)
                    p += r.held_size()
        # Rows written after the last checkpoint (a cut between the two writes) still count.
        for r in self.periodic:
            if r.newest(row) and (self.last_d < 0 or before(self.last_d, self.last_s,
                                                            row.days, row.secs)):
                self.last_d = row.days
                self.last_s = row.secs
                self.fresh = False
        for r in self.billing:
            if r.newest(row) and (self.lastb_d < 0 or before(self.lastb_d, self.lastb_s,
                                                             row.days, row.secs)):
                self.lastb_d = row.days
                self.lastb_s = row.secs
        self.energy.publish()
        self.fe_status = self.frontend.start()

    def _arm(self):
        # Start-up once the time is known. L = the start of the interval that was in progress
        # when the power failed (from the checkpoint, or the newest row if that is later).
        clk = self.clock
        cal = self.cal
        d = clk.days
        s = clk.secs
        ld = self.last_d
        ls = self.last_s
        st = ST_POWER_UP | (ST_MASTER_RESET if self.fresh else 0)
        if ld >= 0:
            cal.boundary_after(ld, ls, self.period)
            if before(d, s, cal.d, cal.s):
                st |= ST_POWER_DOWN  # back within the interval the power failed in
                self.end_d = cal.d
                self.end_s = cal.s
            else:
                ed = cal.d
                es = cal.s
                pd = ST_POWER_DOWN | cal.dst_change(ed, es, self.period)
                for r in self.periodic:
                    r.zero(ed, es, pd)
        if not st & ST_POWER_DOWN:
            cal.boundary_after(d, s, self.period)
            self.end_d = cal.d
            self.end_s = cal.s
        self._or_status(st)
        cal.boundary_after(d, s, self.sub)
        self.sub_d = cal.d
        self.sub_s = cal.s
        # The next billing instant after the last one recorded, else at or after L: due at
        # once if one passed while the meter was off.
        if self.lastb_d >= 0:
            cal.billing_after(self.lastb_d, self.lastb_s)
        elif ld >= 0:
            cal.billing_after(ld, ls - 1)
        else:
            cal.billing_after(d, s)
        self.bill_d = cal.d
        self.bill_s = cal.s
        self.armed = True
        self._ck_snapshot()  # a cut before the first interval end finds this interval

    # **** steady state ****

    def poll(self, now_ms, bus_idle=True):
        # Call from the main loop, often (every few ms to 100 ms): polls the front-end when a
        # second has passed, captures what is due, writes to flash when the bus is idle.
        if self._poll_ms < 0 or ticks_diff(now_ms, self._poll_ms) >= _POLL_MS:
            self._poll_ms = now_ms
            self.measure(now_ms)
        self.capture()
        self.flush_if(now_ms, bus_idle)

    def measure(self, now_ms):
        st = self.frontend.poll(self._deltas)
        self.energy.add(self._deltas)  # delivered values always count, whatever the status
        self.fe_status = st
        if st:
            self.fe_errors += 1
            if st == _FE_NOT_METERING and (
                    self._start_ms < 0 or ticks_diff(now_ms, self._start_ms) >= _RESTART_MS):
                self._start_ms = now_ms
                self.fe_status = self.frontend.start()

    def capture(self):
        clk = self.clock
        if clk.status & ST_INVALID:
            return
        if not self.armed:
            self._arm()
        d = clk.days
        s = clk.secs
        cal = self.cal
        if not before(d, s, self.sub_d, self.sub_s):
            self.energy.end_subinterval()
            cal.boundary_after(d, s, self.sub)
            self.sub_d = cal.d
            self.sub_s = cal.s
        if not before(d, s, self.end_d, self.end_s):
            self._interval_end(d, s)
        if not before(d, s, self.bill_d, self.bill_s):
            self._billing(d, s)

    def _interval_end(self, d, s):
        ed = self.end_d
        es = self.end_s
        self.energy.end_interval()
        self.energy.publish()
        st = self._status() | self.cal.dst_change(ed, es, self.period)
        for r in self.periodic:
            r.snapshot(ed, es, st)
        self.captures += 1
        self._or_status(-1)  # the next interval starts clean
        self.cal.boundary_after(d, s, self.period)
        self.end_d = self.cal.d
        self.end_s = self.cal.s
        self._ck_snapshot()

    def _billing(self, d, s):
        cal = self.cal
        cal.billing_at_or_before(d, s)
        bd = cal.d
        bs = cal.s
        if self.lastb_d < 0 or before(self.lastb_d, self.lastb_s, bd, bs):
            self.energy.publish()
            for r in self.billing:
                r.snapshot(bd, bs, ST_NOT_PERIODIC)
            self.lastb_d = bd
            self.lastb_s = bs
            self._ck_snapshot()
        cal.billing_after(d, s)
        self.bill_d = cal.d
        self.bill_s = cal.s

    def _ck_snapshot(self):
        # Header: the start of the interval in progress (its planned end - period: after a
        # clock set the last row may lie far before it), and the last billing instant.
        b = self._ckbuf
        b[0] = _CK_VERSION
        sd = self.end_d
        ss = self.end_s - self.period
        if ss < 0:
            ss += 86400
            sd -= 1
        _put_instant(b, 1, sd, ss)
        _put_instant(b, 6, self.lastb_d if self.lastb_d >= 0 else _NONE,
                     self.lastb_s if self.lastb_d >= 0 else 0)
        p = self.energy.checkpoint(b, _CK_HDR)
        for r in self.periodic:
            p = r.hold_into(b, p)
        for r in self.billing:
            p = r.hold_into(b, p)
        self._ck_pending = True

    def save(self):
        # Orderly shutdown, or the board's power-fail input: write what waits and a checkpoint
        # of the interval in progress too, so nothing metered so far is lost (a cut without
        # warning loses that interval). The restart still marks power down / power up.
        if self.armed:
            self._ck_snapshot()
        self.flush()

    # **** flash ****

    def pending(self):
        if self._ck_pending:
            return True
        for r in self.periodic:
            if r.pending:
                return True
        for r in self.billing:
            if r.pending:
                return True
        return False

    def flush_if(self, now_ms, bus_idle):
        if not self.pending():
            self._defer_ms = -1
            return
        if not bus_idle:
            if self._defer_ms < 0:
                self._defer_ms = now_ms
                return
            if ticks_diff(now_ms, self._defer_ms) < _MAX_DEFER_MS:
                return
        self.flush()

    def flush(self):
        # The checkpoint first, holding the captures about to be written, then the rows: a
        # cut in between leaves a checkpoint whose registers match rows boot() puts back, so
        # no row ever shows more energy than the registers (rows first, a cut would restart
        # the registers from an older checkpoint below the newest billing row). Every capture
        # is followed by a checkpoint snapshot, so what waits in a Recorder is in _ckbuf.
        if self._ck_pending:
            self._ck_pending = False
            if self.ck is not None:
                self.ck.append(self._ckbuf)
        for r in self.periodic:
            r.flush()
        for r in self.billing:
            r.flush()
        self._defer_ms = -1

    # **** the status object (0-0:97.97.0, long-unsigned raw bytes) ****

    def _status(self):
        raw = self.status.raw
        return (raw[0] << 8) | raw[1]

    def _or_status(self, bits):
        raw = self.status.raw
        if bits < 0:
            raw[0] = 0
            raw[1] = 0
            return
        raw[0] |= (bits >> 8) & 0xFF
        raw[1] |= bits & 0xFF
