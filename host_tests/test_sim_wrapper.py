# The simulator's IEC 62056-47 TCP transport (tools/sim.py --wrapper-tcp, firmware/wrapper.py)
# on the MicroPython unix port and on CPython, driven by independent clients: Gurux
# (InterfaceType.WRAPPER over a plain socket) and dlms-cosem (its TcpTransport over
# BlockingTcpIO). Both associate as the public and the LLS client, read the clock, an energy
# register and the load profile by block transfer, and are refused a register SET. Raw WPDUs
# check what the clients never send: a bad version closes the connection, another wPort is
# ignored, a new connection replaces the old one and ends its association. The HDLC transport
# keeps working beside it.
import datetime
import os
import socket
import subprocess
import sys
import time

import pytest
import test_sim_link
from gurux_dlms import GXByteBuffer, GXDLMSClient, GXReplyData
from gurux_dlms.enums import Authentication, InterfaceType
from gurux_dlms.objects import GXDLMSClock, GXDLMSProfileGeneric, GXDLMSRegister

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIM = os.path.join(ROOT, "tools", "sim.py")
PASSWORD = "wrap-pass-7"
BACKFILL_DAYS = 3  # 288 load-profile rows and more: many blocks of a 1024-byte PDU
IO_TIMEOUT = 5.0
UTC = datetime.timezone.utc

# The published public AARQ (GXDLMSDirector trace; host_tests/portable/test_acse.py).
AARQ_PUBLIC = bytes.fromhex(
    "601DA109060760857405080101BE10040E01000000065F1F0400001E1DFFFF")
GET_LDN = bytes.fromhex("C001C100010000" "2A0000FF" "0200")


def wpdu(apdu, src=16, dst=1, version=1):
    return bytes([version >> 8, version & 0xFF, src >> 8, src & 0xFF, dst >> 8, dst & 0xFF,
                  len(apdu) >> 8, len(apdu) & 0xFF]) + apdu


# **** the simulator process ****


class Sim(test_sim_link.Sim):  # its stop(): SIGTERM, then the whole session
    # tools/sim.py in its own session, so teardown can end the launcher and the meter child
    # together even if the launcher fails to forward the signal.
    def __init__(self, runtime):
        cmd = [sys.executable, SIM, "--runtime", runtime, "--hdlc-tcp", "127.0.0.1:0",
               "--wrapper-tcp", "127.0.0.1:0", "--lls-password", PASSWORD,
               "--backfill-days", str(BACKFILL_DAYS)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, text=True, start_new_session=True)
        self.ready = {}
        try:
            deadline = time.monotonic() + 30
            while len(self.ready) < 2 and time.monotonic() < deadline:
                line = self.proc.stdout.readline()
                if not line:
                    break
                words = line.split()
                if len(words) == 3 and words[0] == "READY":
                    self.ready[words[1]] = words[2]
            assert set(self.ready) == {"hdlc-tcp", "wrapper-tcp"}, self.ready
        except BaseException:
            self.stop()
            raise

    def address(self, transport="wrapper-tcp"):
        host, _, port = self.ready[transport].rpartition(":")
        return host, int(port)


@pytest.fixture(scope="module", params=["micropython", "cpython"])
def sim(request):
    s = Sim(request.param)
    yield s
    s.stop()


# **** reading WPDUs off a socket ****


