# fakenet.py: a board's networking as firmware/wrapper_tcp.py uses it, on fakes: the Wi-Fi
# station (MicroPython network.WLAN), the socket and select modules (listener, one connection
# object per client that is both ends of the TCP stream, select.poll with ipoll). Time comes
# from test_rs485.FakeClock (ticks_ms). The paths the meter uses in steady state (readinto,
# write, ipoll with nothing pending, isconnected) allocate nothing; the rest may.
EAGAIN = 11
EBADF = 9
ECONNRESET = 104
EADDRINUSE = 98
ECONNREFUSED = 111
STAT_IDLE = 1000  # MicroPython esp32 network.STAT_* values
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_NO_AP_FOUND = 201
IP = "192.168.4.7"
_NONE = ()


class FakeWLAN:
    # network.WLAN(network.STA_IF): connect() starts joining; isconnected() turns true
    # delay_ms later while the access point is there (`ap`). A connect() while the AP is away
    # fails (status NO_AP_FOUND), and losing the AP (lose()) ends the connection: either way
    # it takes another connect() (the fake never reconnects by itself).
    def __init__(self, clock, delay_ms=800, ap=True):
        self.clock = clock
        self.delay_ms = delay_ms
        self.ap = ap
        self.on = False
        self.since = -1  # ticks_ms of the last connect(); -1: not joining
        self.no_ap = False  # the last connect() found no AP
        self.connects = []  # (ssid, key) of each connect()
        self.disconnects = 0

    def active(self, v=None):
        if v is None:
            return self.on
        self.on = bool(v)

    def connect(self, ssid, key=None):
        if not self.on:
            raise OSError("Wifi Not Started")
        self.connects.append((ssid, key))
        self.no_ap = not self.ap
        self.since = -1 if self.no_ap else self.clock.ticks_ms()

    def disconnect(self):
        self.disconnects += 1
        self.since = -1

    def isconnected(self):
        return (self.on and self.ap and self.since >= 0
                and self.clock.ticks_ms() - self.since >= self.delay_ms)

    def status(self):
        if self.isconnected():
            return STAT_GOT_IP
        if self.no_ap:
            return STAT_NO_AP_FOUND
        return STAT_IDLE if self.since < 0 else STAT_CONNECTING

    def ifconfig(self):
        return (IP, "255.255.255.0", "192.168.4.1", "192.168.4.1")

    def lose(self):
        self.ap = False
        self.since = -1
        self.no_ap = True


class FakeConn:
    # One TCP connection, both ends. The meter's end is the MicroPython socket stream:
    # readinto(buf) -> bytes, None (nothing yet) or 0 (the peer closed); write(buf, off, n)
    # -> bytes taken or None (send buffer full); close(). The client's end: send(), take(),
    # hangup(). Knobs: chunk (readinto returns at most this many; 0: the buffer's size),
    # room (write takes at most this many per call; 0: all; -1: none), reset (both raise
    # ECONNRESET), fail (readinto raises this exception object: a fault that is not an OSError).
    def __init__(self, size=4096):
        self.inq = bytearray(size)  # client -> meter
        self.r = 0
        self.w = 0
        self.outq = bytearray(size)  # meter -> client, until take()
        self.n_out = 0
        self.chunk = 0
        self.room = 0
        self.reset = False
        self.fail = None
        self.peer_closed = False
        self.closed = False
        self.blocking = True
        self.reads = 0

    # **** the meter's end ****

    def setblocking(self, flag):
        self.blocking = flag

    def readinto(self, buf, n=-1):
        if self.closed:
            raise OSError(EBADF)
        if self.fail is not None:
            raise self.fail
        if self.reset:
            raise OSError(ECONNRESET)
        self.reads += 1
        k = self.w - self.r
        if k == 0:
            return 0 if self.peer_closed else None
        k = min(k, len(buf))
        if self.chunk:
            k = min(k, self.chunk)
        for i in range(k):
            buf[i] = self.inq[self.r + i]
        self.r += k
        if self.r == self.w:
            self.r = self.w = 0
        return k

    def write(self, buf, off=0, n=-1):
        if self.closed:
            raise OSError(EBADF)
        if self.reset:
            raise OSError(ECONNRESET)
        if n < 0:
            n = len(buf) - off
        if self.room < 0:
            return None
        if self.room:
            n = min(n, self.room)
        out = self.outq
        for i in range(n):
            out[self.n_out + i] = buf[off + i]
        self.n_out += n
        return n

    def close(self):
        self.closed = True

    # **** the client's end ****

    def send(self, data):
        for i in range(len(data)):
            self.inq[self.w + i] = data[i]
        self.w += len(data)

    def take(self):
        # What the meter wrote since the last take() (allocates).
        b = bytes(self.outq[: self.n_out])
        self.n_out = 0
        return b

    def hangup(self):
        self.peer_closed = True


