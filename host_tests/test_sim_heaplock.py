# The whole meter with the heap locked: `tools/sim.py --heap-lock` on the MicroPython unix port
# locks the heap once start-up and backfill are done, so every allocation while serving and
# metering raises MemoryError, which the simulator reports on stderr and exits on (status 3).
#
# Against one locked simulator, the complete interoperability matrix of test_sim_interop.py
# (its test functions, called here with a port of this simulator): Gurux and dlms-cosem over
# HDLC/TCP, the pty and the TCP wrapper; public and LLS associations, every attribute of every
# object in the object list, the load profile by block transfer, range and entry selection,
# attribute 0, GET-with-list, clock set with LLS, refused writes, a wrong password, release.
# After each case the simulator must still run, with nothing on stderr about MemoryError. Then
# the meter runs across a capture under the lock (the clock set by LLS to just before an
# interval boundary): the row, the checkpoint and their flash writes, and it still answers.
# Also: an allocation injected into the serving loop is reported with its traceback and a
# non-zero exit; under CPython the flag is accepted and said to do nothing.
import datetime
import inspect
import json
import logging
import os
import select
import socket
import subprocess
import sys
import time

import interop_util
import pytest
import structlog
import test_sim_interop as interop
from dlms_cosem import dlms_data
from dlms_cosem import time as dlms_time
from dlms_cosem.enumerations import DataAccessResult
from hdlc_util import C16, SNRM, SRV, frame, parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIM = os.path.join(ROOT, "tools", "sim.py")
PERIOD = 180  # s: a short recording interval (test_sim_interop's clock tests need > 120)
CONFIG = {
    "recording_interval": PERIOD,
    "demand": {"sub_s": 60, "subs": 3},  # a demand sub-interval ends every minute
}
BACKFILL_DAYS = 1  # 480 load-profile rows: block transfers of many blocks
EXIT_ALLOC = 3  # tools/simhost.py: MemoryError with the heap locked
LP = interop.LOAD_PROFILE
BILLING = (7, b"\x01\x00\x62\x01\x00\xff")  # 1-0:98.1.0*255
LP_FILES = "p0100630100ff."  # model._rows_name: the profiles' segment files
BILLING_FILES = "p0100620100ff."


# **** the locked simulator ****


class LockedSim(interop_util.Sim):
    # tools/sim.py --heap-lock on every transport, stderr kept in a file to be searched.
    def __init__(self, tmp, runtime="micropython"):
        self.state = os.path.join(tmp, "state")
        cfg = os.path.join(tmp, "config.json")
        with open(cfg, "w") as f:
            json.dump(CONFIG, f)
        self.err_path = os.path.join(tmp, "stderr.txt")
        self.err = open(self.err_path, "wb")
        args = ["--runtime", runtime, "--heap-lock", "--config", cfg, "--state-dir", self.state,
                "--backfill-days", str(BACKFILL_DAYS), "--lls-password", interop.PASSWORD,
                "--hdlc-tcp", "127.0.0.1:0", "--pty", "--wrapper-tcp", "127.0.0.1:0"]
        self.proc = subprocess.Popen([sys.executable, SIM] + args, cwd=ROOT,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self.err, start_new_session=True)
        self.ready = {}
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self):
        # Raw reads of stdout (a buffered readline could hold a READY line select() misses).
        fd = self.proc.stdout.fileno()
        text = b""
        deadline = time.monotonic() + interop_util.READY_TIMEOUT
        while set(self.ready) != set(interop_util.TRANSPORTS):
            left = deadline - time.monotonic()
            assert left > 0 and select.select([fd], [], [], left)[0], \
                "no READY lines in time: %r; stderr: %s" % (text, self.stderr())
            chunk = os.read(fd, 4096)
            assert chunk, "the simulator exited (%r): %s" % (self.proc.wait(), self.stderr())
            text += chunk
            for line in text.decode().splitlines():
                words = line.split()
                if len(words) == 3 and words[0] == "READY":
                    self.ready[words[1]] = words[2]

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")

    def check(self):
        # Still running, and nothing about an allocation on stderr.
        text = self.stderr()
        assert "MemoryError" not in text, text
        assert self.proc.poll() is None, "the simulator exited (%r): %s" % (self.proc.poll(),
                                                                           text)

    def stop(self):
        interop_util.Sim.stop(self)
        self.err.close()


