# tools/read_meter.py against the simulator (tools/sim.py, MicroPython unix port and CPython):
# dump, profile CSV (all rows, range, last N, billing), PNG plot, set-clock with the right and a
# wrong password, serial on the simulator's pty, clean failures. The tool runs as a command, as
# a user runs it; values are checked against an independent Gurux session where it matters.
import csv
import datetime
import io
import os
import re
import socket
import struct
import subprocess
import sys
import time
import zlib
from decimal import Decimal

import pytest
from gurux_dlms import GXByteBuffer
from gurux_util import GuruxSession

import read_meter_profile
import read_meter_fmt as fmt
import read_meter_png
from read_meter_link import RowCounter, make_object

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIM = os.path.join(ROOT, "tools", "sim.py")
TOOL = os.path.join(ROOT, "tools", "read_meter.py")
PASSWORD = "rm-pass-7"
LP_HEADER = ["timestamp", "status", "1-1:1.29.0 [kWh]", "1-1:3.29.0 [kvarh]",
             "1-1:2.29.0 [kWh]", "1-1:4.29.0 [kvarh]"]


# **** simulators ****


def start_sim(args, want):
    proc = subprocess.Popen([sys.executable, SIM] + args, stdout=subprocess.PIPE, text=True,
                            stderr=subprocess.DEVNULL)
    ready = {}
    deadline = time.monotonic() + 60
    while len(ready) < want and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("READY "):
            _, kind, addr = line.split()
            ready[kind] = addr
    if len(ready) < want:
        stop_sim(proc)
        raise AssertionError("simulator did not start: %r" % ready)
    return proc, ready


def stop_sim(proc):
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module", params=["micropython", "cpython"])
def sim(request):
    proc, ready = start_sim(["--hdlc-tcp", "127.0.0.1:0", "--pty", "--lls-password", PASSWORD,
                             "--backfill-days", "2", "--runtime", request.param], 2)
    yield ready
    stop_sim(proc)


@pytest.fixture(scope="module", params=["micropython", "cpython"])
def clock_sim(request):
    # Its own meter: setting the clock adds rows, which the profile tests must not see.
    proc, ready = start_sim(["--hdlc-tcp", "127.0.0.1:0", "--lls-password", PASSWORD,
                             "--backfill-days", "0", "--runtime", request.param], 1)
    yield ready["hdlc-tcp"]
    stop_sim(proc)


@pytest.fixture(scope="module")
def sim35():
    # 35 days: a full load profile (3360 rows) and billing rows. CPython only, where the
    # backfill is quick (about 3 s, against 8 s on the MicroPython unix port).
    proc, ready = start_sim(["--hdlc-tcp", "127.0.0.1:0", "--backfill-days", "35",
                             "--runtime", "cpython"], 1)
    yield ready["hdlc-tcp"]
    stop_sim(proc)


def run(*args, timeout=120):
    p = subprocess.run([sys.executable, TOOL] + [str(a) for a in args], capture_output=True,
                       text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def ok(*args):
    rc, out, err = run(*args)
    assert rc == 0, (rc, err)
    assert "Traceback" not in err
    return out


# **** an independent Gurux session, for cross-checks ****


class Peer(GuruxSession):
    def __init__(self, addr, **kw):
        GuruxSession.__init__(self, **kw)
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=5)

    def _exchange(self, frame, reply):
        self.sock.sendall(bytes(frame))
        buf = GXByteBuffer()
        while not self.c.getData(buf, reply, None):
            chunk = self.sock.recv(4096)
            assert chunk, "connection closed"
            buf.set(chunk)

    def close(self):
        GuruxSession.close(self)
        self.sock.close()


def peer_read(addr, cls, ln, attr):
    p = Peer(addr)
    p.connect()
    try:
        obj = make_object(cls, fmt.parse_obis(ln))
        return p.request(p.c.read(obj, attr)).value
    finally:
        p.close()


def meter_time(addr):
    return fmt.dt_to_datetime(peer_read(addr, 8, "0-0:1.0.0", 2))


def entries_in_use(addr, ln="1-0:99.1.0"):
    return int(peer_read(addr, 7, ln, 7))


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def times_of(rows):
    return [datetime.datetime.fromisoformat(r[0]) for r in rows]


# **** dump ****


