# The allocation detector must see allocations, or every "allocates nothing" proof is void.
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

    support.need_heap(1 << 40, "a host run")
    if not IS_MICROPYTHON:
        return  # the flag is for MicroPython boards only
    support.ON_BOARD = True
    try:
        support.need_heap(1024, "a small table")  # there is room: no skip
        try:
            support.need_heap(1 << 40, "an impossible table")
            raise AssertionError("no skip")
        except SkipTest as e:
            assert "needs ~" in str(e) and "an impossible table" in str(e), str(e)
    finally:
        support.ON_BOARD = False
