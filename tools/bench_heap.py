# bench_heap.py: where the meter's heap goes, on the MicroPython port that runs it (the unix
# port, 64-bit, or the WebAssembly port, 32-bit). Prints "name impl value" lines only; the
# figures are gc.mem_alloc() deltas after gc.collect(). tools/bench_budget.py runs it with the
# firmware precompiled to .mpy first on sys.path (a board imports .mpy, so the compiler's heap
# must not count), and explains the names.
#   <micropython> tools/bench_heap.py MODULE_DIR STATE_DIR [LFS]
# MODULE_DIR holds firmware/*.mpy, the host fakes' .mpy (atm90e32_model, loadscenario) and
# the test helpers' (app_util, support: the AARQ and GET encoders of the read).
# STATE_DIR: an empty directory for the flash files. LFS=1 (unix port only) also measures the
# flash rows and the whole boot on a LittleFS2 file system in RAM with rp2's and esp32's mount
# settings (their open files' caches are what a board pays; VfsPosix files are small).
#
# Sections:
#   import.<modules>      code and module-level tables, in import order (each line counts the
#                         modules new in sys.modules at that import)
#   boot.*                mainloop.Main(board, config defaults) on a fake board (the chip model,
#                         a fake UART, pins, RTC; made before the baseline): total and the
#                         _build steps one by one
#   table.*               one more of each preallocated table, built alone
#   drop.config           config.py dropped from sys.modules (negative: the bytes freed)
#   boot.mainloop_boot    mainloop.boot() reading a config.json, as a board boots (config.py
#                         imported and dropped inside: equal to boot.objects when it is freed)
#   lfs.<board>.*         FlashRows alone on LittleFS2 with that board's mount (LFS=1)
#   lfsboot.objects.<board>  boot.objects with the board's files on LittleFS2 (LFS=1)
#   read.<cfg>.<days>d.*  a full load-profile read (GET + GET-next blocks, PDU 1024) and a range
#                         read of the newest day: bytes allocated while it ran with the
#                         collector off (0 = the peak is the heap after boot), and blocks
import gc
import sys

sys.path.insert(0, sys.argv[1])

IMPL = "micropython%d" % (32 if sys.maxsize < (1 << 32) else 64)
WASM = sys.platform == "webassembly"
STATE = sys.argv[2]
LFS = len(sys.argv) > 3 and sys.argv[3] == "1"


def used():
    gc.collect()
    return gc.mem_alloc()


def out(name, value):
    print("%s %s %d" % (name, IMPL, value))


# **** code: the modules in mainloop's import order, leaves first ****

ORDER = ("fcs16", "axdr", "cosem", "hdlc_frame", "hdlc", "clock", "rows", "store", "flashrows",
         "objects", "acse", "association_ln", "capture", "profile_generic", "xdlms", "server",
         "frontend", "atm90e32", "energy", "metering", "model", "logfile", "config", "rs485",
         "mainloop")


def _import(name):
    __import__(name)


# **** the fake board: what the boot needs of machine, with no heap of its own later ****


class Pin:
    def value(self, v=None):
        return 0


class UART:
    def any(self):
        return 0

    def readinto(self, buf, n=-1):
        return 0

    def write(self, buf, off=0, n=-1):
        return len(buf) if n < 0 else n

    def flush(self):
        pass

    def txdone(self):
        return True


class WDT:
    def feed(self):
        pass


class RTC:
    def datetime(self, t=None):
        return (2026, 3, 2, 0, 10, 14, 50, 0)