class FakeListener:
    def __init__(self, net):
        self.net = net
        self.addr = None
        self.backlog = []  # FakeConns connected, not yet accepted
        self.listening = False
        self.blocking = True
        self.closed = False
        self.opts = []

    def setsockopt(self, level, opt, v):
        self.opts.append((level, opt, v))

    def bind(self, addr):
        if self.net.fail_bind:
            e = self.net.fail_bind
            self.net.fail_bind = 0
            raise OSError(e)
        self.addr = addr

    def listen(self, n):
        self.listening = True

    def setblocking(self, flag):
        self.blocking = flag

    def accept(self):
        if not self.backlog:
            raise OSError(EAGAIN)
        c = self.backlog.pop(0)
        self.net.accepted += 1
        return c, ("192.168.4.2", 50000 + self.net.accepted)

    def close(self):
        self.closed = True


class FakeSocketModule:
    # The socket module: getaddrinfo(), socket(), the constants; connect(port) is the client.
    AF_INET = 2
    SOCK_STREAM = 1
    SOL_SOCKET = 1
    SO_REUSEADDR = 2

    def __init__(self):
        self.listeners = []  # every socket made, in order
        self.fail_bind = 0  # the next bind() raises OSError(this errno)
        self.accepted = 0

    def getaddrinfo(self, host, port, af=0, type=0, proto=0, flags=0):
        return [(self.AF_INET, self.SOCK_STREAM, 0, "", (host, port))]

    def socket(self, af=AF_INET, type=SOCK_STREAM, proto=0):
        s = FakeListener(self)
        self.listeners.append(s)
        return s

    def listener(self):
        # The open listener, or None.
        for s in self.listeners:
            if s.listening and not s.closed:
                return s
        return None

    def connect(self, port, size=4096):
        s = self.listener()
        if s is None or s.addr[1] != port:
            raise OSError(ECONNREFUSED)
        c = FakeConn(size)
        s.backlog.append(c)
        return c


class FakePoll:
    # select.poll() for listeners: ipoll() reports the registered objects when one has a
    # connection to accept. Like MicroPython's, the first ipoll() call allocates the result
    # (there: the one tuple it reuses), later ones nothing. Register before the first ipoll().
    def __init__(self):
        self.objs = []
        self._ready = None
        self.ipolls = 0

    def register(self, obj, mask=5):
        self.objs.append(obj)

    def unregister(self, obj):
        self.objs.remove(obj)

    def ipoll(self, timeout=-1, flags=0):
        self.ipolls += 1
        if self._ready is None:
            self._ready = [(o, FakeSelectModule.POLLIN) for o in self.objs]
        for o in self.objs:
            if o.backlog and not o.closed:
                return self._ready
        return _NONE


class FakeSelectModule:
    POLLIN = 1
    POLLOUT = 4

    def __init__(self):
        self.polls = []

    def poll(self):
        p = FakePoll()
        self.polls.append(p)
        return p
