# The board main loop (firmware/mainloop.py) serving the IEC 62056-47 TCP wrapper over Wi-Fi
# (firmware/wrapper_tcp.py) beside RS-485, on test_mainloop.py's fake board plus fakenet.py's
# station, sockets and poll: accept, an association and GETs through Main.step(); a second
# connection replacing the first; peer close and reset; a bad wrapper header; partial writes
# and a peer that stops reading; Wi-Fi down at boot and up later, lost and back; a listener
# that cannot be made at first; RS-485 and TCP clients served in the same loop, the engine's
# flash writes held while either is mid-request; faults in the network path logged without
# touching the RS-485 meter; a board without networking; allocation-free iterations with a
# TCP client connected. All runtimes; the last test uses the unix port's real sockets.
import sys

from support import host_fake

# test_mainloop's FakeBoard runs the host-side chip model: on a board (not copied there) the
# whole module skips before its imports take the heap.
host_fake("atm90e32_model")

import config
import mainloop
from app_util import AARQ_LLS_12345678, AARQ_PUBLIC, get
from fakenet import (
    EADDRINUSE,
    IP,
    STAT_NO_AP_FOUND,
    FakeSelectModule,
    FakeSocketModule,
    FakeWLAN,
)
from hdlc_util import C16, LLC_REQ, SRV, frame, i_ctrl
from support import IS_MICROPYTHON, SkipTest, assert_no_alloc
from test_mainloop import AARE_OK, LN_CLOCK, FakeBoard, Rig, _read, _rmtree, _tmp
from test_wrapper import ANSWER_LDN, GET_LDN, LN_LDN, WPDU_AARE, WPDU_AARQ, wpdu
from wrapper_tcp import (
    CLOSE_DOWN,
    CLOSE_ERROR,
    CLOSE_FAULT,
    CLOSE_LOCAL,
    CLOSE_PEER,
    CLOSE_REPLACED,
    CLOSE_STALL,
)

SSID = "meter-net"
PSK = "correct-horse-9"
PORT = 4059
GET_CLOCK = wpdu(get(8, LN_CLOCK, 2))
GET_LDN_MGMT = wpdu(get(1, LN_LDN, 2), src=1)  # the management client's
WPDU_AARQ_LLS = wpdu(AARQ_LLS_12345678, src=1)


class NetBoard(FakeBoard):
    # FakeBoard with networking: wlan() and sockets() (boards/esp32_devkit/board.py).
    def __init__(self, root, wlan_kw=None):
        FakeBoard.__init__(self, root)
        self.wl = FakeWLAN(self.clk, **(wlan_kw or {}))
        self.sock = FakeSocketModule()
        self.sel = FakeSelectModule()

    def wlan(self):
        return self.wl

    def sockets(self):
        return self.sock, self.sel


class NoWlanBoard(FakeBoard):
    def wlan(self):
        return None  # the Pico's answer


class NetRig(Rig):
    # test_mainloop.Rig on a NetBoard with the wrapper enabled.
    def __init__(self, wrapper=None, board=NetBoard, wlan_kw=None, fail_bind=0):
        self.root = _tmp()
        if board is NetBoard:
            self.board = NetBoard(self.root, wlan_kw)
            self.board.sock.fail_bind = fail_bind
        else:
            self.board = board(self.root)
        c = config.defaults()
        c["lls_password"] = "12345678"
        w = {"enabled": True, "port": PORT, "ssid": SSID, "password": PSK}
        for k in wrapper or ():
            w[k] = wrapper[k]
        c["wrapper"] = w
        self.printed = []
        self.main = mainloop.Main(self.board, c, self.root, self.printed.append)
        self.board.main = self.main
        self.uart = self.board.u
        self.clk = self.board.clk
        self.seq = 0
        self.net = self.main.net

    def client(self, steps=60):
        # A client connects; the loop accepts it within a poll period.
        c = self.board.sock.connect(PORT)
        self.steps(steps, ms=1)
        assert self.net.srv.conn is c and not c.closed and not c.blocking
        return c

    def ask(self, c, data, limit=200):
        # Sends bytes, runs the loop until an answer stops growing; the bytes written.
        c.send(data)
        got = b""
        for _ in range(limit):
            self.main.step()
            if c.n_out:
                got += c.take()
                if len(got) >= 8 and len(got) >= 8 + ((got[6] << 8) | got[7]):
                    break
        return got


