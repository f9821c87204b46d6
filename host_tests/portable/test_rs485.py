# The RS-485 transport (firmware/rs485.py) over a fake UART with a fake clock: the order and
# timing of DE against the bytes on the wire (exact flush, and a flush that returns early with
# FLUSH_TIMED), chunked and partial writes, a stalled UART, the guard time, echo discard with
# the receiver on while sending (exact, corrupted, missing, a fast peer behind the echo), reads
# split across calls, allocation. All runtimes. The fakes are shared with test_mainloop.py.
from rs485 import FLUSH_TIMED, FLUSH_UART, RS485
from support import assert_no_alloc

_MASK = 0x3FFFFFFF  # ticks_us/ticks_ms period on MicroPython: 2**30


# **** fakes: clock, pin, UART + wire ****


class FakeClock:
    # Time in µs for the board's ticks_us/ticks_ms/sleep_us/sleep_ms. Events (what, t_us,
    # value) are recorded while `record` is set (recording allocates: off in allocation tests).
    def __init__(self):
        self.us = 0
        self.record = True
        self.events = []
        self.after = None  # called with the µs of each advance (the chip model runs on it)

    def ticks_us(self):
        return self.us & _MASK

    def ticks_ms(self):
        return (self.us // 1000) & _MASK

    def advance(self, us):
        self.us += us
        if self.after is not None:
            self.after(us)

    def sleep_us(self, us):
        self.advance(us)

    def sleep_ms(self, ms):
        self.advance(ms * 1000)

    def note(self, what, v):
        if self.record:
            self.events.append((what, self.us, v))

    def times(self, what, v=None):
        return [e[1] for e in self.events if e[0] == what and (v is None or e[2] == v)]


class FakePin:
    def __init__(self, clock, name, v=0):
        self.clock = clock
        self.name = name
        self.v = v
        self.changes = 0

    def value(self, v=None):
        if v is None:
            return self.v
        self.v = v
        self.changes += 1
        self.clock.note(self.name, v)


class FakeUART:
    # machine.UART as rs485.py uses it, plus the wire: feed() puts bytes on the line for us,
    # what write() takes goes to `out` and occupies the line for 10 bits a byte. Knobs:
    #   exact_flush  flush() returns after the last stop bit (rp2); else at once
    #   chunk        any() reports at most this many bytes (input split across reads)
    #   take         write() takes at most this many bytes (0: all; -1: none, returns None)
    #   loopback     what is written comes back as input (receiver on while sending)
    #   corrupt_at   loopback: the byte with this index (counted over all writes) comes back
    #                inverted (a collision); drop_echo: nothing comes back
    #   after_flush  bytes the peer sends the moment our frame has ended
    #   fail_reads   the next n readinto() calls raise OSError (a driver fault)
    def __init__(self, clock, baud=9600, size=2048, exact_flush=True):
        self.clock = clock
        self.baud = baud
        self.char_us = (10 * 1000000 + baud - 1) // baud
        self.inq = bytearray(size)
        self.r = 0
        self.w = 0
        self.out = bytearray(size)
        self.n_out = 0
        self.line_free = 0  # clock.us when the transmitter has sent all it has
        self.exact_flush = exact_flush
        self.chunk = 0
        self.take = 0
        self.loopback = False
        self.corrupt_at = -1
        self.sent = 0  # bytes written since construction
        self.after_flush = None
        self.fail_reads = 0
        self.writes = 0
        self.flushes = 0

    def feed(self, data, n=-1):
        if n < 0:
            n = len(data)
        if self.r == self.w:
            self.r = self.w = 0
        for i in range(n):
            self.inq[self.w + i] = data[i]
        self.w += n

    def any(self):
        n = self.w - self.r
        if self.chunk and n > self.chunk:
            n = self.chunk
        return n

    def readinto(self, buf, n=-1):
        if self.fail_reads:
            self.fail_reads -= 1
            raise OSError(5)
        k = self.any()
        if 0 <= n < k:
            k = n
        if k > len(buf):
            k = len(buf)
        if not k:
            return None
        for i in range(k):
            buf[i] = self.inq[self.r + i]
        self.r += k
        return k

    def write(self, buf):
        n = len(buf)
        if self.take < 0:
            return None
        if self.take and n > self.take:
            n = self.take
        start = self.clock.us if self.clock.us > self.line_free else self.line_free
        self.line_free = start + n * self.char_us
        for i in range(n):
            b = buf[i]
            self.out[self.n_out + i] = b
            if self.loopback:
                self.inq[self.w] = b ^ 0xFF if self.sent + i == self.corrupt_at else b
                self.w += 1
        self.n_out += n
        self.sent += n
        self.writes += 1
        self.clock.note("write", n)
        return n

    def flush(self):
        if self.exact_flush and self.clock.us < self.line_free:
            self.clock.us = self.line_free
        self.flushes += 1
        self.clock.note("flush", 0)
        if self.after_flush is not None:
            self.feed(self.after_flush)
            self.after_flush = None

    def output(self):
        b = bytes(self.out[: self.n_out])
        self.n_out = 0
        return b


def _port(clock, uart, **kw):
    de = FakePin(clock, "de")
    port = RS485(uart, de, baud=uart.baud, ticks_us=clock.ticks_us, sleep_us=clock.sleep_us, **kw)
    return port, de


def _frame(n, seed=1):
    return bytes((0x7E if i in (0, n - 1) else (i * 37 + seed) & 0xFF) for i in range(n))


# **** DE timing ****


def test_de_high_before_first_byte_low_after_flush_and_turnaround():
    clk = FakeClock()
    uart = FakeUART(clk, 9600)
    port, de = _port(clk, uart)
    assert de.v == 0 and clk.times("de") == [0]  # receiving from construction
    clk.advance(5000)
    f = _frame(40)
    assert port.send(f, len(f)) == 40
    assert uart.output() == f
    up = clk.times("de", 1)
    down = clk.times("de", 0)[1:]
    writes = clk.times("write")
    flush = clk.times("flush")
    assert len(up) == 1 and len(down) == 1 and len(flush) == 1
    assert up[0] <= writes[0], "DE must be high before the first byte"
    # the last stop bit leaves 40 character times after the first byte; flush waited for it
    assert flush[0] >= writes[0] + 40 * uart.char_us
    assert down[0] >= flush[0] + port.turnaround_us  # one bit time after the stop bit
    assert port.turnaround_us == 105  # ceil(1e6 / 9600)
    assert down[0] >= uart.line_free and de.v == 0
    assert port.tx_frames == 1 and port.tx_bytes == 40


def test_timed_flush_waits_for_the_wire_when_flush_returns_early():
    for mode, ok in ((FLUSH_TIMED, True), (FLUSH_UART, False)):
        clk = FakeClock()
        uart = FakeUART(clk, 19200, exact_flush=False)  # flush() returns at once
        port, de = _port(clk, uart, flush=mode, turnaround_us=50)
        clk.advance(777)
        f = _frame(143)
        port.send(f, len(f))
        down = clk.times("de", 0)[-1]
        first = clk.times("write")[0]
        on_wire_until = first + 143 * uart.char_us
        assert uart.line_free == on_wire_until
        # FLUSH_TIMED keeps DE up until the last stop bit (+ turnaround); trusting an early
        # flush() would cut the frame: the fake must show the difference
        assert (down >= on_wire_until + 50) == ok, (mode, down, on_wire_until)


def test_guard_time_after_the_last_byte_received():
    clk = FakeClock()
    uart = FakeUART(clk, 9600)
    port, de = _port(clk, uart, guard_us=2000, turnaround_us=0)
    clk.advance(10000)
    uart.feed(b"\x7e\x01\x7e")
    assert port.read() == 3
    t_rx = clk.us
    clk.advance(300)  # the link's work
    port.send(b"\x7e\x02\x7e", 3)
    assert clk.times("de", 1)[0] >= t_rx + 2000
    # long after the last input there is no wait at all
    clk.advance(1000000)
    t = clk.us
    port.send(b"\x7e\x02\x7e", 3)
    assert clk.times("de", 1)[-1] == t


# **** writes ****


def test_chunked_and_partial_writes_keep_every_byte_in_order():
    for take in (0, 1, 5, 16, 17):
        for n in (1, 15, 16, 17, 31, 32, 33, 143, 300):
            clk = FakeClock()
            uart = FakeUART(clk, 115200)
            uart.take = take
            port, de = _port(clk, uart)
            f = _frame(n, seed=take)
            assert port.send(f, n) == n, (take, n)
            assert uart.output() == f, (take, n)
            assert de.v == 0 and port.tx_stalls == 0
            if not take:
                assert uart.writes == (n + 15) // 16  # one write per chunk of 16


def test_send_part_of_a_buffer():
    clk = FakeClock()
    uart = FakeUART(clk)
    port, de = _port(clk, uart)
    buf = bytearray(_frame(200))
    assert port.send(buf, 37) == 37
    assert uart.output() == bytes(buf[:37])
    assert port.send(buf, 0) == 0 and uart.writes == 3 and de.changes == 3  # init + one frame


def test_a_stalled_uart_gives_the_frame_up_and_releases_the_line():
    clk = FakeClock()
    uart = FakeUART(clk, 9600)
    uart.take = -1  # write() returns None forever (buffer full)
    port, de = _port(clk, uart)
    f = _frame(50)
    t0 = clk.us
    assert port.send(f, 50) == 0
    assert port.tx_stalls == 1 and de.v == 0
    assert clk.us - t0 < 200000  # bounded: 64 character times and a little
    # a stall in the middle of a chunk: what went out is counted, and echoed bytes match it

    class StallAfter:
        def __init__(self):
            self.calls = 0

        def __call__(self, buf):
            self.calls += 1
            if self.calls <= 2:
                return FakeUART.write(uart, buf[:5] if self.calls == 2 else buf)
            return None

    clk = FakeClock()
    uart = FakeUART(clk, 9600)
    uart.loopback = True
    uart.write = StallAfter()
    port, de = _port(clk, uart, echo=True)
    assert port.send(f, 50) == 21  # one chunk of 16, then 5 of the next
    assert port.tx_stalls == 1 and port.tx_bytes == 21 and port.echo_errors == 0
    assert uart.output() == f[:21] and port.read() == 0


def test_a_uart_that_comes_back_after_a_pause():
    clk = FakeClock()
    uart = FakeUART(clk, 9600)
    port, de = _port(clk, uart)

    class Drain:
        # The UART buffer is full: each wait of a character time frees room for 3 bytes,
        # after the first 5 waits of every chunk.
        def __init__(self):
            self.waits = 0

        def __call__(self, us):
            self.waits += 1
            uart.take = 3 if self.waits % 6 == 0 else -1

    clk.after = Drain()
    uart.take = -1
    f = _frame(40)
    assert port.send(f, 40) == 40
    assert uart.output() == f and port.tx_stalls == 0 and de.v == 0


def test_a_uart_error_still_releases_the_line():
    clk = FakeClock()
    uart = FakeUART(clk, 9600)
    port, de = _port(clk, uart)

    def broken():
        raise OSError(5)

    uart.flush = broken
    try:
        port.send(_frame(20), 20)
        raise AssertionError("the error must reach the caller")
    except OSError:
        pass
    assert de.v == 0 and [e[2] for e in clk.events if e[0] == "de"] == [0, 1, 0]


# **** reads ****


def test_reads_split_across_calls():
    clk = FakeClock()
    uart = FakeUART(clk)
    uart.chunk = 3
    port, de = _port(clk, uart, rx_size=32)
    data = _frame(70)
    uart.feed(data)
    got = bytearray()
    while True:
        n = port.read()
        if not n:
            break
        assert n <= 3 and port.rx_off == 0
        got += port.rx[port.rx_off : port.rx_off + n]
    assert bytes(got) == data and port.rx_bytes == 70
    uart.chunk = 0
    uart.feed(data)
    assert port.read() == 32 and port.read() == 32 and port.read() == 6 and port.read() == 0


def test_read_returns_zero_for_none():
    clk = FakeClock()
    uart = FakeUART(clk)
    port, de = _port(clk, uart)
    assert port.read() == 0
    uart.any = lambda: 4  # claims bytes, then readinto finds none (None, then 0)
    uart.readinto = lambda buf, n=-1: None
    assert port.read() == 0
    uart.readinto = lambda buf, n=-1: 0
    assert port.read() == 0 and port.rx_bytes == 0


# **** echo: the receiver stays on while we send ****


def test_echo_is_read_back_and_discarded_exactly():
    clk = FakeClock()
    uart = FakeUART(clk, 9600)
    uart.loopback = True
    port, de = _port(clk, uart, echo=True)
    answer = _frame(60)
    reply = _frame(25, seed=9)
    uart.after_flush = reply  # a fast client: its next request right behind our echo
    port.send(answer, 60)
    assert port.echo_errors == 0
    assert uart.r == 60 and uart.w == 85  # the echo was taken, the reply left in the UART
    n = port.read()
    assert bytes(port.rx[port.rx_off : port.rx_off + n]) == reply
    assert port.read() == 0


def test_echo_mismatch_hands_the_rest_to_the_link():
    clk = FakeClock()
    uart = FakeUART(clk, 9600)
    uart.loopback = True
    uart.corrupt_at = 20  # byte 20 collides
    port, de = _port(clk, uart, echo=True, rx_size=64)
    answer = _frame(40)
    port.send(answer, 40)
    assert port.echo_errors == 1
    got = bytearray()
    while True:
        n = port.read()
        if not n:
            break
        got += port.rx[port.rx_off : port.rx_off + n]
    # what was not our echo reaches the link: from the first differing byte on
    expect = bytearray(answer[20:])
    expect[0] ^= 0xFF
    assert bytes(got) == bytes(expect)


def test_missing_echo_costs_a_bounded_wait_and_no_request_bytes():
    clk = FakeClock()
    uart = FakeUART(clk, 9600)  # no loopback: the board is wired without echo
    port, de = _port(clk, uart, echo=True)
    f = _frame(30)
    t = clk.us
    port.send(f, 30)
    assert port.echo_errors == 1
    spent = clk.us - t
    assert spent < 30 * uart.char_us + 13 * uart.char_us + 3000, spent
    # the next request starts with the same bytes as our frame (7E A0 ...): nothing is eaten
    req = b"\x7e" + _frame(20)[1:]
    uart.feed(req)
    n = port.read()
    assert bytes(port.rx[port.rx_off : port.rx_off + n]) == req


# **** allocation ****


class _Cycle:
    # One request in, one answer out with echo; repeatable (a class: see support.alloc_bytes).
    def __init__(self):
        self.clk = FakeClock()
        self.clk.record = False
        self.uart = FakeUART(self.clk, 9600)
        self.uart.loopback = True
        self.port, _ = _port(self.clk, self.uart, echo=True, guard_us=500)
        self.req = _frame(30)
        self.ans = bytearray(_frame(143))
        self.rounds = 0

    def run(self, k):
        for _ in range(k):
            self.uart.feed(self.req)
            got = 0
            while True:
                n = self.port.read()
                if not n:
                    break
                got += n
            assert got == 30
            self.port.send(self.ans, 143)
            self.uart.n_out = 0
            self.rounds += 1


def test_read_and_send_allocate_nothing():
    c = _Cycle()
    c.run(2)  # warm-up
    assert_no_alloc(c.run, 5, "rs485 read + send with echo")
    assert c.rounds == 12 and c.port.echo_errors == 0
    c.uart.chunk = 7
    assert_no_alloc(c.run, 3, "rs485 split reads")