def test_dump_lists_every_object_with_sane_values(sim):
    addr = sim["hdlc-tcp"]
    p = Peer(addr)
    p.connect()
    listed = [o.logicalName for o in p.objects()]
    p.close()
    out = ok("--tcp", addr, "dump")
    lines = out.splitlines()
    firsts = [ln.split()[0] for ln in lines[1:] if ln and not ln.startswith(" ")]
    assert len(listed) == 26
    assert sorted(firsts) == sorted(fmt.obis(bytes(int(x) for x in ln.split(".")))
                                    for ln in listed)
    assert "(error" not in out and "read-write-denied" not in out

    def value(obis, attr):
        for i, ln in enumerate(lines):
            if ln.startswith(obis + " "):
                for more in lines[i:]:
                    m = re.search(r"\s%d \w+\s+(.*)$" % attr, more)
                    if m:
                        return m.group(1)
        raise AssertionError("no %s attribute %d in the dump" % (obis, attr))

    clock = datetime.datetime.fromisoformat(value("0-0:1.0.0", 2))
    assert clock.utcoffset() is not None
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((clock - now).total_seconds()) < 60
    assert value("0-0:42.0.0", 2) == "'SCH0000000000017'"
    assert value("0-0:1.0.0", 3).startswith("-60 min")
    kwh = {}
    for c in ("1", "2", "16"):
        m = re.fullmatch(r"(-?\d+\.\d{3}) kWh", value("1-1:%s.8.0" % c, 2))
        assert m, value("1-1:%s.8.0" % c, 2)
        kwh[c] = float(m.group(1))
    assert kwh["1"] > 1 and kwh["2"] >= 0
    assert abs(kwh["1"] - kwh["2"] - kwh["16"]) < 0.1  # net = import - export
    assert value("1-1:1.8.0", 3) == "10^0 Wh"
    assert -1 <= float(value("1-1:13.0.0", 2)) <= 1  # PF: scaler -3, no unit
    assert re.fullmatch(r"-?\d+\.\d{3} kW", value("1-1:16.4.0", 2))
    assert value("1-0:99.1.0", 4) == "900 s"
    n = int(value("1-0:99.1.0", 7))
    assert 190 <= n <= 200  # two days of 15-minute rows
    assert value("1-0:99.1.0", 2) == "%d rows, the newest:" % n
    assert "(no read access)" in value("0-0:40.0.0", 7)  # the LLS secret
    # The tool reads what Gurux reads, scaled: 1-1:1.8.0 in Wh / 1000.
    raw = int(peer_read(addr, 3, "1-1:1.8.0", 2))
    assert 0 <= raw / 1000 - kwh["1"] < 0.5


# **** profile ****


def test_profile_csv_has_every_row_in_time_order(sim, tmp_path):
    addr = sim["hdlc-tcp"]
    before = entries_in_use(addr)
    ok("--tcp", addr, "profile", "--obis", "1-0:99.1.0*255", "--csv", tmp_path / "lp.csv")
    after = entries_in_use(addr)
    head, rows = read_csv(tmp_path / "lp.csv")
    assert head == LP_HEADER
    assert before <= len(rows) <= after and len(rows) > 150
    ts = times_of(rows)
    steps = [(b - a).total_seconds() for a, b in zip(ts, ts[1:])]
    assert all(s > 0 for s in steps)
    assert steps.count(900) >= len(steps) - 2
    assert all(t.utcoffset() == datetime.timedelta(hours=1) for t in ts)  # standard time
    assert all(re.fullmatch(r"0x[0-9A-F]{4}", r[1]) for r in rows)
    assert int(rows[0][1], 16) & 0x08  # status bit 3: the first interval on a fresh store
    # The interval energies add up to the cumulative registers, less the open interval.
    imp = sum(Decimal(r[2]) for r in rows) * 1000
    exp = sum(Decimal(r[4]) for r in rows) * 1000
    total_imp = int(peer_read(addr, 3, "1-1:1.8.0", 2))  # Wh
    total_exp = int(peer_read(addr, 3, "1-1:2.8.0", 2))
    assert 0 <= total_imp - imp < 2500 and 0 <= total_exp - exp < 2500