def _clock_answer(b):
    # A wrapped GET clock answer: header from wPort 1 to 16, then Get-Response-Normal.
    assert b[:6] == b"\x00\x01\x00\x01\x00\x10" and b[6:8] == b"\x00\x12", b
    assert b[8:12] == b"\xC4\x01\xC1\x00" and b[12] == 0x09 and b[13] == 12, b
    return b[14:26]


# **** connections ****


def test_boot_joins_wifi_accepts_and_serves_an_association_and_gets():
    r = NetRig()
    try:
        m = r.main
        wl = r.board.wl
        assert wl.on and wl.connects == [(SSID, PSK)]
        log = r.log()
        assert ("wrapper: Wi-Fi '%s' up: DLMS/COSEM wrapper (IEC 62056-47) on %s:%d"
                % (SSID, IP, PORT)) in log, log
        assert PSK not in log and PSK not in "".join(r.printed)
        ls = r.board.sock.listener()
        assert ls.addr == ("0.0.0.0", PORT) and not ls.blocking
        assert (r.board.sock.SOL_SOCKET, r.board.sock.SO_REUSEADDR, 1) in ls.opts
        c = r.client()
        assert r.ask(c, WPDU_AARQ) == WPDU_AARE
        assert m.net.app.assoc.associated and m.net.app.assoc.client_sap == 16
        assert not m.server.assoc.associated  # the RS-485 association is another one
        assert r.ask(c, GET_LDN) == ANSWER_LDN
        dt = _clock_answer(r.ask(c, GET_CLOCK))
        assert dt[:5] == b"\x07\xEA\x03\x02\x01" and dt[5] == 11, dt  # the RTC's day, CET
        # two WPDUs in one segment, the input cut into 3-byte reads: both answered in order
        c.chunk = 3
        both = r.ask(c, GET_LDN + GET_LDN)
        both += r.ask(c, b"")
        assert both == ANSWER_LDN + ANSWER_LDN, both
        assert m.net.link.pdus == 5 and m.faults == 0 and m.net_faults == 0
    finally:
        r.close()


def test_a_second_connection_replaces_the_first_and_its_association():
    r = NetRig()
    try:
        a = r.client()
        assert r.ask(a, WPDU_AARQ_LLS)[8:] and r.main.net.app.assoc.client_sap == 1
        b = r.client()
        assert a.closed and not b.closed
        srv = r.main.net.srv
        assert srv.last_close == CLOSE_REPLACED and srv.accepts == 2
        assert not r.main.net.app.assoc.associated  # ended with the connection
        ans = r.ask(b, GET_LDN)
        assert ans[8] == 0xD8, ans  # exception-response: no association on this one
        assert r.ask(b, WPDU_AARQ) == WPDU_AARE
        assert r.ask(b, GET_LDN) == ANSWER_LDN
    finally:
        r.close()


def test_peer_close_and_reset_end_the_connection_and_association():
    r = NetRig()
    try:
        srv = r.main.net.srv
        for how, why in (("hangup", CLOSE_PEER), ("reset", CLOSE_ERROR)):
            c = r.client()
            assert r.ask(c, WPDU_AARQ) == WPDU_AARE
            c.send(GET_LDN[:5])  # half a request, then the peer goes
            r.steps(3, ms=1)
            assert r.main.net.rx_busy()
            if how == "hangup":
                c.hangup()
            else:
                c.reset = True
            r.steps(3, ms=1)
            assert c.closed and srv.conn is None and srv.last_close == why
            assert not r.main.net.app.assoc.associated and not r.main.net.rx_busy()
        c = r.client()  # the next client starts afresh
        assert r.ask(c, WPDU_AARQ) == WPDU_AARE
        assert r.main.faults == 0 and r.main.net_faults == 0
    finally:
        r.close()