@pytest.fixture(scope="module")
def locked(tmp_path_factory):
    s = LockedSim(str(tmp_path_factory.mktemp("heaplock")))
    yield s
    s.stop()


@pytest.fixture(scope="module", autouse=True)
def quiet_dlms_cosem():
    # dlms-cosem logs every frame at debug level through structlog; keep warnings only.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    yield
    structlog.reset_defaults()


# **** the interoperability matrix, under the lock ****


def _cases():
    # (transport, test function name, keyword arguments) for every test of test_sim_interop
    # that takes a port (and a parametrized association): the same scenario, every transport.
    out = []
    for name, fn in inspect.getmembers(interop, inspect.isfunction):
        if not name.startswith("test_") or fn.__module__ != interop.__name__:
            continue
        params = list(inspect.signature(fn).parameters)
        if params[:1] != ["port"]:
            continue
        variants = [{}]
        for mark in getattr(fn, "pytestmark", []):
            if mark.name == "parametrize":
                argname, values = mark.args[0], mark.args[1]
                variants = [dict(v, **{argname: x}) for v in variants for x in values]
        if not all(set(v) == set(params[1:]) for v in variants):
            continue  # a test needing more than a port and its parametrization
        for transport in interop_util.TRANSPORTS:
            for v in variants:
                out.append((transport, name, v))
    return out


CASES = _cases()


def _case_id(case):
    transport, name, kw = case
    return "-".join([transport, name[len("test_"):]] + [str(x) for x in kw.values()])


def test_the_matrix_is_there():
    # Both clients, every transport: the reuse above found the scenario.
    names = {c[1] for c in CASES}
    assert {c[0] for c in CASES} == set(interop_util.TRANSPORTS)
    assert sum(n.startswith("test_gurux_") for n in names) >= 5, names
    assert sum(n.startswith("test_dlms_cosem_") for n in names) >= 7, names


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_interop_with_the_heap_locked(locked, case):
    transport, name, kw = case
    locked.check()
    getattr(interop, name)(interop_util.Port(locked, transport), **kw)
    locked.check()


# **** metering under the lock: a capture, its flash writes, a checkpoint ****


def _mtimes(d):
    return {n: os.stat(os.path.join(d, n)).st_mtime_ns for n in os.listdir(d)}


def _newest_row(c, profile):
    # (entries in use, newest row or None) of a profile, by entry selection.
    n = interop._get(c, profile, interop._ENTRIES_IN_USE)
    return n, (interop._get(c, profile, interop._BUFFER, interop._Entries(n, n))[0]
               if n else None)


def _set_clock(c, when):
    octets = dlms_time.datetime_to_bytes(when)
    assert interop._set(c, interop.CLOCK, 2, dlms_data.OctetStringData(octets)) == \
        DataAccessResult.SUCCESS


def _await_row(c, profile, done, what):
    # Polls the newest row until done(row); returns it. The meter runs on meanwhile.
    deadline = time.monotonic() + 15
    while True:
        row = _newest_row(c, profile)[1]
        if row is not None and done(row):
            return row
        assert time.monotonic() < deadline, "no %s row: newest %r" % (what, row)
        time.sleep(0.5)


def _stamp(row):
    return interop._datetime(row[0])