class Board:
    NAME = "bench"
    CONFIG = "config.json"
    WDT_MS = 8000
    RX_SIZE = 256
    FLUSH = 0
    ECHO = False
    TURNAROUND_US = -1
    GUARD_US = 0

    def __init__(self, root, chip):
        import time

        self.ROOT = root
        self.chip = chip
        self.pin = Pin()
        self.u = UART()
        self.w = WDT()
        self.r = RTC()
        self.ticks_ms = time.ticks_ms
        self.ticks_us = time.ticks_us
        self.sleep_ms = self._sleep
        self.sleep_us = self._sleep

    def _sleep(self, t):
        pass

    def uart(self, baud):
        return self.u

    def de(self):
        return self.pin

    def spi(self):
        return self.chip.spi

    def cs(self):
        return self.chip.cs

    def led(self):
        return None

    def wdt(self, ms):
        return self.w

    def rtc(self):
        return self.r


def _mkdir(p):
    import os

    try:
        os.mkdir(p)
    except OSError:
        pass


def _chip():
    from atm90e32_model import ATM90E32Model
    from loadscenario import Scenario

    return ATM90E32Model(Scenario(1))


def boot_board():
    import config

    root = STATE + "/boot"
    _mkdir(root)
    G["board"] = Board(root, _chip())
    cfg = config.defaults()
    cfg["lls_password"] = "12345678"
    G["cfg"] = cfg


def boot_main():
    import mainloop

    b = G["board"]
    G["main"] = mainloop.Main(b, G["cfg"], b.ROOT, _quiet)


def _quiet(line):
    pass


# **** Main._build's steps one at a time (same calls, same order), each its own step ****


def b_board():
    root = STATE + "/steps"
    _mkdir(root)
    G["sboard"] = Board(root, _chip())


def b_cfg():
    import config

    G["scfg"] = config.defaults()
    G["scfg"]["lls_password"] = "12345678"
    G["made"] = []


def b_meter():
    import model
    from flashrows import FlashRows

    root = G["sboard"].ROOT

    def rows(name, capacity, widths):
        r = FlashRows(root, name, capacity, widths)
        G["made"].append(r)
        return r

    G["meter"] = model.Meter(G["scfg"], rows_factory=rows)


def b_frontend():
    from atm90e32 import ATM90E32

    b = G["sboard"]
    G["fe"] = ATM90E32(b.spi(), b.cs(), G["scfg"]["frontend"], sleep_ms=b.sleep_ms)


def b_energy():
    from energy import Energy

    fe = G["fe"]
    dem = G["meter"].cfg["demand"]
    G["en"] = Energy(fe.lsb_num, fe.lsb_den, dem["sub_s"], dem["subs"])
    G["en"].bind(G["meter"].registers)


def b_checkpoints():
    from metering import checkpoint_size  # mainloop imports it at the top: counted there
    from store import CheckpointStore

    G["ck"] = CheckpointStore(G["sboard"].ROOT, "ck", checkpoint_size(G["meter"], G["en"]))


def b_engine():
    from metering import Engine

    G["eng"] = Engine(G["meter"], G["fe"], G["en"], G["ck"])


def b_link():
    from hdlc import HdlcLink

    h = G["scfg"]["hdlc"]
    G["link"] = HdlcLink(G["meter"].server, unit_id=h["unit_id"], max_info_tx=h["max_info_tx"],
                         max_info_rx=h["max_info_rx"], window_tx=h["window_tx"],
                         window_rx=h["window_rx"], pdu_size=G["meter"].pdu_size,
                         rx_timeout_ms=h["rx_timeout_ms"],
                         inactivity_ms=h["inactivity_s"] * 1000)


def b_rs485():
    from rs485 import RS485

    b = G["sboard"]
    h = G["scfg"]["hdlc"]
    G["port"] = RS485(b.uart(h["baud"]), b.de(), baud=h["baud"], rx_size=b.RX_SIZE,
                      flush=b.FLUSH, turnaround_us=b.TURNAROUND_US, guard_us=b.GUARD_US,
                      echo=b.ECHO, ticks_us=b.ticks_us, sleep_us=b.sleep_us)


def t_server():
    G["srv2"] = G["meter"].port_server()


def t_association():
    from server import Association

    G["assoc2"] = Association()


def t_rows(k):
    def step():
        from flashrows import FlashRows

        pg = G["meter"].profiles[k]
        G["rows%d" % k] = FlashRows(STATE + "/again", "r%d" % k, pg.rows.capacity(),
                                    pg.rows.widths)

    return step