def test_a_bad_wrapper_header_closes_the_connection():
    r = NetRig()
    try:
        c = r.client()
        assert r.ask(c, WPDU_AARQ) == WPDU_AARE
        c.send(wpdu(b"\x00", version=2))
        r.steps(3, ms=1)
        srv = r.main.net.srv
        assert c.closed and srv.last_close == CLOSE_FAULT and c.n_out == 0
        assert r.main.net.link.faults == 1 and r.main.net.link.fault == 0  # reset by close
        assert not r.main.net.app.assoc.associated
        c = r.client()  # a length beyond the buffer: the same
        c.send(wpdu(b"", length=5000))
        r.steps(3, ms=1)
        assert c.closed and srv.last_close == CLOSE_FAULT and r.main.net.link.faults == 2
        c = r.client()
        assert r.ask(c, WPDU_AARQ) == WPDU_AARE
        assert r.main.net_faults == 0 and r.main.faults == 0
    finally:
        r.close()


def test_a_stalled_request_times_out():
    r = NetRig()
    try:
        c = r.client()
        c.send(GET_LDN[:10])
        r.steps(4900)  # an idle iteration sleeps 1 ms
        assert not c.closed and r.main.net.rx_busy()
        r.steps(200)  # wrapper.py's rx_timeout_ms, 5 s after the last byte
        assert c.closed and r.main.net.srv.last_close == CLOSE_FAULT
    finally:
        r.close()


def test_partial_writes_and_a_peer_that_stops_reading():
    r = NetRig()
    try:
        c = r.client()
        c.room = 5  # the send buffer takes 5 bytes a call
        assert r.ask(c, WPDU_AARQ) == WPDU_AARE
        got = r.ask(c, GET_LDN + GET_CLOCK)
        got += r.ask(c, b"")
        assert got[: len(ANSWER_LDN)] == ANSWER_LDN
        _clock_answer(got[len(ANSWER_LDN):])
        # no room at all: the answer waits; after 5 s without progress the peer is dropped
        c.room = -1
        c.send(GET_LDN)
        r.steps(4000)  # an idle iteration sleeps 1 ms
        srv = r.main.net.srv
        assert srv.sending and not c.closed and c.n_out == 0
        c.room = 0  # room again: the rest goes out
        assert r.ask(c, b"") == ANSWER_LDN and not srv.sending
        c.room = -1
        c.send(GET_LDN)
        r.steps(4900)
        assert not c.closed
        r.steps(200)
        assert c.closed and srv.last_close == CLOSE_STALL
        assert r.main.faults == 0
    finally:
        r.close()


# **** Wi-Fi ****


def test_wifi_down_at_boot_then_up_later_then_lost_and_back():
    r = NetRig(wlan_kw={"ap": False})
    try:
        m = r.main
        wl = r.board.wl
        log = r.log()
        assert ("wrapper: Wi-Fi '%s' not connected after 5 s (status %d): RS-485 is served, "
                "Wi-Fi retried every 30 s" % (SSID, STAT_NO_AP_FOUND)) in log, log
        assert r.board.sock.listener() is None and len(r.board.wdts) == 1
        assert r.clk.us >= 5000000  # the boot waited, bounded
        r.connect()  # RS-485 is served meanwhile
        assert AARE_OK in r.request(AARQ_PUBLIC)
        wl.ap = True  # the access point comes back; our retry finds it
        r.steps(340, ms=100)
        assert len(wl.connects) == 2 and m.net.sta.up
        assert r.board.sock.listener() is not None
        assert "wrapper: Wi-Fi '%s' up: DLMS/COSEM wrapper" % SSID in r.log()
        c = r.client()
        assert r.ask(c, WPDU_AARQ) == WPDU_AARE
        # lost: the connection and the listener go; back: listening again
        wl.lose()
        r.steps(15, ms=100)
        assert c.closed and m.net.srv.last_close == CLOSE_DOWN
        assert r.board.sock.listener() is None and not m.net.app.assoc.associated
        assert "wrapper: Wi-Fi '%s' lost" % SSID in r.log()
        wl.ap = True
        r.steps(320, ms=100)
        assert len(wl.connects) == 3 and r.board.sock.listener() is not None
        c = r.client()
        assert r.ask(c, GET_LDN)[8] == 0xD8  # a fresh association is needed
        assert m.faults == 0 and m.net_faults == 0
    finally:
        r.close()


