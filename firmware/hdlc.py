# hdlc.py: the server side of the DLMS/COSEM HDLC data link layer, sans-IO.
# Spec short forms: "46" = IEC 62056-46 (HDLC-based data link layer), "13239" = ISO/IEC 13239.
# The ION document we follow (shared/seeds) fixes: unbalanced connection-mode, two-way
# alternate, class UNC extended with UI frames, frame format type 3, 128/128 bytes, window 1,
# 4-byte addressing, logical device 1, physical address = unit id, inactivity timeout 120 s,
# inter-frame timeout = RxTimeout. Beyond the ION: segmentation of long MSDUs both ways and
# windows up to 7, negotiated by SNRM/UA.
#
# Use:
#   link = HdlcLink(app, unit_id=17)
#   off = 0
#   while True:                                    # per chunk of bytes from the line
#       off += link.receive(data, off, n - off, now_ms)
#       if not link.tx_len:
#           break
#       line.write(link.tx, 0, link.tx_len)        # then the next receive() call
#       link.tx_len = 0
#   link.poll(now_ms)                              # now and then: timeouts
# receive() consumes bytes until a frame needs an answer; the answer is in tx[0:tx_len] and
# must be sent before receive() takes more (two-way alternate). `app` is the upper layer:
#   app.on_pdu(client, req, n, resp) -> length of the answer written to resp (0: none);
#                           client is the client SAP (its HDLC address), req[0:n] the MSDU
#   app.on_ui(client, req, n)  an unconfirmed PDU (UI frame); never answered
#   app.on_link_lost()      the link left NRM (DISC, SNRM reset, inactivity): drop associations
# Nothing here allocates after __init__ (host_tests/portable/test_hdlc_alloc.py).
from micropython import const

from fcs16 import fcs16
from hdlc_frame import EV_FRAME, EV_NONE, EV_OVERSIZE, FLAG, Deframer

# Control field, 46 6.4.3.3 / 13239 5.3: I-frame xxx P sss 0, S-frame rrr P tt 01,
# U-frame mmm P mm 11. P/F is bit 4.
_PF = const(0x10)
_RR = const(0x01)
_RNR = const(0x05)
_SNRM = const(0x83)
_DISC = const(0x43)
_UA = const(0x63)
_DM = const(0x0F)
_FRMR = const(0x87)
_UI = const(0x03)

# FRMR information field, 13239 5.5.3.4.2 (modulo 8): rejected control, V(S)/V(R), reason bits.
_FRMR_W = const(0x01)  # control field undefined or not implemented
_FRMR_X = const(0x02)  # information field not permitted with this frame
_FRMR_Y = const(0x04)  # information field too long
_FRMR_Z = const(0x08)  # invalid N(R)

# LLC header on the first segment of each MSDU, 46 annex / 62056-47-free HDLC profile:
# destination LSAP 0xE6, source LSAP 0xE6 (command) or 0xE7 (response), quality 0x00.
_LSAP = const(0xE6)
_LSAP_RESPONSE = const(0xE7)
_LLC_LEN = const(3)

# HDLC parameter negotiation, 46 6.4.4.4.3.2: format id 0x81, group id 0x80, then
# id-length-value: 05 max info field transmit, 06 max info field receive, 07 window transmit,
# 08 window receive (values seen from the sender of the SNRM or UA).
_FORMAT_ID = const(0x81)
_GROUP_ID = const(0x80)
_P_MAX_TX = const(0x05)
_P_MAX_RX = const(0x06)
_P_WIN_TX = const(0x07)
_P_WIN_RX = const(0x08)
_DEFAULT_INFO = const(128)  # 46 6.4.4.4.3.2 defaults when a parameter is not negotiated
_DEFAULT_WINDOW = const(1)
_MIN_INFO = const(16)  # a smaller proposal is raised to this (documented deviation)

# Addresses, 46 6.4.2.2: all-station (broadcast) upper/lower addresses.
_ALL_1 = const(0x7F)
_ALL_4 = const(0x3FFF)

# Link states
NDM = const(0)  # normal disconnected mode
NRM = const(1)  # normal response mode (connected)

_HEADER_MAX = const(12)  # format 2 + dst 4 + src 1 + control 1 + HCS 2 + FCS 2
_FRAME_OVERHEAD = const(14)  # _HEADER_MAX + two flags

