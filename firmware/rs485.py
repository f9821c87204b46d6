# rs485.py: the half-duplex RS-485 transport under the HDLC link: a UART and a GPIO that drives
# the transceiver's driver enable (DE, MAX3485/SP3485), as shared/design/embedded.md B lays out.
# "46" = IEC 62056-46 (HDLC: two-way alternate, the meter answers only when asked).
#
#   port = RS485(uart, de, baud=9600, ticks_us=time.ticks_us, sleep_us=time.sleep_us)
#   n = port.read()                      # bytes for the link: port.rx[port.rx_off:port.rx_off+n]
#   port.send(link.tx, link.tx_len)      # DE up, write, wait for the last stop bit, DE down
#
# uart: machine.UART or anything with any(), readinto(buf, n) (None/0/n), write(buf) (None/n)
# and flush(). de: a Pin (value(v)), or None for an auto-direction transceiver. ticks_us and
# sleep_us come from the board (time.ticks_us / time.sleep_us); tests pass a fake clock.
#
# SENDING (blocking: the line is ours until the last stop bit is out; at 9600 baud a 142-byte
# frame is 148 ms, a window of 7 about 1 s, well inside the watchdog time):
#   1. wait until guard_us have passed since the last byte received (a master that drops its
#      own DE late must not collide with our first byte);
#   2. DE high, then the bytes;
#   3. the end of transmission: FLUSH_UART trusts uart.flush(), which returns after the last
#      stop bit on rp2 since v1.24 (#16052). FLUSH_TIMED also waits until n character times
#      have passed since the first byte was queued (esp32: no RS-485 mode in mainline, flush()
#      not checked to wait for the shift register (?)): the UART starts at once, since the
#      line was idle (half duplex), so that is when the last stop bit is out;
#   4. turnaround_us more (default one bit time: the stop bit fully driven), then DE low.
#
# Writes without allocation: machine.UART.write takes one argument on rp2 and esp32
# (extmod/machine_uart.c binds mp_stream_write1_obj: no (buf, off, n) form), and a memoryview
# slice made per frame allocates a view object. So the frame is copied in chunks of _CHUNK
# bytes into a staging buffer whose prefix views (lengths 0.._CHUNK-1) are made once here:
# each chunk is one write() of the whole stage or of one of those views. Cost: one Python
# byte copy per byte and n / _CHUNK + 1 write() calls per frame (about 0.3 ms for 142 bytes
# on an RP2040 (?), while the frame takes 148 ms on the wire at 9600 baud); RAM: _CHUNK
# bytes and _CHUNK small view objects, whatever the frame size. (A view made per frame
# instead, mv[:n], costs one heap block per frame: 16 bytes on the 32-bit ports, measured on
# the wasm port; 32 on 64-bit unix.) A write that takes fewer bytes (full UART buffer) is
# retried with the rest, one character time apart; no progress for _STALL_CHARS character
# times gives the frame up (counted in tx_stalls; the client retries after its timeout).
#
# ECHO (echo=True): with /RE tied low the receiver stays on while we send, so every byte we
# send comes back. After DE drops, send() reads exactly those n bytes back and compares them
# with what was sent; nothing beyond them is read, so the client's next request is never
# touched. A byte that differs (a collision, or no echo at all) ends the matching: it and
# everything after it go to the link at the next read(), counted in echo_errors. So does an
# echo that has not come back _ECHO_WAIT_CHARS character times after the last stop bit (the
# esp32 driver moves bytes out of its FIFO on an RX timeout of some characters (?)).
#
# Nothing here allocates after __init__ (host_tests/portable/test_rs485.py).
from micropython import const

from hdlc import ticks_diff

FLUSH_UART = const(0)  # uart.flush() returns after the last stop bit (rp2 >= v1.24)
FLUSH_TIMED = const(1)  # also wait n character times from the first byte (esp32)

_CHUNK = const(16)  # bytes per write() call (see above)
_US = const(1000000)
_STALL_CHARS = const(64)  # a write with no progress for this long gives the frame up
_ECHO_WAIT_CHARS = const(12)  # echo missing this long after the last stop bit: no echo
_ECHO_WAIT_MIN_US = const(2000)


def _ceil_div(a, b):
    return (a + b - 1) // b