def t_rows_close(k):
    def step():
        G["rows%d" % k].close()
        del G["rows%d" % k]

    return step


def t_drop():
    for k in ("srv2", "assoc2"):
        del G[k]


class RamBdev:
    # A LittleFS block device in RAM (4 KiB blocks).
    def __init__(self, blocks, size=4096):
        self.size = size
        self.data = bytearray(blocks * size)

    def readblocks(self, n, buf, off=0):
        a = n * self.size + off
        buf[:] = self.data[a:a + len(buf)]

    def writeblocks(self, n, buf, off=None):
        a = n * self.size + (off or 0)
        self.data[a:a + len(buf)] = buf

    def ioctl(self, op, arg):
        if op == 4:
            return len(self.data) // self.size
        if op == 5:
            return self.size
        if op == 6:
            a = arg * self.size
            self.data[a:a + self.size] = b"\xff" * self.size
            return 0
        return 0


# The two boards' LittleFS2 mounts: rp2 passes progsize=256 (ports/rp2/modules/_boot.py), so
# each open file caches 4 * 256 = 1 KiB; esp32 mounts with the defaults (vfs.mount autodetects:
# readsize = progsize = 32), 128 B a file.
LFS_GEOMETRIES = (("rp2", {"progsize": 256}), ("esp32", {}))


def _lfs_mount(point, kw):
    import vfs

    bd = RamBdev(352)  # the Pico's 1408 KiB file system
    vfs.VfsLfs2.mkfs(bd, **kw)
    vfs.mount(vfs.VfsLfs2(bd, **kw), point)


def lfs_rows():
    # The profiles' FlashRows alone on LittleFS2 in RAM, with each board's mount settings.
    import vfs

    from flashrows import FlashRows

    for geo, kw in LFS_GEOMETRIES:
        _lfs_mount("/lfsbench", kw)
        try:
            for cap, widths, tag in ((3360, b"\x04\x04\x04\x04", "load_profile_default"),
                                     (8760, b"\x04\x04\x04\x04", "load_profile_8760"),
                                     (24, b"\x08" * 7 + b"\x04\x04\x04\x02", "billing")):
                a = used()
                r = FlashRows("/lfsbench", "p" + tag[:6] + str(cap), cap, widths)
                out("lfs.%s.flashrows.%s.%d_entries.%d_files" % (geo, tag, cap, r.log.n_seg),
                    used() - a)
                r.close()
                del r
        finally:
            vfs.umount("/lfsbench")


def lfs_boot(geo):
    # The whole boot (as boot.objects) with the board's files on LittleFS2: what a board with
    # frozen firmware holds after boot. Each is its own step; lfs_drop unmounts.
    kw = dict(LFS_GEOMETRIES)[geo]

    def mount():
        _lfs_mount("/lfsboot", kw)
        G["lboard"] = Board("/lfsboot", _chip())

    def boot():
        import mainloop

        b = G["lboard"]
        G["lmain"] = mainloop.Main(b, G["cfg"], b.ROOT, _quiet)

    return mount, boot


def lfs_drop():
    import vfs

    m = G.pop("lmain")
    for pg in m.meter.profiles:
        pg.rows.close()
    m.ck.close()
    del m
    del G["lboard"]
    vfs.umount("/lfsboot")


# **** boot as boards/<board>/main.py runs it: mainloop.boot() reads config.json with config.py
# and drops that module again; drop.config shows what dropping it frees (negative) ****


def drop_config():
    del sys.modules["config"]  # imported by the import steps; nothing else refers to it


def board_for_boot():
    import json

    root = STATE + "/mainboot"
    _mkdir(root)
    with open(root + "/config.json", "w") as f:
        f.write(json.dumps({"lls_password": "12345678"}))
    G["bboard"] = Board(root, _chip())


