# axdr.py: A-XDR encoding of COSEM Data, allocation-free writer and reader.
# Spec short forms: "BB" = Blue Book (DLMS UA 1000-1, IEC 62056-6-2), "GB" = Green Book
# (DLMS UA 1000-2, IEC 62056-5-3: the Data CHOICE of the xDLMS APDUs), "XDR" = IEC 61334-6 A-XDR.
#
# Writers: put_*(buf, off, ...) store a tagged value in buf at off and return the offset after
# it, or -1 when it does not fit; they check first and write nothing then. A negative off also
# gives -1, so a chain `off = put_x(buf, off, ..)` needs one check at the end. raw_* write the
# same without the tag. Reader: a cursor over buf[pos:end], made once and re-attached.
#
# 32-bit ports keep ints below 2**30 as small ints; larger ones are heap objects. So 32- and
# 64-bit values travel as 16-bit parts (most significant first) or as big-endian bytes in a buffer;
# put_u32/put_i32/put_u64/put_i64 and Reader.u32/i32 are for values below 2**30 only.
from micropython import const

# Tags, BB 4.1.5 Table 2 "Common data types" (GB: Data ::= CHOICE)
NULL_DATA = const(0)
ARRAY = const(1)
STRUCTURE = const(2)
BOOLEAN = const(3)
BIT_STRING = const(4)
DOUBLE_LONG = const(5)  # Integer32
DOUBLE_LONG_UNSIGNED = const(6)  # Unsigned32
OCTET_STRING = const(9)
VISIBLE_STRING = const(10)
UTF8_STRING = const(12)
BCD = const(13)
INTEGER = const(15)  # Integer8
LONG = const(16)  # Integer16
UNSIGNED = const(17)  # Unsigned8
LONG_UNSIGNED = const(18)  # Unsigned16
COMPACT_ARRAY = const(19)  # not supported by the reader (reported malformed)
LONG64 = const(20)  # Integer64
LONG64_UNSIGNED = const(21)  # Unsigned64
ENUM = const(22)
DONT_CARE = const(255)  # GB: dont-care [255] NULL

DATETIME_LEN = const(12)  # BB 4.1.6.1: date-time is OCTET STRING (SIZE(12))
DEVIATION_UNSPECIFIED = const(-0x8000)  # BB 4.1.6.1: deviation 0x8000 = not specified
# Indexes of the caller's 10-int date-time array (BB 4.1.6.1 field order)
DT_YEAR = const(0)  # 0xFFFF = not specified
DT_MONTH = const(1)
DT_DAY = const(2)
DT_WEEKDAY = const(3)
DT_HOUR = const(4)
DT_MINUTE = const(5)
DT_SECOND = const(6)
DT_HUNDREDTHS = const(7)
DT_DEVIATION = const(8)  # signed minutes, int16
DT_STATUS = const(9)  # clock status bits

# Reader.err
ERR_NONE = const(0)
ERR_TRUNCATED = const(1)  # input ends inside a value
ERR_MALFORMED = const(2)  # unknown tag or length form
ERR_RANGE = const(3)  # u32()/i32(): value needs the parts readers; pos not advanced

_MAX_LEN = const(0xFFFF)  # XDR length: 0x81 nn, 0x82 nn nn; longer forms not supported
_LEN1 = const(0x81)
_LEN2 = const(0x82)

# Body size by tag for the skipper: 0..12 fixed, or one of the kinds below (BB 4.1.5 Table 2)
_SEQ = const(0xF0)  # array, structure: count, then that many values
_STR = const(0xF1)  # octet/visible/utf8-string: length, then bytes
_BITS = const(0xF2)  # bit-string: bit count, then ceil(bits / 8) bytes
_BAD = const(0xFF)  # reserved or unsupported (7, 8, 11, 14, compact-array 19)
# _KIND[tag]: tags 0..13 on the first line, 14..27 on the second; 255 dont-care has no body.
_NKIND = const(28)
_KIND = (
    b"\x00\xf0\xf0\x01\xf2\x04\x04\xff\xff\xf1\xf1\xff\xf1\x01"
    b"\xff\x01\x02\x01\x02\xff\x08\x08\x01\x04\x08\x0c\x05\x04"
)


# **** WRITERS ****


def len_size(n):
    # Bytes taken by a length or count n: the sizing pass before a write.
    return 1 if n < 0x80 else (2 if n < 0x100 else 3)


