# wrapper_tcp.py: the DLMS/COSEM TCP transport on a board with Wi-Fi (ESP32): the Wi-Fi
# station, a TCP server with at most one connection, and the wrapper link (wrapper.py) with its
# own application (association) on that connection. "DLMS over Ethernet" of the seed. Short
# forms: "47" = IEC 62056-47 (IEC 62056-4-7), "MP" = MicroPython's docs/library (socket.rst,
# select.rst, network.WLAN.rst).
#
#   port = WrapperPort(board.wlan(), socket, select, app, cfg["wrapper"], pdu_size,
#                      ticks_ms, sleep_ms, unlock)
#   note = port.start(wait_ms)        # boot: join the network, at most wait_ms; a log line
#   n = port.serve(now)               # every main-loop iteration: bytes taken from the peer
#   ev = port.poll(now)               # every few tens of ms: Wi-Fi, accept, timers
#   if ev: log(port.note(ev))         # Wi-Fi came up or went down (allocates: rare)
#
# Nothing blocks: the socket is non-blocking (MP stream readinto/write return None where
# POSIX says EAGAIN), a pending connection is found with select.poll's ipoll(0) (which reuses
# its one result tuple; accept() on an empty queue would raise, and an exception allocates),
# and the Wi-Fi connects in the background (MP WLAN.connect returns at once). start() waits
# at most wait_ms for the first connection; after that the station is checked every _CHECK_MS
# and, while it is down, connect() is called again every _RETRY_MS.
#
# One connection at a time, as tools/simhost.py's wrapper-tcp: a new connection replaces the
# old one. The connection is the link (47: the wrapper has no connect/disconnect of its own):
# when it ends, from either side, the association over it ends too (WrapperLink.close()). We
# close it on the peer's end of stream, a socket error, a wrapper fault (bad version or length,
# rx or inactivity timeout: wrapper.py), an answer the peer takes no byte of for
# _WRITE_WAIT_MS, and Wi-Fi loss (which closes the listener too, until the station is back;
# a listener that cannot be made is tried again every _RETRY_MS). Each answer is written
# whole before more input is fed: a partial write leaves the rest for the next iterations, and
# bytes read after the request stay in rx until then (TCP's flow control holds back the peer
# meanwhile).
#
# Steady state allocates nothing (host_tests/portable/test_mainloop_net.py): readinto into
# `rx`, write(buf, off, n) from the link's tx (no slice), ipoll(0). Accepting, closing and
# listening allocate (socket objects, address tuples, exceptions); they call `unlock` first
# (the main loop's heap-lock flag).
from micropython import const

from hdlc import ticks_diff
from wrapper import WrapperLink

_RX_SIZE = const(512)  # one read; the link reassembles WPDUs across reads
_CHECK_MS = const(1000)  # how often the station's state is read
_RETRY_MS = const(30000)  # Wi-Fi connect() again (and listen() again) while down
_WAIT_STEP_MS = const(100)  # boot wait: the station is read this often
_WRITE_WAIT_MS = const(5000)  # a peer that takes no byte of an answer for this long is dropped
_ANY = "0.0.0.0"  # INADDR_ANY: whichever address DHCP gives us

# Events of poll() (0: none)
EV_UP = const(1)  # the station got an address (the listener is opened then)
EV_DOWN = const(2)  # the station lost the network: connection and listener are closed
EV_LISTEN = const(3)  # the listener opened on a later attempt (the first one failed)

# Why the last connection ended (TcpServer.last_close)
CLOSE_PEER = const(1)  # end of stream: the client closed
CLOSE_ERROR = const(2)  # a socket error (reset by the peer, ...)
CLOSE_FAULT = const(3)  # the wrapper stopped: bad header, rx or inactivity timeout
CLOSE_STALL = const(4)  # the peer took no byte of an answer for _WRITE_WAIT_MS
CLOSE_REPLACED = const(5)  # a new connection came
CLOSE_DOWN = const(6)  # Wi-Fi lost, or the port stopped
CLOSE_LOCAL = const(7)  # our side failed (a fault in the network path: mainloop.py)


def _nothing():
    pass


# **** the Wi-Fi station ****


