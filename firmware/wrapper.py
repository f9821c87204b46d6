# wrapper.py: the server side of the DLMS/COSEM wrapper sublayer (TCP transport), sans-IO.
# Spec short forms: "47" = IEC 62056-47 (now IEC 62056-4-7), DLMS/COSEM transport layer for IP
# networks; "BB" = Blue Book (IEC 62056-6-2). "DLMS over Ethernet" of the seed (shared/seeds).
#
# Over TCP each APDU travels in a wrapper protocol data unit (WPDU, 47):
#   version (2) | source wPort (2) | destination wPort (2) | length (2) | APDU (length bytes)
# all big-endian. The version is 0x0001. wPorts are the SAPs of the application entities: the
# client's (16 public, 1 management) and the server's logical device (1 = management logical
# device, our only one). TCP is a byte stream: a WPDU may arrive in pieces and several may
# arrive in one read, so the header's length field is all that delimits them.
#
# Use (one WrapperLink per TCP connection slot, reused from one connection to the next):
#   link = WrapperLink(app)
#   link.open(now_ms)                                # a client connected
#   off = 0
#   while True:                                      # per chunk of bytes from the socket
#       off += link.receive(data, off, n - off, now_ms)
#       if not link.tx_len:
#           break
#       sock.write(link.tx, 0, link.tx_len)          # then the next receive() call
#       link.tx_len = 0
#   if link.fault: close the socket, then link.close()
#   link.poll(now_ms)                                # now and then: timers (may set fault)
#   link.close()                                     # the connection ended, either side
# receive() consumes bytes until a WPDU is answered; the answer (a whole WPDU) is in
# tx[0:tx_len] and must be sent before receive() takes more. `app` is the application layer,
# as for hdlc.HdlcLink:
#   app.on_pdu(client, req, n, resp) -> length of the answer written to resp (0: none);
#                         client is the source wPort, req[0:n] the APDU
#   app.on_link_lost()    the connection is gone: its associations end with it
#
# Defined answers to bad input. A stream that lost its framing cannot be resynchronised (any
# byte may start a header), so a WPDU with a version other than 0x0001, or a length beyond the
# APDU buffer (the server-max-receive-pdu-size we announce), stops the link: `fault` is set,
# the application is told the link is lost, and receive() takes nothing more until close() and
# open(); the transport must close the connection. A WPDU for another destination wPort (no
# such logical device, or the all-station address 127) is read to its end and ignored: it is
# not answered, the stream stays in step. A WPDU begun and not completed within rx_timeout_ms
# of its last byte, or no WPDU for inactivity_ms (BB TCP-UDP setup inactivity_time_out; 0 =
# never), also sets fault, so a stalled client can neither hold the link busy (rx_busy()) nor
# keep an association forever. The default inactivity time is the seed's 120 s (its HDLC
# inactivity timeout). UDP (one WPDU per datagram, no connection) is not served here.
# Nothing here allocates after __init__ (host_tests/portable/test_wrapper.py).
from micropython import const

from hdlc import ticks_diff

_VERSION = const(0x0001)  # 47 WPDU: version of the wrapper
_HEADER = const(8)  # 47 WPDU header: version, source wPort, destination wPort, length
_H_SRC = const(2)  # source wPort: the client's SAP in a request
_H_DST = const(4)  # destination wPort: our logical device in a request
_H_LEN = const(6)  # length of the APDU that follows

# Why the link stopped (fault); the transport closes the connection on any non-zero value.
FAULT_VERSION = const(1)  # a header with a version other than 0x0001
FAULT_LENGTH = const(2)  # an APDU longer than the receive buffer
FAULT_RX_TIMEOUT = const(3)  # a WPDU begun and not finished in rx_timeout_ms
FAULT_INACTIVE = const(4)  # no WPDU completed in inactivity_ms