def test_captures_with_the_heap_locked(locked):
    # The management client sets the clock to 2 s before the next interval boundary, and then
    # to 2 s before the next billing instant (midnight local time on the 1st); the meter
    # crosses each under the lock: a load-profile row stamped at the boundary, a billing row
    # at the instant, written to flash with the energy checkpoint. It still answers afterwards.
    port = interop_util.Port(locked, "hdlc-tcp")
    c = port.dlms_cosem(client=1, password=interop.PASSWORD)
    with c.session():
        assert interop._get(c, LP, 4) == PERIOD  # capture_period
        now = interop._clock(c)
        if now.tzinfo is None:  # deviation "not specified": dlms-cosem gives UTC, naive
            now = now.replace(tzinfo=datetime.timezone.utc)
        ts = int(now.timestamp()) + 6
        boundary = ts - ts % PERIOD + PERIOD  # UTC marks: PERIOD divides the UTC offset
        before = _mtimes(locked.state)
        _set_clock(c, datetime.datetime.fromtimestamp(boundary - 2, now.tzinfo))
        row = _await_row(c, LP, lambda r: _stamp(r).timestamp() >= boundary, "load-profile")
        assert _stamp(row).timestamp() == boundary, row
        assert all(isinstance(v, int) for v in row[1:]), row  # status and interval energies
        time.sleep(0.5)  # flash writes wait for an idle bus (at most 5 s; it is idle now)
        after = _mtimes(locked.state)
        written = sorted(k for k in after if after[k] != before.get(k))
        assert any(k.startswith("ck.") for k in written), written  # the energy checkpoint
        assert any(k.startswith(LP_FILES) for k in written), written  # the row
        # Billing: the 1st of next month, 00:00 local (the offset now; across a DST change
        # the instant is passed by the set or an hour later: a row either way, stamped then).
        billed = _newest_row(c, BILLING)
        local = interop._clock(c)
        month = datetime.datetime(local.year + local.month // 12, local.month % 12 + 1, 1,
                                  tzinfo=local.tzinfo or datetime.timezone.utc)
        before = _mtimes(locked.state)
        _set_clock(c, month - datetime.timedelta(seconds=2))
        row = _await_row(c, BILLING, lambda r: (_newest_row(c, BILLING)[0], r) != billed,
                         "billing")
        t = _stamp(row)
        assert (t.day, t.hour, t.minute, t.second) == (1, 0, 0, 0), row
        assert len(row) == 13 and all(isinstance(v, int) for v in row[1:]), row
        time.sleep(0.5)
        after = _mtimes(locked.state)
        written = sorted(k for k in after if after[k] != before.get(k))
        assert any(k.startswith(BILLING_FILES) for k in written), written
    locked.check()
    # Still answering: a full association and reads on another transport.
    interop.test_dlms_cosem_public_client_may_not_set_the_clock(
        interop_util.Port(locked, "wrapper-tcp"))
    locked.check()
    assert "heap locked" in locked.stderr()


# **** a MemoryError under the lock is loud ****


INJECT = """\
import simhost

_feed = simhost.Line.feed


def _allocating_feed(line, n, now):
    _feed(line, n, now)
    return [n]  # a new list: an allocation in steady state


simhost.Line.feed = _allocating_feed
simhost.main(["simhost", "hdlc_tcp=127.0.0.1:%d", "state_dir=%s", "backfill_days=0",
              "heap_lock=1"])
"""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_allocation_under_the_lock_is_reported_and_fatal(tmp_path):
    # simhost itself (not through sim.py) with the HDLC line's feed patched to allocate after
    # each chunk: a client connects (the accept unlocks and locks again) and sends an SNRM.
    # The MemoryError goes to stderr with its traceback naming the function, and the process
    # exits non-zero, so no test can miss it.
    port = _free_port()
    script = tmp_path / "inject.py"
    script.write_text(INJECT % (port, tmp_path / "state"))
    env = dict(os.environ)
    env["MICROPYPATH"] = os.pathsep.join([os.path.join(ROOT, "firmware"),
                                          os.path.join(ROOT, "tools")])
    mp = os.path.join(os.path.dirname(sys.executable), "micropython")
    p = subprocess.Popen([mp, "-X", "heapsize=512k", str(script)], env=env, cwd=ROOT,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().startswith("READY hdlc-tcp")
        link = interop_util.TcpLink("127.0.0.1:%d" % port)
        time.sleep(0.3)  # served a while, accept included, with nothing allocated
        assert p.poll() is None
        link.send(frame(SRV, C16, SNRM))
        rc = p.wait(10)
        link.close()
    finally:
        if p.poll() is None:
            p.kill()
        err = p.stderr.read()
        p.wait()
    assert rc == EXIT_ALLOC, (rc, err)
    assert "heap locked" in err and "MemoryError" in err and "Traceback" in err, err
    assert "_allocating_feed" in err, err


# **** CPython: accepted, and said to do nothing ****


def test_cpython_accepts_the_flag_and_says_it_does_nothing(tmp_path):
    s = LockedSim(str(tmp_path), runtime="cpython")
    try:
        link = interop_util.TcpLink(s.ready["hdlc-tcp"])
        link.send(frame(SRV, C16, SNRM))
        head = link.read_exact(3)
        ua = head + link.read_exact(((head[1] & 7) << 8 | head[2]) - 1)
        link.close()
        assert parse(ua)[3] == 0x73  # UA, final: it serves
        s.check()
    finally:
        s.stop()
    lines = [ln for ln in s.stderr().splitlines() if "heap" in ln]
    assert len(lines) == 1 and "CPython" in lines[0], lines