def put_len(buf, off, n):
    # Untagged length or element count, XDR / BER definite form (0 <= n <= 0xFFFF).
    s = len_size(n)
    if off < 0 or n < 0 or n > _MAX_LEN or off + s > len(buf):
        return -1
    if s == 1:
        buf[off] = n
    elif s == 2:
        buf[off] = _LEN1
        buf[off + 1] = n
    else:
        buf[off] = _LEN2
        buf[off + 1] = n >> 8
        buf[off + 2] = n & 0xFF
    return off + s


def _head(buf, off, tag, n):
    # Tag then room for n body bytes: the offset of the body, or -1.
    if off < 0 or off + 1 + n > len(buf):
        return -1
    buf[off] = tag
    return off + 1


def _put16(buf, p, v):
    buf[p] = (v >> 8) & 0xFF
    buf[p + 1] = v & 0xFF


def _fix(buf, off, tag, n, hi, lo):
    # Tag and an n-byte body (n = 1, 2 or 4), big-endian, from the 16-bit parts hi and lo.
    if off < 0 or off + 1 + n > len(buf):
        return -1
    buf[off] = tag
    if n == 1:
        buf[off + 1] = lo & 0xFF
    else:
        if n == 4:
            _put16(buf, off + 1, hi)
        _put16(buf, off + n - 1, lo)
    return off + 1 + n


def _fix64(buf, off, tag, w3, w2, w1, w0):
    p = _head(buf, off, tag, 8)
    if p < 0:
        return -1
    _put16(buf, p, w3)
    _put16(buf, p + 2, w2)
    _put16(buf, p + 4, w1)
    _put16(buf, p + 6, w0)
    return p + 8


def _counted(buf, off, tag, n, nbody):
    # Tag, length n, room for nbody bytes: the offset of the body, or -1.
    if off < 0 or n < 0 or n > _MAX_LEN or off + 1 + len_size(n) + nbody > len(buf):
        return -1
    buf[off] = tag
    return put_len(buf, off + 1, n)


def _copy(dst, p, src, soff, n):
    for i in range(n):
        dst[p + i] = src[soff + i]
    return p + n


def put_null(buf, off):
    return _head(buf, off, NULL_DATA, 0)


def put_array(buf, off, count):
    # The count elements follow as ordinary tagged values.
    return _counted(buf, off, ARRAY, count, 0)


def put_struct(buf, off, count):
    return _counted(buf, off, STRUCTURE, count, 0)


def put_bool(buf, off, v):
    return _fix(buf, off, BOOLEAN, 1, 0, 1 if v else 0)


def put_i8(buf, off, v):
    return _fix(buf, off, INTEGER, 1, 0, v)


def put_u8(buf, off, v):
    return _fix(buf, off, UNSIGNED, 1, 0, v)


def put_enum(buf, off, v):
    return _fix(buf, off, ENUM, 1, 0, v)


def put_i16(buf, off, v):
    return _fix(buf, off, LONG, 2, 0, v)


def put_u16(buf, off, v):
    return _fix(buf, off, LONG_UNSIGNED, 2, 0, v)


def put_u32_parts(buf, off, hi16, lo16):
    return _fix(buf, off, DOUBLE_LONG_UNSIGNED, 4, hi16, lo16)


def put_i32_parts(buf, off, hi16, lo16):
    # hi16 signed (-0x8000..0x7FFF) or its unsigned image; same bytes either way.
    return _fix(buf, off, DOUBLE_LONG, 4, hi16, lo16)


def put_u32(buf, off, v):
    return _fix(buf, off, DOUBLE_LONG_UNSIGNED, 4, v >> 16, v)  # v < 2**30


def put_i32(buf, off, v):
    return _fix(buf, off, DOUBLE_LONG, 4, v >> 16, v)  # -2**30 <= v < 2**30


def put_u64_parts(buf, off, w3, w2, w1, w0):
    return _fix64(buf, off, LONG64_UNSIGNED, w3, w2, w1, w0)


def put_i64_parts(buf, off, w3, w2, w1, w0):
    return _fix64(buf, off, LONG64, w3, w2, w1, w0)


def put_u64(buf, off, v):
    return _fix64(buf, off, LONG64_UNSIGNED, 0, 0, v >> 16, v)  # v < 2**30


def put_i64(buf, off, v):
    s = -1 if v < 0 else 0  # sign extension of the two top words
    return _fix64(buf, off, LONG64, s, s, v >> 16, v)  # -2**30 <= v < 2**30