def main_boot():
    import mainloop

    b = G["bboard"]
    G["bmain"] = mainloop.boot(b, b.ROOT + "/config.json")


# **** the load profile read at 1 day and at 365 days of rows ****


class Reader:
    # An associated public client calling Server.on_pdu as the link does, with its requests
    # preallocated, so that only the meter's own allocations count.
    def __init__(self, meter, pg):
        from app_util import AARQ_PUBLIC, get, get_next

        self.srv = meter.port_server()
        self.resp = bytearray(meter.pdu_size)
        self.full = bytearray(get(7, pg.ln, 2))
        self.next = bytearray(get_next(1))
        self.ranged = bytearray(get(7, pg.ln, 2, sel=(1, bytes(50))))
        self.rng_at = len(self.ranged) - 50
        self.pg = pg
        n = self.srv.on_pdu(16, AARQ_PUBLIC, len(AARQ_PUBLIC), self.resp)
        assert n > 0 and self.resp[0] == 0x61
        self.blocks = 0
        self.bytes = 0

    def set_range(self, d0, d1):
        # Range descriptor: restricting object = clock attr 2, from/to date-time, all columns.
        import rows

        b = self.ranged
        p = self.rng_at
        hdr = b"\x02\x04\x02\x04\x12\x00\x08\x09\x06\x00\x00\x01\x00\x00\xff\x0f\x02\x12\x00\x00"
        b[p:p + len(hdr)] = hdr
        p += len(hdr)
        for d, t in ((d0, b"\x00\x00\x00\x00\x80\x00\x00"),
                     (d1, b"\x17\x3b\x3b\x00\x80\x00\x00")):  # 00:00:00, 23:59:59
            b[p] = 0x09  # octet-string(12): date-time
            b[p + 1] = 12
            rows.put_date(b, p + 2, d)
            b[p + 7:p + 14] = t
            p += 14
        b[p] = 0x01
        b[p + 1] = 0x00
        assert p + 2 == len(b)

    def run(self, req):
        srv = self.srv
        resp = self.resp
        n = srv.on_pdu(16, req, len(req), resp)
        self.blocks = 1
        self.bytes = n
        nxt = self.next
        while resp[1] == 2 and resp[3] == 0:  # GET-Response-With-Datablock, not last
            nxt[3] = resp[4]
            nxt[4] = resp[5]
            nxt[5] = resp[6]
            nxt[6] = resp[7]
            n = srv.on_pdu(16, nxt, len(nxt), resp)
            self.blocks += 1
            self.bytes += n
        return resp[1] == 1 or resp[1] == 2


def fill(meter, pg, days0, n, src):
    # Rows through the real write path (the row source's append, as capture does), one per
    # recording interval from days0 00:00 on.
    period = pg.capture_period
    per_day = 86400 // period
    rows = pg.rows
    d = days0 + rows.count() // per_day
    s = (rows.count() % per_day) * period
    for _ in range(n):
        rows.append(d, s, 0, src)
        s += period
        if s >= 86400:
            s = 0
            d += 1


def measure_read(tag, meter, pg, reader, days):
    import micropython

    gc.collect()
    gc.disable()
    a = gc.mem_alloc()
    ok = reader.run(reader.full)
    full = gc.mem_alloc() - a
    gc.enable()
    out("read.%s.%dd.rows" % (tag, days), pg.rows.count())
    out("read.%s.%dd.blocks" % (tag, days), reader.blocks)
    out("read.%s.%dd.bytes" % (tag, days), reader.bytes)
    out("read.%s.%dd.full_alloc_bytes" % (tag, days), full if ok else -1)
    r = pg.rows
    from rows import Row

    row = Row(r.size)
    r.read(r.count() - 1, row)
    reader.set_range(row.days, row.days)
    gc.collect()
    gc.disable()
    a = gc.mem_alloc()
    ok = reader.run(reader.ranged)
    rng = gc.mem_alloc() - a
    gc.enable()
    out("read.%s.%dd.range_alloc_bytes" % (tag, days), rng if ok else -1)
    out("read.%s.%dd.range_bytes" % (tag, days), reader.bytes)
    if IMPL == "micropython64":  # heap_lock: the wasm port hangs on an allocation under it
        gc.collect()
        micropython.heap_lock()
        try:
            reader.run(reader.full)
            locked = 1
        except MemoryError:
            locked = 0
        micropython.heap_unlock()
        out("read.%s.%dd.full_under_heap_lock_ok" % (tag, days), locked)
    out("read.%s.%dd.heap_in_use" % (tag, days), used())