# ticks: the caller's ms counter; differences are taken modulo 2**30 so that 32-bit ports
# (ticks_ms period 2**30) and wider hosts agree, without leaving small-int range.
_TICKS_MASK = const(0x3FFFFFFF)
_TICKS_HALF = const(0x20000000)


def ticks_diff(a, b):
    d = (a - b) & _TICKS_MASK
    if d >= _TICKS_HALF:
        d = d - _TICKS_HALF - _TICKS_HALF  # 2**30 itself is not a small int on 32-bit ports
    return d


class HdlcLink:
    def __init__(
        self,
        app,
        unit_id=17,
        logical=1,
        max_info_tx=_DEFAULT_INFO,
        max_info_rx=_DEFAULT_INFO,
        window_tx=_DEFAULT_WINDOW,
        window_rx=_DEFAULT_WINDOW,
        pdu_size=1024,
        rx_timeout_ms=1000,
        inactivity_ms=120000,
    ):
        assert 1 <= window_tx <= 7 and 1 <= window_rx <= 7
        assert _MIN_INFO <= max_info_tx <= 2030 and _MIN_INFO <= max_info_rx <= 2030
        self.app = app
        self.unit_id = unit_id
        self.logical = logical
        self._lim_tx = max_info_tx
        self._lim_rx = max_info_rx
        self._lim_wtx = window_tx
        self._lim_wrx = window_rx
        self.rx_timeout_ms = rx_timeout_ms
        self.inactivity_ms = inactivity_ms
        self.de = Deframer(max_info_rx + _HEADER_MAX)
        self.tx = bytearray(window_tx * (max_info_tx + _FRAME_OVERHEAD))
        self.tx_len = 0
        self.pdu_in = bytearray(pdu_size)
        self.pdu_out = bytearray(pdu_size)
        self._seg_off = [0] * 8  # pdu_out offset of the I-frame sent with N(S) = index
        self.state = NDM
        self.client = 0  # client address byte of the connection
        self._last_rx = 0
        self._last_frame = 0
        self._frame_start = 0
        self._frmr_reason = 0
        self._reset_link()
        # Counters for diagnostics
        self.frmr_sent = 0
        self.link_resets = 0

    # **** negotiated state ****

    def _reset_link(self):
        self.max_tx = _DEFAULT_INFO if _DEFAULT_INFO < self._lim_tx else self._lim_tx
        self.max_rx = _DEFAULT_INFO if _DEFAULT_INFO < self._lim_rx else self._lim_rx
        self.win_tx = _DEFAULT_WINDOW
        self.win_rx = _DEFAULT_WINDOW
        self.vs = 0  # V(S): N(S) of our next new I-frame
        self.vr = 0  # V(R): N(S) we expect next
        self.va = 0  # oldest of our I-frames not acknowledged
        self._in_len = 0
        self._in_overflow = False
        self._out_len = 0
        self._out_pos = 0
        self._frmr_cond = False

    def _drop_link(self):
        if self.state == NRM:
            self.state = NDM
            self.link_resets += 1
            self.app.on_link_lost()
        self._reset_link()

    # **** bytes in ****

    def receive(self, data, off, n, now):
        if self.tx_len:
            return 0
        de = self.de
        if not de.idle() and ticks_diff(now, self._last_rx) > self.rx_timeout_ms:
            de.reset()  # inter-frame timeout: the partial frame is dropped
        self._check_inactivity(now)
        if n > 0:
            self._last_rx = now
        i = 0
        while True:
            if de.pending():
                ev = de.replay()
            elif i < n:
                ev = de.step(data[off + i])
                i += 1
            else:
                break
            if ev != EV_NONE:
                self._on_frame(ev, now)
                if self.tx_len:
                    break
        return i

    def rx_busy(self):
        return self.de.busy()

    def poll(self, now):
        # Timers without input: inter-frame timeout and inactivity timeout.
        if not self.de.idle() and ticks_diff(now, self._last_rx) > self.rx_timeout_ms:
            self.de.reset()
        self._check_inactivity(now)

    def _check_inactivity(self, now):
        if (
            self.state == NRM
            and self.inactivity_ms > 0
            and ticks_diff(now, self._last_frame) > self.inactivity_ms
        ):
            self._drop_link()

    # **** frames in ****

    def _addressed(self):
        # 0: not for us, 1: for us, 2: broadcast (all-station upper or lower address).
        b = self.de.buf
        dl = self.de.dst_len
        if dl == 4:
            upper = ((b[2] >> 1) << 7) | (b[3] >> 1)
            lower = ((b[4] >> 1) << 7) | (b[5] >> 1)
            return self._match(upper, lower, _ALL_4)
        upper = b[2] >> 1
        if dl == 2:
            return self._match(upper, b[3] >> 1, _ALL_1)
        # One byte: upper address only, point to point (46 6.4.2.2).
        if upper == _ALL_1:
            return 2
        return 1 if upper == self.logical else 0

    def _match(self, upper, lower, all_st):
        # Each half must be ours or all-station: (all-station, unit 18) is every logical
        # device of meter 18, (5, all-station) logical device 5 of every meter (46 6.4.2.2).
        if upper != self.logical and upper != all_st:
            return 0
        if lower != self.unit_id and lower != all_st:
            return 0
        return 2 if (upper == all_st or lower == all_st) else 1

    def _on_frame(self, ev, now):
        de = self.de
        to = self._addressed()
        if to == 0:
            return  # another meter on the bus: silence
        buf = de.buf
        ctrl = buf[de.ctrl_pos]
        client = buf[de.ctrl_pos - 1]
        if to == 2:
            if ctrl & ~_PF == _UI and ev == EV_FRAME:
                self._ui()
            return  # broadcasts are never answered
        pf = ctrl & _PF
        cmd = ctrl & ~_PF
        if ev == EV_OVERSIZE:
            if self.state == NRM and client == self.client:
                self._last_frame = now
                self._send_frmr(ctrl, _FRMR_Y)
            return
        if cmd == _SNRM:
            self._on_snrm(client, now)
            return
        if self.state == NDM or client != self.client:
            # Only SNRM opens a link; a UI frame is taken in any mode.
            if cmd == _UI:
                self._ui()
            elif pf or cmd == _DISC:
                self._u_frame(_DM | _PF)
            return
        self._last_frame = now
        if cmd == _DISC:
            self._u_frame(_UA | _PF)
            self._drop_link()
            return
        if self._frmr_cond:
            self._send_frmr(ctrl, self._frmr_reason)
            return
        if ctrl & 1 == 0:
            self._on_i(ctrl, pf)
        elif ctrl & 0x0F == _RR or ctrl & 0x0F == _RNR:
            if de.info_len:
                self._send_frmr(ctrl, _FRMR_X)
            else:
                self._on_rr(ctrl, pf, ctrl & 0x0F == _RNR)
        elif cmd == _UI:
            self._ui()
        else:
            self._send_frmr(ctrl, _FRMR_W)  # REJ, SREJ, responses or unknown commands

    def _ui(self):
        # An unconfirmed PDU in a UI frame (LLC header first, as in I-frames), handed up in
        # pdu_in unless an MSDU is being reassembled there. Never answered.
        de = self.de
        if self._in_len or self._in_overflow:
            return
        self._append(de.info_pos, de.info_len)
        n = self._in_len
        self._in_len = 0
        self._in_overflow = False
        if n:
            self.app.on_ui(self.de.buf[self.de.ctrl_pos - 1] >> 1, self.pdu_in, n)

    def _on_snrm(self, client, now):
        # SNRM opens the link, or resets it when already open (46 6.4.4.4.3.1).
        self._drop_link()
        if not self._negotiate():
            self._u_frame(_DM | _PF)  # malformed parameters: stay disconnected
            return
        self.state = NRM
        self.client = client
        self._last_frame = now
        self._send_ua_params()

    def _negotiate(self):
        # Parse the SNRM parameters; absent ones keep the 46 defaults (128, window 1). The
        # result is the smaller of the client's proposal and our limit for each direction.
        de = self.de
        b = de.buf
        p = de.info_pos
        end = p + de.info_len
        tx = rx = _DEFAULT_INFO
        wtx = wrx = _DEFAULT_WINDOW
        if de.info_len:
            if de.info_len < 3 or b[p] != _FORMAT_ID or b[p + 1] != _GROUP_ID:
                return False
            if p + 3 + b[p + 2] != end:
                return False
            p += 3
            while p < end:
                if p + 2 > end:
                    return False
                pid = b[p]
                ln = b[p + 1]
                p += 2
                if ln > 4 or p + ln > end:
                    return False
                v = 0
                for k in range(ln):
                    v = (v << 8) | b[p + k]
                    if v > 0xFFFF:
                        v = 0xFFFF  # clamp early: stays a small int on 32-bit ports
                p += ln
                # The client's transmit size is our receive size, and so on.
                if pid == _P_MAX_TX:
                    rx = v
                elif pid == _P_MAX_RX:
                    tx = v
                elif pid == _P_WIN_TX:
                    wrx = v
                elif pid == _P_WIN_RX:
                    wtx = v
        self.max_tx = _clamp(tx, _MIN_INFO, self._lim_tx)
        self.max_rx = _clamp(rx, _MIN_INFO, self._lim_rx)
        self.win_tx = _clamp(wtx, 1, self._lim_wtx)
        self.win_rx = _clamp(wrx, 1, self._lim_wrx)
        return True

    def _on_i(self, ctrl, pf):
        de = self.de
        if de.info_len > self.max_rx:
            self._send_frmr(ctrl, _FRMR_Y)
            return
        if not self._ack(ctrl >> 5):
            self._send_frmr(ctrl, _FRMR_Z)
            return
        ns = (ctrl >> 1) & 7
        if ns != self.vr:
            if ns == (self.vr - 1) & 7 and self.va != self.vs:
                # The client repeats its last frame: it missed our answer. Send it again.
                self._go_back(self.va)
                if pf:
                    self._send_burst()
            elif pf:
                self._s_frame(_RR)  # out of sequence: tell the client what we expect
            return
        self.vr = (self.vr + 1) & 7
        if self._in_len == 0 and not self._in_overflow:
            # A new MSDU: whatever was left of the previous answer is abandoned.
            self._out_len = self._out_pos = 0
            self.va = self.vs
        self._append(de.info_pos, de.info_len)
        if de.segmented:
            if pf:
                self._s_frame(_RR)
            return
        n = self._in_len
        overflow = self._in_overflow
        self._in_len = 0
        self._in_overflow = False
        if overflow:
            self._send_frmr(ctrl, _FRMR_Y)  # the MSDU did not fit the PDU buffer
            return
        if n > 0:
            self._out_len = self.app.on_pdu(self.client >> 1, self.pdu_in, n, self.pdu_out)
            self._out_pos = 0
        if not pf:
            return
        if self._out_len:
            self._send_burst()
        else:
            self._s_frame(_RR)

    def _append(self, pos, n):
        # Add an I-frame's information field to the MSDU being reassembled; the first
        # segment starts with the LLC header, which must be ours (else the MSDU is ignored).
        src = self.de.buf
        if self._in_len == 0 and not self._in_overflow:
            if n < _LLC_LEN or src[pos] != _LSAP or src[pos + 1] != _LSAP or src[pos + 2]:
                return
            pos += _LLC_LEN
            n -= _LLC_LEN
        at = self._in_len
        if self._in_overflow or at + n > len(self.pdu_in):
            self._in_overflow = True
            self._in_len = 1  # keeps "inside an MSDU" until its last segment
            return
        dst = self.pdu_in
        for k in range(n):
            dst[at + k] = src[pos + k]
        self._in_len = at + n

    def _on_rr(self, ctrl, pf, busy):
        nr = ctrl >> 5
        if not self._ack(nr):
            self._send_frmr(ctrl, _FRMR_Z)
            return
        if nr != self.vs:
            self._go_back(nr)  # the client missed our frames from N(R) on: resend them
        if not pf:
            return
        if self._out_pos < self._out_len and not busy:
            self._send_burst()
        else:
            self._s_frame(_RR)

    def _ack(self, nr):
        # 13239: N(R) is valid when it lies between the oldest unacknowledged N(S) and V(S).
        if (nr - self.va) & 7 > (self.vs - self.va) & 7:
            return False
        self.va = nr
        if nr == self.vs and self._out_pos >= self._out_len:
            self._out_len = self._out_pos = 0  # the whole answer is acknowledged
        return True

    def _go_back(self, nr):
        if self._out_len:
            self._out_pos = self._seg_off[nr]
            self.vs = nr

    # **** frames out ****

    def _send_burst(self):
        # Up to win_tx I-frames of the answer, the last with F set (46 6.4.4.3: in NRM the
        # secondary sends only when polled and marks its last frame final).
        frames = 0
        while frames < self.win_tx and self._out_pos < self._out_len:
            if (self.vs - self.va) & 7 >= self.win_tx:
                break
            first = self._out_pos == 0
            room = self.max_tx - (_LLC_LEN if first else 0)
            chunk = self._out_len - self._out_pos
            more = chunk > room
            if more:
                chunk = room
            last_in_burst = (not more) or ((self.vs + 1 - self.va) & 7) >= self.win_tx
            ctrl = (self.vr << 5) | (self.vs << 1) | (_PF if last_in_burst else 0)
            self._seg_off[self.vs] = self._out_pos
            self._i_frame(ctrl, first, self._out_pos, chunk, more)
            self._out_pos += chunk
            self.vs = (self.vs + 1) & 7
            frames += 1
        if frames == 0:
            self._s_frame(_RR)

    def _i_frame(self, ctrl, first, off, chunk, more):
        info = chunk + (_LLC_LEN if first else 0)
        t = self.tx
        p = self._header(self.tx_len, ctrl, info, more)
        if first:
            t[p] = _LSAP
            t[p + 1] = _LSAP_RESPONSE
            t[p + 2] = 0
            p += _LLC_LEN
        src = self.pdu_out
        for k in range(chunk):
            t[p + k] = src[off + k]
        self._finish(p + chunk)

    def _header(self, start, ctrl, info, more):
        # Writes flag, format, addresses, control (and HCS when info > 0) at tx[start];
        # returns where the information field goes; _finish() completes the frame. Every
        # answer goes to the frame just received (two-way alternate), so its addresses are
        # that frame's swapped: our address in the form the client used, 1, 2 or 4 bytes.
        t = self.tx
        de = self.de
        src = de.buf
        sl = de.dst_len
        length = 2 + 1 + sl + 1 + 2 + ((info + 2) if info else 0)
        t[start] = FLAG
        t[start + 1] = 0xA0 | (0x08 if more else 0) | (length >> 8)
        t[start + 2] = length & 0xFF
        t[start + 3] = src[de.ctrl_pos - 1]
        for k in range(sl):
            t[start + 4 + k] = src[2 + k]
        p = start + 4 + sl
        t[p] = ctrl
        p += 1
        self._frame_start = start
        if info:
            h = fcs16(t, start + 1, p - start - 1)
            t[p] = h & 0xFF
            t[p + 1] = h >> 8
            p += 2
        return p

    def _finish(self, p):
        t = self.tx
        s = self._frame_start + 1
        f = fcs16(t, s, p - s)
        t[p] = f & 0xFF
        t[p + 1] = f >> 8
        t[p + 2] = FLAG
        self.tx_len = p + 3

    def _s_frame(self, kind):
        self._u_frame(kind | (self.vr << 5) | _PF)

    def _u_frame(self, ctrl):
        self._finish(self._header(self.tx_len, ctrl, 0, False))

    def _send_ua_params(self):
        # Values as meters commonly send them: sizes in 1 byte below 256, else 2; windows in
        # 4 bytes (Gurux accepts 1, 2 or 4).
        t = self.tx
        ltx = 1 if self.max_tx < 256 else 2
        lrx = 1 if self.max_rx < 256 else 2
        group = 2 + ltx + 2 + lrx + 6 + 6
        p = self._header(self.tx_len, _UA | _PF, 3 + group, False)
        t[p] = _FORMAT_ID
        t[p + 1] = _GROUP_ID
        t[p + 2] = group
        p = _param(t, p + 3, _P_MAX_TX, ltx, self.max_tx)
        p = _param(t, p, _P_MAX_RX, lrx, self.max_rx)
        p = _param(t, p, _P_WIN_TX, 4, self.win_tx)
        p = _param(t, p, _P_WIN_RX, 4, self.win_rx)
        self._finish(p)

    def _send_frmr(self, ctrl, reason):
        # 13239 5.5.3.4.2: rejected control field, V(S) and V(R), reason; the condition holds
        # (FRMR repeated) until the client resets the link with SNRM or DISC.
        self._frmr_cond = True
        self._frmr_reason = reason
        self.frmr_sent += 1
        t = self.tx
        p = self._header(self.tx_len, _FRMR | _PF, 3, False)
        t[p] = ctrl
        t[p + 1] = (self.vr << 5) | (self.vs << 1)
        t[p + 2] = reason
        self._finish(p + 3)


class NullApp:
    # No application layer: I-frames are acknowledged with RR, nothing else happens.
    def on_pdu(self, client, req, n, resp):
        return 0

    def on_ui(self, client, req, n):
        pass

    def on_link_lost(self):
        pass


def _clamp(v, lo, hi):
    if v < lo:
        return lo
    return hi if v > hi else v


def _param(t, p, pid, ln, v):
    t[p] = pid
    t[p + 1] = ln
    for k in range(ln):
        t[p + 2 + k] = (v >> (8 * (ln - 1 - k))) & 0xFF
    return p + 2 + ln