def put_u64_bytes(buf, off, src, soff):
    # Copies 8 big-endian bytes src[soff:soff+8], e.g. an energy register kept as bytes.
    p = _head(buf, off, LONG64_UNSIGNED, 8)
    return -1 if p < 0 else _copy(buf, p, src, soff, 8)


def put_i64_bytes(buf, off, src, soff):
    p = _head(buf, off, LONG64, 8)
    return -1 if p < 0 else _copy(buf, p, src, soff, 8)


def put_octets(buf, off, src, soff, n):
    p = _counted(buf, off, OCTET_STRING, n, n)
    return -1 if p < 0 else _copy(buf, p, src, soff, n)


def put_visible(buf, off, src, soff, n):
    # src holds ASCII bytes (a bytes object, not str).
    p = _counted(buf, off, VISIBLE_STRING, n, n)
    return -1 if p < 0 else _copy(buf, p, src, soff, n)


def put_bits(buf, off, nbits, src, soff):
    # bit-string (BB 4.1.5): bit count, then (nbits + 7) // 8 bytes, first bit in the MSB.
    n = (nbits + 7) >> 3
    p = _counted(buf, off, BIT_STRING, nbits, n)
    return -1 if p < 0 else _copy(buf, p, src, soff, n)


def put_datetime(buf, off, dt):
    # date-time as octet-string (09 0C + 12 bytes) from the 10-int array dt (DT_* indexes).
    p = _counted(buf, off, OCTET_STRING, DATETIME_LEN, DATETIME_LEN)
    return -1 if p < 0 else raw_dt12(buf, p, dt)


def raw_dt12(buf, off, dt):
    # The 12 bytes of BB 4.1.6.1, untagged; no validation (the clock module owns the policy).
    if off < 0 or off + DATETIME_LEN > len(buf):
        return -1
    _put16(buf, off, dt[DT_YEAR])
    for i in range(DT_MONTH, DT_DEVIATION):
        buf[off + 1 + i] = dt[i] & 0xFF
    _put16(buf, off + 9, dt[DT_DEVIATION])
    buf[off + 11] = dt[DT_STATUS] & 0xFF
    return off + DATETIME_LEN


def raw_u8(buf, off, v):
    if off < 0 or off >= len(buf):
        return -1
    buf[off] = v & 0xFF
    return off + 1


def raw_u16(buf, off, v):
    if off < 0 or off + 2 > len(buf):
        return -1
    _put16(buf, off, v)
    return off + 2


def raw_bytes(buf, off, src, soff, n):
    if off < 0 or off + n > len(buf):
        return -1
    return _copy(buf, off, src, soff, n)


# **** READER ****


def _len_at(buf, pos, end):
    # Length at pos: 0..0xFFFF, or -ERR_TRUNCATED / -ERR_MALFORMED.
    if pos >= end:
        return -ERR_TRUNCATED
    b = buf[pos]
    if b < 0x80:
        return b
    if b == _LEN1:
        return buf[pos + 1] if pos + 2 <= end else -ERR_TRUNCATED
    if b == _LEN2:
        return (buf[pos + 1] << 8) | buf[pos + 2] if pos + 3 <= end else -ERR_TRUNCATED
    return -ERR_MALFORMED


def _skip(buf, pos, end):
    # Position after one value, or -ERR_*. Iterative, no recursion: the elements of an array or
    # structure are just the next values, so a count of values still owed is all the state.
    if pos < 0:
        return -ERR_TRUNCATED
    todo = 1
    while todo:
        if pos >= end:
            return -ERR_TRUNCATED
        t = buf[pos]
        pos += 1
        k = _KIND[t] if t < _NKIND else (0 if t == DONT_CARE else _BAD)
        todo -= 1
        if k < _SEQ:
            pos += k
        elif k == _BAD:
            return -ERR_MALFORMED
        else:
            n = _len_at(buf, pos, end)
            if n < 0:
                return n
            b = buf[pos]
            pos += 1 if b < 0x80 else b - 0x7F
            if k == _SEQ:
                todo += n
                if todo > end - pos:  # each value takes at least one byte
                    return -ERR_TRUNCATED
            else:
                pos += (n + 7) >> 3 if k == _BITS else n
        if pos > end:
            return -ERR_TRUNCATED
    return pos