def test_open_network_and_listen_failure_retried():
    r = NetRig(wrapper={"password": None}, fail_bind=EADDRINUSE)  # once
    try:
        assert r.board.wl.connects == [(SSID, None)]
        log = r.log()
        assert "wrapper: Wi-Fi '%s' up, %s: cannot listen on TCP port %d" % (SSID, IP, PORT) \
            in log, log
        assert r.board.sock.listener() is None
        sockets = r.board.sock.listeners
        assert len(sockets) == 1 and sockets[0].closed  # the failed one was closed
        r.steps(310, ms=100)
        assert "wrapper: listening again: DLMS/COSEM wrapper" in r.log()
        c = r.client()
        assert r.ask(c, WPDU_AARQ) == WPDU_AARE
    finally:
        r.close()


def test_a_board_without_networking_boots_without_the_wrapper():
    for board, what in ((FakeBoard, "fake"), (NoWlanBoard, "fake")):
        r = NetRig(board=board)
        try:
            assert r.main.net is None
            assert "wrapper: board %s has no networking: TCP wrapper off" % what in r.log()
            r.connect()
            assert AARE_OK in r.request(AARQ_PUBLIC)
        finally:
            r.close()
    r = NetRig(wrapper={"enabled": False})  # off in the config: the station is not touched
    try:
        assert r.main.net is None and not r.board.wl.on and r.board.sock.listeners == []
    finally:
        r.close()


# **** beside RS-485 ****


class _Busy:
    # Records the engine's bus_idle argument.
    def __init__(self, engine):
        self.poll_ = engine.poll
        self.idle = []

    def __call__(self, now, bus_idle=True):
        self.idle.append(bus_idle)
        self.poll_(now, bus_idle)


def test_rs485_and_tcp_clients_served_in_the_same_loop():
    r = NetRig()
    try:
        m = r.main
        c = r.client()
        r.connect()
        assert AARE_OK in r.request(AARQ_PUBLIC)  # public client on RS-485
        assert r.ask(c, WPDU_AARQ_LLS)[8] == 0x61  # management client over TCP
        assert m.server.assoc.client_sap == 16 and m.net.app.assoc.client_sap == 1
        # a request on each, in the same iterations
        k = r.seq & 7
        r.uart.feed(frame(SRV, C16, i_ctrl(k, k), LLC_REQ + get(8, LN_CLOCK, 2)))
        r.seq += 1
        c.send(wpdu(get(8, LN_CLOCK, 2), src=1))
        r.steps(60, ms=1)
        assert r.uart.n_out > 0 and c.n_out > 0
        r.uart.output()
        assert c.take()[8:12] == b"\xC4\x01\xC1\x00"
        # flash writes wait while the TCP link is in the middle of a request
        busy = _Busy(m.engine)
        m.engine.poll = busy
        c.send(GET_LDN_MGMT[:4])
        r.steps(120, ms=1)
        assert busy.idle and not any(busy.idle), busy.idle
        busy.idle = []
        assert r.ask(c, GET_LDN_MGMT[4:])[8:12] == b"\xC4\x01\xC1\x00"
        r.steps(120, ms=1)
        assert busy.idle and all(busy.idle)
        assert m.faults == 0 and m.net_faults == 0
    finally:
        r.close()


