# Independent clients against `tools/sim.py` (the firmware under the MicroPython unix port,
# and under CPython): Gurux over TCP and over the pty, dlms-cosem over TCP. Associate as public
# and LLS clients, read every object, the load profile by block transfer, range and entry
# selection, set the clock with LLS, and be refused a register write and a wrong password.
import datetime
import os
import select
import socket
import subprocess
import sys
import time

import pytest
import serial
from gurux_dlms import GXByteBuffer, GXDateTime
from gurux_dlms.enums import Authentication, ObjectType
from gurux_util import GuruxSession

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PASSWORD = "sim-pass-1"


@pytest.fixture(scope="module", params=["micropython", "cpython"])
def sim(request):
    proc = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "tools", "sim.py"), "--hdlc-tcp", "127.0.0.1:0",
         "--pty", "--lls-password", PASSWORD, "--runtime", request.param],
        stdout=subprocess.PIPE, text=True)
    ready = {}
    deadline = time.monotonic() + 30
    try:
        while len(ready) < 2 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("READY "):
                _, kind, addr = line.split()
                ready[kind] = addr
        assert len(ready) == 2, ready
        yield ready
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


# **** reading whole frames by their length field, with timeouts ****


class FrameReader:
    # Reads one HDLC frame by its length field (never by scanning for the closing flag: an FCS
    # may end in 0x7E).
    def __init__(self, read_exact):
        self.read_exact = read_exact

    def frame(self):
        b = self.read_exact(1)
        while b != b"\x7e":
            b = self.read_exact(1)
        head = self.read_exact(2)
        while head[0] == 0x7E:  # a shared or repeated flag
            head = head[1:] + self.read_exact(1)
        n = ((head[0] & 7) << 8) | head[1]
        return b"\x7e" + head + self.read_exact(n - 2 + 1)


def tcp_io(addr):
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=5)
    return s, s.sendall, tcp_io_from(s)


def pty_io(path):
    port = serial.Serial(path, timeout=5)

    def read_exact(n):
        out = port.read(n)
        if len(out) != n:
            raise TimeoutError("pty read timed out")
        return out

    return port, port.write, FrameReader(read_exact)


# **** Gurux ****


class GuruxPeer(GuruxSession):
    # Gurux over a socket or the pty, reading each answer frame by its length field.
    def __init__(self, io, client=16, auth=Authentication.NONE, password=None):
        GuruxSession.__init__(self, client, auth, password)
        self.conn, self.write, self.reader = io

    def _exchange(self, frame, reply):
        self.write(bytes(frame))
        assert self.c.getData(GXByteBuffer(self.reader.frame()), reply, None)

    def close(self):
        GuruxSession.close(self)
        self.conn.close()


def _gurux_session(io):
    p = GuruxPeer(io)
    p.connect()
    objs = p.c.parseObjects(p.request(p.c.getObjectsRequest()).data, True)
    assert len(objs) == 26  # 5 standard objects, 19 registers, 2 profiles
    for o in objs:
        if o.objectType == ObjectType.PROFILE_GENERIC:
            p.read(o, 3)
        for attr in range(1, o.getAttributeCount() + 1):
            if o.objectType == ObjectType.ASSOCIATION_LOGICAL_NAME and attr == 7:
                continue
            reply = p.request(p.c.read(o, attr))
            assert reply.error == 0, (o.logicalName, attr)
    lp = [o for o in objs if o.logicalName == "1.0.99.1.0.255"][0]
    rows = p.read(lp, 2)
    assert len(rows) > 3000  # 35 days of 15-minute rows up to now
    newest = rows[-1][0].value
    start = newest - datetime.timedelta(hours=1)
    ranged = p.request(p.c.readRowsByRange(lp, start, newest)).value
    assert len(ranged) == 5  # both ends inclusive
    assert len(p.request(p.c.readRowsByEntry(lp, 1, 10)).value) == 10
    p.close()


def test_gurux_public_over_tcp(sim):
    _gurux_session(tcp_io(sim["hdlc-tcp"]))


def test_gurux_public_over_pty(sim):
    _gurux_session(pty_io(sim["pty"]))


def test_gurux_lls_sets_clock_and_is_refused_a_register_write(sim):
    p = GuruxPeer(tcp_io(sim["hdlc-tcp"]), client=1, auth=Authentication.LOW, password=PASSWORD)
    p.connect()
    objs = {o.logicalName: o for o in p.c.parseObjects(
        p.request(p.c.getObjectsRequest()).data, True)}
    clock = objs["0.0.1.0.0.255"]
    when = datetime.datetime(2027, 6, 1, 8, 0, 0, tzinfo=datetime.timezone.utc)
    clock.time = GXDateTime(when)
    assert p.request(p.c.write(clock, 2)).error == 0
    got = p.read(clock, 2).value.astimezone(datetime.timezone.utc)
    assert abs((got - when).total_seconds()) < 5
    reg = objs["1.1.1.8.0.255"]
    reg.value = 0
    assert p.request(p.c.write(reg, 2)).error == 3
    p.close()


