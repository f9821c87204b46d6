# The host simulator (tools/sim.py starting tools/simhost.py) on the MicroPython unix port and
# on CPython, driven by the real Gurux client over TCP and over a pseudo-terminal: SNRM/UA with
# and without negotiated sizes, DISC/UA, DISC/DM, silence for other unit ids, one TCP client at
# a time. Replies are read by their length field, never by scanning for the closing flag.
import os
import selectors
import signal
import socket
import subprocess
import sys
import time

import pytest
import serial
from gurux_dlms import GXByteBuffer, GXDLMSClient, GXReplyData
from gurux_dlms.enums import Authentication, InterfaceType
from hdlc_util import parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIM = os.path.join(ROOT, "tools", "sim.py")
RUNTIMES = ("micropython", "cpython")
TRANSPORTS = ("hdlc-tcp", "pty")
READY_TIMEOUT = 15.0  # process start, both runtimes; normally well under a second
IO_TIMEOUT = 3.0  # an answer that is due
SILENCE = 0.3  # how long "no answer" is awaited
UA_F = 0x73  # UA with the final bit
DM_F = 0x1F  # DM with the final bit


# **** the simulator process ****


class Sim:
    # tools/sim.py in its own session, so teardown can kill the launcher and the meter child
    # together even if the launcher fails to forward the signal.
    def __init__(self, runtime, *args, stderr=None):
        cmd = [sys.executable, SIM, "--runtime", runtime, "--hdlc-tcp", "127.0.0.1:0"]
        self.proc = subprocess.Popen(cmd + list(args), cwd=ROOT, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=stderr,
                                     start_new_session=True)
        try:
            self.ready = self._wait_ready("--pty" in args)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, want_pty):
        want = {"hdlc-tcp", "pty"} if want_pty else {"hdlc-tcp"}
        ready = {}
        text = b""
        deadline = time.monotonic() + READY_TIMEOUT
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while set(ready) != want:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise AssertionError("no READY lines in time; got %r" % text)
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    raise AssertionError("simulator exited (%r); got %r" % (self.proc.wait(),
                                                                            text))
                text += chunk
                for line in text.decode().splitlines():
                    words = line.split()
                    if len(words) == 3 and words[0] == "READY":
                        ready[words[1]] = words[2]
        return ready

    def peer(self, transport):
        if transport == "pty":
            return SerialPeer(self.ready["pty"])
        return TcpPeer(self.ready["hdlc-tcp"])

    def stop(self):
        p = self.proc
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)  # the launcher forwards it to the meter
            try:
                p.wait(3)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(p.pid, signal.SIGKILL)  # whatever is left of the session
        except (ProcessLookupError, PermissionError):
            pass
        p.wait(3)
        p.stdout.close()


@pytest.fixture(scope="module", params=RUNTIMES)
def sim(request):
    s = Sim(request.param, "--pty")
    yield s
    s.stop()


# **** peers: the client's end of each transport ****


class Peer:
    def read_frame(self, timeout=IO_TIMEOUT):
        # 7E, the 2-byte format field, then the rest by its 11-bit length (which counts the
        # bytes between the flags): length + 2 bytes in all. None if nothing comes in time.
        deadline = time.monotonic() + timeout
        head = self.read(3, deadline)
        if not head:
            return None
        assert len(head) == 3 and head[0] == 0x7E and head[1] & 0xF0 == 0xA0, head
        length = ((head[1] & 7) << 8) | head[2]
        rest = self.read(length + 2 - 3, deadline)
        frame = head + rest
        assert len(frame) == length + 2 and frame[-1] == 0x7E, frame
        return frame

    def read(self, n, deadline):
        data = b""
        while len(data) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            chunk = self.read_some(n - len(data), left)
            if chunk is None:
                break  # end of stream
            data += chunk
        return data

    def exchange(self, request, timeout=IO_TIMEOUT):
        self.send(request)
        return self.read_frame(timeout)


class TcpPeer(Peer):
    def __init__(self, address):
        host, _, port = address.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=IO_TIMEOUT)

    def send(self, data):
        self.sock.sendall(data)

    def read_some(self, n, timeout):
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(n)
        except socket.timeout:
            return b""
        return chunk or None

    def close(self):
        self.sock.close()


class SerialPeer(Peer):
    def __init__(self, path):
        self.ser = serial.Serial(path, 9600, timeout=IO_TIMEOUT)
        self.ser.reset_input_buffer()  # nothing left over from an earlier test

    def send(self, data):
        self.ser.write(data)
        self.ser.flush()

    def read_some(self, n, timeout):
        self.ser.timeout = timeout
        return self.ser.read(n)

    def close(self):
        self.ser.close()


@pytest.fixture(params=TRANSPORTS)
def peer(request, sim):
    p = sim.peer(request.param)
    yield p
    p.close()


# **** the Gurux client ****


def client(unit=17):
    return GXDLMSClient(True, 16, GXDLMSClient.getServerAddress(1, unit, 4),
                        Authentication.NONE, None, InterfaceType.HDLC)


def control(frame):
    return parse(frame)[3]  # also checks length, HCS and FCS


def connect(peer, c):
    reply = peer.exchange(c.snrmRequest())
    assert reply is not None, "no UA"
    assert control(reply) == UA_F, reply.hex()
    r = GXReplyData()
    c.getData(GXByteBuffer(reply), r, None)
    c.parseUAResponse(r.data)


def disconnect(peer, c):
    reply = peer.exchange(c.disconnectRequest(True))
    assert reply is not None, "no answer to DISC"
    return control(reply)


# **** tests ****