def reads(tag, interval, entries):
    import model
    from flashrows import FlashRows

    root = STATE + "/read_" + tag
    _mkdir(root)
    cfg = {"recording_interval": interval,
           "log_exports": [dict(model.LOAD_PROFILE, entries=entries), model.BILLING]}

    def rows(name, capacity, widths):
        return FlashRows(root, name, capacity, widths)

    meter = model.Meter(cfg, rows_factory=rows)
    pg = meter.profiles[0]
    src = bytearray(pg.rows.size)
    for k in range(len(src)):
        src[k] = (k * 37 + 5) & 0xFF
    reader = Reader(meter, pg)
    d0 = 9497  # 2026-01-01
    per_day = 86400 // interval
    fill(meter, pg, d0, per_day, src)
    measure_read(tag, meter, pg, reader, 1)
    days = entries // per_day
    fill(meter, pg, d0, entries - per_day, src)
    measure_read(tag, meter, pg, reader, days)
    for p in meter.profiles:
        p.rows.close()


# **** the steps: on the WebAssembly port gc.collect() inside a call frees nothing (the port
# collects only between top-level calls: it cannot scan the wasm stack), so its driver calls
# step(k) once per step from Node; here each step is measured from heap to heap ****

G = {}


def steps():
    s = []
    for name in ORDER:
        s.append(("import." + name, (lambda n: lambda: _import(n))(name)))
    s.append((None, boot_board))
    s.append(("boot.objects", boot_main))
    s.append((None, b_board))
    s.append(("boot.config_dict", b_cfg))
    s.append(("boot.meter", b_meter))
    s.append(("boot.frontend", b_frontend))
    s.append(("boot.energy", b_energy))
    s.append(("boot.checkpoints", b_checkpoints))
    s.append(("boot.engine", b_engine))
    s.append(("boot.hdlc_link", b_link))
    s.append(("boot.rs485", b_rs485))
    s.append(("table.server_with_association", t_server))
    s.append(("table.association", t_association))
    s.append((None, t_drop))
    for k in range(2):
        s.append(("table.flashrows.%d" % k, t_rows(k)))
        s.append(("table.flashrows_close_frees.%d" % k, t_rows_close(k)))
    if LFS:
        s.append((None, lfs_rows))
        for geo, _ in LFS_GEOMETRIES:
            mount, boot = lfs_boot(geo)
            s.append((None, mount))
            s.append(("lfsboot.objects.%s" % geo, boot))
            s.append((None, lfs_drop))
    s.append(("drop.config", drop_config))
    s.append((None, board_for_boot))
    s.append(("boot.mainloop_boot", main_boot))
    s.append((None, lambda: reads("lp15min3360", 900, 3360)))
    s.append((None, lambda: reads("lp60min8760", 3600, 8760)))
    return s


_S = []
_M = [0, 0]  # heap at the start of the step, step index


def step(k):
    # Runs step k; returns False when there is none. Reports the previous step's delta.
    if not _S:
        _mkdir(STATE)
        _S.extend(steps())
        _M[0] = used()
        out("heap.before_imports", _M[0])
    now = used()
    if k > 0:
        name = _S[k - 1][0]
        if name is not None:
            out(name, now - _M[0])
    if k >= len(_S):
        out("heap.end_absolute", now)
        return False
    _M[0] = now
    _S[k][1]()
    return True


if not WASM:
    k = 0
    while step(k):
        k += 1