class Station:
    # MP network.WLAN(network.STA_IF): active(), connect(ssid[, key]), disconnect(),
    # isconnected(), status(), ifconfig().
    def __init__(self, wlan, ssid, password, ticks_ms, sleep_ms, unlock=_nothing):
        self.wlan = wlan
        self.ssid = ssid
        self.password = password  # None: an open network
        self._ticks_ms = ticks_ms
        self._sleep_ms = sleep_ms
        self._unlock = unlock
        self.up = False
        self._check_t = 0
        self._try_t = 0
        self.tries = 0  # connect() calls
        self.drops = 0  # connections lost
        self.error = None  # the last OSError of the station (diagnostics)

    def start(self, wait_ms):
        # Boot: the interface on, connect, wait for an address at most wait_ms.
        w = self.wlan
        t = self._ticks_ms()
        try:
            w.active(True)
        except OSError as e:
            self.error = e
        self._connect(t)
        while not w.isconnected() and ticks_diff(self._ticks_ms(), t) < wait_ms:
            self._sleep_ms(_WAIT_STEP_MS)
        self.up = w.isconnected()
        self._check_t = self._ticks_ms()
        return self.up

    def _connect(self, now):
        # Forget any attempt in progress (or a connection left from before a soft reset, to
        # another network perhaps), then connect; the port connects in the background.
        self._unlock()
        self._try_t = now
        self.tries += 1
        w = self.wlan
        try:
            w.disconnect()
        except OSError:
            pass  # nothing to disconnect
        try:
            if self.password is None:
                w.connect(self.ssid)
            else:
                w.connect(self.ssid, self.password)
        except OSError as e:
            self.error = e

    def poll(self, now):
        if ticks_diff(now, self._check_t) < _CHECK_MS:
            return 0
        self._check_t = now
        up = self.wlan.isconnected()
        if up != self.up:
            self.up = up
            if up:
                return EV_UP
            self.drops += 1
            self._try_t = now  # the port's own reconnect gets one retry period first
            return EV_DOWN
        if not up and ticks_diff(now, self._try_t) >= _RETRY_MS:
            self._connect(now)
        return 0

    def status(self):
        try:
            return self.wlan.status()
        except (OSError, AttributeError, TypeError):
            return -1

    def address(self):
        # Our IP address, for the log (allocates).
        try:
            return self.wlan.ifconfig()[0]
        except (OSError, AttributeError, TypeError, IndexError):
            return "?"


# **** the TCP server: one connection carrying a WrapperLink ****


class TcpServer:
    def __init__(self, link, socket, select, port, ticks_ms, unlock=_nothing, rx_size=_RX_SIZE):
        # socket, select: the MP modules (or test fakes with their names).
        self.link = link
        self._socket = socket
        self._select = select
        self.port = port
        self._ticks_ms = ticks_ms
        self._unlock = unlock
        self.rx = bytearray(rx_size)
        self.lsock = None  # the listener
        self._poller = None  # select.poll() with the listener
        self.conn = None
        self._rx_off = 0  # rx[_rx_off:_rx_end]: read, not yet taken by the link
        self._rx_end = 0
        self._tx_off = 0  # link.tx[_tx_off:link.tx_len]: the rest of an answer to write
        self._tx_t = 0  # when the answer last made progress
        self.sending = False
        # Counters for diagnostics
        self.accepts = 0
        self.closes = 0
        self.last_close = 0  # CLOSE_*
        self.error = None  # the last OSError of listen()/accept()

    def listen(self):
        # The listener on every address of ours; False (and `error`) when it cannot be made.
        self.close(CLOSE_DOWN)
        self._unlock()
        s = self._socket
        ls = None
        try:
            addr = s.getaddrinfo(_ANY, self.port)[0][-1]
            ls = s.socket(s.AF_INET, s.SOCK_STREAM)
            ls.setsockopt(s.SOL_SOCKET, s.SO_REUSEADDR, 1)
            ls.bind(addr)
            ls.listen(1)
            ls.setblocking(False)
        except OSError as e:
            self.error = e
            if ls is not None:
                ls.close()
            return False
        p = self._select.poll()
        p.register(ls, self._select.POLLIN)
        for _ in p.ipoll(0):  # MP's first ipoll() allocates the result tuple it then reuses
            pass
        self.lsock = ls
        self._poller = p
        return True

    def close(self, why):
        # The connection and the listener (Wi-Fi lost, the port stopped).
        self.drop(why)
        ls = self.lsock
        if ls is not None:
            self._unlock()
            self.lsock = None
            self._poller = None
            try:
                ls.close()
            except OSError:
                pass

    def drop(self, why):
        # Ends the connection, and with it the association over it.
        c = self.conn
        if c is None:
            return
        self._unlock()
        self.conn = None
        self.closes += 1
        self.last_close = why
        self._rx_off = self._rx_end = 0
        self.sending = False
        try:
            c.close()
        except OSError:
            pass
        self.link.close()

    def rx_busy(self):
        # In the middle of a request: a WPDU partly received, or bytes read and not yet fed.
        return self.link.rx_busy() or self._rx_off < self._rx_end

    # **** every iteration ****

    def serve(self, now):
        # Writes the rest of a pending answer, else feeds what the peer sent. Returns the
        # bytes read (or fed from an earlier read): 0 when there was nothing to do.
        c = self.conn
        if c is None:
            return 0
        if self.sending and not self._send(now):
            return 0
        n = self._rx_end - self._rx_off
        if n <= 0:
            try:
                n = c.readinto(self.rx)
            except OSError:
                self.drop(CLOSE_ERROR)
                return 0
            if n is None:  # nothing yet
                return 0
            if n == 0:
                self.drop(CLOSE_PEER)
                return 0
            self._rx_off = 0
            self._rx_end = n
        self._feed(now)
        return n

    def _feed(self, now):
        link = self.link
        while self._rx_off < self._rx_end:
            self._rx_off += link.receive(self.rx, self._rx_off, self._rx_end - self._rx_off, now)
            if link.fault:
                self.drop(CLOSE_FAULT)
                return
            if not link.tx_len:
                return  # all taken, no answer yet
            self._tx_off = 0
            self._tx_t = now
            self.sending = True
            if not self._send(now):
                return  # the rest of the answer and of rx wait for the next iterations

    def _send(self, now):
        # True once the answer is written whole.
        link = self.link
        n = link.tx_len
        while self._tx_off < n:
            try:
                w = self.conn.write(link.tx, self._tx_off, n - self._tx_off)
            except OSError:
                self.drop(CLOSE_ERROR)
                return False
            if not w:  # None: the send buffer is full
                if ticks_diff(now, self._tx_t) >= _WRITE_WAIT_MS:
                    self.drop(CLOSE_STALL)
                return False
            self._tx_off += w
            self._tx_t = now
        link.tx_len = 0
        self.sending = False
        return True

    # **** now and then ****

    def poll(self, now):
        if self._poller is not None:
            ready = False
            for _ in self._poller.ipoll(0):
                ready = True
            if ready:
                self._accept(now)
        if self.conn is not None:
            self.link.poll(now)
            if self.link.fault:
                self.drop(CLOSE_FAULT)  # rx or inactivity timeout

    def _accept(self, now):
        self._unlock()
        try:
            a = self.lsock.accept()
        except OSError as e:
            self.error = e  # the client gave up before we accepted
            return
        conn = a[0]
        self.drop(CLOSE_REPLACED)  # one connection at a time: the newest wins
        try:
            conn.setblocking(False)
        except OSError as e:
            self.error = e
            conn.close()
            return
        self.conn = conn
        self.accepts += 1
        self.link.open(self._ticks_ms())