def test_snrm_disc_dm(peer):
    c = client()
    connect(peer, c)
    assert c.hdlcSettings.maxInfoTX == 128 and c.hdlcSettings.maxInfoRX == 128
    assert disconnect(peer, c) == UA_F
    assert disconnect(peer, c) == DM_F  # already disconnected


def test_other_unit_gets_no_answer(peer):
    assert peer.exchange(client(18).snrmRequest(), SILENCE) is None
    c = client()
    connect(peer, c)  # still serving unit 17, and nothing stale queued
    assert disconnect(peer, c) == UA_F


def test_negotiated_max_info_64(peer):
    c = client()
    c.hdlcSettings.maxInfoTX = 64
    c.hdlcSettings.maxInfoRX = 64
    connect(peer, c)
    assert c.hdlcSettings.maxInfoTX == 64 and c.hdlcSettings.maxInfoRX == 64
    assert disconnect(peer, c) == UA_F


def test_new_tcp_connection_replaces_old(sim):
    old = sim.peer("hdlc-tcp")
    new = sim.peer("hdlc-tcp")
    try:
        assert old.read(1, time.monotonic() + IO_TIMEOUT) == b""  # closed by the meter
        c = client()
        connect(new, c)
        assert disconnect(new, c) == UA_F
    finally:
        old.close()
        new.close()


def answers_as(s, unit, not_as=None):
    # The simulator's HDLC/TCP port connects and disconnects a client of `unit`, after staying
    # silent to one of `not_as`; then the simulator stops.
    try:
        p = s.peer("hdlc-tcp")
        try:
            if not_as is not None:
                assert p.exchange(client(not_as).snrmRequest(), SILENCE) is None
            c = client(unit)
            connect(p, c)
            assert disconnect(p, c) == UA_F
        finally:
            p.close()
    finally:
        s.stop()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_unit_id_flag(runtime):
    answers_as(Sim(runtime, "--unit-id", "18"), 18, not_as=17)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_config_file_sets_unit_id_and_link_parameters(runtime, tmp_path):
    # The board's JSON config drives the simulator too; an invalid entry is reported and
    # replaced, and --unit-id overrides the file.
    cfg = tmp_path / "meter.json"
    cfg.write_text('{"hdlc": {"unit_id": 33, "window_rx": 9}, "recording_interval": 7}')
    log = tmp_path / "stderr.txt"
    with open(log, "w") as f:
        answers_as(Sim(runtime, "--config", str(cfg), "--backfill-days", "0", stderr=f), 33,
                   not_as=17)
    err = log.read_text()
    assert "recording_interval 7 invalid" in err and "window_rx 9 invalid" in err
    answers_as(Sim(runtime, "--config", str(cfg), "--unit-id", "19", "--backfill-days", "0"), 19)


def test_help_lists_every_flag():
    out = subprocess.run([sys.executable, SIM, "--help"], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    for flag in ("--hdlc-tcp", "--pty", "--unit-id", "--runtime", "--wrapper-tcp",
                 "--lls-password", "--state-dir", "--backfill-days", "--config"):
        assert flag in out, flag


@pytest.mark.parametrize("bad", (["--unit-id", "0"], ["--unit-id", "16382"],
                                 ["--hdlc-tcp", "4059"], ["--runtime", "wasm"]))
def test_bad_flags_are_refused(bad):
    r = subprocess.run([sys.executable, SIM] + bad, capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "usage:" in r.stderr


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_meter_does_not_outlive_a_killed_launcher(runtime):
    # SIGKILL of the launcher alone: the meter child gets SIGINT from the kernel (Linux
    # PR_SET_PDEATHSIG), saves and exits instead of serving on as an orphan.
    s = Sim(runtime, "--backfill-days", "0")
    try:
        os.kill(s.proc.pid, signal.SIGKILL)
        s.proc.wait(5)  # reap the launcher: a zombie still counts as a member of its group
        deadline = time.monotonic() + 10
        gone = False
        while time.monotonic() < deadline and not gone:
            try:
                os.killpg(s.proc.pid, 0)  # anyone left in the launcher's session?
                time.sleep(0.1)
            except ProcessLookupError:
                gone = True
        assert gone, "the meter kept running after its launcher was killed"
    finally:
        s.stop()


def test_lls_password_from_the_environment_stays_out_of_argv(monkeypatch):
    # $DLMS_SIM_LLS_PASSWORD instead of --lls-password: no process of the simulator shows the
    # password in its command line (ps shows argv to every user), and LLS works with it.
    from gurux_dlms.objects import GXDLMSClock
    from gurux_dlms.enums import Authentication as Auth
    from interop_util import Port
    from interop_util import Sim as FullSim

    pw = "Env-Pw-7"
    monkeypatch.setenv("DLMS_SIM_LLS_PASSWORD", pw)
    s = FullSim("micropython", "--hdlc-tcp", "127.0.0.1:0", "--backfill-days", "0")
    try:
        lines = []
        for pid in os.listdir("/proc"):
            try:
                if pid.isdigit() and os.getsid(int(pid)) == s.proc.pid:
                    with open("/proc/%s/cmdline" % pid, "rb") as f:
                        lines.append(f.read())
            except OSError:
                pass  # gone meanwhile
        assert len(lines) >= 2, lines  # the launcher and the meter
        assert not [c for c in lines if pw.encode() in c], lines
        p = Port(s, "hdlc-tcp").gurux(client=1, auth=Auth.LOW, password=pw)
        p.connect()
        assert p.read(GXDLMSClock("0.0.1.0.0.255"), 2)
        p.close()
    finally:
        s.stop()
