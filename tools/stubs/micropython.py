# CPython stand-in for MicroPython's `micropython` module, so firmware/ runs unchanged on the
# host. Never deployed: firmware/ imports `micropython` and gets the real one on the boards.


def const(x):
    return x


def heap_lock():
    return 0


def heap_unlock():
    return 0


def alloc_emergency_exception_buf(n):
    pass


def native(f):
    return f


viper = native
