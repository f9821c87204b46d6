# simhost.py: the meter as a host process, one link (HDLC or TCP wrapper) per transport. Runs
# unchanged on the MicroPython unix port and on CPython (with tools/stubs and firmware/ on the
# path); tools/sim.py starts it. Runtime differences live in tools/hostio.py.
#
#   simhost.py state_dir=DIR [hdlc_tcp=HOST:PORT] [pty_fd=N pty_path=PATH]
#              [wrapper_tcp=HOST:PORT] [unit_id=N] [lls_password=PW] [backfill_days=N]
#
# The LLS password may instead come in the environment as DLMS_SIM_LLS_PASSWORD (tools/sim.py
# passes it so: a process's argv is visible to every user, its environment is not).
#              [config=FILE] [heap_lock=1]
#
# Behind every transport is the application layer and the meter's object table (model.Meter),
# one association per transport. The meter itself (tools/simmeter.py) is the real driver and
# metering engine on the chip model, storing into state_dir; the clock starts from this PC's
# UTC time. A fresh state_dir is first backfilled with backfill_days (default 35) of history.
#
# Settings are key=value words because MicroPython has no argparse. For each transport one
# line "READY <transport> <address>" goes to stdout once it listens. Runs until killed; exits
# quietly on KeyboardInterrupt (SIGINT).
#
# heap_lock=1: once start-up and backfill are done, the heap is locked (micropython.heap_lock)
# and serving and metering run under the lock for good, as a board with flags.heap_lock does
# (firmware/mainloop.py). Only connection set-up unlocks it: accepting a TCP client and
# closing a connection (the socket object, the poll registrations) and the pty hang-up.
# Anything else that allocates raises MemoryError: it is written to stderr with its traceback
# (heap unlocked first) and the process exits with status 3. On CPython the stub's
# heap_lock() does nothing; one line on stderr says so.
#
# Transports:
#   hdlc-tcp  the HDLC byte stream over TCP, as through a serial-to-Ethernet gateway. One
#             connection at a time: a new one replaces the old. The link is kept, as the meter
#             behind a gateway would keep it: the next client's SNRM resets it, or the
#             inactivity timeout drops it.
#   pty       the HDLC byte stream on a pseudo-terminal master fd (non-blocking, set up by
#             tools/sim.py, which keeps the slave open while we run).
#   wrapper-tcp  the IEC 62056-47 TCP transport: APDUs in wrapper PDUs (firmware/wrapper.py),
#             as a meter with its own Ethernet port. One connection at a time, a new one
#             replaces the old. Here the connection is the link: when it ends (either side, or
#             the wrapper stops on a bad header or a timeout and we close it) its association
#             ends with it.
import gc
import os
import select
import socket
import sys

import hostio
import micropython
# tools/ (this script's directory, first on the path) holds the PC command tools/config.py:
# firmware/ must win for `import config`.
sys.path.append(sys.path.pop(0))

import config  # noqa: E402
import simmeter  # noqa: E402
from hdlc import HdlcLink  # noqa: E402
from micropython import const
from wrapper import WrapperLink

_RX_SIZE = const(512)  # one read; the link takes any chunk size
_POLL_MS = const(50)  # poll timeout: how often link timers run without input
_WRITE_WAIT_MS = const(2000)  # a peer that takes no byte for this long loses the frame
_KEYS = ("hdlc_tcp", "pty_fd", "pty_path", "wrapper_tcp", "unit_id", "lls_password", "config",
         "backfill_days", "state_dir", "heap_lock")
_EXIT_ALLOC = const(3)  # exit status: MemoryError with the heap locked

HDLC = None  # the config's hdlc section, set by main()
LOCKED = False  # heap_lock=1 given (on MicroPython): the heap is locked while serving
HELD = False  # the lock is held just now (connection set-up opens it for a moment)
_IN = select.POLLIN
_OUT = select.POLLOUT
_GONE = select.POLLHUP | select.POLLERR


# **** settings ****


def parse_args(words):
    opts = {}
    for w in words:
        k, sep, v = w.partition("=")
        if not sep or k not in _KEYS:
            fail("bad setting " + repr(w) + "; known: " + " ".join(_KEYS))
        opts[k] = v
    return opts