def test_network_faults_are_logged_and_never_stop_the_rs485_meter():
    r = NetRig()
    try:
        m = r.main
        r.connect()
        assert AARE_OK in r.request(AARQ_PUBLIC)
        w = r.board.wdts[0]
        for i in range(5):
            c = r.client()
            c.send(GET_LDN)
            c.fail = ValueError("broken %d" % i)
            r.steps(3, ms=1)
            assert c.closed and m.net.srv.last_close in (CLOSE_LOCAL, CLOSE_DOWN)
        assert m.net_faults == 5 and m.faults == 0 and not m.starving
        log = r.log()
        assert "wrapper fault 1 at " in log and "ValueError: broken 0" in log, log
        assert log.count("wrapper fault ") == 3
        assert "wrapper: 5 faults in 60 s: stopped for 60 s" in log
        assert m.net.stopped and r.board.sock.listener() is None
        fed = w.feeds
        _ = r.request(get(8, LN_CLOCK, 2))  # RS-485 serves on, the watchdog is fed
        assert w.feeds > fed
        r.steps(620, ms=100)
        assert "wrapper: started again" in r.log() and not m.net.stopped
        c = r.client()
        assert r.ask(c, WPDU_AARQ) == WPDU_AARE
        for i in range(5):  # the same again: a stop twice as long
            c = r.client()
            c.fail = ValueError("again")
            r.steps(3, ms=1)
        assert m.net.stopped and "wrapper: 5 faults in 60 s: stopped for 120 s" in r.log()
        assert m.faults == 0 and not m.starving
    finally:
        r.close()


# **** allocation ****


class _Both:
    # A GET clock on RS-485 and one over TCP, then loop iterations; repeatable.
    def __init__(self, rig, conn):
        self.rig = rig
        self.conn = conn
        self.frames = [frame(SRV, C16, i_ctrl(k, k), LLC_REQ + get(8, LN_CLOCK, 2))
                       for k in range(8)]
        self.wpdu = GET_CLOCK
        self.answers = 0

    def run(self, steps):
        rig = self.rig
        rig.uart.feed(self.frames[rig.seq & 7])
        rig.seq += 1
        self.conn.send(self.wpdu)
        for _ in range(steps):
            rig.main.step()
            rig.clk.advance(5000)
        if rig.uart.n_out and self.conn.n_out:
            self.answers += 1
        rig.uart.n_out = 0
        self.conn.n_out = 0


def test_steady_state_iterations_with_a_tcp_client_allocate_nothing():
    r = NetRig()
    try:
        c = r.client()
        assert r.ask(c, WPDU_AARQ) == WPDU_AARE
        r.connect()
        assert AARE_OK in r.request(AARQ_PUBLIC)
        d = _Both(r, c)
        d.run(20)
        assert d.answers == 1
        r.clk.record = False  # the fakes' event log allocates
        # 200 iterations of 5 ms: polls, the Wi-Fi check (1 s), accept checks, link timers
        assert_no_alloc(d.run, 200, "main loop with a TCP client: 200 iterations, 2 GETs")
        c.room = 7  # answers in pieces
        assert_no_alloc(d.run, 60, "main loop with a TCP client: partial writes")
        c.room = 0
        assert d.answers >= 3 and r.main.faults == 0 and r.main.net_faults == 0
        assert r.main.net.srv.conn is c and r.main.net.link.pdus >= 4
    finally:
        r.close()


