# The simulator's IEC 62056-47 TCP transport (tools/sim.py --wrapper-tcp, firmware/wrapper.py)
# on the MicroPython unix port and on CPython, by raw WPDUs: what the clients never send. A bad
# version closes the connection, another wPort is ignored, a new connection replaces the old one
# and ends its association. The HDLC transport keeps working beside it. The independent clients
# (Gurux, dlms-cosem) run over this transport in the interoperability matrix,
# host_tests/test_sim_interop.py.
import socket
import time

import pytest
from interop_util import Sim

IO_TIMEOUT = 5.0

# The published public AARQ (GXDLMSDirector trace; host_tests/portable/test_acse.py).
AARQ_PUBLIC = bytes.fromhex(
    "601DA109060760857405080101BE10040E01000000065F1F0400001E1DFFFF")
GET_LDN = bytes.fromhex("C001C100010000" "2A0000FF" "0200")


def wpdu(apdu, src=16, dst=1, version=1):
    return bytes([version >> 8, version & 0xFF, src >> 8, src & 0xFF, dst >> 8, dst & 0xFF,
                  len(apdu) >> 8, len(apdu) & 0xFF]) + apdu


# **** the simulator process ****


@pytest.fixture(scope="module", params=["micropython", "cpython"])
def sim(request):
    s = Sim(request.param, "--hdlc-tcp", "127.0.0.1:0", "--wrapper-tcp", "127.0.0.1:0",
            "--backfill-days", "0")
    yield s
    s.stop()


def address(sim, transport="wrapper-tcp"):
    host, _, port = sim.ready[transport].rpartition(":")
    return host, int(port)


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
    return socket.create_connection(address(sim), timeout=IO_TIMEOUT)


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

    s = socket.create_connection(address(sim, "hdlc-tcp"), timeout=IO_TIMEOUT)
    s.sendall(frame(SRV, C16, SNRM))
    head = read_exact(s, 3)
    f = head + read_exact(s, (((head[1] & 7) << 8) | head[2]) - 1)
    assert parse(f)[3] == 0x73  # UA, final
    s.close()
