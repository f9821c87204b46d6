# torture.py: process-level power-cut torture of the simulator (`make torture`).
#
#   python tools/torture.py --cuts N --seed S [--runtime micropython|cpython] [--state-dir DIR]
#
# Runs the meter child (tools/simhost.py, started as tools/sim.py starts it) and SIGKILLs that
# process itself at random moments: a power cut, never the orderly stop sim.py's SIGTERM or its
# launcher-death SIGINT would give (both save the interval in progress). After every cut it
# restarts the meter on the same state directory, reads it over DLMS with a real client (Gurux,
# through tools/read_meter_link.py) and checks what is served (tools/torture_check.py): no
# corrupt, duplicated or out-of-order rows, counters never decrease, at most the interval in
# progress is lost, power down / power up marked around each cut.
#
# Cut moments (one kind per cut, seeded): during backfill (the first cut of every epoch, a fresh
# state directory with 1..3 backfill days), at random in an interval, around an interval end
# (random ms offsets over the capture and its flash writes), during a client's block read of the
# load profile (after a random number of answer frames), right after a management client's
# clock set (small steps, hours, or just before a billing instant or a DST switch), and at
# start-up (before or just after READY).
#
# Speed: the config records every 60 s (the shortest recording_interval) and the meter's time
# runs --factor times faster than this PC's (SIM_CLOCK, tools/simmeter.py): an interval passes
# in 1.5 s at the default 40. The accelerated RTC follows clock sets, as a board's RTC does.
#
# Output: one line per cut, then the figures. Exit status 0 without violations, else 1; the
# state directories of epochs with violations are kept (and named) for a post-mortem.
import argparse
import datetime
import json
import os
import random
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import read_meter_fmt as fmt
import sim
import torture_check as tc
from read_meter_link import LinkError, Session, TcpStream, make_object

HOST = "127.0.0.1"
PASSWORD = "torture-pw1"
PERIOD = 60  # recording_interval of the torture config, s
DEPTH = 300  # load-profile entries: the ring turns (segments overwritten in place) all along
EPOCH_CUTS = 40  # cuts per state directory
CAPTURE_S = 8  # meter seconds after a boundary a capture may still be under way
READY_S = 30.0
IO_S = 2.0
LN = {"lp": (7, [1, 0, 99, 1, 0, 255]), "bill": (7, [1, 0, 98, 1, 0, 255]),
      "status": (1, [0, 0, 97, 97, 0, 255]), "clock": (8, [0, 0, 1, 0, 0, 255])}
# Load-profile columns (1.29 +A, 3.29 +R, 2.29 -A, 4.29 -R) and the registers they add up to.
REGS = ([1, 1, 1, 8, 0, 255], [1, 1, 3, 8, 0, 255], [1, 1, 2, 8, 0, 255], [1, 1, 4, 8, 0, 255])
BILL_SOURCES = ["1-1:1.8.0*255", "1-1:2.8.0*255", "1-1:16.8.0*255", "1-1:3.8.0*255",
                "1-1:4.8.0*255", "1-1:128.8.0*255", "1-1:9.8.0*255", "1-1:16.4.0*255",
                "1-1:128.4.0*255", "1-1:9.4.0*255", "1-1:13.0.0*255"]
BILL_MONO = (0, 1, 3, 4, 6)  # 1.8, 2.8, 3.8, 4.8, 9.8: counters
REG_BILL = (0, 3, 1, 4)  # REGS[i] is billing column REG_BILL[i]
KINDS = (("interval", 2), ("boundary", 4), ("block-read", 2), ("clock-set", 2),
         ("startup", 1))


def config(path):
    cfg = {"recording_interval": PERIOD, "lls_password": PASSWORD, "log_exports": [
        {"obis": "1-0:99.1.0*255", "status": True, "periodic": True, "entries": DEPTH,
         "sources": ["1-1:1.29.0*255", "1-1:3.29.0*255", "1-1:2.29.0*255", "1-1:4.29.0*255"]},
        {"obis": "1-0:98.1.0*255", "status": True, "periodic": False, "entries": 24,
         "sources": BILL_SOURCES}]}
    with open(path, "w") as f:
        json.dump(cfg, f)


def now_ms():
    return time.time_ns() // 1000000