def test_heap_lock_flag_with_the_wrapper():
    # flags.heap_lock: the rare network paths (accept, close, Wi-Fi events, listen) unlock
    # the heap themselves, so they are not faults; the rest runs locked.
    if not IS_MICROPYTHON or sys.platform == "webassembly":
        raise SkipTest("heap_lock raises MemoryError on the unix port only (wasm hangs)")
    r = NetRig()
    try:
        m = r.main
        m.heap_lock = True
        r.clk.record = False
        c = r.board.sock.connect(PORT)
        m.run(60)
        assert m.net.srv.conn is c
        c.send(WPDU_AARQ + GET_LDN)
        m.run(20)
        assert c.take() == WPDU_AARE + ANSWER_LDN
        r.board.wl.lose()
        m.run(1100)  # > 1 s of idle iterations: the loss is seen, connection and listener go
        assert c.closed and r.board.sock.listener() is None
        r.board.wl.ap = True
        m.run(31000)  # the 30 s retry, then up and listening again
        assert r.board.sock.listener() is not None
        c = r.board.sock.connect(PORT)
        m.run(60)
        c.hangup()
        m.run(5)
        assert c.closed and m.net.srv.last_close == CLOSE_PEER
        assert m.faults == 0 and m.net_faults == 0, r.log()
        assert not m._locked
    finally:
        r.close()


# **** the real thing: the unix port's sockets ****


class _RealNetBoard(FakeBoard):
    def __init__(self, root, socket, select):
        FakeBoard.__init__(self, root)
        self.wl = FakeWLAN(self.clk, delay_ms=0)
        self.mods = (socket, select)

    def wlan(self):
        return self.wl

    def sockets(self):
        return self.mods


class _RealGets:
    # A GET over a real client socket, loop iterations until its answer is back; repeatable.
    def __init__(self, main, cl, got):
        self.main = main
        self.cl = cl
        self.got = got
        self.n = 0

    def run(self, steps):
        # (idle iterations sleep 1 ms of the fake clock: 200 steps hold 4 poll rounds)
        self.cl.write(GET_LDN)
        self.n = 0
        for _ in range(steps):
            self.main.step()
            k = self.cl.readinto(self.got)
            if k:
                self.n += k


def test_real_sockets_on_the_unix_port():
    # wrapper_tcp.py against MicroPython's own socket and select (stream readinto/write,
    # ipoll): a client on 127.0.0.1 associates and reads.
    if not IS_MICROPYTHON or sys.platform == "webassembly":
        raise SkipTest("MicroPython unix port only (CPython sockets have no readinto/write)")
    import select
    import socket

    root = _tmp()
    m = None
    cl = None
    try:
        board = _RealNetBoard(root, socket, select)
        c = config.defaults()
        for port in (40590, 41590, 42590, 43590):
            c["wrapper"] = {"enabled": True, "port": port, "ssid": SSID, "password": None}
            m = mainloop.Main(board, c, root, lambda s: None)
            if m.net.srv.lsock is not None:
                break
            m.net.stop()
        board.main = m
        assert m.net.srv.lsock is not None, _read(root + "/" + mainloop.LOG)
        cl = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        cl.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
        cl.setblocking(False)
        got = bytearray(256)
        for req, want in ((WPDU_AARQ, WPDU_AARE), (GET_LDN, ANSWER_LDN)):
            cl.write(req)
            n = 0
            for _ in range(2000):
                m.step()
                k = cl.readinto(memoryview(got)[n:])
                if k:
                    n += k
                if n >= len(want):
                    break
            assert bytes(got[:n]) == want, (got[:n], want)
        g = _RealGets(m, cl, got)
        g.run(200)
        assert g.n == len(ANSWER_LDN) and got[: g.n] == ANSWER_LDN
        board.clk.record = False
        t0 = board.clk.ticks_ms()
        assert_no_alloc(g.run, 200, "main loop with a real TCP client: a GET")
        assert board.clk.ticks_ms() - t0 >= 300  # two runs of 150 ms or more: poll rounds too
        assert g.n == len(ANSWER_LDN) and got[: g.n] == ANSWER_LDN
        cl.close()
        cl = None
        for _ in range(200):
            m.step()
            if m.net.srv.conn is None:
                break
        assert m.net.srv.last_close == CLOSE_PEER and m.net_faults == 0
    finally:
        if cl is not None:
            cl.close()
        if m is not None and m.net is not None:
            m.net.stop()
        _rmtree(root)