class WrapperLink:
    def __init__(self, app, logical=1, pdu_size=1024, rx_timeout_ms=5000, inactivity_ms=120000):
        self.app = app
        self.logical = logical  # our wPort: the logical device address
        self.pdu_size = pdu_size
        self.rx_timeout_ms = rx_timeout_ms
        self.inactivity_ms = inactivity_ms
        self.rx = bytearray(_HEADER + pdu_size)  # the WPDU being received
        self.tx = bytearray(_HEADER + pdu_size)  # the answer WPDU
        # The APDU parts of both, as the application sees them: views made once (a view made
        # later would allocate), so no APDU is copied or sliced on its way up or down.
        self._req = memoryview(self.rx)[_HEADER:]
        self._resp = memoryview(self.tx)[_HEADER:]
        self.tx_len = 0
        self.fault = 0
        self.connected = False
        self._live = False  # the application has had a PDU since it last heard on_link_lost
        self._last_rx = 0  # time of the last byte received
        self._last_pdu = 0  # time the last WPDU completed (or the connection opened)
        self._restart()
        # Counters for diagnostics
        self.pdus = 0  # WPDUs handed to the application
        self.ignored = 0  # WPDUs for another wPort
        self.faults = 0

    # **** connection ****

    def open(self, now):
        # A new connection: a fresh stream (the previous one must have been closed).
        self._drop()
        self.fault = 0
        self.connected = True
        self._last_rx = now
        self._last_pdu = now

    def close(self):
        # The connection ended (peer, fault, replaced): every association over it ends too.
        self._drop()
        self.fault = 0
        self.connected = False

    def _drop(self):
        if self._live:
            self._live = False
            self.app.on_link_lost()
        self._restart()
        self.tx_len = 0  # an answer nobody can receive any more

    def _restart(self):
        # Expect the next WPDU header.
        self._pos = 0  # bytes of the WPDU in progress, header included
        self._need = _HEADER  # bytes the WPDU in progress has (header alone until it is read)
        self._body = False  # the header has been read
        self._skip = False  # not for us: its APDU bytes are counted, not kept

    def _stop(self, why):
        self.fault = why
        self.faults += 1
        self._drop()

    # **** bytes in ****

    def receive(self, data, off, n, now):
        if self.tx_len or self.fault:
            return 0
        self.poll(now)
        if self.fault:
            return 0
        if n > 0:
            self._last_rx = now
        i = 0
        while i < n:
            k = self._need - self._pos
            if k > n - i:
                k = n - i
            if not self._skip:
                _copy(self.rx, self._pos, data, off + i, k)
            self._pos += k
            i += k
            if self._pos == self._need:
                self._step(now)
                if self.tx_len or self.fault:
                    break
        return i

    def rx_busy(self):
        # A WPDU partly received: the transport is in the middle of a request.
        return self._pos > 0

    def poll(self, now):
        # Timers without input; may set fault (the caller then closes the connection).
        if not self.connected or self.fault:
            return
        if self._pos > 0 and ticks_diff(now, self._last_rx) > self.rx_timeout_ms:
            self._stop(FAULT_RX_TIMEOUT)
        elif self.inactivity_ms > 0 and ticks_diff(now, self._last_pdu) > self.inactivity_ms:
            self._stop(FAULT_INACTIVE)

    def _step(self, now):
        # The header or the whole WPDU is in.
        if self._body:
            self._wpdu(now)
            return
        rx = self.rx
        if ((rx[0] << 8) | rx[1]) != _VERSION:
            self._stop(FAULT_VERSION)
            return
        n = (rx[_H_LEN] << 8) | rx[_H_LEN + 1]
        if n > self.pdu_size:
            self._stop(FAULT_LENGTH)
            return
        self._body = True
        self._need = _HEADER + n
        self._skip = ((rx[_H_DST] << 8) | rx[_H_DST + 1]) != self.logical
        if n == 0:
            self._wpdu(now)

    def _wpdu(self, now):
        self._last_pdu = now
        if self._skip:
            self.ignored += 1
        else:
            self._answer()
        self._restart()

    # **** APDU to the application, answer out ****

    def _answer(self):
        rx = self.rx
        client = (rx[_H_SRC] << 8) | rx[_H_SRC + 1]
        self._live = True
        self.pdus += 1
        m = self.app.on_pdu(client, self._req, self._need - _HEADER, self._resp)
        if m <= 0:
            return
        # The answer goes back the way the request came: the wPorts swap.
        t = self.tx
        t[0] = _VERSION >> 8
        t[1] = _VERSION & 0xFF
        t[_H_SRC] = rx[_H_DST]
        t[_H_SRC + 1] = rx[_H_DST + 1]
        t[_H_DST] = rx[_H_SRC]
        t[_H_DST + 1] = rx[_H_SRC + 1]
        t[_H_LEN] = m >> 8
        t[_H_LEN + 1] = m & 0xFF
        self.tx_len = _HEADER + m


def _copy(dst, d, src, s, n):
    # dst[d:d+n] = src[s:s+n] without the slice a slice expression would allocate.
    for k in range(n):
        dst[d + k] = src[s + k]
