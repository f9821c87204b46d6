# portable_runner.py: runs the portable tests (host_tests/portable/test_*.py: plain assert,
# test_* functions) on whatever Python runs it: CPython, the MicroPython unix port, the
# MicroPython WebAssembly port, and a board through mpremote (tools/test_board.py: there the
# tests are compiled, test_*.mpy). Needs only sys, os, gc, time.
#
#   <python> tools/portable_runner.py FIRMWARE_DIR TESTS_DIR STUBS_DIR [--board] [-k SUBSTRING]
#            [MODULE ...]
#
# --board: the tests run on a board (tools/test_board.py, also its --port local): sets
# support.ON_BOARD, so the tests sized for a PC's heap skip there when the heap is too small
# (support.need_heap) instead of failing with MemoryError.
# Prints "RUN name" before and "PASS|FAIL|SKIP name" after each test, then one summary line
# "<runtime>: N passed, M failed, K skipped". Exit status is 1 when a test failed or none ran.
import gc
import os
import sys
import time


def _runtime():
    impl = sys.implementation.name
    if impl != "micropython":
        return impl
    # sys.maxsize is 2**31-1 on 32-bit ports, 2**63-1 on the 64-bit unix port.
    bits = "32" if sys.maxsize < (1 << 32) else "64"
    return "micropython" + bits + "-" + sys.platform


def _print_exc(e):
    if hasattr(sys, "print_exception"):
        sys.print_exception(e)
    else:
        import traceback

        traceback.print_exception(type(e), e, e.__traceback__)


def _ms():
    if hasattr(time, "ticks_ms"):
        return time.ticks_ms()
    return int(time.monotonic() * 1000)


def _modules(tests_dir, wanted):
    if wanted:
        return sorted(wanted)
    names = []
    for name in os.listdir(tests_dir):
        # .mpy: the tests as tools/test_board.py compiles them for a board
        base = name[:-3] if name.endswith(".py") else (name[:-4] if name.endswith(".mpy") else "")
        if base.startswith("test_") and base not in names:
            names.append(base)
    return sorted(names)


def _ours(name, dirs):
    for d in dirs:
        for ext in (".py", ".mpy"):
            try:
                os.stat(d + "/" + name + ext)
                return True
            except OSError:
                pass
    return False


def _unload(keep, dirs):
    # Drop what a test module imported from the firmware and test directories once its tests
    # ran: on a board the code and data of every module at once would not fit in the heap.
    # The next module imports what it needs afresh, as on a freshly started board.
    for name in list(sys.modules):
        if name not in keep and _ours(name, dirs):
            del sys.modules[name]
    gc.collect()


def _forget_failed():
    # A module whose import raised is taken out of sys.modules, but MicroPython (1.29) only
    # marks its slot of the dict's hash table as deleted and leaves the value there: the
    # collector still sees the half-imported module, its globals and all they hold (measured:
    # after one MemoryError on import at 256 KB heap, 170 KB stayed taken and every later
    # module failed to import). `del sys.modules[k]` does clear the value, the importer does
    # not. A rehash copies only the live entries into a new table, so insert dummy keys
    # (small ints: no allocation of their own) until the table is reallocated, which shows as
    # a gc.mem_alloc() step, then delete them again.
    if sys.implementation.name != "micropython":
        return
    mods = sys.modules
    key = -1
    gc.collect()
    gc.disable()  # no collection in between: mem_alloc() moves only by the table's size
    try:
        before = gc.mem_alloc()
        while key > -4096 and gc.mem_alloc() == before:
            mods[key] = None
            key -= 1
    finally:
        gc.enable()
    while key < -1:
        key += 1
        del mods[key]


def main(argv):
    firmware_dir, tests_dir, stubs_dir = argv[0], argv[1], argv[2]
    rest = argv[3:]
    on_board = False
    if rest and rest[0] == "--board":
        on_board = True
        rest = rest[1:]
    pattern = None
    if len(rest) >= 2 and rest[0] == "-k":
        pattern = rest[1]
        rest = rest[2:]
    sys.path.insert(0, tests_dir)
    sys.path.insert(0, firmware_dir)
    # tools/ (the stubs' parent) holds the host-side fakes some tests use: the chip model and
    # its load scenario. On a board it is absent and those tests skip.
    sys.path.append(stubs_dir.rstrip("/").rsplit("/", 1)[0])
    if sys.implementation.name != "micropython":
        sys.path.insert(0, stubs_dir)
    import support

    support.ON_BOARD = on_board
    keep = set(sys.modules)
    dirs = (firmware_dir, tests_dir)
    passed = failed = skipped = 0
    for modname in _modules(tests_dir, rest):
        try:
            mod = __import__(modname)
        except support.SkipTest as e:
            # a module that needs what this runtime lacks (e.g. the host-side chip model)
            print("SKIP", modname, "(module) -", e.args[0] if e.args else "")
            skipped += 1
            _forget_failed()
            _unload(keep, dirs)
            continue
        except Exception as e:
            print("FAIL", modname, "(import)")
            _print_exc(e)
            failed += 1
            _forget_failed()
            _unload(keep, dirs)
            continue
        names = sorted(n for n in dir(mod) if n.startswith("test_"))
        for name in names:
            full = modname + "." + name
            if pattern and pattern not in full:
                continue
            fn = getattr(mod, name)
            if not callable(fn):
                continue
            gc.collect()
            print("RUN", full)
            t0 = _ms()
            try:
                fn()
            except support.SkipTest as e:
                print("SKIP", full, "-", e.args[0] if e.args else "")
                skipped += 1
                continue
            except Exception as e:
                print("FAIL", full)
                _print_exc(e)
                failed += 1
                continue
            print("PASS", full, "(%d ms)" % (_ms() - t0))
            passed += 1
        mod = fn = None
        _unload(keep, dirs)
    print("%s: %d passed, %d failed, %d skipped" % (_runtime(), passed, failed, skipped))
    return 1 if (failed or not passed) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