def test_profile_range_and_last_selection(sim, tmp_path):
    addr = sim["hdlc-tcp"]
    ok("--tcp", addr, "profile", "--csv", tmp_path / "all.csv")
    _, rows = read_csv(tmp_path / "all.csv")
    ts = times_of(rows)
    # Both ends inclusive, given in the meter's offset or as the same instants in UTC.
    ok("--tcp", addr, "profile", "--from", ts[10].isoformat(), "--to", ts[14].isoformat(),
       "--csv", tmp_path / "range.csv")
    assert read_csv(tmp_path / "range.csv")[1] == rows[10:15]
    utc = datetime.timezone.utc
    ok("--tcp", addr, "profile", "--from", ts[20].astimezone(utc).isoformat(),
       "--to", (ts[23] + datetime.timedelta(seconds=59)).astimezone(utc).isoformat(),
       "--csv", tmp_path / "utc.csv")
    assert read_csv(tmp_path / "utc.csv")[1] == rows[20:24]
    # Only --from: to the newest row.
    ok("--tcp", addr, "profile", "--from", ts[-3].isoformat(), "--csv", tmp_path / "tail.csv")
    tail = read_csv(tmp_path / "tail.csv")[1]
    assert tail[:3] == rows[-3:]
    # --last N: the N newest (a row captured meanwhile moves the window by one).
    ok("--tcp", addr, "profile", "--last", "7", "--csv", tmp_path / "last.csv")
    last = read_csv(tmp_path / "last.csv")[1]
    assert len(last) == 7
    assert last == rows[-7:] or last[:-1] == rows[-6:]
    # A range with no rows is a header only.
    ok("--tcp", addr, "profile", "--from", "2001-01-01T00:00:00+01:00", "--to",
       "2001-01-02T00:00:00+01:00", "--csv", tmp_path / "none.csv")
    assert read_csv(tmp_path / "none.csv") == (LP_HEADER, [])
    rc, _, err = run("--tcp", addr, "profile", "--last", "3", "--from", ts[0].isoformat())
    assert rc == 2 and "exclude" in err
    rc, _, err = run("--tcp", addr, "profile", "--obis", "99.1.0")
    assert rc == 2 and "not an OBIS code" in err
    rc, _, err = run("--tcp", addr, "profile", "--obis", "1-0:99.2.0")
    assert rc == 1 and "no profile 1-0:99.2.0" in err


def test_full_load_profile_and_billing_rows(sim35, tmp_path):
    n = entries_in_use(sim35)
    assert n == 3360  # 35 days: the whole FIFO
    ok("--tcp", sim35, "profile", "--csv", tmp_path / "lp.csv")
    rows = read_csv(tmp_path / "lp.csv")[1]
    assert len(rows) in (n, n + 1) and len(rows) <= 3360
    ts = times_of(rows)
    assert all(b > a for a, b in zip(ts, ts[1:]))
    nb = entries_in_use(sim35, "1-0:98.1.0")
    assert nb >= 1  # 35 days cross the start of a month at least once
    ok("--tcp", sim35, "profile", "--obis", "1-0:98.1.0", "--csv", tmp_path / "bill.csv")
    head, bills = read_csv(tmp_path / "bill.csv")
    assert head[:4] == ["timestamp", "status", "1-1:1.8.0 [kWh]", "1-1:2.8.0 [kWh]"]
    assert len(head) == 13 and head[-1] == "1-1:13.0.0"
    assert len(bills) == nb
    for r in bills:
        # 00:00 on the 1st (the default billing instant), stamped in standard time: in
        # summer that is 23:00 on the last day of the month before.
        t = datetime.datetime.fromisoformat(r[0])
        summer = t + datetime.timedelta(hours=1)
        assert (t.day, t.hour, t.minute) == (1, 0, 0) or (summer.day, summer.hour) == (1, 0)
        assert r[1] == "0xFFFF"  # seed: not driven by a periodic timer
        assert float(r[2]) > 0


def test_progress_bar_counts_rows_of_a_block_transfer():
    class Data:
        def __init__(self, b):
            self.b = b
            self.size = len(b)

        def array(self):
            return self.b

    class Reply:
        pass

    # array of 3 rows {date-time, long-unsigned, double-long-unsigned}: 2 + 3 * 24 bytes
    row = bytes([2, 3, 9, 12]) + bytes(12) + bytes([18, 0, 0, 6, 0, 0, 0, 1])
    data = bytes([1, 3]) + row * 3
    seen = []
    counter = RowCounter(lambda done, total: seen.append((done, total)))
    for size in (1, 2 + 30, 2 + 48, len(data)):
        r = Reply()
        r.data = Data(data[:size])
        counter(r)
    assert seen == [(None, None), (1, 3), (2, 3), (3, 3)]
    out = io.StringIO()
    bar = read_meter_profile.Progress(out, True)
    bar.update(1234, 3360)
    bar.finish()
    assert "rows 1234/3360 [###########" in out.getvalue() and " 36% " in out.getvalue()
    quiet = io.StringIO()
    bar = read_meter_profile.Progress(quiet, False)
    bar.update(1, 2)
    bar.finish()
    assert quiet.getvalue() == ""