# **** the whole port ****


class WrapperPort:
    def __init__(self, wlan, socket, select, app, wcfg, pdu_size, ticks_ms, sleep_ms,
                 unlock=_nothing):
        # wcfg: the config's wrapper section (firmware/config.py): enabled, port, ssid,
        # password. app: the application layer of this port (model.Meter.port_server()).
        self.app = app
        self.link = WrapperLink(app, pdu_size=pdu_size)
        self.sta = Station(wlan, wcfg["ssid"], wcfg["password"], ticks_ms, sleep_ms, unlock)
        self.srv = TcpServer(self.link, socket, select, wcfg["port"], ticks_ms, unlock)
        self._ticks_ms = ticks_ms
        self._listen_t = 0
        self.stopped = False

    def start(self, wait_ms):
        # Boot: a log line.
        sta = self.sta
        if sta.start(wait_ms):
            self._listen(self._ticks_ms())
            return self.note(EV_UP)
        return ("wrapper: Wi-Fi %r not connected after %d s (status %d): RS-485 is served, "
                "Wi-Fi retried every %d s" % (sta.ssid, wait_ms // 1000, sta.status(),
                                              _RETRY_MS // 1000))

    def _listen(self, now):
        self._listen_t = now
        return self.srv.listen()

    def serve(self, now):
        return self.srv.serve(now)

    def rx_busy(self):
        return self.srv.rx_busy()

    def poll(self, now):
        if self.stopped:
            return 0
        srv = self.srv
        ev = self.sta.poll(now)
        if ev == EV_DOWN:
            srv.close(CLOSE_DOWN)
        elif ev == EV_UP:
            self._listen(now)
        elif (self.sta.up and srv.lsock is None
              and ticks_diff(now, self._listen_t) >= _RETRY_MS and self._listen(now)):
            ev = EV_LISTEN
        srv.poll(now)
        self.app.poll(now)
        return ev

    def drop(self):
        # After a fault of ours: whatever the connection was in the middle of is lost.
        self.srv.drop(CLOSE_LOCAL)

    def stop(self):
        # Connection and listener closed until resume() (the main loop's fault brake).
        self.stopped = True
        self.srv.close(CLOSE_DOWN)

    def resume(self, now):
        self.stopped = False
        if self.sta.up:
            self._listen(now)

    def note(self, ev):
        # A log line for an event of poll() (allocates).
        sta = self.sta
        srv = self.srv
        if ev == EV_DOWN:
            return ("wrapper: Wi-Fi %r lost (status %d): retried every %d s"
                    % (sta.ssid, sta.status(), _RETRY_MS // 1000))
        where = "Wi-Fi %r up" % sta.ssid if ev == EV_UP else "listening again"
        if srv.lsock is None:
            return ("wrapper: %s, %s: cannot listen on TCP port %d (%r): retried every %d s"
                    % (where, sta.address(), srv.port, srv.error, _RETRY_MS // 1000))
        return ("wrapper: %s: DLMS/COSEM wrapper (IEC 62056-47) on %s:%d"
                % (where, sta.address(), srv.port))
