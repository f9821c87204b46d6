# hdlc_frame.py: HDLC frame format type 3 deframer and frame writer, sans-IO.
# Spec short forms: "46" = IEC 62056-46 (DLMS/COSEM HDLC data link layer), "13239" = ISO/IEC
# 13239 (HDLC procedures).
#
# Frame (46 6.4.1): 7E | format(2) | dst addr(1,2,4) | src addr(1) | control | [HCS(2) info]
#                   | FCS(2) | 7E
# Frames are delimited by the 11-bit length of the format field, not by scanning for flags:
# a 0x7E inside a frame is data (46 6.4.2 "non-basic frame format transparency"). A closing
# flag may also open the next frame.
#
# The deframer stores the bytes between the flags in one buffer allocated at init and checks
# HCS (as soon as the header is in) and FCS (at the closing flag). On any failure it rescans what
# it has buffered for the next 0x7E and replays the bytes after it, so noise or a truncated
# frame costs at most the frame it hit: the next valid frame is always found.
from micropython import const

from fcs16 import fcs16

FLAG = const(0x7E)  # 46 6.4.1
_FORMAT_TYPE3 = const(0xA0)  # 46 6.4.3.1: type 0xA in the top nibble
_SEGMENT_BIT = const(0x08)  # 46 6.4.3.1: S bit, more segments follow
_MIN_LEN = const(7)  # format 2 + dst 1 + src 1 + control 1 + FCS 2

# Events returned by step()
EV_NONE = const(0)
EV_FRAME = const(1)  # a valid frame is in buf[0:length]
EV_OVERSIZE = const(2)  # header valid (HCS), frame longer than buf: body skipped, FCS unchecked

# Deframer states
_HUNT = const(0)  # looking for a flag
_FLAG = const(1)  # after a flag: format byte or another flag
_LEN = const(2)  # format high byte stored, length low byte next
_BODY = const(3)  # storing frame bytes until length reached
_SKIP = const(4)  # over-long frame with valid header: counting bytes, not storing
_END = const(5)  # length reached, closing flag expected


