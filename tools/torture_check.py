# torture_check.py: what tools/torture.py checks after every power cut, on snapshots read over
# DLMS by a real client (Gurux). Pure bookkeeping: no I/O, so host_tests/test_torture.py can
# feed it doctored snapshots and see each rule fail.
#
# Rules (README "Metering", firmware/metering.py header, firmware/capture.py ST_* bits):
# - Served rows: stamps strictly increasing on recording-interval boundaries (local standard
#   time), known status bits only, energies >= 0; a power-down row without power up holds zero
#   energies; a plain row holds at most one interval (+ one front-end poll) of the scenario's
#   maximum power; entries_in_use equals the rows served.
# - A row once served is served again unchanged until the FIFO drops it; no row appears in the
#   past (before the newest one served earlier); entries_in_use and the billing row count never
#   decrease; billing rows never change and their counters never decrease row over row.
# - Energy registers never decrease while the meter runs. Across cuts the interval energies of
#   the rows add up to the registers' growth (energy.py), so K = register - sum(row energies)
#   is one constant per register for the whole epoch; every snapshot bounds it (the energy in
#   progress is >= 0 and at most max power x its duration). An empty intersection means the
#   registers lost more than the interval in progress (or gained energy from nowhere).
#   Registers are never below the newest billing row's counters.
# - After a cut: power down is marked once (a row, or the status of the interval in progress
#   when the meter came back within it) and the next row (or the status) has power up. Every
#   interval that ended before the cut keeps its row and energy: the only loss allowed is an
#   interval that ended within the capture-to-flash lag just before the cut (counted as a lost
#   row). No row for an interval after the cut's interval that the meter was off for.
import math

MAX_W = 9000  # tools/loadscenario.py: |P|, |Q|, S stay below 9 kW / 9 kvar / 9 kVA

# Seed "Status capture object bitmap" (firmware/capture.py)
MASTER_RESET = 0x0008
TIME_CHANGED = 0x0020
POWER_UP = 0x0040
POWER_DOWN = 0x0080
DST_BITS = 0x0300
KNOWN_BITS = MASTER_RESET | TIME_CHANGED | POWER_UP | POWER_DOWN | DST_BITS
NOT_PERIODIC = 0xFFFF


def max_energy(seconds):
    # Wh the scenario can deliver in `seconds` (rounded up), +1 for the register's flooring.
    return math.ceil(MAX_W * max(seconds, 0) / 3600) + 1


class Snap:
    # One consistent read: rows [(ts, status, (energies...))] with ts in Unix seconds (UTC),
    # entries (entries_in_use), status (the status object), regs (the registers the energy
    # columns add up to, same order), bills [(ts, status, (values...))], bill_entries, clock
    # (the meter's time, Unix seconds, float).
    def __init__(self, rows, entries, status, regs, bills, bill_entries, clock):
        self.rows = rows
        self.entries = entries
        self.status = status
        self.regs = regs
        self.bills = bills
        self.bill_entries = bill_entries
        self.clock = clock


class Cut:
    # One SIGKILL: kind, and the meter's time at the cut (Unix seconds) when known (None during
    # backfill, or when a clock set moved the time since the last read).
    def __init__(self, kind, at=None):
        self.kind = kind
        self.at = at


