# interop_util.py: the client's end of each transport of `tools/sim.py`, for the independent
# clients. One simulator serves HDLC over TCP (--hdlc-tcp), HDLC on a pseudo-terminal (--pty,
# opened with pyserial as a serial port) and the IEC 62056-47 TCP wrapper (--wrapper-tcp); each
# transport has an association of its own. `Port(sim, transport)` opens a Gurux session
# (gurux_util.GuruxSession) or a dlms-cosem client on one of them. Answers are read whole by
# their length field (the HDLC frame format field, the WPDU length), with timeouts.
import os
import select
import socket
import subprocess
import sys
import time

import serial
import test_sim_link
from dlms_cosem.client import DlmsClient
from dlms_cosem.io import HdlcTransport, TcpTransport
from dlms_cosem.security import LowLevelSecurityAuthentication, NoSecurityAuthentication
from gurux_dlms import GXByteBuffer
from gurux_dlms.enums import Authentication
from gurux_util import GuruxSession

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIM = os.path.join(ROOT, "tools", "sim.py")
TRANSPORTS = ("hdlc-tcp", "pty", "wrapper-tcp")
IO_TIMEOUT = 5.0  # an answer that is due
READY_TIMEOUT = 30.0  # the simulator's start (with its backfill), either runtime
SERVER_SAP = 1  # the meter's logical device: HDLC upper address, or wPort over the wrapper
UNIT_ID = 17  # the simulator's default HDLC unit id (lower address)


# **** the simulator: every transport at once ****


class Sim(test_sim_link.Sim):  # its stop(): SIGTERM, then the whole session
    # tools/sim.py with `args`, in its own session; self.ready maps each transport the
    # arguments ask for to its READY address.
    def __init__(self, runtime, *args):
        want = {"hdlc-tcp"}
        want |= {"pty"} if "--pty" in args else set()
        want |= {"wrapper-tcp"} if "--wrapper-tcp" in args else set()
        self.proc = subprocess.Popen([sys.executable, SIM, "--runtime", runtime] + list(args),
                                     cwd=ROOT, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, start_new_session=True)
        self.ready = {}
        text = b""  # read unbuffered (os.read), so select() sees every line still to come
        try:
            deadline = time.monotonic() + READY_TIMEOUT
            while set(self.ready) != want:
                left = deadline - time.monotonic()
                assert left > 0 and select.select([self.proc.stdout], [], [], left)[0], \
                    "no READY lines in time: %r" % text
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                assert chunk, "the simulator exited (%r): %r" % (self.proc.wait(), text)
                text += chunk
                for line in text.decode().splitlines():
                    words = line.split()
                    if len(words) == 3 and words[0] == "READY":
                        self.ready[words[1]] = words[2]
        except BaseException:
            self.stop()
            raise


# **** links: bytes in and out, read by length ****


class Link:
    # send(data); read_exact(n) (a timeout or the end of the stream raises); readable(s): True
    # when bytes arrive within s seconds.
    def readable(self, timeout):
        return bool(select.select([self.fileno()], [], [], timeout)[0])

    def frame(self):
        # One HDLC frame by its length field (never by scanning for the closing flag: an FCS
        # may end in 0x7E), opening flag to closing flag.
        b = self.read_exact(1)
        while b != b"\x7e":
            b = self.read_exact(1)
        head = self.read_exact(2)
        while head[0] == 0x7E:  # a shared or repeated flag
            head = head[1:] + self.read_exact(1)
        n = ((head[0] & 7) << 8) | head[1]
        return b"\x7e" + head + self.read_exact(n - 2 + 1)

    def wpdu(self):
        # One WPDU (IEC 62056-47 5.2): version 1, source and destination wPort, length, APDU.
        head = self.read_exact(8)
        assert head[:2] == b"\x00\x01", head.hex()
        return head + self.read_exact((head[6] << 8) | head[7])


class TcpLink(Link):
    def __init__(self, addr):
        host, _, port = addr.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=IO_TIMEOUT)

    def fileno(self):
        return self.sock.fileno()

    def send(self, data):
        self.sock.sendall(data)

    def read_exact(self, n):
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))  # socket.timeout after IO_TIMEOUT
            if not chunk:
                raise ConnectionError("closed by the meter after %d of %d bytes" % (len(out), n))
            out += chunk
        return out

    def close(self):
        self.sock.close()


class PtyLink(Link):
    def __init__(self, path):
        self.port = serial.Serial(path, 9600, timeout=IO_TIMEOUT)
        self.port.reset_input_buffer()  # nothing left over from an earlier session

    def fileno(self):
        return self.port.fileno()

    def send(self, data):
        self.port.write(data)
        self.port.flush()

    def read_exact(self, n):
        out = self.port.read(n)
        if len(out) != n:
            raise TimeoutError("pty: %d of %d bytes in %.0f s" % (len(out), n, IO_TIMEOUT))
        return out

    def close(self):
        self.port.close()


