# Two simulated meters on one RS-485 bus (IEC 62056-46 multi-drop): tools/sim.py with
# --pty --unit-id 17 (MicroPython unix port) and --unit-id 18 (CPython), joined to a client's
# pseudo-terminal by a relay that passes every byte written by anyone to every other station,
# as a two-wire bus does. The Gurux client reads each meter in turn over that one line, then
# keeps both associations open at once and interleaves them; each meter must answer only its
# own frames (nothing from the other, no answer to the other meter's answers), and a
# broadcast or an absent unit gets silence.
import os
import pty
import selectors
import threading
import time
import tty

import pytest
import serial
from gurux_dlms import GXByteBuffer
from gurux_dlms.objects import GXDLMSData
from gurux_util import GuruxSession
from hdlc_util import C16, SNRM, frame, parse, server_addr, split_frames
from test_sim_link import Sim

IO_TIMEOUT = 5.0
SILENCE = 0.5
UNITS = (17, 18)
LDN = "0.0.42.0.0.255"


class Relay:
    # The bus: reads each station's end (the client's pty master, each meter's pty slave) and
    # writes what it got to all the others. Keeps what each station sent, for the checks.
    def __init__(self, meter_paths):
        master, slave = pty.openpty()
        tty.setraw(slave)
        self.client_path = os.ttyname(slave)
        self._client_slave = slave  # kept open: the line never hangs up between opens
        self.fds = [master]
        for path in meter_paths:
            self.fds.append(os.open(path, os.O_RDWR | os.O_NOCTTY))
        for fd in self.fds:
            os.set_blocking(fd, False)
        self.sent = [bytearray() for _ in self.fds]  # [0]: the client, [k]: meter k
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        with selectors.DefaultSelector() as sel:
            for fd in self.fds:
                sel.register(fd, selectors.EVENT_READ)
            while not self._stop:
                for key, _ in sel.select(0.05):
                    try:
                        data = os.read(key.fd, 4096)
                    except (BlockingIOError, OSError):
                        continue
                    k = self.fds.index(key.fd)
                    self.sent[k] += data
                    for fd in self.fds:
                        if fd != key.fd:
                            _write_all(fd, data)

    def meter_frames(self, k):
        return split_frames(bytes(self.sent[k + 1]))

    def close(self):
        self._stop = True
        self._thread.join(2)
        for fd in self.fds + [self._client_slave]:
            os.close(fd)


def _write_all(fd, data):
    view = memoryview(data)
    deadline = time.monotonic() + IO_TIMEOUT
    while view and time.monotonic() < deadline:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            time.sleep(0.001)


class BusClient(GuruxSession):
    # Gurux for one unit over the shared client line, each answer read by its length field.
    def __init__(self, port, unit_id):
        GuruxSession.__init__(self, unit_id=unit_id)
        self.port = port
        self.unit_id = unit_id

    def _exchange(self, request, reply):
        self.port.write(bytes(request))
        f = read_frame(self.port, IO_TIMEOUT)
        assert f is not None, "unit %d did not answer" % self.unit_id
        assert parse(f)[2] == server_addr(1, self.unit_id), f.hex()  # from the right meter
        assert self.c.getData(GXByteBuffer(f), reply, None)


def read_frame(port, timeout):
    # 7E, the format field, then the rest by the 11-bit length. None if nothing comes in time.
    port.timeout = timeout
    head = port.read(3)
    if not head:
        return None
    assert len(head) == 3 and head[0] == 0x7E and head[1] & 0xF0 == 0xA0, head
    rest = port.read((((head[1] & 7) << 8) | head[2]) - 1)
    return head + rest


@pytest.fixture(scope="module")
def bus():
    sims = []
    relay = None
    try:
        for unit, runtime in zip(UNITS, ("micropython", "cpython")):
            sims.append(Sim(runtime, "--pty", "--unit-id", str(unit), "--backfill-days", "0"))
        relay = Relay([s.ready["pty"] for s in sims])
        port = serial.Serial(relay.client_path, 9600, timeout=IO_TIMEOUT)
        yield relay, port
        port.close()
    finally:
        if relay is not None:
            relay.close()
        for s in sims:
            s.stop()


def _ldn(client):
    return client.read(GXDLMSData(LDN), 2)


def test_each_meter_in_turn_over_one_bus(bus):
    relay, port = bus
    before = [len(relay.meter_frames(k)) for k in range(2)]
    asked = len(split_frames(bytes(relay.sent[0])))
    for unit in UNITS:
        c = BusClient(port, unit)
        c.connect()
        objs = c.objects()  # several HDLC segments (128-byte frames), each polled with RR
        assert len(objs) == 26
        assert _ldn(c) == b"SCH0000000000017"
        c.close()
    # Each meter sent exactly one answer per frame the client sent to it (SNRM, AARQ, the
    # object list and its RR polls, the LDN, RLRQ, DISC), all from its own address: none
    # answered the other meter's requests or answers.
    requests = split_frames(bytes(relay.sent[0]))[asked:]
    for k, unit in enumerate(UNITS):
        frames = relay.meter_frames(k)[before[k]:]
        assert all(parse(f)[2] == server_addr(1, unit) for f in frames)
        mine = [f for f in requests if parse(f)[1] == server_addr(1, unit)]
        assert len(frames) == len(mine) >= 8, (unit, len(frames), len(mine))


def test_interleaved_sessions_do_not_disturb_each_other(bus):
    relay, port = bus
    a = BusClient(port, 17)
    b = BusClient(port, 18)
    a.connect()
    b.connect()
    ldn_a = _ldn(a)
    for _ in range(3):
        assert _ldn(b) == ldn_a
        objs = a.objects()  # segmented answer, between b's requests
        assert len(objs) == 26
    assert _ldn(a) == _ldn(b) == ldn_a
    a.close()
    assert _ldn(b) == ldn_a  # b's link and association outlive a's DISC
    b.close()


def test_absent_unit_and_broadcasts_get_silence(bus):
    relay, port = bus
    counts = [len(relay.sent[k]) for k in (1, 2)]
    for dst in (server_addr(1, 19), server_addr(0x3FFF, 0x3FFF), server_addr(1, 0x3FFF),
                server_addr(0x3FFF, 17)):
        port.write(frame(dst, C16, SNRM))
        assert read_frame(port, SILENCE) is None, dst.hex()
    assert [len(relay.sent[k]) for k in (1, 2)] == counts
    c = BusClient(port, 18)  # the bus is still usable
    c.connect()
    c.close()