class RS485:
    def __init__(self, uart, de=None, baud=9600, char_bits=10, rx_size=256, flush=FLUSH_UART,
                 turnaround_us=-1, guard_us=0, echo=False, ticks_us=None, sleep_us=None):
        # char_bits: start + data + parity + stop bits (8N1: 10, as 46 uses). turnaround_us
        # -1 = one bit time.
        assert 300 <= baud <= 1000000 and 9 <= char_bits <= 12 and rx_size >= _CHUNK
        if ticks_us is None:
            import time

            ticks_us = time.ticks_us
            sleep_us = time.sleep_us
        self.uart = uart
        self.de = de
        self.flush_mode = flush
        self.echo = echo
        self._ticks_us = ticks_us
        self._sleep_us = sleep_us
        self.char_us = _ceil_div(char_bits * _US, baud)  # < 2**26 for baud >= 300
        self.turnaround_us = _ceil_div(_US, baud) if turnaround_us < 0 else turnaround_us
        self.guard_us = guard_us
        self.rx = bytearray(rx_size)
        self.rx_off = 0  # where read()'s bytes start in rx
        self._held = 0  # bytes in _echo from _eoff on that read() has still to hand on
        self._eoff = 0
        self._echo = bytearray(_CHUNK)  # the echo is read here: rx may hold unread input
        self._last_rx = 0  # ticks_us of the last read that brought bytes
        self._heard = False  # _last_rx is set
        self._stage = bytearray(_CHUNK)
        mv = memoryview(self._stage)
        self._part = tuple(mv[:k] for k in range(_CHUNK))  # prefix views, made once
        # Counters for diagnostics
        self.rx_bytes = 0  # modulo 2**30, as every counter here
        self.tx_frames = 0
        self.tx_bytes = 0
        self.tx_stalls = 0  # frames given up because the UART took nothing for too long
        self.echo_errors = 0  # echoes that differed from what was sent or did not come back
        if de is not None:
            de.value(0)  # receive

    # **** receiving ****

    def read(self):
        # Bytes that arrived for the link: returns n, the bytes are rx[rx_off:rx_off + n].
        # Reads only what the UART holds, so it never waits.
        if self._held:
            return self._give_held()
        uart = self.uart
        k = uart.any()
        if not k:
            return 0
        if k > len(self.rx):
            k = len(self.rx)
        n = uart.readinto(self.rx, k)
        if not n:
            return 0
        self.rx_off = 0
        self.rx_bytes = (self.rx_bytes + n) & 0x3FFFFFFF
        self._last_rx = self._ticks_us()
        self._heard = True
        return n

    # **** sending ****

    def send(self, buf, n):
        # Sends buf[0:n] and returns with the line released (DE low). Returns the bytes sent.
        if n <= 0:
            return 0
        if self.guard_us and self._heard:
            quiet = ticks_diff(self._ticks_us(), self._last_rx)
            if 0 <= quiet < self.guard_us:
                self._sleep_us(self.guard_us - quiet)
        de = self.de
        if de is not None:
            de.value(1)
        try:  # whatever happens (a UART error), the line is released: a stuck DE jams the bus
            t0 = self._ticks_us()
            sent = self._write(buf, n)
            self.uart.flush()
            if self.flush_mode == FLUSH_TIMED:
                self._wait_from(t0, sent * self.char_us)
            if self.turnaround_us:
                self._sleep_us(self.turnaround_us)
        finally:
            if de is not None:
                de.value(0)
        self.tx_frames = (self.tx_frames + 1) & 0x3FFFFFFF
        self.tx_bytes = (self.tx_bytes + sent) & 0x3FFFFFFF
        if self.echo and sent:
            self._take_echo(buf, sent)
        return sent

    def _wait_from(self, t0, us):
        left = us - ticks_diff(self._ticks_us(), t0)
        if left > 0:
            self._sleep_us(left)

    def _write(self, buf, n):
        # buf[0:n] through the staging buffer, _CHUNK bytes per write(); returns bytes sent.
        st = self._stage
        off = 0
        while off < n:
            k = n - off
            if k > _CHUNK:
                k = _CHUNK
            for i in range(k):
                st[i] = buf[off + i]
            w = self._put(k)
            off += w
            if w < k:
                self.tx_stalls = (self.tx_stalls + 1) & 0x3FFFFFFF
                break
        return off

    def _put(self, k):
        # Writes stage[0:k]; a partial write moves the rest to the front and goes on.
        # Returns the bytes written: k, or fewer when the UART stalled.
        uart = self.uart
        st = self._stage
        t = self._ticks_us()
        stall = _STALL_CHARS * self.char_us
        done = 0
        while True:
            w = uart.write(st if k == _CHUNK else self._part[k])
            if w is None:
                w = 0
            if w >= k:
                return done + k
            if w:
                for i in range(k - w):
                    st[i] = st[w + i]
                k -= w
                done += w
                t = self._ticks_us()
            elif ticks_diff(self._ticks_us(), t) > stall:
                return done
            else:
                self._sleep_us(self.char_us)  # room for a byte frees up per character

    # **** echo (receiver on while sending) ****

    def _take_echo(self, buf, n):
        # Reads back the n bytes just sent, and only those (see ECHO above).
        uart = self.uart
        rx = self._echo
        wait = _ECHO_WAIT_CHARS * self.char_us
        if wait < _ECHO_WAIT_MIN_US:
            wait = _ECHO_WAIT_MIN_US
        p = 0
        t = self._ticks_us()
        while p < n:
            k = uart.any()
            if k:
                if k > n - p:
                    k = n - p
                if k > len(rx):
                    k = len(rx)
                got = uart.readinto(rx, k)
                if got:
                    for i in range(got):
                        if rx[i] != buf[p + i]:
                            self._mismatch(i, got - i)
                            return
                    p += got
                    t = self._ticks_us()
                    continue
            if ticks_diff(self._ticks_us(), t) > wait:
                self.echo_errors = (self.echo_errors + 1) & 0x3FFFFFFF
                return
            self._sleep_us(self.char_us)

    def _mismatch(self, off, held):
        # _echo[off:off + held] is not our echo: the link gets it at the next read().
        self.echo_errors = (self.echo_errors + 1) & 0x3FFFFFFF
        self._eoff = off
        self._held = held
        self._last_rx = self._ticks_us()
        self._heard = True

    def _give_held(self):
        n = self._held
        e = self._echo
        rx = self.rx
        for i in range(n):
            rx[i] = e[self._eoff + i]
        self._held = 0
        self.rx_off = 0
        self.rx_bytes = (self.rx_bytes + n) & 0x3FFFFFFF
        return n