def open_link(sim, transport):
    addr = sim.ready[transport]
    return PtyLink(addr) if transport == "pty" else TcpLink(addr)


# **** Gurux ****


class GuruxPeer(GuruxSession):
    # Gurux on one transport (InterfaceType.HDLC, or WRAPPER over the wrapper); counts the
    # frames or WPDUs it receives.
    def __init__(self, sim, transport, client=16, auth=Authentication.NONE, password=None):
        GuruxSession.__init__(self, client, auth, password, UNIT_ID,
                              wrapper=transport == "wrapper-tcp")
        self.sap = client
        self.link = open_link(sim, transport)
        self.exchanges = 0

    def _exchange(self, frame, reply):
        self.link.send(bytes(frame))
        if self.wrapper:
            answer = self.link.wpdu()
            assert answer[2:6] == bytes([0, SERVER_SAP, 0, self.sap]), answer[:8].hex()
        else:
            answer = self.link.frame()
        self.exchanges += 1
        assert self.c.getData(GXByteBuffer(answer), reply, None)

    def close(self):
        GuruxSession.close(self)
        self.link.close()


# **** dlms-cosem ****


class LinkIO:
    # dlms-cosem's IO (connect, disconnect, send, recv, recv_until) on a Link.
    #
    # recv(n), all its TcpTransport uses over the wrapper, reads exactly n bytes or raises
    # (its BlockingTcpIO spins forever on a connection the meter has closed).
    #
    # recv_until() for its HdlcTransport: dlms-cosem 25.1.0 reads with recv_until(0x7E) twice
    # per frame, and its HdlcConnection cuts frames at the next 0x7E byte, even inside a frame
    # (an FCS, a data byte, or a control field 0x7E: N(S)=7, N(R)=3, final): it fails to parse
    # the piece and asks for more data, then looks further in its buffer. Its own IO never
    # times out. This answers those calls by reading whole frames by their length field. For
    # each 0x7E inside the frame last delivered, the next call returns no data at once
    # (dlms-cosem then looks again at what it has); otherwise it returns no data when nothing
    # arrives within 0.1 s; IO_TIMEOUT without a frame is a timeout.
    def __init__(self, sim, transport):
        self.sim, self.transport = sim, transport
        self.link = None
        self.pending = b""
        self.inner_flags = 0
        self.idle = 0

    def connect(self):
        self.link = open_link(self.sim, self.transport)

    def disconnect(self):
        if self.link:
            self.link.close()
            self.link = None

    def send(self, data):
        self.link.send(data)

    def recv(self, amount=1):
        return self.link.read_exact(amount)

    def recv_until(self, end):
        if self.pending:
            out, self.pending = self.pending[1:], b""
            return out
        if self.inner_flags:
            self.inner_flags -= 1
            return b""
        if not self.link.readable(0.1):
            self.idle += 1
            if self.idle > IO_TIMEOUT / 0.1:
                raise TimeoutError("no frame from the meter for %.0f s" % IO_TIMEOUT)
            return b""
        self.idle = 0
        self.pending = self.link.frame()
        self.inner_flags = self.pending.count(0x7E, 1, len(self.pending) - 1)
        return b"\x7e"  # the opening flag, as dlms-cosem expects first


def dlms_cosem_client(sim, transport, client=16, password=None, attribute0=False):
    io = LinkIO(sim, transport)
    if transport == "wrapper-tcp":
        t = TcpTransport(client_logical_address=client, server_logical_address=SERVER_SAP, io=io)
    else:
        t = HdlcTransport(client_logical_address=client, server_logical_address=SERVER_SAP,
                          server_physical_address=UNIT_ID, io=io, extended_addressing=True)
    auth = (LowLevelSecurityAuthentication(secret=password.encode()) if password
            else NoSecurityAuthentication())
    c = DlmsClient(transport=t, authentication=auth)
    # dlms-cosem proposes everything but attribute 0 with GET; the meter offers it.
    c.dlms_connection.conformance.attribute_0_supported_with_get = attribute0
    return c


class Port:
    # One transport of a running simulator, the `port` the interoperability tests take.
    def __init__(self, sim, transport):
        self.sim, self.transport = sim, transport

    def gurux(self, client=16, auth=Authentication.NONE, password=None):
        return GuruxPeer(self.sim, self.transport, client, auth, password)

    def dlms_cosem(self, client=16, password=None, attribute0=False):
        return dlms_cosem_client(self.sim, self.transport, client, password, attribute0)