def split_hostport(s):
    host, sep, port = s.rpartition(":")
    if not sep or not host:
        fail("expected HOST:PORT, got " + repr(s))
    if host[0] == "[" and host[-1] == "]":
        host = host[1:-1]  # [::1]:4059
    return host, int(port)


def fail(msg):
    sys.stderr.write("simhost: " + msg + "\n")
    sys.exit(2)


def ready(transport, address):
    print("READY " + transport + " " + address)
    hostio.flush_stdout()


# **** a link and the line that carries it ****


class Line:
    # Feeds bytes from the line to the link and writes each answer before the link takes more
    # (two-way alternate: receive() stops at a frame that needs an answer).
    def __init__(self, unit_id, rx, app):
        self.app = app  # the application layer (server.Server) of this transport
        self.link = self.new_link(unit_id, app)
        self.rx = rx  # the read buffer, shared by all lines (one read at a time)
        self._out = select.poll()  # waits for room when a write would block (rare)

    def new_link(self, unit_id, app):
        h = HDLC  # the config's hdlc section
        return HdlcLink(app, unit_id=unit_id, max_info_tx=h["max_info_tx"],
                        max_info_rx=h["max_info_rx"], window_tx=h["window_tx"],
                        window_rx=h["window_rx"], rx_timeout_ms=h["rx_timeout_ms"],
                        inactivity_ms=h["inactivity_s"] * 1000)

    def feed(self, n, now):
        link = self.link
        off = 0
        while True:
            off += link.receive(self.rx, off, n - off, now)
            if not link.tx_len:
                break
            self.write_all(link.tx, link.tx_len)
            link.tx_len = 0

    def write_all(self, buf, n):
        # Partial writes are continued; a peer that stops reading loses the rest of the
        # frame after _WRITE_WAIT_MS (an HDLC client recovers by its own timeout).
        off = 0
        while off < n:
            w = self.write(buf, off, n - off)
            if w is None:
                if not self._out.poll(_WRITE_WAIT_MS):
                    return False
            else:
                off += w
        return True

    def poll(self, now):
        self.link.poll(now)
        self.app.poll(now)


# **** HDLC over TCP ****