class History:
    # Everything served so far in one epoch (one state directory).
    def __init__(self, period, capacity, bill_capacity, monotone_bill_cols, reg_bill, factor):
        self.period = period
        self.capacity = capacity
        self.bill_capacity = bill_capacity
        self.mono = monotone_bill_cols  # billing columns that are counters (never decrease)
        self.reg_bill = reg_bill  # per register: its billing column (or None)
        # Meter seconds per real second is `factor`. Energy slack: one front-end poll (1 s
        # real) may land after a boundary and still count in the interval it closes. Time
        # tolerance: a capture follows its boundary within a poll round (50 ms real) and is
        # written at once; the cut's meter time is known to a second or two.
        self.slack = factor + 2
        self.lag = factor * 0.15 + 3
        self.distrust = None  # newest row when a client set the clock (see trusted())
        self.status = 0  # the status object at the last read
        self.clock = 0  # the meter's time at the last read
        self.rows = {}  # ts -> (status, energies)
        self.newest = None
        self.bills = {}
        self.entries = 0
        self.bill_entries = 0
        self.regs = None  # registers at the last read of this run
        self.sums = None  # sum of the energy columns of every row since the first read
        self.k_lo = None
        self.k_hi = None
        self.lost = 0  # rows lost at the last check

    # **** one snapshot ****

    def check(self, snap, cuts, clock_set=False):
        # cuts: the Cut list since the previous snapshot ([] = same run). clock_set: a client
        # set the clock since then. Returns the violations (strings); updates the history.
        v = []
        self.lost = 0
        if clock_set and self.distrust is None:
            self.distrust = self.newest if self.newest is not None else 0
        self._structure(snap, v)
        self._against_history(snap, v)
        if cuts:
            self._after_cuts(snap, cuts, clock_set, v)
        elif self.regs is not None:
            for i, (a, b) in enumerate(zip(self.regs, snap.regs)):
                if b < a:
                    v.append("register %d decreased while running: %d -> %d" % (i, a, b))
        self._energy_identity(snap, clock_set, v)
        if v:
            v.append("context: %s" % self.context(snap, cuts))
        self._remember(snap)
        return v

    def context(self, snap, cuts):
        new = [(ts, "0x%04X" % st) for ts, st, _ in snap.rows
               if self.newest is None or ts > self.newest][-8:]
        return ("cuts %r; before: newest %s status 0x%04X clock %d; now: new rows %r status "
                "0x%04X clock %d" % ([(c.kind, c.at) for c in cuts], self.newest, self.status,
                                     self.clock, new, snap.status, snap.clock))

    def _structure(self, snap, v):
        p = self.period
        prev = None
        for ts, st, en in snap.rows:
            if (ts + 3600) % p:  # CET: local standard time is UTC + 1 h
                v.append("row %s not on a %d s boundary" % (ts, p))
            if prev is not None and ts <= prev:
                v.append("rows out of order or duplicated: %s after %s" % (ts, prev))
            prev = ts
            if st & ~KNOWN_BITS:
                v.append("row %s: unknown status bits 0x%04X" % (ts, st))
            if min(en) < 0:
                v.append("row %s: negative energy %r" % (ts, en))
            if st & POWER_DOWN and not st & POWER_UP and any(en):
                v.append("row %s: power down row with energy %r (must be zeros)" % (ts, en))
            if st & ~DST_BITS == 0 and max(en) > max_energy(p + self.slack):
                v.append("row %s: %r Wh in one interval" % (ts, en))
        if snap.entries != len(snap.rows) or snap.entries > self.capacity:
            v.append("entries_in_use %d, %d rows served" % (snap.entries, len(snap.rows)))
        prev = None
        for ts, st, vals in snap.bills:
            if prev is not None and (ts <= prev[0] or any(vals[c] < prev[2][c]
                                                          for c in self.mono)):
                v.append("billing row %s not after %s or a counter decreased" % (ts, prev[0]))
            if st != NOT_PERIODIC:
                v.append("billing row %s: status 0x%04X" % (ts, st))
            prev = (ts, st, vals)
        if snap.bill_entries != len(snap.bills):
            v.append("billing entries_in_use %d, %d rows" % (snap.bill_entries, len(snap.bills)))

    def _against_history(self, snap, v):
        got = {ts: (st, en) for ts, st, en in snap.rows}
        oldest = snap.rows[0][0] if snap.rows else None
        for ts, row in self.rows.items():
            if oldest is not None and ts < oldest and len(snap.rows) == self.capacity:
                continue  # dropped by the FIFO
            if got.get(ts) != row:
                v.append("row %s served before as %r, now %r" % (ts, row, got.get(ts)))
        if self.newest is not None:
            for ts in got:
                if ts <= self.newest and ts not in self.rows:
                    v.append("row %s appeared before the newest row served earlier" % ts)
        if snap.entries < min(self.entries, self.capacity):
            v.append("entries_in_use decreased: %d -> %d" % (self.entries, snap.entries))
        bills = {ts: (st, vals) for ts, st, vals in snap.bills}
        boldest = snap.bills[0][0] if snap.bills else None
        for ts, row in self.bills.items():
            if boldest is not None and ts < boldest and len(snap.bills) == self.bill_capacity:
                continue
            if bills.get(ts) != row:
                v.append("billing row %s served before as %r, now %r" % (ts, row, bills.get(ts)))
        if snap.bill_entries < min(self.bill_entries, self.bill_capacity):
            v.append("billing entries decreased: %d -> %d" % (self.bill_entries,
                                                              snap.bill_entries))

    # **** the rules of a cut ****

    def _after_cuts(self, snap, cuts, clock_set, v):
        new = [r for r in snap.rows if self.newest is None or r[0] > self.newest]
        fresh = any(st & MASTER_RESET for _, st, _ in new) or snap.status & MASTER_RESET
        pd = [i for i, r in enumerate(new) if r[1] & POWER_DOWN]
        marks = len(pd) + (1 if snap.status & POWER_DOWN else 0)
        # A mark the previous read saw in the status is now in a row (or still there).
        carry_pd = 1 if self.status & POWER_DOWN else 0
        carry_pu = 1 if self.status & POWER_UP else 0
        if self.newest is None and cuts[0].kind == "backfill":
            fresh = True  # a cut before the first write: backfilled again, master reset evicted
        if not fresh and not 1 <= marks <= len(cuts) + carry_pd:
            v.append("%d power-down marks after %d cut(s)" % (marks, len(cuts)))
        for i in pd:
            if new[i][1] & POWER_UP:
                continue
            nxt = new[i + 1][1] if i + 1 < len(new) else snap.status
            if not nxt & POWER_UP:
                v.append("row %s: power down not followed by power up" % new[i][0])
        ups = sum(1 for r in new if r[1] & POWER_UP) + (1 if snap.status & POWER_UP else 0)
        if not 1 <= ups <= len(cuts) + carry_pu + (1 if fresh else 0):
            v.append("%d power-up marks after %d cut(s)" % (ups, len(cuts)))
        last = cuts[-1]
        if (last.at is None or clock_set or self.distrust is not None or self.newest is None
                or len(cuts) > 1):
            return
        self._loss(new, last.at, v)

    def _loss(self, new, at, v):
        # Every boundary in (newest served, cut] must have kept its row with its energy; the
        # one just before the cut may be lost when the cut fell in its capture-to-flash lag.
        p = self.period
        rows = {ts: st for ts, st, _ in new}
        # The meter ran from the previous read to the cut: boundaries before that read were
        # checked then (a span it was off for before that read has no rows).
        b = max(self.newest, int(self.clock) // p * p) + p
        lost = []
        while b <= at:
            st = rows.get(b)
            if st is None or (st & POWER_DOWN and not st & POWER_UP):
                lost.append(b)
            b += p
        self.lost = len(lost)
        if lost and (len(lost) > 1 or at - lost[0] > self.lag):
            v.append("rows of intervals that ended before the cut lost: %r (cut at %s)"
                     % (lost, at))
        # The power-down row belongs to the interval of the cut (or the one that ended in the
        # lag before it), never to a later one the meter was off for.
        for ts, st, _ in new:
            if st & POWER_DOWN and ts - p > at + self.lag:
                v.append("power down at %s, %d s after the cut's interval" % (ts, ts - p - at))

    # **** registers against rows ****

    def _energy_identity(self, snap, clock_set, v):
        if self.sums is None:  # the first snapshot: K is the registers at its newest row
            self.sums = [0] * len(snap.regs)
            self.base = snap.rows[-1][0] if snap.rows else None
        else:
            for ts, st, en in snap.rows:
                if (self.base is None or ts > self.base) and ts not in self.rows:
                    for i, e in enumerate(en):
                        self.sums[i] += e
        hi = [r - s for r, s in zip(snap.regs, self.sums)]
        if self.k_hi is None:
            self.k_hi = hi
            self.k_lo = [None] * len(hi)
        else:
            self.k_hi = [min(a, b) for a, b in zip(self.k_hi, hi)]
        newest = snap.rows[-1][0] if snap.rows else None
        if newest is not None and self.trusted(snap) and snap.clock >= newest:
            # The energy in progress is what was metered since the newest row's instant.
            slack = max_energy(snap.clock - newest + self.slack)
            for i, h in enumerate(hi):
                if self.k_lo[i] is None or h - slack > self.k_lo[i]:
                    self.k_lo[i] = h - slack
        for i in range(len(hi)):
            if self.k_lo[i] is not None and self.k_lo[i] > self.k_hi[i]:
                v.append("register %d: rows and register disagree by %d Wh or more (energy "
                         "lost beyond the interval in progress)" % (i, self.k_lo[i] -
                                                                    self.k_hi[i]))
                self.k_lo[i] = self.k_hi[i]  # report once
        for ts, st, vals in snap.bills[-1:]:
            for i, c in enumerate(self.reg_bill):
                if c is not None and snap.regs[i] < vals[c]:
                    v.append("register %d = %d below the newest billing row's %d"
                             % (i, snap.regs[i], vals[c]))

    def trusted(self, snap):
        # After a clock set the time since the newest row says nothing about the energy in
        # progress (a backward set keeps the planned end) until a row closes the interval the
        # set fell in (time changed) or a restart opens a new one (power down / up).
        if self.distrust is None:
            return True
        for ts, st, _ in snap.rows:
            if ts > self.distrust and st & (TIME_CHANGED | POWER_DOWN | POWER_UP):
                if ts == snap.rows[-1][0]:
                    self.distrust = None
                    return True
                self.distrust = ts
        return False

    def _remember(self, snap):
        for ts, st, en in snap.rows:
            self.rows[ts] = (st, en)
        if snap.rows:
            self.newest = max(self.newest or 0, snap.rows[-1][0])
        for ts, st, vals in snap.bills:
            self.bills[ts] = (st, vals)
        self.entries = max(self.entries, snap.entries)
        self.bill_entries = max(self.bill_entries, snap.bill_entries)
        self.regs = snap.regs
        self.status = snap.status
        self.clock = snap.clock