class Timebase:
    # The meter's accelerated time: Unix ms `real` on this PC is meter time `virt`.
    def __init__(self, factor, real, virt):
        self.f, self.real, self.virt = factor, real, virt

    def at(self, real_ms):  # meter Unix seconds at this PC's Unix ms
        return (self.virt + (real_ms - self.real) * self.f) / 1000.0

    def real_at(self, meter_s):  # this PC's Unix ms when the meter reaches meter_s
        return self.real + (meter_s * 1000 - self.virt) / self.f

    def env(self):
        return "%d:%d:%d" % (self.f, self.real, int(self.virt))


# **** the meter process ****


class Meter:
    def __init__(self, a, state, cfg, tb, backfill, log):
        self.port = sim.reserve_port(HOST)
        words = ["hdlc_tcp=%s:%d" % (HOST, self.port), "backfill_days=%d" % backfill,
                 "state_dir=" + state, "config=" + cfg]
        env = sim.child_env(a.runtime)
        env["SIM_CLOCK"] = tb.env()
        sa = sim.parse_args(["--runtime", a.runtime])
        self.proc = subprocess.Popen(sim.child_command(sa, words), env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=log, preexec_fn=sim.die_with_parent)
        self.ready = False
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.proc.stdout, selectors.EVENT_READ)
        self.text = b""

    def poll_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while not self.ready:
            left = deadline - time.monotonic()
            if left < 0 or not self.sel.select(max(left, 0)):
                return False
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError("meter exited with %r before READY" % self.proc.wait())
            self.text += chunk
            self.ready = b"READY" in self.text
        return True

    def kill(self):
        # SIGKILL to the meter process itself: a power cut. Returns this PC's Unix ms then;
        # RuntimeError if the meter had ended by itself.
        gone = self.proc.poll()
        if gone is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        at = now_ms()
        self.proc.wait()
        self.sel.close()
        self.proc.stdout.close()
        if gone is not None:
            raise RuntimeError("the meter ended by itself with status %r" % gone)
        return at


# **** the client ****


def obj(name):
    cls, ln = LN[name]
    return make_object(cls, bytes(ln))


def session(port, client=16, password=None):
    s = Session(TcpStream(HOST, port, IO_S), client=client, password=password)
    s.open()
    return s


def close(s):
    try:
        s.close()
    finally:
        s.stream.close()


def stamp(b):
    t = fmt.dt_to_datetime(b)
    if t is None:
        raise ValueError("not a date-time: %r" % (bytes(b),))
    return t.timestamp()


def rows_of(raw):
    return [(int(stamp(r[0])), int(r[1]), tuple(int(x) for x in r[2:])) for r in raw or []]


