# support.py: helpers for the portable tests (plain asserts, no pytest), which run unchanged on
# CPython (pytest), the MicroPython unix port and the 32-bit MicroPython WebAssembly port.
import gc
import sys

import micropython

IS_MICROPYTHON = sys.implementation.name == "micropython"
# The 32-bit ports (RP2040, ESP32, WebAssembly) keep ints below 2**30 as small ints; the unix
# port and CPython have a wider range and hide overflow into heap ints.
SMALL_INT_LIMIT = 1 << 30


class SkipTest(Exception):
    pass


def host_fake(name):
    # A host-side fake from tools/ (the ATM90E32 chip model, its load scenario), which the
    # runner puts on the path on the PC; tools/test_board.py does not copy it to a board, so
    # there the test that asks for it skips.
    try:
        return __import__(name)
    except ImportError:
        raise SkipTest("needs the host-side fake tools/%s.py (not on boards)" % name)


def unhex(s):
    # "7E A0 07" -> b"\x7e\xa0\x07"; setup only (allocates).
    s = s.replace(" ", "").replace("\n", "")
    return bytes(int(s[i : i + 2], 16) for i in range(0, len(s), 2))


def tohex(b, n=None):
    if n is None:
        n = len(b)
    return " ".join("%02X" % b[i] for i in range(n))


def alloc_bytes(fn, arg):
    # Heap bytes allocated by fn(arg), measured with the collector off so nothing is freed in
    # between. When nothing was allocated, call fn(arg) once more under heap_lock(): on the unix
    # port an allocation there raises MemoryError. (On the WebAssembly port an allocation under
    # heap_lock() hangs instead of raising, so the unlocked measurement must come first; the
    # runner's timeout is the backstop.) fn must be repeatable: both calls must do the same
    # work. Pass a bound method or a plain function, not a closure over more than a few
    # variables: calling such a closure allocates (and frees) its argument array, which only
    # the locked call sees. CPython has no gc.mem_alloc(): the code path still runs, and 0 is returned.
    if not IS_MICROPYTHON:
        fn(arg)
        fn(arg)
        return 0
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    fn(arg)
    used = gc.mem_alloc() - before
    if used == 0:
        micropython.heap_lock()
        try:
            fn(arg)
        finally:
            micropython.heap_unlock()
    gc.enable()
    return used


def assert_no_alloc(fn, arg, what):
    used = alloc_bytes(fn, arg)
    assert used == 0, "%s allocated %d bytes" % (what, used)


# Set by tools/portable_runner.py --board (tools/test_board.py): the tests run on a board, or
# under the unix port in its place (test-board PORT=local), with a board's heap.
ON_BOARD = False


def need_heap(nbytes, block=0):
    # A test whose tables are sized for a PC (a full default meter with rows in RAM, a 93 KB
    # frame stream, a LittleFS image) skips on a board whose free heap, after a collection,
    # is below nbytes, or which cannot give it one free block of `block` bytes (its largest
    # single allocation): there a MemoryError says nothing about the firmware. Free heap alone
    # is not enough: an ESP32's heap comes in separate areas, and any heap fragments. Never
    # skips on the host runtimes' own runs (make test): they must run every test.
    if not (ON_BOARD and IS_MICROPYTHON):
        return
    gc.collect()
    free = gc.mem_free()
    if free < nbytes:
        raise SkipTest("needs ~%d KB of heap, this board has %d KB free"
                       % ((nbytes + 1023) // 1024, free // 1024))
    if block:
        try:
            bytearray(block)
        except MemoryError:
            raise SkipTest("needs one free block of ~%d KB, this board has %d KB free but no "
                           "such block" % ((block + 1023) // 1024, free // 1024))
        gc.collect()
