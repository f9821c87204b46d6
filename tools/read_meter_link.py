# read_meter_link.py: the transports and the DLMS client session of tools/read_meter.py
# (CPython only). The client is Gurux (gurux_dlms), used sans-IO: it builds every request frame
# and parses every answer, and this module moves the bytes. That keeps a timeout on every read
# (a silent meter is an error after --timeout seconds, never a hang) and one code path for TCP,
# serial lines and the IEC 62056-47 wrapper.
#
# Framing is done here, from length fields, never by looking for a closing flag:
#   HDLC (IEC 62056-46 frame format type 3): 7E, format A0..A7 with an 11-bit length (from the
#        format field to the FCS), ..., 7E. A 0x7E inside a frame (an FCS byte) is data.
#   Wrapper (IEC 62056-47 WPDU): version 0001, source wPort, destination wPort, length, APDU.
# Gurux 1.0.203 cannot take windows of more than one HDLC frame, so the window stays 1 (its
# default), as does the max info field (128), which every meter accepts.
import socket
import time

from gurux_dlms import GXByteBuffer, GXDLMSClient, GXDLMSException, GXReplyData
from gurux_dlms.enums import Authentication, InterfaceType

_FLAG = 0x7E
_FORMAT_TYPE3 = 0xA0  # IEC 62056-46 6.4.3: frame format type 3 in the top nibble
_WRAPPER_VERSION = 0x0001
_WRAPPER_HEADER = 8

# GB 9.3.x Data-Access-Result, for errors a GET or SET answers with.
_ACCESS_RESULTS = {
    1: "hardware-fault", 2: "temporary-failure", 3: "read-write-denied",
    4: "object-undefined", 9: "object-class-inconsistent", 11: "object-unavailable",
    12: "type-unmatched", 13: "scope-of-access-violated", 14: "data-block-unavailable",
    15: "long-get-aborted", 16: "no-long-get-in-progress", 17: "long-set-aborted",
    18: "no-long-set-in-progress", 19: "data-block-number-invalid", 250: "other-reason",
}


class LinkError(Exception):
    # Anything the user should read instead of a traceback: no answer, refused association,
    # a service error. read_meter.py prints it and exits with status 1.
    pass


class AccessError(LinkError):
    def __init__(self, what, code):
        LinkError.__init__(self, "%s: %s (%d)" % (what, _ACCESS_RESULTS.get(code, "error"),
                                                  code))
        self.code = code


# **** byte streams with a timeout on every read ****


class _Stream:
    def __init__(self, timeout):
        self.timeout = timeout
        self.buf = bytearray()

    def read_exact(self, n):
        deadline = time.monotonic() + self.timeout
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            chunk = self._recv(left) if left > 0 else b""
            if not chunk:
                raise LinkError("no answer from the meter within %g s (check the address, "
                                "unit id and line settings)" % self.timeout)
            self.buf += chunk
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def drop_input(self):
        self.buf = bytearray()


class TcpStream(_Stream):
    def __init__(self, host, port, timeout):
        _Stream.__init__(self, timeout)
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as e:
            raise LinkError("cannot connect to %s:%d: %s" % (host, port, e.strerror or e))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _recv(self, left):
        self.sock.settimeout(max(left, 0.001))
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return b""
        except OSError as e:
            raise LinkError("connection lost: %s" % (e.strerror or e))
        if not data:
            raise LinkError("the meter (or gateway) closed the connection")
        return data

    def write(self, data):
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise LinkError("connection lost: %s" % (e.strerror or e))

    def close(self):
        self.sock.close()


class SerialStream(_Stream):
    # A serial line (RS-485 adapter, optical probe, or a pseudo-terminal), 8N1 as IEC 62056-46
    # direct HDLC uses.
    def __init__(self, path, baud, timeout):
        import serial  # pyserial, only needed for --serial

        _Stream.__init__(self, timeout)
        try:
            self.port = serial.Serial(path, baudrate=baud, bytesize=8, parity="N", stopbits=1,
                                      timeout=timeout)
        except (serial.SerialException, ValueError) as e:
            raise LinkError("cannot open %s: %s" % (path, e))

    def _recv(self, left):
        self.port.timeout = max(left, 0.001)
        return self.port.read(max(1, self.port.in_waiting))

    def write(self, data):
        self.port.write(data)

    def drop_input(self):
        _Stream.drop_input(self)
        self.port.reset_input_buffer()

    def close(self):
        self.port.close()


# **** framing ****