def value_end(buf, pos, end):
    # Position after the complete value at buf[pos] (not reading at or past end), or -1.
    p = _skip(buf, pos, end)
    return p if p >= 0 else -1


def get_dt12(buf, pos, end, dt):
    # The 12 date-time bytes at pos into the 10-int array dt; pos + 12, or -1 if truncated.
    if pos < 0 or pos + DATETIME_LEN > end:
        return -1
    dt[DT_YEAR] = (buf[pos] << 8) | buf[pos + 1]
    for i in range(DT_MONTH, DT_DEVIATION):
        dt[i] = buf[pos + 1 + i]
    d = (buf[pos + 9] << 8) | buf[pos + 10]
    dt[DT_DEVIATION] = d - 0x10000 if d & 0x8000 else d
    dt[DT_STATUS] = buf[pos + 11]
    return pos + DATETIME_LEN


class Reader:
    # Cursor over buf[pos:end]. Errors are sticky in err and never advance pos. Unsigned reads
    # return -1 on error; signed reads return 0 and the caller checks err after a group.
    def __init__(self, buf=None, pos=0, end=0):
        self.attach(buf, pos, end)

    def attach(self, buf, pos, end):
        self.buf = buf
        self.pos = pos
        self.end = end
        self.err = ERR_NONE

    def remaining(self):
        return self.end - self.pos

    def _fail(self, e):
        if self.err == ERR_NONE:
            self.err = e
        return -1

    def peek(self):
        return self.buf[self.pos] if self.pos < self.end else -1

    def u8(self):
        if self.pos >= self.end:
            return self._fail(ERR_TRUNCATED)
        self.pos += 1
        return self.buf[self.pos - 1]

    tag = u8

    def u16(self):
        p = self.pos
        if p + 2 > self.end:
            return self._fail(ERR_TRUNCATED)
        self.pos = p + 2
        return (self.buf[p] << 8) | self.buf[p + 1]

    def i8(self):
        v = self.u8()
        return 0 if v < 0 else (v - 0x100 if v & 0x80 else v)

    def i16(self):
        v = self.u16()
        return 0 if v < 0 else (v - 0x10000 if v & 0x8000 else v)

    def u32(self):
        # Unsigned32 below 2**30; otherwise ERR_RANGE and -1: read it as two u16() instead.
        if self.pos + 4 > self.end:
            return self._fail(ERR_TRUNCATED)
        if self.buf[self.pos] & 0xC0:
            return self._fail(ERR_RANGE)
        return (self.u16() << 16) | self.u16()

    def i32(self):
        # Integer32 in -2**30..2**30-1; otherwise ERR_RANGE and 0: read i16() then u16().
        if self.pos + 4 > self.end:
            self._fail(ERR_TRUNCATED)
            return 0
        t = self.buf[self.pos] & 0xC0
        if t and t != 0xC0:
            self._fail(ERR_RANGE)
            return 0
        return (self.i16() << 16) + self.u16()

    def length(self):
        # XDR length or count: 0..0xFFFF, or -1 (ERR_TRUNCATED / ERR_MALFORMED).
        n = _len_at(self.buf, self.pos, self.end)
        if n < 0:
            return self._fail(-n)
        b = self.buf[self.pos]
        self.pos += 1 if b < 0x80 else b - 0x7F
        return n

    def take(self, n):
        # Steps over n bytes; returns their start offset in buf, or -1.
        p = self.pos
        if n < 0 or p + n > self.end:
            return self._fail(ERR_TRUNCATED)
        self.pos = p + n
        return p

    def copy(self, dst, doff, n):
        # Copies the next n bytes to dst[doff:]; returns doff + n, or -1. No room in dst is a
        # caller error: -1 with nothing read and err untouched.
        if doff < 0 or doff + n > len(dst):
            return -1
        p = self.take(n)
        return -1 if p < 0 else _copy(dst, doff, self.buf, p, n)

    def dt12(self, dt):
        # The next 12 bytes as a date-time into dt; returns the new pos, or -1.
        p = get_dt12(self.buf, self.pos, self.end, dt)
        if p < 0:
            return self._fail(ERR_TRUNCATED)
        self.pos = p
        return p

    def skip_value(self):
        # Steps over one complete tagged value, nested ones included; new pos, or -1.
        p = _skip(self.buf, self.pos, self.end)
        if p < 0:
            return self._fail(-p)
        self.pos = p
        return p