# **** plot ****


def test_plot_series_from_interval_or_cumulative_columns():
    class P:
        period = 900
        columns = [read_meter_profile.Column([8, b"\0\0\1\0\0\xff", 2, 0]),
                   read_meter_profile.Column([3, b"\1\1\1\x08\0\xff", 2, 0]),
                   read_meter_profile.Column([3, b"\1\1\2\x08\0\xff", 2, 0])]

    for c in P.columns[1:]:
        c.su = (0, 30)  # Wh
    assert read_meter_profile.energy_columns(P) == (1, 2, True)  # 1.8.0 and 2.8.0
    rows = [[None, 1000, 0], [None, 1250, 0], [None, 1750, 100]]
    assert read_meter_profile.interval_series(P, rows, 1, True, False) == [0.25, 0.5]
    assert read_meter_profile.interval_series(P, rows, 1, True, True) == [1.0, 2.0]  # kW
    assert read_meter_profile.interval_series(P, rows, 2, True, False) == [0.0, 0.1]
    assert read_meter_profile.interval_series(P, rows, None, True, False) == [0.0, 0.0]
    P.columns.append(read_meter_profile.Column([3, b"\1\1\1\x1d\0\xff", 2, 0]))
    P.columns[-1].su = (0, 30)
    assert read_meter_profile.energy_columns(P) == (3, None, False)  # 1.29.0 first