def read_hdlc_frame(stream):
    # One whole frame by its length field; bytes before a flag and a repeated flag are skipped.
    while True:
        b = stream.read_exact(1)
        while b[0] != _FLAG:
            b = stream.read_exact(1)
        head = stream.read_exact(2)
        while head[0] == _FLAG:
            head = head[1:] + stream.read_exact(1)
        if head[0] & 0xF0 != _FORMAT_TYPE3:
            continue  # not a frame start: look for the next flag
        n = ((head[0] & 0x07) << 8) | head[1]
        return b"\x7e" + head + stream.read_exact(n - 2 + 1)


def read_wpdu(stream):
    head = stream.read_exact(_WRAPPER_HEADER)
    if (head[0] << 8) | head[1] != _WRAPPER_VERSION:
        raise LinkError("not a DLMS wrapper answer (version %02X%02X)" % (head[0], head[1]))
    return head + stream.read_exact((head[6] << 8) | head[7])


# **** the session ****


class Session:
    # One association: open(), then reads and writes, then close(). hdlc=False is the wrapper.
    def __init__(self, stream, client=16, password=None, unit_id=17, logical=1, hdlc=True,
                 retries=2):
        self.stream = stream
        self.hdlc = hdlc
        self.retries = retries if hdlc else 0  # TCP under the wrapper does not lose data
        auth = Authentication.LOW if password else Authentication.NONE
        if hdlc:
            server = GXDLMSClient.getServerAddress(logical, unit_id, 4)
            iface = InterfaceType.HDLC
        else:
            server = logical
            iface = InterfaceType.WRAPPER
        self.c = GXDLMSClient(True, client, server, auth, password, iface)
        self.client = client
        self.opened = False

    def request(self, frames, on_frame=None):
        # One request: a frame or Gurux's list (of lists) of frames, with the RRs and GET-next
        # requests of long answers. on_frame(reply) is called after every answer frame.
        if frames is None:
            return None
        if not isinstance(frames, list):
            frames = [frames]
        if frames and isinstance(frames[0], list):
            frames = [f for group in frames for f in group]
        reply = GXReplyData()
        for f in frames:
            reply.clear()
            self._exchange(f, reply, on_frame)
            while reply.isMoreData():
                self._exchange(self.c.receiverReady(reply), reply, on_frame)
        return reply

    def _exchange(self, frame, reply, on_frame):
        data = bytes(frame)
        for attempt in range(self.retries + 1):
            self.stream.write(data)
            try:
                self._read_answer(reply)
                break
            except LinkError:
                if attempt == self.retries:
                    raise
                self.stream.drop_input()  # resend: the meter repeats its last answer
        if on_frame is not None:
            on_frame(reply)

    def _read_answer(self, reply):
        while True:
            raw = read_hdlc_frame(self.stream) if self.hdlc else read_wpdu(self.stream)
            try:
                if self.c.getData(GXByteBuffer(raw), reply, None):
                    return
            except GXDLMSException as e:
                raise LinkError("the meter answered with an error: %s" % e)
            except Exception as e:  # Gurux signals malformed or unexpected frames this way
                raise LinkError("unexpected answer from the meter: %s" % e)

    def open(self):
        try:
            if self.hdlc:
                reply = self.request(self.c.snrmRequest())
                self.c.parseUAResponse(reply.data)
            self.opened = True
            self.c.parseAareResponse(self.request(self.c.aarqRequest()).data)
        except GXDLMSException as e:
            raise LinkError("association refused by the meter for client %d: %s"
                            % (self.client, _refusal(e)))
        except LinkError:
            raise
        except Exception as e:
            raise LinkError("association failed: %s" % e)

    def close(self):
        # Release and disconnect; errors here do not hide the result of the work before.
        if not self.opened:
            return
        self.opened = False
        try:
            self.request(self.c.releaseRequest())
        except Exception:
            pass
        try:
            if self.hdlc:
                self.request(self.c.disconnectRequest(True))
        except Exception:
            pass

    # **** services ****

    def get(self, obj, attr, on_frame=None):
        # GET one attribute; the raw decoded value. obj: a Gurux object (class and name).
        return self._checked(self.request(self.c.read(obj, attr), on_frame),
                             "reading %s attribute %d" % (_obis(obj), attr)).value

    def get_rows_by_entry(self, pg, first, count, on_frame=None):
        # Entries first..first+count-1 (1-based; count 0 = to the last entry).
        return self._checked(self.request(self.c.readRowsByEntry(pg, first, count), on_frame),
                             "reading %s rows by entry" % _obis(pg)).value or []

    def get_rows_by_range(self, pg, start, end, on_frame=None):
        # Rows with start <= time <= end (GXDateTime or aware datetime).
        return self._checked(self.request(self.c.readRowsByRange(pg, start, end), on_frame),
                             "reading %s rows by range" % _obis(pg)).value or []

    def set(self, obj, attr):
        # SET one attribute from the Gurux object's value.
        self._checked(self.request(self.c.write(obj, attr)),
                      "writing %s attribute %d" % (_obis(obj), attr))

    def object_list(self):
        # The association's object_list (BB 4.4.4 attribute 2), raw: one entry per object
        # {class_id, version, logical_name, access_rights}.
        return self._checked(self.request(self.c.getObjectsRequest()),
                             "reading the object list").value

    def _checked(self, reply, what):
        if reply.error:
            raise AccessError(what, reply.error)
        return reply