def read_exact(sock, n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed by the meter after %d of %d bytes" % (len(out), n))
        out += chunk
    return out


def read_wpdu(sock):
    head = read_exact(sock, 8)
    assert head[:2] == b"\x00\x01", head  # version 1
    return head + read_exact(sock, (head[6] << 8) | head[7])


def closed_by_peer(sock, timeout=IO_TIMEOUT):
    # True when the meter closes the connection (end of stream or reset) within the timeout.
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def connect(sim):
    return socket.create_connection(sim.address(), timeout=IO_TIMEOUT)


# **** Gurux ****


class GuruxWrapper:
    # Gurux with InterfaceType.WRAPPER on a socket; counts the WPDUs exchanged.
    def __init__(self, sim, sap=16, auth=Authentication.NONE, password=None):
        self.c = GXDLMSClient(True, sap, 1, auth, password, InterfaceType.WRAPPER)
        self.sock = connect(sim)
        self.sap = sap
        self.exchanges = 0

    def request(self, wpdus):
        # One request, including the GET-next requests of a block transfer.
        if not isinstance(wpdus, list):
            wpdus = [wpdus]
        reply = GXReplyData()
        for w in wpdus:
            reply.clear()
            self._exchange(w, reply)
            while reply.isMoreData():
                self._exchange(self.c.receiverReady(reply), reply)
        return reply

    def _exchange(self, w, reply):
        self.sock.sendall(bytes(w))
        answer = read_wpdu(self.sock)
        assert answer[2:6] == bytes([0, 1, 0, self.sap])  # from wPort 1 to ours
        self.exchanges += 1
        assert self.c.getData(GXByteBuffer(answer), reply, None)

    def associate(self):
        assert not self.c.snrmRequest()  # nothing below the wrapper to connect
        self.c.parseAareResponse(self.request(self.c.aarqRequest()).data)

    def read(self, obj, attr):
        reply = self.request(self.c.read(obj, attr))
        assert reply.error == 0, (obj.logicalName, attr, reply.error)
        return self.c.updateValue(obj, attr, reply.value)

    def close(self):
        self.request(self.c.releaseRequest())
        self.sock.close()


def _gurux_reads(p):
    clock = GXDLMSClock("0.0.1.0.0.255")
    p.read(clock, 2)
    got = clock.time.value.astimezone(UTC)
    assert abs((got - datetime.datetime.now(UTC)).total_seconds()) < 60
    reg = GXDLMSRegister("1.1.1.8.0.255")
    p.read(reg, 3)  # scaler and unit
    p.read(reg, 2)
    assert reg.value > 0  # energy metered during the backfill
    lp = GXDLMSProfileGeneric("1.0.99.1.0.255")
    p.read(lp, 3)  # capture objects, so the rows can be decoded
    before = p.exchanges
    p.read(lp, 2)
    rows = lp.buffer
    assert len(rows) >= BACKFILL_DAYS * 96, len(rows)
    assert p.exchanges - before > 5  # GET-Response-With-Datablock and GET-next requests
    assert len(rows[0]) == 6 and rows[0][0].value < rows[-1][0].value
    return reg


def _gurux_set_refused(p, reg):
    reg.value = 0
    assert p.request(p.c.write(reg, 2)).error == 3  # read-write-denied


def test_gurux_public_reads_clock_register_load_profile_and_is_refused_a_set(sim):
    p = GuruxWrapper(sim)
    p.associate()
    reg = _gurux_reads(p)
    _gurux_set_refused(p, reg)
    p.close()


def test_gurux_lls_reads_and_is_refused_a_register_set(sim):
    p = GuruxWrapper(sim, sap=1, auth=Authentication.LOW, password=PASSWORD)
    p.associate()
    reg = _gurux_reads(p)
    _gurux_set_refused(p, reg)
    p.close()


def test_gurux_wrong_password_is_refused(sim):
    p = GuruxWrapper(sim, sap=1, auth=Authentication.LOW, password="nope")
    with pytest.raises(Exception):
        p.c.parseAareResponse(p.request(p.c.aarqRequest()).data)
    p.sock.close()


# **** dlms-cosem ****


@pytest.fixture(scope="module")
def quiet_dlms_cosem():
    # dlms-cosem logs every byte at debug level through structlog; keep warnings only.
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    yield
    structlog.reset_defaults()


def _dlms_cosem(sim, client=16, password=None):
    from dlms_cosem.client import DlmsClient
    from dlms_cosem.io import BlockingTcpIO, TcpTransport
    from dlms_cosem.security import LowLevelSecurityAuthentication, NoSecurityAuthentication

    host, port = sim.address()
    transport = TcpTransport(client_logical_address=client, server_logical_address=1,
                             io=BlockingTcpIO(host=host, port=port, timeout=int(IO_TIMEOUT)))
    auth = (LowLevelSecurityAuthentication(secret=password.encode()) if password
            else NoSecurityAuthentication())
    return DlmsClient(transport=transport, authentication=auth)


def _dlms_cosem_session(c):
    from dlms_cosem import cosem, enumerations
    from dlms_cosem.time import datetime_from_bytes
    from dlms_cosem.utils import parse_as_dlms_data

    def attr(interface, obis, n):
        return cosem.CosemAttribute(interface=interface, instance=cosem.Obis(*obis), attribute=n)

    raw = parse_as_dlms_data(c.get(attr(enumerations.CosemInterface.CLOCK, (0, 0, 1, 0, 0), 2)))
    got, _ = datetime_from_bytes(raw)
    assert abs((got.astimezone(UTC) - datetime.datetime.now(UTC)).total_seconds()) < 60
    reg = attr(enumerations.CosemInterface.REGISTER, (1, 1, 1, 8, 0), 2)
    assert parse_as_dlms_data(c.get(reg)) > 0
    rows = parse_as_dlms_data(
        c.get(attr(enumerations.CosemInterface.PROFILE_GENERIC, (1, 0, 99, 1, 0), 2)))
    assert len(rows) >= BACKFILL_DAYS * 96 and len(rows[0]) == 6, len(rows)
    # long64-unsigned 0: the meter refuses to have its energy register written
    res = c.set(reg, bytes([0x15]) + bytes(8))
    assert res.result == enumerations.DataAccessResult.READ_WRITE_DENIED, res


def test_dlms_cosem_public_reads_and_is_refused_a_set(sim, quiet_dlms_cosem):
    with _dlms_cosem(sim).session() as c:
        _dlms_cosem_session(c)


def test_dlms_cosem_lls_reads_and_is_refused_a_set(sim, quiet_dlms_cosem):
    with _dlms_cosem(sim, client=1, password=PASSWORD).session() as c:
        _dlms_cosem_session(c)
    bad = _dlms_cosem(sim, client=1, password="nope")
    bad.connect()
    with pytest.raises(Exception):
        bad.associate()
    bad.disconnect()


# **** raw WPDUs ****


def test_bad_version_closes_the_connection(sim):
    s = connect(sim)
    s.sendall(wpdu(AARQ_PUBLIC))
    assert read_wpdu(s)[8] == 0x61  # AARE
    s.sendall(wpdu(GET_LDN, version=2))
    assert closed_by_peer(s)
    s.close()
    s = connect(sim)  # the next client is served as usual
    s.sendall(wpdu(AARQ_PUBLIC))
    assert read_wpdu(s)[8] == 0x61
    s.close()


def test_oversize_length_closes_the_connection(sim):
    s = connect(sim)
    s.sendall(bytes([0, 1, 0, 16, 0, 1, 0x04, 0x01]))  # 1025 bytes announced, 1024 accepted
    assert closed_by_peer(s)
    s.close()


def test_other_wport_is_ignored_and_split_wpdus_are_reassembled(sim):
    s = connect(sim)
    data = wpdu(GET_LDN, dst=5) + wpdu(AARQ_PUBLIC) + wpdu(GET_LDN)
    s.sendall(data[:3])
    time.sleep(0.05)
    s.sendall(data[3:30])
    time.sleep(0.05)
    s.sendall(data[30:])
    aare = read_wpdu(s)
    assert aare[:8] == bytes.fromhex("000100010010002B") and aare[8] == 0x61
    assert read_wpdu(s) == bytes.fromhex("0001000100100016C401C100091053434830303030303030"
                                         "303030303137")  # "SCH0000000000017"
    s.close()


def test_new_connection_replaces_the_old_and_its_association(sim):
    a = connect(sim)
    a.sendall(wpdu(AARQ_PUBLIC))
    assert read_wpdu(a)[8] == 0x61
    b = connect(sim)
    assert closed_by_peer(a)
    a.close()
    b.sendall(wpdu(GET_LDN))  # not associated on this connection
    assert read_wpdu(b)[8:] == bytes.fromhex("D80101")  # exception: not allowed, not possible
    b.sendall(wpdu(AARQ_PUBLIC))
    assert read_wpdu(b)[8] == 0x61
    b.sendall(wpdu(GET_LDN))
    assert read_wpdu(b)[8:14] == bytes.fromhex("C401C1000910")
    b.close()


def test_hdlc_transport_is_still_served(sim):
    # SNRM to unit 17, logical device 1, from the public client: UA comes back.
    from hdlc_util import C16, SNRM, SRV, frame, parse

    s = socket.create_connection(sim.address("hdlc-tcp"), timeout=IO_TIMEOUT)
    s.sendall(frame(SRV, C16, SNRM))
    head = read_exact(s, 3)
    f = head + read_exact(s, (((head[1] & 7) << 8) | head[2]) - 1)
    assert parse(f)[3] == 0x73  # UA, final
    s.close()