class Deframer:
    def __init__(self, size):
        # size: the longest frame kept, format byte to FCS. One spare byte lets a resync keep
        # the byte that failed a frame (it may be the next frame's opening flag).
        self.buf = bytearray(size + 1)
        self._cap = size
        # Decoded header of the frame being received or just completed.
        self.length = 0  # bytes between the flags (format ... FCS)
        self.dst_len = 0  # 1, 2 or 4
        self.ctrl_pos = 0  # index of the control byte; the source address is just before it
        self.info_pos = 0  # index of the information field (after HCS)
        self.info_len = 0
        self.segmented = False
        # Counters for diagnostics
        self.frames = 0
        self.dropped = 0  # bad format, address form, HCS, FCS or missing closing flag
        self._state = _HUNT
        self._n = 0  # bytes stored (or counted, in _SKIP)
        self._hdr_ok = False
        self._rp = 0  # replay: unread bytes left by a resync are buf[_rp:_re]
        self._re = 0

    def busy(self):
        # A frame is being received (its format byte has arrived): the board defers flash
        # writes until it is over (an RP2040 flash erase stops the UART interrupts).
        return self._state >= _LEN

    def reset(self):
        # Drop a partial frame (inter-frame timeout) and any pending replay.
        self._state = _HUNT
        self._n = 0
        self._rp = self._re = 0

    def idle(self):
        # True between frames: nothing buffered that a timeout would have to drop.
        return self._state <= _FLAG and self._rp >= self._re

    def pending(self):
        return self._rp < self._re

    def replay(self):
        # Feed one byte left over from a resync; the caller checks pending() first.
        b = self.buf[self._rp]
        self._rp += 1
        return self.step(b)

    def step(self, b):
        # Feed one byte; returns EV_NONE, EV_FRAME or EV_OVERSIZE.
        st = self._state
        if st == _BODY:
            n = self._n
            self.buf[n] = b
            n += 1
            self._n = n
            if not self._hdr_ok and not self._header(n):
                return self._resync(-1)
            if n == self.length:
                if not self._hdr_ok:
                    return self._resync(-1)
                self._state = _END
            return EV_NONE
        if st == _HUNT:
            if b == FLAG:
                self._state = _FLAG
            return EV_NONE
        if st == _FLAG:
            if b == FLAG:
                return EV_NONE
            if b & 0xF0 != _FORMAT_TYPE3:
                self.dropped += 1
                self._state = _HUNT
                return EV_NONE
            self.buf[0] = b
            self._n = 1
            self._state = _LEN
            return EV_NONE
        if st == _LEN:
            length = ((self.buf[0] & 0x07) << 8) | b
            self.buf[1] = b
            self._n = 2
            if length < _MIN_LEN:
                return self._resync(-1)
            self.length = length
            self.segmented = bool(self.buf[0] & _SEGMENT_BIT)
            self._hdr_ok = False
            self.dst_len = 0
            self._state = _BODY
            return EV_NONE
        if st == _SKIP:
            self._n += 1
            if self._n == self.length:
                self._state = _END
            return EV_NONE
        # _END: the byte after the FCS must be the closing flag.
        if b != FLAG:
            return self._resync(b)
        if self.length > self._cap:
            self._state = _FLAG  # the closing flag may open the next frame
            self.frames += 1
            return EV_OVERSIZE
        n = self.length
        fcs = fcs16(self.buf, 0, n - 2)
        if self.buf[n - 2] != fcs & 0xFF or self.buf[n - 1] != fcs >> 8:
            return self._resync(b)
        self._state = _FLAG
        self.frames += 1
        return EV_FRAME

    def _header(self, n):
        # Called after each stored byte until the header is validated; False when the bytes so
        # far cannot be a valid header. 46 6.4.3.2: an address byte with LSB 1 ends the address;
        # the server (destination) address has 1, 2 or 4 bytes, the client address 1.
        buf = self.buf
        i = n - 1
        dl = self.dst_len
        if dl == 0:
            if buf[i] & 1:
                if i == 4:  # a 3-byte address
                    return False
                self.dst_len = i - 1
                return True
            return i < 5
        src = 2 + dl
        if i == src:
            return buf[i] & 1 == 1
        ctrl = src + 1
        if i == ctrl:
            self.ctrl_pos = ctrl
            if self.length == ctrl + 3:  # no information field: FCS only, no HCS
                self.info_pos = ctrl + 1
                self.info_len = 0
                self._hdr_ok = True
                return True
            return self.length >= ctrl + 6  # HCS, at least one info byte, FCS
        if i == ctrl + 1:
            return True
        # i == ctrl + 2: HCS complete (46 6.4.3.7: covers format, addresses and control)
        hcs = fcs16(buf, 0, ctrl + 1)
        if buf[ctrl + 1] != hcs & 0xFF or buf[i] != hcs >> 8:
            return False
        self.info_pos = ctrl + 3
        self.info_len = self.length - ctrl - 5
        self._hdr_ok = True
        if self.length > self._cap:
            self._state = _SKIP  # too long to keep; its header is, for the answer (FRMR)
        return True

    def _resync(self, extra):
        # The frame in buf[0:n] is invalid. Replay, in order: the bytes after the first flag
        # found in buf[1:n], then `extra` (the byte that failed the frame, if not stored),
        # then any replay tail left from an earlier resync. They are laid out contiguously
        # from there on; replay writes from buf[0] while reading further on, so the write
        # position never overtakes the read position.
        self.dropped += 1
        n = self._n if self._n <= self._cap else 0
        tail = self._re - self._rp
        pos = n
        if extra >= 0:
            self.buf[pos] = extra  # room: buf has one spare byte, and a tail starts past it
            pos += 1
        if tail > 0:
            if pos <= self._rp:
                src = self._rp
                for k in range(tail):
                    self.buf[pos + k] = self.buf[src + k]
                pos += tail
        j = 1
        while j < n and self.buf[j] != FLAG:
            j += 1
        if j < n:
            self._state = _FLAG
            self._rp = j + 1
        else:
            self._state = _HUNT
            self._rp = n
        self._re = pos
        self._n = 0
        return EV_NONE