class TcpLine(Line):
    def __init__(self, hostport, unit_id, rx, poller, app):
        Line.__init__(self, unit_id, rx, app)
        host, port = split_hostport(hostport)
        ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
        s = socket.socket(ai[0], socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(ai[-1])
        s.listen(1)
        s.setblocking(False)
        port = hostio.local_port(s, port)
        if not port:
            fail("port 0 needs getsockname(), which MicroPython lacks: start via tools/sim.py")
        self.address = host + ":" + str(port)
        self.lsock = s
        self.lfd = s.fileno()
        self.conn = None
        self.cfd = -1
        self.poller = poller
        poller.register(self.lfd, _IN)

    def on_event(self, fd, ev, now):
        # True when the poll set changed (the caller then polls afresh).
        if fd == self.lfd:
            return self._accept()
        if fd != self.cfd:
            return False
        try:
            if ev & _IN:
                n = hostio.sock_read(self.conn, self.rx)
                if n is None:
                    return False
                if n:
                    self.feed(n, now)
                    return self.conn is None  # the line closed it (a wrapper fault)
        except OSError:
            pass  # reset by the peer
        self._close()  # end of stream, error or hang-up
        return True

    def _accept(self):
        # Connection set-up: the socket object and the poll entries are allocated, so this
        # runs with the heap unlocked (heap_lock=1).
        heap_open()
        try:
            conn, _ = self.lsock.accept()
        except OSError:
            return False  # the client gave up before we accepted
        finally:
            heap_close()
        self._close()  # one connection at a time: the newest wins
        heap_open()
        conn.setblocking(False)
        hostio.nodelay(conn)
        self.conn = conn
        self.cfd = conn.fileno()
        self.poller.register(self.cfd, _IN)
        self._out.register(self.cfd, _OUT)
        heap_close()
        return True

    def _close(self):
        if self.conn is None:
            return
        heap_open()  # closing a socket may allocate (the unix port's close path)
        self.poller.unregister(self.cfd)
        self._out.unregister(self.cfd)
        self.conn.close()
        self.conn = None
        self.cfd = -1
        heap_close()
        self.link.tx_len = 0  # an answer nobody can receive any more

    def write(self, buf, off, n):
        try:
            return hostio.sock_write(self.conn, buf, off, n)
        except OSError:
            return n  # the peer is gone; the next poll reports it and closes

    def close(self):
        self._close()
        self.lsock.close()


# **** the TCP wrapper (IEC 62056-47) ****


class WrapperTcpLine(TcpLine):
    # TcpLine's listener and one-connection-at-a-time rule, with a WrapperLink in place of the
    # HdlcLink: the connection carries the association, and a wrapper fault closes it.
    def new_link(self, unit_id, app):
        return WrapperLink(app, pdu_size=app.pdu_size)

    def feed(self, n, now):
        Line.feed(self, n, now)
        if self.link.fault:
            self._close()

    def poll(self, now):
        Line.poll(self, now)
        if self.link.fault:
            self._close()  # rx or inactivity timeout

    def _accept(self):
        if not TcpLine._accept(self):
            return False
        self.link.open(hostio.ticks_ms())
        return True

    def _close(self):
        TcpLine._close(self)
        self.link.close()


# **** HDLC on a pseudo-terminal ****


class PtyLine(Line):
    def __init__(self, fd, path, unit_id, rx, poller, app):
        Line.__init__(self, unit_id, rx, app)
        self.fd = fd
        self.f = hostio.open_fd(fd)
        self.address = path
        self.poller = poller
        poller.register(fd, _IN)
        self._out.register(fd, _OUT)

    def on_event(self, fd, ev, now):
        if fd != self.fd:
            return False
        if ev & _IN:
            try:
                n = hostio.fd_read(self.f, self.rx)
            except OSError:
                n = None  # EIO: no slave open just now
            if n:
                self.feed(n, now)
                return False
        if ev & _GONE:
            # Hang-up on the master: nobody holds the slave, so the launcher (which keeps it
            # open) is gone. Stop polling it rather than spin on POLLHUP.
            heap_open()
            self.poller.unregister(self.fd)
            sys.stderr.write("simhost: pty hung up, no longer served\n")
            heap_close()
            return True
        return False

    def write(self, buf, off, n):
        try:
            return hostio.fd_write(self.f, buf, off, n)
        except OSError:
            return n  # no reader: bytes on a dead line are lost, as on a wire

    def close(self):
        self.f.close()


# **** the meter ****


class MeterLine:
    # Not a line: keeps the meter clock running from the tick counter and the metering engine
    # polling, once per poll round; flash writes wait while any link is receiving a frame.
    def __init__(self, sim, lines):
        self.sim = sim
        self.clock = sim.meter.clock
        self.lines = lines

    def on_event(self, fd, ev, now):
        return False

    def poll(self, now):
        self.clock.tick(now)
        idle = True
        for line in self.lines:
            if line is not self and line.link.rx_busy():
                idle = False
        self.sim.poll(now, idle)

    def close(self):
        pass


def load_config(opts):
    # The board's JSON config (firmware/config.py rules: clear messages, safe defaults), or
    # the defaults; --lls-password overrides the file's password.
    path = opts.get("config")
    if path:
        cfg, msgs = config.load(path)
    else:
        cfg, msgs = config.validate({})
    pw = opts.get("lls_password") or os.getenv("DLMS_SIM_LLS_PASSWORD")
    if pw:
        cfg["lls_password"] = pw
        msgs = [m for m in msgs if not m.startswith(config.NO_PASSWORD)]
    for m in msgs:
        _log(m)
    return cfg


def build_meter(opts, cfg):
    if "state_dir" not in opts:
        fail("state_dir=DIR is required (tools/sim.py gives a temporary one)")
    sim = simmeter.SimMeter(opts["state_dir"], cfg)
    n = sim.boot(int(opts.get("backfill_days", "35")), _log)
    if n:
        _log("backfilled %d load-profile rows" % n)
    return sim


def _log(msg):
    sys.stderr.write("simhost: " + msg + "\n")


def _app(meter, apps):
    # The first transport uses the meter's server, each further one its own (association).
    if apps:
        return apps.pop()
    return meter.port_server()


# **** the heap lock (heap_lock=1) ****


def heap_open():
    # Unlock for connection set-up; heap_close() locks again.
    global HELD
    if HELD:
        HELD = False
        micropython.heap_unlock()


def heap_close():
    global HELD
    if LOCKED and not HELD:
        HELD = True
        micropython.heap_lock()


def lock_heap(on, poller):
    # Called once, after start-up and backfill: from here on the heap stays locked.
    global LOCKED
    if not on:
        return
    if not hostio.MICROPYTHON:
        _log("heap_lock=1: no heap lock on CPython, serving unlocked")
        return
    hostio.poll_ready(poller, 0)  # the first ipoll() allocates the poll's result tuple
    _log("heap locked: serving and metering allocate nothing from here on")
    gc.collect()
    LOCKED = True
    heap_close()


def unlock_heap():
    # For good (a stop or a fault), whether or not a set-up had it open just then.
    global LOCKED
    heap_open()
    LOCKED = False


def alloc_fault(e):
    # A MemoryError under the lock: an allocation in steady state, a bug. Said loudly (the
    # traceback shows where), then exit non-zero, so that tests see it.
    unlock_heap()
    _log("MemoryError with the heap locked: an allocation in steady state")
    hostio.print_exception(e)
    sys.exit(_EXIT_ALLOC)


# **** main loop ****


def serve_once(poller, lines):
    # One poll round. Allocation-free on MicroPython while nothing connects or disconnects.
    for ev in hostio.poll_ready(poller, _POLL_MS):
        now = hostio.ticks_ms()
        changed = False
        for line in lines:
            if line.on_event(ev[0], ev[1], now):
                changed = True
        if changed:
            break  # results of the old poll set may name closed fds
    now = hostio.ticks_ms()
    for line in lines:
        line.poll(now)


def serve(poller, lines):
    while True:
        serve_once(poller, lines)


def main(argv):
    global HDLC
    opts = parse_args(argv[1:])
    cfg = load_config(opts)
    HDLC = cfg["hdlc"]
    unit_id = int(opts.get("unit_id", str(HDLC["unit_id"])))
    if not 1 <= unit_id <= 16381:
        fail("unit_id must be 1..16381")
    sim = build_meter(opts, cfg)
    meter = sim.meter
    rx = bytearray(_RX_SIZE)
    poller = select.poll()
    lines = []
    lines.append(MeterLine(sim, lines))
    apps = [meter.server]
    if "hdlc_tcp" in opts:
        lines.append(TcpLine(opts["hdlc_tcp"], unit_id, rx, poller, _app(meter, apps)))
        ready("hdlc-tcp", lines[-1].address)
    if "pty_fd" in opts:
        path = opts.get("pty_path", "fd" + opts["pty_fd"])
        lines.append(PtyLine(int(opts["pty_fd"]), path, unit_id, rx, poller, _app(meter, apps)))
        ready("pty", path)
    if "wrapper_tcp" in opts:
        app = meter.port_server()  # its own association, whichever transports run beside it
        lines.append(WrapperTcpLine(opts["wrapper_tcp"], unit_id, rx, poller, app))
        ready("wrapper-tcp", lines[-1].address)
    if len(lines) == 1:
        fail("no transport: give hdlc_tcp=HOST:PORT, pty_fd=N and/or wrapper_tcp=HOST:PORT")
    lock_heap(opts.get("heap_lock", "0") == "1", poller)
    try:
        serve(poller, lines)
    except KeyboardInterrupt:
        pass
    except MemoryError as e:
        alloc_fault(e)
    unlock_heap()  # an orderly stop: save and close allocate as they like
    try:
        sim.engine.save()  # an orderly stop, like a board's power-fail warning: nothing lost
    except KeyboardInterrupt:
        sim.engine.save()
    try:
        for line in lines:
            line.close()
    except KeyboardInterrupt:
        pass  # Ctrl-C reaches us twice: from the terminal and forwarded by tools/sim.py


if __name__ == "__main__":
    main(sys.argv)
