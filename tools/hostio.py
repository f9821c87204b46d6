# hostio.py: the few I/O calls that differ between the MicroPython unix port and CPython, so
# that tools/simhost.py runs unchanged on both. Each function has one contract on both runtimes:
#   reads  -> bytes read, 0 at end of stream, None when nothing is there yet (non-blocking)
#   writes -> bytes written, None when the kernel buffer is full (non-blocking)
# Errors (reset, broken pipe) raise OSError on both.
#
# The differences, and why they matter:
# - MicroPython sockets have readinto/write and return None on EAGAIN; CPython sockets have
#   recv_into/send and raise BlockingIOError.
# - MicroPython's stream write takes (buf, off, n), so no slice is made; CPython's does not.
# - time.ticks_ms exists only on MicroPython.
# - MicroPython's poll has ipoll(), which reuses one result tuple instead of building a list.
# - MicroPython sockets have no getsockname(): a listener bound to port 0 cannot learn its
#   port, so tools/sim.py picks a free port before starting a MicroPython child.
# - open(fd, "r+b") is a raw file on MicroPython; CPython needs buffering=0 for the same
#   "return what is there" reads on a non-blocking fd. (A *blocking* MicroPython readinto
#   waits for the whole buffer, so the pty fd must be non-blocking.)
import sys
import time

MICROPYTHON = sys.implementation.name == "micropython"

# TCP_NODELAY as numbers: MicroPython's socket module lacks the names; the values are the
# same on Linux and macOS. Frames are written whole, so Nagle only adds latency.
_IPPROTO_TCP = 6
_TCP_NODELAY = 1

if MICROPYTHON:
    ticks_ms = time.ticks_ms

    def sock_read(s, buf):
        return s.readinto(buf)

    def sock_write(s, buf, off, n):
        return s.write(buf, off, n)

    def open_fd(fd):
        return open(fd, "r+b")

    def fd_write(f, buf, off, n):
        return f.write(buf, off, n)

    def poll_ready(p, ms):
        return p.ipoll(ms)

    def local_port(s, port):
        return port  # no getsockname(): the port asked for (never 0, see above)

    def flush_stdout():
        pass  # print() writes straight to the fd

    def print_exception(e):
        sys.print_exception(e, sys.stderr)

else:

    def ticks_ms():
        return int(time.monotonic() * 1000)

    def sock_read(s, buf):
        try:
            return s.recv_into(buf)
        except BlockingIOError:
            return None

    def sock_write(s, buf, off, n):
        try:
            return s.send(memoryview(buf)[off : off + n])
        except BlockingIOError:
            return None

    def open_fd(fd):
        return open(fd, "r+b", buffering=0)

    def fd_write(f, buf, off, n):
        return f.write(memoryview(buf)[off : off + n])

    def poll_ready(p, ms):
        return p.poll(ms)

    def local_port(s, port):
        return s.getsockname()[1]

    def flush_stdout():
        sys.stdout.flush()

    def print_exception(e):
        import traceback

        traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)


def fd_read(f, buf):
    # Raw readinto on a non-blocking fd: None when empty on both runtimes.
    return f.readinto(buf)


def nodelay(s):
    try:
        s.setsockopt(_IPPROTO_TCP, _TCP_NODELAY, 1)
    except OSError:
        pass  # an optimisation only