def snapshot(port):
    # A consistent read: no capture in it. entries_in_use alone cannot tell once the ring is
    # full, so the meter's clock must also stay inside one interval, clear of its start (a
    # capture follows its boundary within a poll round).
    s = session(port)
    try:
        lp, bill = obj("lp"), obj("bill")
        for _ in range(8):
            c0 = stamp(s.get(obj("clock"), 2))
            if c0 % PERIOD < CAPTURE_S or c0 % PERIOD > PERIOD - 1:
                time.sleep(0.05)
                continue
            n0, b0 = int(s.get(lp, 7)), int(s.get(bill, 7))
            rows = rows_of(s.get(lp, 2))
            bills = rows_of(s.get(bill, 2))
            status = int(s.get(obj("status"), 2))
            regs = tuple(int(s.get(make_object(3, bytes(ln)), 2)) for ln in REGS)
            clock = stamp(s.get(obj("clock"), 2))
            if (int(s.get(lp, 7)) == n0 == len(rows) and int(s.get(bill, 7)) == b0
                    and c0 // PERIOD == clock // PERIOD):
                return tc.Snap(rows, n0, status, regs, bills, b0, clock), s.stream.timeout
        raise LinkError("a capture fell into 8 snapshots in a row")
    finally:
        close(s)


def block_read_until(port, frames):
    # Reads the load profile by block transfer, calling back after `frames` answer frames.
    s = session(port)
    seen = [0]

    def on_frame(reply):
        seen[0] += 1
        if seen[0] == frames:
            raise _Cut()
    try:
        s.get(obj("lp"), 2, on_frame)
    except _Cut:
        return True
    finally:
        s.stream.close()
    return False  # the read ended before that frame


class _Cut(Exception):
    pass


def set_clock(port, target):
    # Management client sets the clock to `target` (aware UTC datetime) in the meter's own
    # deviation; the other one if refused (the target lies across a DST switch).
    s = session(port, client=1, password=PASSWORD)
    try:
        c = obj("clock")
        for dev in ((-local_offset(target)), -60, -120):
            c.time = fmt.encode_dt(target.astimezone(datetime.timezone(
                datetime.timedelta(minutes=-dev))), 0x80 if dev == -120 else 0)
            try:
                s.set(c, 2)
                return True
            except LinkError:
                continue
        return False
    finally:
        close(s)


def local_offset(t):
    # CET/CEST minutes ahead of UTC at aware datetime t (EU rule, model.DEFAULTS).
    return 120 if dst_begin(t.year) <= t < dst_begin(t.year, 10) else 60


def dst_begin(year, month=3):
    d = datetime.datetime(year, month, 31, 1, tzinfo=datetime.timezone.utc)
    return d - datetime.timedelta(days=(d.weekday() + 1) % 7)  # last Sunday, 01:00 UTC


# **** the torture ****


class Torture:
    def __init__(self, a):
        self.a = a
        self.rng = random.Random(a.seed)
        self.work = os.path.abspath(a.state_dir) if a.state_dir else tempfile.mkdtemp(
            prefix="torture-")
        os.makedirs(self.work, exist_ok=True)
        self.cfg = os.path.join(self.work, "config.json")
        config(self.cfg)
        self.logpath = os.path.join(self.work, "meter.log")
        self.log = open(self.logpath, "ab")
        self.per_day = 0.8 if a.runtime == "micropython" else 0.4  # backfill s per day
        self.cuts = self.restarts = self.rows_checked = self.max_lost = 0
        self.violations = []
        self.kinds = {}
        self.epoch = 0
        self.kept = []
        self.m = None

    # **** epochs ****

    def new_epoch(self):
        self.epoch += 1
        self.state = os.path.join(self.work, "meter-%d" % self.epoch)
        shutil.rmtree(self.state, ignore_errors=True)
        self.bad = False
        self.backfill = self.rng.randint(1, 3)
        real = now_ms()
        self.tb = Timebase(self.a.factor, real, self.virtual_start(real))
        self.hist = tc.History(PERIOD, DEPTH, 24, BILL_MONO, REG_BILL, self.a.factor)
        self.lag = 0.0
        self.clock_set = False
        self.start(self.backfill)
        delay = self.rng.uniform(0.02, self.per_day * self.backfill)
        t0 = time.monotonic()
        ready = self.m.poll_ready(delay)
        if ready:  # the backfill was over sooner than estimated: learn, cut at start-up
            self.per_day = (time.monotonic() - t0) / self.backfill
        return self.kill("backfill" if not ready else "startup", None)

    def virtual_start(self, real):
        # The meter's "now" when the epoch starts: this PC's time, or just after a month start
        # (billing rows in the backfill) or a DST switch (bits 8/9 in it).
        pick = self.rng.random()
        now = datetime.datetime.fromtimestamp(real / 1000, datetime.timezone.utc)
        if pick < 0.5:
            return real
        if pick < 0.75:
            y, mo = now.year + (now.month // 12), now.month % 12 + 1
            t = datetime.datetime(y, mo, 1, tzinfo=datetime.timezone.utc)
            t -= datetime.timedelta(minutes=local_offset(t))
        else:
            t = dst_begin(now.year + 1, self.rng.choice((3, 10)))
        t += datetime.timedelta(seconds=self.rng.uniform(600, self.backfill * 86400 - 600))
        return t.timestamp() * 1000

    def end_epoch(self):
        if not self.epoch:
            return
        if self.m is not None:
            try:
                self.m.kill()
            except RuntimeError as e:
                self.violate(str(e))
            self.m = None
        if self.bad:
            self.kept.append(self.state)
        elif not self.a.state_dir:
            shutil.rmtree(self.state, ignore_errors=True)
            shutil.rmtree(self.state + ".cut", ignore_errors=True)

    # **** the meter ****

    def start(self, backfill=0):
        self.log.flush()
        self.logpos = os.path.getsize(self.logpath)
        self.m = Meter(self.a, self.state, self.cfg, self.tb, backfill, self.log)
        self.restarts += 1

    def kill(self, kind, at):
        m = self.m
        self.m = None
        try:
            real = m.kill()
        except RuntimeError as e:
            self.violate(str(e))
            real = now_ms()
        self.cuts += 1
        base = kind
        for k, _ in KINDS + (("backfill", 0),):
            if kind.startswith(k):
                base = k
        self.kinds[base] = self.kinds.get(base, 0) + 1
        if at is None and kind not in ("backfill",) and not self.clock_set:
            at = self.tb.at(real) - self.lag
        self.scan_log()
        return [tc.Cut(kind, at)]

    def scan_log(self):
        self.log.flush()
        with open(self.logpath, "rb") as f:
            f.seek(self.logpos)
            text = f.read().decode(errors="replace")
        if "Traceback" in text or "Error" in text or "rror:" in text:
            self.violate("meter wrote an error: %s" % text.strip()[-400:])

    def violate(self, msg):
        self.violations.append("cut %d: %s" % (self.cuts, msg))
        self.bad = True

    # **** after a cut ****

    def recover(self, cuts):
        self.cut_violations = 0
        # The state as the cut left it, kept with the epoch if the restart finds a violation.
        shutil.rmtree(self.state + ".cut", ignore_errors=True)
        if os.path.isdir(self.state):
            shutil.copytree(self.state, self.state + ".cut")
        self.start(self.backfill)  # as sim.py: ignored unless the state is still fresh
        try:
            ready = self.m.poll_ready(READY_S)
        except RuntimeError as e:
            self.m = None
            self.scan_log()
            ready = e
        if ready is not True:
            self.violate("the meter did not start after the cut: %s" % (ready or "no READY"))
            self.cut_violations += 1
            return None
        snap = None
        for attempt in range(2):
            try:
                snap = self.read()
                break
            except (LinkError, ValueError) as e:
                err = e
                time.sleep(0.3)
        if snap is None:
            self.violate("reading after the restart failed: %s" % err)
            self.cut_violations += 1
            return None
        v = self.hist.check(snap, cuts, self.clock_set)
        for msg in v:
            self.violate(msg)
        self.cut_violations += len(v)
        self.clock_set = False
        self.rows_checked += len(snap.rows) + len(snap.bills)
        self.max_lost = max(self.max_lost, self.hist.lost)
        return snap

    def read(self):
        snap, _ = snapshot(self.m.port)
        # The meter's clock against the time base (a second lost at boot, start-up time).
        s = session(self.m.port)
        try:
            t0 = now_ms()
            clock = stamp(s.get(obj("clock"), 2))
            t1 = now_ms()
        finally:
            close(s)
        self.lag = self.tb.at((t0 + t1) / 2) - clock
        return snap

    # **** cut kinds ****

    def cut(self, kind):
        r = self.rng
        if kind == "interval":
            time.sleep(r.uniform(0, PERIOD / self.a.factor))
            return self.kill(kind, None)
        if kind == "boundary":
            meter_now = self.tb.at(now_ms()) - self.lag
            b = (int(meter_now + 0.5 * self.a.factor) // PERIOD + 1) * PERIOD
            off = r.uniform(-20, 80) if r.random() < 0.6 else r.uniform(-300, 500)
            wait = (self.tb.real_at(b + self.lag) + off - now_ms()) / 1000
            time.sleep(max(wait, 0))
            return self.kill("boundary%+dms" % off, None)
        if kind == "block-read":
            frames = r.randint(1, 80)
            whole = not block_read_until(self.m.port, frames)
            return self.kill("block-read@%d%s" % (frames, "(ended)" if whole else ""), None)
        if kind == "clock-set":
            return self.cut_after_set()
        # startup: a cut at random, then one at start-up (before or just after READY)
        first = self.kill("interval", None)
        self.cuts -= 1
        self.start(self.backfill)
        delay = r.uniform(0, 0.25)
        self.m.poll_ready(delay)
        return first + self.kill("startup+%dms" % (delay * 1000), None)

    def cut_after_set(self):
        r = self.rng
        meter_now = self.tb.at(now_ms()) - self.lag
        now = datetime.datetime.fromtimestamp(meter_now, datetime.timezone.utc)
        pick = r.random()
        if pick < 0.35:
            target = now + datetime.timedelta(seconds=r.uniform(-3, 3) * PERIOD)
        elif pick < 0.6:
            target = now + datetime.timedelta(hours=r.uniform(0.1, 48))
        elif pick < 0.8:
            y, mo = now.year + (now.month // 12), now.month % 12 + 1
            t = datetime.datetime(y, mo, 1, tzinfo=datetime.timezone.utc)
            target = t - datetime.timedelta(minutes=local_offset(t), seconds=r.uniform(2, 90))
        else:
            t = min(x for x in (dst_begin(now.year), dst_begin(now.year, 10),
                                dst_begin(now.year + 1)) if x > now)
            target = t - datetime.timedelta(seconds=r.uniform(2, 90))
        target = target.replace(microsecond=0)
        real = now_ms()
        ok = set_clock(self.m.port, target)
        if ok:
            self.clock_set = True
            self.tb = Timebase(self.a.factor, real, target.timestamp() * 1000)
            self.lag = 0.0
        time.sleep(r.choice((0, r.uniform(0, 0.3))))
        return self.kill("clock-set%+ds%s" % ((target - now).total_seconds(),
                                              "" if ok else "(refused)"), None)

    # **** main loop ****

    def run(self):
        t0 = time.monotonic()
        n = self.a.cuts
        names = [k for k, w in KINDS for _ in range(w)]
        try:
            next_epoch = 0
            while self.cuts < n:
                if self.m is None or self.cuts >= next_epoch:
                    self.end_epoch()
                    next_epoch = self.cuts + EPOCH_CUTS
                    self.plan = [k for k, _ in KINDS]
                    self.rng.shuffle(self.plan)
                    cuts = self.new_epoch()
                else:
                    # Every kind early in each epoch (short runs cover them all), then at random.
                    kind = self.plan.pop() if self.plan else self.rng.choice(names)
                    if kind == "startup" and self.cuts + 2 > n:
                        kind = "interval"
                    cuts = self.cut(kind)
                snap = self.recover(cuts)
                self.report(cuts, snap)
                if snap is None:
                    self.end_epoch()
                    self.m = None
        finally:
            if self.m is not None:
                self.m.proc.kill()
                self.m.proc.wait()
                self.m = None
        wall = time.monotonic() - t0
        self.end_epoch()
        return self.figures(wall)

    def report(self, cuts, snap):
        if self.a.quiet:
            return
        kinds = ",".join(c.kind for c in cuts)
        if snap is None:
            print("cut %d/%d %s: no snapshot" % (self.cuts, self.a.cuts, kinds), flush=True)
            return
        print("cut %d/%d epoch %d %-24s rows %3d newest %s status 0x%04X bills %d lost %d %s"
              % (self.cuts, self.a.cuts, self.epoch, kinds, len(snap.rows),
                 time.strftime("%Y-%m-%d %H:%M", time.gmtime(snap.rows[-1][0]))
                 if snap.rows else "-", snap.status, len(snap.bills), self.hist.lost,
                 "VIOLATIONS %d" % self.cut_violations if self.cut_violations else "ok"),
              flush=True)

    def figures(self, wall):
        print("cuts: %d (%s)" % (self.cuts, ", ".join("%s %d" % kv for kv in
                                                       sorted(self.kinds.items()))))
        print("restarts: %d" % self.restarts)
        print("rows checked: %d" % self.rows_checked)
        print("rows lost per cut (max): %d" % self.max_lost)
        print("violations: %d" % len(self.violations))
        for v in self.violations[:50]:
            print("  " + v)
        print("wall time: %.1f s (%.2f s per cut; 1000 cuts: about %.0f min)"
              % (wall, wall / max(self.cuts, 1), wall / max(self.cuts, 1) * 1000 / 60))
        for d in self.kept:
            print("kept for inspection: %s (meter stderr: %s)" % (d, self.logpath))
        if not self.a.state_dir and not self.kept:
            self.log.close()
            shutil.rmtree(self.work, ignore_errors=True)
        return 1 if self.violations else 0


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="torture.py", description=(
        "SIGKILL the simulated meter at random moments (backfill, recording, a client's "
        "block read, after a clock set, start-up), restart it on the same state directory and "
        "check over DLMS what it serves."))
    ap.add_argument("--cuts", type=int, default=20, help="power cuts to make (default 20)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument("--runtime", choices=("micropython", "cpython"), default="micropython")
    ap.add_argument("--state-dir", metavar="DIR", default=None, help=(
        "work directory (config, meter stderr log, one meter-N state directory per epoch of "
        "%d cuts), kept. Default: a temporary one, removed unless a violation was found"
        % EPOCH_CUTS))
    ap.add_argument("--factor", type=int, default=40, help=(
        "meter seconds per real second, 1..80 (default 40: a 60 s interval in 1.5 s)"))
    ap.add_argument("--quiet", action="store_true", help="no per-cut lines")
    a = ap.parse_args(argv)
    if not 1 <= a.factor <= 80 or a.cuts < 1:
        ap.error("--factor must be 1..80 and --cuts at least 1")
    return a


def main(argv=None):
    return Torture(parse_args(argv)).run()


if __name__ == "__main__":
    sys.exit(main())
