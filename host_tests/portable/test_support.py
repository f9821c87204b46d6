# The allocation detector must see allocations, or every "allocates nothing" proof is void.
import gc

from support import IS_MICROPYTHON, SkipTest, alloc_bytes


def _allocates(x):
    return [x, x]


def _small_int_math(x):
    for i in range(100):
        x = (x + i) & 0x3FFFFFF


def test_detector_sees_an_allocation():
    if not IS_MICROPYTHON:
        raise SkipTest("CPython has no gc.mem_alloc()")
    assert alloc_bytes(_allocates, 1) > 0


def test_detector_passes_small_int_arithmetic():
    assert alloc_bytes(_small_int_math, 1) == 0


def test_values_from_2_30_allocate_on_32_bit_ports():
    # The reason the WebAssembly port is in the loop: it has the boards' 31-bit small ints.
    import sys

    if not IS_MICROPYTHON or sys.maxsize >= (1 << 32):
        raise SkipTest("only a 32-bit MicroPython shows this")
    assert alloc_bytes(_shift, 1 << 29) > 0


def _shift(x):
    return x * 2


def test_need_heap_skips_only_on_a_board_short_of_heap():
    # make test must run every test: off a board need_heap never skips, however much it asks.
    import support

    was = support.ON_BOARD  # True when this runs on a board (make test-board): put it back
    try:
        support.ON_BOARD = False
        support.need_heap(1 << 40)
        if not IS_MICROPYTHON:
            return  # the flag is for MicroPython boards only
        support.ON_BOARD = True
        support.need_heap(1024)  # there is room: no skip
        try:
            support.need_heap(1 << 40)
            raise AssertionError("no skip")
        except SkipTest as e:
            assert str(e).startswith("needs ~1073741824 KB of heap, this board has "), str(e)
    finally:
        support.ON_BOARD = was


def test_need_heap_checks_the_largest_block_on_a_board():
    import sys

    import support

    if not IS_MICROPYTHON:
        raise SkipTest("CPython has no heap to check")
    was = support.ON_BOARD
    support.ON_BOARD = True
    try:
        support.need_heap(1024, block=2048)  # there is room: no skip
        try:
            support.need_heap(1024, block=(1 << 30) - 1)
            raise AssertionError("no skip")
        except SkipTest as e:
            assert str(e).startswith("needs one free block of ~1048576 KB, this board has "), str(e)
        if sys.platform == "webassembly":
            return  # that port adds heap areas on demand: it cannot be fragmented to a limit
        # A fragmented heap: plenty free, but only 8 KB holes. Fill the heap with 8 KB blocks
        # (the list made first, so its growth leaves no big hole), then free every other one.
        gc.collect()
        pins = [None] * (gc.mem_free() // 8192 + 1)
        n = 0
        try:
            while n < len(pins):
                pins[n] = bytearray(8192)
                n += 1
        except MemoryError:
            pass
        i = 0
        while i < n:  # no range(): the heap is full here
            pins[i] = None
            i += 2
        gc.collect()
        try:
            support.need_heap(64 * 1024, block=7 * 1024)  # fits a hole
            try:
                support.need_heap(64 * 1024, block=64 * 1024)
                raise AssertionError("no skip")
            except SkipTest as e:
                assert "needs one free block of ~64 KB" in str(e), str(e)
        finally:
            pins = None
    finally:
        support.ON_BOARD = was