def png_chunks(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        crc, = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        chunks.append((kind, body))
        pos += 12 + n
    return chunks


def test_plot_writes_a_valid_png(sim, tmp_path):
    addr = sim["hdlc-tcp"]
    for extra, (w, h) in (([], (960, 480)), (["--kw", "--width", "640", "--height", "300"],
                                             (640, 300))):
        path = tmp_path / "lp.png"
        ok("--tcp", addr, "plot", "--png", path, "--days", "2", *extra)
        chunks = png_chunks(path.read_bytes())
        assert [k for k, _ in chunks] == [b"IHDR", b"PLTE", b"IDAT", b"IEND"]
        width, height, depth, ctype = struct.unpack(">IIBB", chunks[0][1][:10])
        assert (width, height, depth, ctype) == (w, h, 8, 3)
        raw = zlib.decompress(chunks[2][1])
        assert len(raw) == h * (w + 1)
        pixels = b"".join(raw[y * (w + 1) + 1:(y + 1) * (w + 1)] for y in range(h))
        # Import bars over a good part of the width, and axis text.
        cols = {i % w for i, c in enumerate(pixels) if c == read_meter_png.IMPORT}
        assert len(cols) > w // 2
        assert pixels.count(read_meter_png.BLACK) > 1000


# **** set-clock ****


def test_set_clock_moves_the_clock_with_the_password(clock_sim):
    cet = datetime.timezone(datetime.timedelta(hours=1))
    target = (datetime.datetime.now(cet) + datetime.timedelta(hours=3)).replace(microsecond=0)
    out = ok("--tcp", clock_sim, "--password", PASSWORD, "set-clock", "--to", target.isoformat())
    diff = float(re.search(r"difference ([-+]\d+\.\d) s", out).group(1))
    assert abs(diff) < 2, out
    t0 = time.monotonic()
    got = meter_time(clock_sim)
    assert abs((got - target).total_seconds() - (time.monotonic() - t0)) < 5
    # Default: this PC's time.
    out = ok("--tcp", clock_sim, "--password", PASSWORD, "set-clock")
    ahead = float(re.search(r"meter - PC ([-+]\d+\.\d) s", out).group(1))
    assert abs(ahead - 10800) < 5  # 3 hours ahead before
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((meter_time(clock_sim) - now).total_seconds()) < 3


def test_set_clock_fails_cleanly_with_a_wrong_password(clock_sim):
    before = meter_time(clock_sim)
    rc, out, err = run("--tcp", clock_sim, "--password", "wrong", "set-clock", "--to",
                       "2030-01-01T00:00:00+01:00")
    assert rc == 1 and out == ""
    assert err.startswith("read_meter: association refused by the meter for client 1: "
                          "authentication failure") and err.count("\n") == 1
    assert abs((meter_time(clock_sim) - before).total_seconds()) < 10  # unchanged
    rc, _, err = run("--tcp", clock_sim, "set-clock")
    assert rc == 2 and "needs --password" in err
    rc, _, err = run("--tcp", clock_sim, "--password", PASSWORD, "set-clock", "--to", "noon")
    assert rc == 2 and "ISO 8601" in err
    rc, _, err = run("--tcp", clock_sim, "--client", "16", "--password", PASSWORD, "set-clock")
    assert rc == 1 and "Traceback" not in err


# **** transports and failures ****


def test_serial_line_on_the_simulator_pty(sim, tmp_path):
    ok("--serial", sim["pty"], "--baud", "9600", "profile", "--last", "5", "--csv",
       tmp_path / "s.csv")
    ok("--tcp", sim["hdlc-tcp"], "profile", "--last", "5", "--csv", tmp_path / "t.csv")
    serial_rows = read_csv(tmp_path / "s.csv")
    assert serial_rows[0] == LP_HEADER and len(serial_rows[1]) == 5
    tcp_rows = read_csv(tmp_path / "t.csv")[1]
    assert serial_rows[1] == tcp_rows or serial_rows[1][1:] == tcp_rows[:-1]
    out = ok("--serial", sim["pty"], "dump")
    assert "\n0-0:1.0.0 " in out and "1-1:1.8.0 " in out


def test_wrapper_over_tcp():
    helptext = subprocess.run([sys.executable, SIM, "--help"], capture_output=True,
                              text=True).stdout
    if "--wrapper-tcp" not in helptext:
        pytest.skip("tools/sim.py has no --wrapper-tcp yet (IEC 62056-47 wrapper transport)")
    proc, ready = start_sim(["--hdlc-tcp", "127.0.0.1:0", "--wrapper-tcp", "127.0.0.1:0",
                             "--backfill-days", "1", "--lls-password", PASSWORD], 2)
    try:
        addr = ready["wrapper-tcp"]
        out = ok("--wrapper", addr, "dump")
        assert "1-1:1.8.0 " in out and "Load profile" in out
        out = ok("--wrapper", addr, "profile", "--last", "4")
        assert len(out.splitlines()) == 5
        ok("--wrapper", addr, "--password", PASSWORD, "set-clock")
    finally:
        stop_sim(proc)


def test_unreachable_or_silent_meter_fails_cleanly(sim):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    rc, out, err = run("--tcp", "127.0.0.1:%d" % port, "dump")
    assert rc == 1 and err.startswith("read_meter: cannot connect") and "Traceback" not in err
    t0 = time.monotonic()
    rc, out, err = run("--tcp", sim["hdlc-tcp"], "--unit-id", "99", "--timeout", "0.5",
                       "--retries", "1", "dump")
    assert rc == 1 and "no answer from the meter within 0.5 s" in err
    assert time.monotonic() - t0 < 10


# **** formatting ****


def test_values_are_scaled_exactly_and_dates_keep_their_offset():
    assert fmt.scaled(52850, -3) == "52.850" and fmt.scaled(-5, -3) == "-0.005"
    assert fmt.scaled(7, 2) == "700"
    assert fmt.quantity(52850, (0, 30)) == ("52.850", "kWh")
    assert fmt.quantity(52850, (0, 30), base_units=True) == ("52850", "Wh")
    assert fmt.quantity(821, (-3, 255)) == ("0.821", "")
    b = bytes([0x07, 0xEA, 7, 1, 3, 14, 30, 0, 0xFF, 0xFF, 0x88, 0x80])  # CEST: -120, DST
    assert fmt.format_dt(b) == "2026-07-01T14:30:00+02:00"
    assert fmt.decode_dt(fmt.encode_dt(fmt.dt_to_datetime(b), 0x80)) == fmt.decode_dt(
        b[:4] + bytes([3]) + b[5:8] + bytes([0]) + b[9:])
    pattern = bytes([0xFF, 0xFF, 3, 0xFE, 7, 2, 0, 0, 0xFF, 0x80, 0, 0xFF])
    assert fmt.format_dt(pattern) == "*-03-last Sun 02:00:00 (local)"
    assert fmt.obis(b"\x01\x00\x63\x01\x00\xff") == "1-0:99.1.0"
    assert fmt.parse_obis("1-0:98.1.0*255") == fmt.parse_obis("1.0.98.1.0.255")