# ACSE associate-source-diagnostic (IEC 62056-5-3 / ISO 8650), with what to try instead.
_DIAGNOSTICS = {
    1: "no reason given", 2: "application context name not supported",
    11: "authentication mechanism name not recognised", 12: "authentication mechanism name "
    "required", 13: "authentication failure", 14: "authentication required",
}
_HINTS = {
    11: " (this client does not use a password here: try without --password, or --client 1)",
    13: " (wrong password, or password logins locked out after repeated failures)",
    14: " (this client needs --password)",
}


def _refusal(e):
    d = getattr(e, "diagnostic", None)
    code = int(d) if d is not None else -1
    if code in _DIAGNOSTICS:
        return _DIAGNOSTICS[code] + _HINTS.get(code, "")
    return " ".join(str(e).split())


def _obis(obj):
    # Gurux's "1.0.99.1.0.255" as "1-0:99.1.0*255".
    a, b, c, d, e, f = obj.logicalName.split(".")
    return "%s-%s:%s.%s.%s*%s" % (a, b, c, d, e, f)


def make_object(class_id, ln):
    # A Gurux object naming (class, logical name), for building requests.
    obj = GXDLMSClient.createObject(int(class_id))
    if obj is None or type(obj).__name__ == "GXDLMSObject":
        from gurux_dlms.objects import GXDLMSObject

        obj = GXDLMSObject()
        obj.objectType = int(class_id)
    b = bytes(ln)
    obj.logicalName = "%d.%d.%d.%d.%d.%d" % tuple(b)
    return obj


# **** progress of a long GET ****


class RowCounter:
    # Estimates rows received so far from the raw A-XDR data of an answer in progress: the
    # array's element count is at its head, and rows of a profile buffer have one encoded size
    # (fixed-size types), so rows = (bytes - header) // row size. Variable-size rows make it an
    # estimate; anything it cannot parse leaves total unknown (None).
    def __init__(self, callback):
        self.callback = callback
        self.head = None  # (header bytes, element count, row bytes)

    def __call__(self, reply):
        size = reply.data.size
        if self.head is None:  # the first frames only: parse a copy of what is there
            self.head = _array_head(bytes(reply.data.array()), size)
        if self.head is None or self.head is False:
            self.callback(None, None)
            return
        hdr, count, row = self.head
        done = min(count, (size - hdr) // row) if row else count
        self.callback(done, count)


def _array_head(data, size):
    # None: not enough bytes yet; False: not an array of fixed-size rows we can count.
    try:
        if size < 2:
            return None
        if data[0] != 1:
            return False
        count, pos = _length(data, 1)
        if count == 0:
            return pos, 0, 0
        end = _skip(data, pos, size)
        return pos, count, end - pos
    except IndexError:
        return None
    except ValueError:
        return False


def _length(data, pos):
    # A-XDR length: one byte below 0x80, else 0x8N and N bytes.
    b = data[pos]
    if b < 0x80:
        return b, pos + 1
    n = b & 0x7F
    v = 0
    for i in range(n):
        v = (v << 8) | data[pos + 1 + i]
    return v, pos + 1 + n


# GB A-XDR: fixed sizes of the simple types by tag.
_FIXED = {0: 0, 3: 1, 5: 4, 6: 4, 13: 1, 15: 1, 16: 2, 17: 1, 18: 2, 20: 8, 21: 8, 22: 1, 23: 4,
          24: 8, 25: 12, 26: 5, 27: 4}


def _skip(data, pos, size):
    # Position after the element at pos; IndexError when it is not all there yet.
    tag = data[pos]
    pos += 1
    if tag in (1, 2):  # array, structure
        n, pos = _length(data, pos)
        for _ in range(n):
            pos = _skip(data, pos, size)
    elif tag == 4:  # bit-string: length in bits
        n, pos = _length(data, pos)
        pos += (n + 7) // 8
    elif tag in (9, 10, 12):  # octet-, visible-, utf8-string
        n, pos = _length(data, pos)
        pos += n
    elif tag in _FIXED:
        pos += _FIXED[tag]
    else:
        raise ValueError("tag %d" % tag)
    if pos > size:
        raise IndexError(pos)
    return pos