def test_gurux_wrong_password_is_refused(sim):
    p = GuruxPeer(tcp_io(sim["hdlc-tcp"]), client=1, auth=Authentication.LOW, password="nope")
    p.c.parseUAResponse(p.request(p.c.snrmRequest()).data)
    with pytest.raises(Exception):
        p.c.parseAareResponse(p.request(p.c.aarqRequest()).data)
    p.conn.close()


# **** dlms-cosem ****


class LengthFramedIO:
    # dlms-cosem 25.1.0's HdlcTransport reads with recv_until(0x7E) twice per frame, and its
    # HdlcConnection cuts frames at the next 0x7E byte, even inside a frame (an FCS or a
    # control field 0x7E: N(S)=7, N(R)=3, final), then blocks for more data instead of looking
    # further in what it has. Its own TCP IO never times out. This answers the same calls by
    # reading whole frames by their length field, and returns no data when none arrives within
    # 0.1 s, so dlms-cosem looks again at its buffer; 5 s without a frame is a timeout.
    def __init__(self, addr):
        self.addr = addr
        self.sock = None
        self.pending = b""
        self.idle = 0

    def connect(self):
        host, port = self.addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        self._reader = tcp_io_from(self.sock)

    def disconnect(self):
        if self.sock:
            self.sock.close()
            self.sock = None

    def send(self, data):
        self.sock.sendall(data)

    def recv_until(self, end):
        if self.pending:
            out, self.pending = self.pending[1:], b""
            return out
        if not select.select([self.sock], [], [], 0.1)[0]:
            self.idle += 1
            if self.idle > 50:
                raise TimeoutError("no frame from the meter for 5 s")
            return b""
        self.idle = 0
        self.pending = self._reader.frame()
        return b"\x7e"  # the opening flag, as dlms-cosem expects first


def tcp_io_from(sock):
    def read_exact(n):
        out = b""
        while len(out) < n:
            chunk = sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed")
            out += chunk
        return out

    return FrameReader(read_exact)


def _dlms_cosem_client(addr, client=16, password=None):
    from dlms_cosem.client import DlmsClient
    from dlms_cosem.io import HdlcTransport
    from dlms_cosem.security import LowLevelSecurityAuthentication, NoSecurityAuthentication

    transport = HdlcTransport(client_logical_address=client, server_logical_address=1,
                              server_physical_address=17, io=LengthFramedIO(addr),
                              extended_addressing=True)
    auth = (LowLevelSecurityAuthentication(secret=password.encode()) if password
            else NoSecurityAuthentication())
    return DlmsClient(transport=transport, authentication=auth)


def test_dlms_cosem_reads_over_tcp(sim):
    from dlms_cosem import cosem, enumerations
    from dlms_cosem.parsers import ProfileGenericBufferParser  # noqa: F401 (API presence)
    from dlms_cosem.utils import parse_as_dlms_data

    client = _dlms_cosem_client(sim["hdlc-tcp"])
    with client.session() as c:
        ldn = c.get(cosem.CosemAttribute(interface=enumerations.CosemInterface.DATA,
                                         instance=cosem.Obis(0, 0, 42, 0, 0), attribute=2))
        assert parse_as_dlms_data(ldn) == b"SCH0000000000017"
        energy = c.get(cosem.CosemAttribute(interface=enumerations.CosemInterface.REGISTER,
                                            instance=cosem.Obis(1, 1, 1, 8, 0), attribute=2))
        assert parse_as_dlms_data(energy) > 2**30
        buf = c.get(cosem.CosemAttribute(interface=enumerations.CosemInterface.PROFILE_GENERIC,
                                         instance=cosem.Obis(1, 0, 99, 1, 0), attribute=2))
        rows = parse_as_dlms_data(buf)
        assert len(rows) > 3000 and len(rows[0]) == 6


def test_dlms_cosem_lls_and_wrong_password(sim):
    from dlms_cosem import cosem, enumerations

    client = _dlms_cosem_client(sim["hdlc-tcp"], client=1, password=PASSWORD)
    with client.session() as c:
        c.get(cosem.CosemAttribute(interface=enumerations.CosemInterface.CLOCK,
                                   instance=cosem.Obis(0, 0, 1, 0, 0), attribute=2))
    bad = _dlms_cosem_client(sim["hdlc-tcp"], client=1, password="nope")
    bad.connect()
    with pytest.raises(Exception):
        bad.associate()
    bad.disconnect()
