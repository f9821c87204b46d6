# A-XDR encoding of COSEM Data (BB 4.1.5 Table 2, BB 4.1.6.1, IEC 61334-6 lengths): byte-exact
# vectors for every writer, 0xAA guards past the output, too-small buffers, the reader on every
# truncated prefix and on malformed input, and allocation-free encode/decode of a nested structure
# holding every type. 32- and 64-bit extremes are built from 16-bit parts or bytes only, so the
# 32-bit WebAssembly port never sees an int of 2**30 or more.
import axdr
from axdr import Reader
from support import assert_no_alloc, tohex, unhex, need_heap

OBIS = b"\x01\x00\x01\x08\x00\xff"
I64_MAX = b"\x7f\xff\xff\xff\xff\xff\xff\xff"
U64_SEQ = b"\x01\x02\x03\x04\x05\x06\x07\x08"
LONG130 = bytes(range(130))
LONG300 = bytes(i & 0xFF for i in range(300))
# 2024-03-15 (Friday = 5) 13:45:30.50, deviation -60 min, status 0x80 (daylight saving active)
DT = [2024, 3, 15, 5, 13, 45, 30, 50, -60, 0x80]
DT_HEX = "07 E8 03 0F 05 0D 2D 1E 32 FF C4 80"
DT_UNSPEC = [0xFFFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, axdr.DEVIATION_UNSPECIFIED, 0xFF]
DT_UNSPEC_HEX = "FF FF FF FF FF FF FF FF FF 80 00 FF"

# (writer, arguments after (buf, off), expected bytes)
VECTORS = [
    (axdr.put_null, (), "00"),
    (axdr.put_array, (0,), "01 00"),
    (axdr.put_array, (5,), "01 05"),
    (axdr.put_array, (0x7F,), "01 7F"),
    (axdr.put_array, (0x80,), "01 81 80"),
    (axdr.put_array, (0xFF,), "01 81 FF"),
    (axdr.put_array, (0x100,), "01 82 01 00"),
    (axdr.put_array, (0xFFFF,), "01 82 FF FF"),
    (axdr.put_struct, (2,), "02 02"),
    (axdr.put_struct, (0x80,), "02 81 80"),
    (axdr.put_bool, (True,), "03 01"),
    (axdr.put_bool, (False,), "03 00"),
    (axdr.put_bool, (7,), "03 01"),
    (axdr.put_bits, (0, b"", 0), "04 00"),
    (axdr.put_bits, (1, b"\x80", 0), "04 01 80"),
    (axdr.put_bits, (12, b"\xa5\xf0", 0), "04 0C A5 F0"),
    (axdr.put_bits, (16, b"x\x12\x34", 1), "04 10 12 34"),
    (axdr.put_i32, (0,), "05 00 00 00 00"),
    (axdr.put_i32, (1,), "05 00 00 00 01"),
    (axdr.put_i32, (-1,), "05 FF FF FF FF"),
    (axdr.put_i32, (-123456,), "05 FF FE 1D C0"),
    (axdr.put_i32, (0x3FFFFFFF,), "05 3F FF FF FF"),
    (axdr.put_i32, (-0x40000000,), "05 C0 00 00 00"),
    (axdr.put_i32_parts, (0x7FFF, 0xFFFF), "05 7F FF FF FF"),  # Integer32 max
    (axdr.put_i32_parts, (-0x8000, 0), "05 80 00 00 00"),  # Integer32 min
    (axdr.put_i32_parts, (0x8000, 0), "05 80 00 00 00"),  # hi16 as its unsigned image
    (axdr.put_i32_parts, (-1, 0xFFFE), "05 FF FF FF FE"),
    (axdr.put_u32, (0,), "06 00 00 00 00"),
    (axdr.put_u32, (12345678,), "06 00 BC 61 4E"),
    (axdr.put_u32, (0x3FFFFFFF,), "06 3F FF FF FF"),
    (axdr.put_u32_parts, (0xFFFF, 0xFFFF), "06 FF FF FF FF"),  # Unsigned32 max
    (axdr.put_u32_parts, (0x1234, 0x5678), "06 12 34 56 78"),
    (axdr.put_octets, (OBIS, 0, 6), "09 06 01 00 01 08 00 FF"),
    (axdr.put_octets, (b"", 0, 0), "09 00"),
    (axdr.put_octets, (OBIS, 2, 3), "09 03 01 08 00"),
    (axdr.put_octets, (LONG130, 0, 127), "09 7F " + tohex(LONG130, 127)),
    (axdr.put_octets, (LONG130, 0, 128), "09 81 80 " + tohex(LONG130, 128)),
    (axdr.put_octets, (LONG300, 0, 300), "09 82 01 2C " + tohex(LONG300)),
    (axdr.put_visible, (b"ABC", 0, 3), "0A 03 41 42 43"),
    (axdr.put_visible, (b"", 0, 0), "0A 00"),
    (axdr.put_i8, (0,), "0F 00"),
    (axdr.put_i8, (-1,), "0F FF"),
    (axdr.put_i8, (-128,), "0F 80"),
    (axdr.put_i8, (127,), "0F 7F"),
    (axdr.put_i16, (-2,), "10 FF FE"),
    (axdr.put_i16, (-32768,), "10 80 00"),
    (axdr.put_i16, (32767,), "10 7F FF"),
    (axdr.put_u8, (0,), "11 00"),
    (axdr.put_u8, (255,), "11 FF"),
    (axdr.put_u16, (0x1234,), "12 12 34"),
    (axdr.put_u16, (0xFFFF,), "12 FF FF"),
    (axdr.put_i64_parts, (0x8000, 0, 0, 0), "14 80 00 00 00 00 00 00 00"),  # Integer64 min
    (axdr.put_i64_parts, (0x7FFF, 0xFFFF, 0xFFFF, 0xFFFF), "14 7F FF FF FF FF FF FF FF"),
    (axdr.put_i64_parts, (-1, -1, -1, -2), "14 FF FF FF FF FF FF FF FE"),
    (axdr.put_i64_bytes, (I64_MAX, 0), "14 7F FF FF FF FF FF FF FF"),
    (axdr.put_i64, (0,), "14 00 00 00 00 00 00 00 00"),
    (axdr.put_i64, (-1,), "14 FF FF FF FF FF FF FF FF"),
    (axdr.put_i64, (1000,), "14 00 00 00 00 00 00 03 E8"),
    (axdr.put_i64, (-0x40000000,), "14 FF FF FF FF C0 00 00 00"),
    (axdr.put_u64_parts, (0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF), "15 FF FF FF FF FF FF FF FF"),
    (axdr.put_u64_bytes, (U64_SEQ, 0), "15 01 02 03 04 05 06 07 08"),
    (axdr.put_u64_bytes, (b"\x00" + U64_SEQ, 1), "15 01 02 03 04 05 06 07 08"),
    (axdr.put_u64, (0x3FFFFFFF,), "15 00 00 00 00 3F FF FF FF"),
    (axdr.put_enum, (0,), "16 00"),
    (axdr.put_enum, (255,), "16 FF"),
    (axdr.put_datetime, (DT,), "09 0C " + DT_HEX),
    (axdr.put_datetime, (DT_UNSPEC,), "09 0C " + DT_UNSPEC_HEX),
]

# Untagged writers
RAW_VECTORS = [
    (axdr.put_len, (0,), "00"),
    (axdr.put_len, (0x7F,), "7F"),
    (axdr.put_len, (0x80,), "81 80"),
    (axdr.put_len, (0xFF,), "81 FF"),
    (axdr.put_len, (0x100,), "82 01 00"),
    (axdr.put_len, (0xFFFF,), "82 FF FF"),
    (axdr.raw_u8, (0xC1,), "C1"),
    (axdr.raw_u16, (0xABCD,), "AB CD"),
    (axdr.raw_bytes, (OBIS, 0, 6), "01 00 01 08 00 FF"),
    (axdr.raw_dt12, (DT,), DT_HEX),
]


def _write(fn, args, buf, off=0):
    return fn(buf, off, *args)


def test_vectors_byte_exact_with_guard():
    for fn, args, hexs in VECTORS + RAW_VECTORS:
        want = unhex(hexs)
        n = len(want)
        for off in (0, 3):
            buf = bytearray(b"\xaa" * (off + n + 1))
            assert _write(fn, args, buf, off) == off + n, hexs
            assert buf[off : off + n] == want, (hexs, tohex(buf))
            assert buf[:off] == b"\xaa" * off, hexs
            assert buf[off + n] == 0xAA, hexs  # guard byte past the output


def test_exact_fit_and_too_small_write_nothing():
    for fn, args, hexs in VECTORS + RAW_VECTORS:
        n = len(unhex(hexs))
        assert _write(fn, args, bytearray(n)) == n, hexs
        for size in range(n):
            big = bytearray(b"\xaa" * (n + 2))
            view = memoryview(big)[:size]  # the writer sees `size` bytes; big holds guards
            assert _write(fn, args, view) == -1, (hexs, size)
            assert big == b"\xaa" * (n + 2), (hexs, size, tohex(big))


def test_negative_offset_propagates():
    # A chain of writers needs one check: -1 in gives -1 out and writes nothing.
    for fn, args, hexs in VECTORS + RAW_VECTORS:
        buf = bytearray(b"\xaa" * 400)
        assert _write(fn, args, buf, -1) == -1, hexs
        assert buf == b"\xaa" * 400, hexs


def test_length_out_of_range():
    buf = bytearray(b"\xaa" * 8)
    assert axdr.put_len(buf, 0, 0x10000) == -1
    assert axdr.put_len(buf, 0, -1) == -1
    assert axdr.put_array(buf, 0, 0x10000) == -1
    assert axdr.put_octets(buf, 0, b"", 0, 0x10000) == -1
    assert axdr.put_octets(buf, 0, b"", 0, -1) == -1
    assert buf == b"\xaa" * 8


def test_len_size():
    for n, s in ((0, 1), (0x7F, 1), (0x80, 2), (0xFF, 2), (0x100, 3), (0xFFFF, 3)):
        assert axdr.len_size(n) == s, n


def test_value_end_of_every_vector_and_every_prefix():
    for fn, args, hexs in VECTORS:
        data = unhex(hexs)
        if fn is axdr.put_array or fn is axdr.put_struct:
            if args[0] > 0x100:
                continue
            data += b"\x00" * args[0]  # the elements: null-data each
        n = len(data)
        padded = data + b"\x00\xaa"  # bytes past end must not be read as part of the value
        assert axdr.value_end(data, 0, n) == n, hexs
        assert axdr.value_end(padded, 0, n + 2) == n, hexs
        for i in range(n):
            assert axdr.value_end(padded, 0, i) == -1, (hexs, i)


def _reader(hexs):
    data = unhex(hexs)
    return Reader(data, 0, len(data))


def test_reader_scalars():
    r = _reader("03 01 0F 80 10 80 00 11 FF 12 FF FE 16 07 10 7F FF 0F 7F")
    assert r.tag() == axdr.BOOLEAN and r.u8() == 1
    assert r.tag() == axdr.INTEGER and r.i8() == -128
    assert r.tag() == axdr.LONG and r.i16() == -32768
    assert r.tag() == axdr.UNSIGNED and r.u8() == 255
    assert r.tag() == axdr.LONG_UNSIGNED and r.u16() == 0xFFFE
    assert r.tag() == axdr.ENUM and r.u8() == 7
    assert r.tag() == axdr.LONG and r.i16() == 32767
    assert r.peek() == axdr.INTEGER and r.tag() == axdr.INTEGER and r.i8() == 127
    assert r.remaining() == 0 and r.err == axdr.ERR_NONE
    assert r.peek() == -1 and r.u8() == -1 and r.err == axdr.ERR_TRUNCATED


def test_reader_lengths():
    for hexs, n, used in (("00", 0, 1), ("7F", 127, 1), ("81 80", 128, 2), ("81 05", 5, 2),
                          ("82 01 2C", 300, 3), ("82 FF FF", 0xFFFF, 3)):
        r = _reader(hexs + " AA")
        assert r.length() == n and r.pos == used and r.err == 0, hexs
    for hexs, err in (("", axdr.ERR_TRUNCATED), ("81", axdr.ERR_TRUNCATED),
                      ("82 01", axdr.ERR_TRUNCATED), ("80 00", axdr.ERR_MALFORMED),
                      ("83 00 00 01", axdr.ERR_MALFORMED), ("84 00 00 00 01", axdr.ERR_MALFORMED)):
        r = _reader(hexs)
        assert r.length() == -1 and r.pos == 0 and r.err == err, hexs


def test_reader_u32_i32_small_and_parts():
    r = _reader("06 3F FF FF FF 06 00 BC 61 4E 06 40 00 00 00")
    assert r.tag() == 6 and r.u32() == 0x3FFFFFFF
    assert r.tag() == 6 and r.u32() == 12345678
    assert r.tag() == 6 and r.u32() == -1 and r.err == axdr.ERR_RANGE and r.pos == 11
    r.err = 0
    assert r.u16() == 0x4000 and r.u16() == 0 and r.err == 0
    r = _reader("FF FF FF FF C0 00 00 00 3F FF FF FF 80 00 00 00 BF FF FF FF")
    assert r.i32() == -1 and r.i32() == -0x40000000 and r.i32() == 0x3FFFFFFF and r.err == 0
    assert r.i32() == 0 and r.err == axdr.ERR_RANGE and r.pos == 12
    r.err = 0
    assert r.i16() == -32768 and r.u16() == 0
    assert r.i32() == 0 and r.err == axdr.ERR_RANGE and r.pos == 16  # 0xBFFFFFFF < -2**30
    r.err = 0
    assert r.i16() == -16385 and r.u16() == 0xFFFF
    r = _reader("00 00 01")
    assert r.u32() == -1 and r.err == axdr.ERR_TRUNCATED and r.pos == 0
    r = _reader("00 00 01")
    assert r.i32() == 0 and r.err == axdr.ERR_TRUNCATED and r.pos == 0


def test_reader_64bit_as_parts_and_bytes():
    r = _reader("14 80 00 00 00 00 00 00 00 15 FF FF FF FF FF FF FF FF 14 7F FF FF FF FF FF FF FF")
    assert r.tag() == axdr.LONG64
    assert (r.i16(), r.u16(), r.u16(), r.u16()) == (-0x8000, 0, 0, 0)
    assert r.tag() == axdr.LONG64_UNSIGNED
    assert (r.u16(), r.u16(), r.u16(), r.u16()) == (0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF)
    assert r.tag() == axdr.LONG64
    dst = bytearray(b"\xaa" * 10)
    assert r.copy(dst, 1, 8) == 9 and dst == b"\xaa" + I64_MAX + b"\xaa"
    assert r.copy(dst, 0, 1) == -1 and r.err == axdr.ERR_TRUNCATED
    r = _reader("01 02 03")
    assert r.copy(dst, 8, 3) == -1 and r.pos == 0  # no room in dst: nothing read
    assert dst == b"\xaa" + I64_MAX + b"\xaa"


def test_reader_strings_take_and_datetime():
    dts = " 09 0C " + DT_HEX + " 09 0C " + DT_UNSPEC_HEX
    r = _reader("09 06 01 00 01 08 00 FF 0A 03 41 42 43" + dts)
    assert r.tag() == axdr.OCTET_STRING and r.length() == 6
    p = r.take(6)
    assert p == 2 and r.buf[p : p + 6] == OBIS
    assert r.tag() == axdr.VISIBLE_STRING and r.length() == 3 and r.buf[r.take(3)] == 0x41
    dt = [0] * 10
    assert r.tag() == axdr.OCTET_STRING and r.length() == axdr.DATETIME_LEN
    assert r.dt12(dt) == r.pos and dt == DT
    assert r.tag() == 9 and r.length() == 12 and r.dt12(dt) > 0 and dt == DT_UNSPEC
    assert dt[axdr.DT_DEVIATION] == -0x8000 and r.remaining() == 0 and r.err == 0
    assert r.take(1) == -1 and r.dt12(dt) == -1 and r.err == axdr.ERR_TRUNCATED
    assert axdr.get_dt12(unhex(DT_HEX), 0, 11, dt) == -1
    assert axdr.get_dt12(unhex(DT_HEX), 0, 12, dt) == 12 and dt == DT


def test_datetime_round_trip_all_fields():
    buf = bytearray(12)
    dt = [0] * 10
    for dev in (-0x8000, -720, -1, 0, 1, 60, 720, 0x7FFF):
        src = [0x1234, 12, 31, 7, 23, 59, 59, 99, dev, 0xFF]
        assert axdr.raw_dt12(buf, 0, src) == 12
        assert axdr.get_dt12(buf, 0, 12, dt) == 12 and dt == src, (dev, dt)
    # 0x8000 given unsigned encodes as "not specified" too
    assert axdr.raw_dt12(buf, 0, [0xFFFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x8000, 0xFF])
    assert buf == unhex(DT_UNSPEC_HEX)


def test_round_trip_every_tagged_vector():
    # Each vector decodes with the reader calls the application layer will use.
    for fn, args, hexs in VECTORS:
        r = _reader(hexs)
        t = r.tag()
        if t in (axdr.ARRAY, axdr.STRUCTURE):
            assert r.length() == args[0]
        elif t == axdr.BOOLEAN:
            assert r.u8() == (1 if args[0] else 0)
        elif t == axdr.BIT_STRING:
            nb = r.length()
            p = r.take((nb + 7) >> 3)
            assert nb == args[0] and r.buf[p : r.pos] == args[1][args[2] :]
        elif t in (axdr.INTEGER, axdr.LONG):
            assert (r.i8() if t == axdr.INTEGER else r.i16()) == args[0]
        elif t in (axdr.UNSIGNED, axdr.ENUM, axdr.LONG_UNSIGNED):
            assert (r.u16() if t == axdr.LONG_UNSIGNED else r.u8()) == args[0]
        elif t in (axdr.DOUBLE_LONG, axdr.DOUBLE_LONG_UNSIGNED):
            if len(args) == 2:
                assert r.u16() == args[0] & 0xFFFF and r.u16() == args[1]
            else:
                assert (r.i32() if t == axdr.DOUBLE_LONG else r.u32()) == args[0]
        elif t in (axdr.LONG64, axdr.LONG64_UNSIGNED):
            dst = bytearray(8)
            assert r.copy(dst, 0, 8) == 8
            if len(args) == 4:
                assert dst == bytes(((w >> 8) & 0xFF, w & 0xFF)[j] for w in args for j in (0, 1))
            elif len(args) == 2:
                assert dst == args[0][args[1] : args[1] + 8]
            else:
                v = args[0]
                assert axdr.value_end(dst, 0, 8) >= 0  # any 8 bytes parse as some value
                r2 = Reader(dst, 0, 8)
                r2.u16()
                r2.u16()
                assert r2.i32() == v
        elif t in (axdr.OCTET_STRING, axdr.VISIBLE_STRING):
            n = r.length()
            p = r.take(n)
            if fn is axdr.put_datetime:
                dt = [0] * 10
                assert n == 12 and axdr.get_dt12(r.buf, p, r.end, dt) == r.pos
                assert dt == args[0] or dt[axdr.DT_DEVIATION] == -0x8000
            else:
                assert r.buf[p : p + n] == args[0][args[1] : args[1] + args[2]], hexs
        else:
            assert t == axdr.NULL_DATA
        assert r.remaining() == 0 and r.err == 0, hexs


# **** A nested structure holding every type, for truncation and allocation proofs ****

NESTED_HEX = " ".join(
    (
        "02 15",  # structure of 21
        "00",
        "03 01",
        "04 0C A5 F0",
        "05 80 00 00 00",
        "05 FF FE 1D C0",
        "06 FF FF FF FF",
        "06 00 BC 61 4E",
        "09 06 01 00 01 08 00 FF",
        "0A 03 41 42 43",
        "0F 80",
        "10 80 00",
        "11 FF",
        "12 FF FF",
        "14 80 00 00 00 00 00 00 00",
        "14 7F FF FF FF FF FF FF FF",
        "15 FF FF FF FF FF FF FF FF",
        "15 01 02 03 04 05 06 07 08",
        "16 03",
        "09 0C " + DT_HEX,
        "01 02",  # array of 2 structures
        "02 02 12 00 01 14 FF FF FF FF FF FF FF FF",
        "02 02 12 00 02 15 00 00 00 00 00 00 03 E8",
        "09 81 82 " + tohex(LONG130),
    )
)
NESTED = unhex(NESTED_HEX)


def _encode_nested(buf):
    o = axdr.put_struct(buf, 0, 21)
    o = axdr.put_null(buf, o)
    o = axdr.put_bool(buf, o, True)
    o = axdr.put_bits(buf, o, 12, b"\xa5\xf0", 0)
    o = axdr.put_i32_parts(buf, o, -0x8000, 0)
    o = axdr.put_i32(buf, o, -123456)
    o = axdr.put_u32_parts(buf, o, 0xFFFF, 0xFFFF)
    o = axdr.put_u32(buf, o, 12345678)
    o = axdr.put_octets(buf, o, OBIS, 0, 6)
    o = axdr.put_visible(buf, o, b"ABC", 0, 3)
    o = axdr.put_i8(buf, o, -128)
    o = axdr.put_i16(buf, o, -32768)
    o = axdr.put_u8(buf, o, 255)
    o = axdr.put_u16(buf, o, 0xFFFF)
    o = axdr.put_i64_parts(buf, o, 0x8000, 0, 0, 0)
    o = axdr.put_i64_bytes(buf, o, I64_MAX, 0)
    o = axdr.put_u64_parts(buf, o, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF)
    o = axdr.put_u64_bytes(buf, o, U64_SEQ, 0)
    o = axdr.put_enum(buf, o, 3)
    o = axdr.put_datetime(buf, o, DT)
    o = axdr.put_array(buf, o, 2)
    o = axdr.put_struct(buf, o, 2)
    o = axdr.put_u16(buf, o, 1)
    o = axdr.put_i64(buf, o, -1)
    o = axdr.put_struct(buf, o, 2)
    o = axdr.put_u16(buf, o, 2)
    o = axdr.put_u64(buf, o, 1000)
    return axdr.put_octets(buf, o, LONG130, 0, 130)


def _decode_nested(r, got, dt, dst):
    # Reads NESTED back field by field into the preallocated got/dt/dst; returns the slot count.
    r.attach(NESTED, 0, len(NESTED))
    i = 0
    got[i] = r.tag() * 1000 + r.length()
    got[i + 1] = r.tag()
    got[i + 2] = r.tag() * 1000 + r.u8()
    got[i + 3] = r.tag() * 1000 + r.length()
    got[i + 4] = r.u8() * 256 + r.u8()
    i += 5
    got[i] = r.tag()  # double-long min as signed parts
    got[i + 1] = r.i16()
    got[i + 2] = r.u16()
    got[i + 3] = r.tag()
    got[i + 4] = r.i32()
    got[i + 5] = r.tag()  # double-long-unsigned max as parts
    got[i + 6] = r.u16()
    got[i + 7] = r.u16()
    got[i + 8] = r.tag()
    got[i + 9] = r.u32()
    i += 10
    got[i] = r.tag() * 1000 + r.length()
    got[i + 1] = r.take(6)
    got[i + 2] = r.tag() * 1000 + r.length()
    got[i + 3] = r.take(3)
    got[i + 4] = r.tag() * 1000 + r.i8()
    got[i + 5] = r.tag()
    got[i + 6] = r.i16()
    got[i + 7] = r.tag() * 1000 + r.u8()
    got[i + 8] = r.tag()
    got[i + 9] = r.u16()
    i += 10
    got[i] = r.tag()  # long64 min as parts
    got[i + 1] = r.i16()
    got[i + 2] = r.u16() | r.u16() | r.u16()
    got[i + 3] = r.tag()
    got[i + 4] = r.copy(dst, 0, 8)  # long64 max as bytes
    got[i + 5] = r.tag()
    got[i + 6] = r.u16() & r.u16() & r.u16() & r.u16()  # long64-unsigned max
    got[i + 7] = r.tag()
    got[i + 8] = r.copy(dst, 8, 8)
    got[i + 9] = r.tag() * 1000 + r.u8()
    i += 10
    got[i] = r.tag() * 1000 + r.length()
    got[i + 1] = r.dt12(dt)
    got[i + 2] = r.tag() * 1000 + r.length()  # array of 2: skip the first structure whole
    got[i + 3] = r.skip_value()
    got[i + 4] = r.tag() * 1000 + r.length()
    got[i + 5] = r.tag() * 1000 + r.u16()
    got[i + 6] = r.tag()
    got[i + 7] = r.u16() + r.u16()
    got[i + 8] = r.u32()
    got[i + 9] = r.tag() * 1000 + r.length()
    i += 10
    got[i] = r.take(130)
    got[i + 1] = r.remaining()
    got[i + 2] = r.err
    got[i + 3] = axdr.value_end(NESTED, 0, len(NESTED))
    r.attach(NESTED, 0, len(NESTED))
    got[i + 4] = r.skip_value()
    return i + 5


NESTED_GOT = [
    2021, 0, 3001, 4012, 0xA5F0,
    5, -0x8000, 0, 5, -123456, 6, 0xFFFF, 0xFFFF, 6, 12345678,
    9006, 31, 10003, 39, 15000 - 128, 16, -32768, 17255, 18, 0xFFFF,
    20, -0x8000, 0, 20, 8, 21, 0xFFFF, 21, 16, 22003,
    9012, 104, 1002, 120, 2002, 18002, 21, 0, 1000, 9130,
    137, 0, 0, len(NESTED), len(NESTED),
]  # fmt: skip


def test_encode_nested_every_type():
    buf = bytearray(b"\xaa" * (len(NESTED) + 1))
    assert _encode_nested(buf) == len(NESTED)
    assert buf[: len(NESTED)] == NESTED, tohex(buf)
    assert buf[len(NESTED)] == 0xAA
    for size in range(len(NESTED)):  # every short buffer: -1 through the whole chain
        assert _encode_nested(bytearray(size)) == -1, size


def test_decode_nested_every_type():
    r = Reader()
    got = [0] * 60
    dt = [0] * 10
    dst = bytearray(16)
    n = _decode_nested(r, got, dt, dst)
    assert got[:n] == NESTED_GOT, got[:n]
    assert dt == DT and dst == I64_MAX + U64_SEQ
    assert NESTED[31:37] == OBIS and NESTED[137:267] == LONG130


def test_truncated_nested_at_every_offset():
    r = Reader()
    n = len(NESTED)
    for end in range(n):
        assert axdr.value_end(NESTED, 0, end) == -1, end
        r.attach(NESTED, 0, end)
        assert r.skip_value() == -1 and r.pos == 0 and r.err == axdr.ERR_TRUNCATED, end
    r.attach(NESTED, 0, n)
    assert r.skip_value() == n and r.err == 0
    # inner values skip on their own: the array of two structures starts at offset 104
    assert NESTED[104] == axdr.ARRAY and axdr.value_end(NESTED, 104, n) == 134


def test_malformed_input():
    r = Reader()
    for t in (7, 8, 11, 14, 19, 28, 100, 254):
        data = bytes((t, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        assert axdr.value_end(data, 0, len(data)) == -1, t
        r.attach(data, 0, len(data))
        assert r.skip_value() == -1 and r.err == axdr.ERR_MALFORMED and r.pos == 0, t
    for hexs in ("09 80 00", "01 83 00 00 01 00", "02 02 00 0A 84 00 00 00 00"):
        r.attach(unhex(hexs), 0, len(unhex(hexs)))
        assert r.skip_value() == -1 and r.err == axdr.ERR_MALFORMED, hexs
    # A count larger than the bytes left is refused at once, not walked.
    data = unhex("01 82 FF FF 00 00")
    assert axdr.value_end(data, 0, 6) == -1
    # Other fixed-size Data types still skip (float32/64, date-time, date, time, bcd, dont-care)
    for hexs in ("17 00 00 00 00", "18 00 00 00 00 00 00 00 00", "19 " + DT_HEX,
                 "1A 07 E8 03 0F 05", "1B 0D 2D 1E 32", "0D 12", "FF", "0C 02 C3 A9"):
        assert axdr.value_end(unhex(hexs), 0, len(unhex(hexs))) == len(unhex(hexs)), hexs


def test_deep_nesting_and_long_array_without_recursion():
    need_heap(241 * 1024, block=71 * 1024)  # 64-bit unix port, fresh process, +10 %
    depth = 2000
    data = b"\x02\x01" * depth + b"\x00"
    assert axdr.value_end(data, 0, len(data)) == 2 * depth + 1
    assert axdr.value_end(data, 0, len(data) - 1) == -1
    data = b"\x01\x82\xff\xff" + b"\x00" * 0xFFFF
    assert axdr.value_end(data, 0, len(data)) == len(data)
    assert axdr.value_end(data, 0, len(data) - 1) == -1


def test_random_input_never_raises():
    seed = 1
    buf = bytearray(24)
    r = Reader()
    tags = b"\x00\x01\x02\x03\x04\x05\x06\x09\x0a\x0f\x10\x11\x12\x14\x15\x16\x81\x82\x07"
    for _ in range(1500):
        for i in range(24):
            seed = (seed * 75 + 74) % 65537  # ZX81 generator: small ints on every port
            b = seed & 0xFF
            buf[i] = tags[b % len(tags)] if b & 1 else b & 0x0F
        end = (seed >> 3) % 25
        p = axdr.value_end(buf, 0, end)
        assert p == -1 or 0 < p <= end
        r.attach(buf, 0, end)
        assert r.skip_value() == p


def test_no_alloc_encode_nested():
    buf = bytearray(len(NESTED) + 8)
    assert_no_alloc(_encode_nested, buf, "encode nested structure of every type")
    assert buf[: len(NESTED)] == NESTED
    small = bytearray(40)
    assert_no_alloc(_encode_nested, small, "encode nested structure into a short buffer")


def test_no_alloc_decode_nested():
    r = Reader()
    got = [0] * 60
    dt = [0] * 10
    dst = bytearray(16)
    ctx = (r, got, dt, dst)

    def run(c):
        _decode_nested(c[0], c[1], c[2], c[3])

    assert_no_alloc(run, ctx, "decode nested structure of every type")
    assert got[: len(NESTED_GOT)] == NESTED_GOT and dt == DT


def test_no_alloc_truncated_and_malformed():
    r = Reader()
    bad = unhex("02 03 11 05 09 80 00")

    def run(rd):
        for end in range(len(NESTED)):
            axdr.value_end(NESTED, 0, end)
            rd.attach(NESTED, 0, end)
            rd.skip_value()
        rd.attach(bad, 0, 7)
        rd.skip_value()
        rd.attach(bad, 4, 7)
        rd.length()
        rd.u32()
        rd.i32()

    assert_no_alloc(run, r, "reader on truncated and malformed input")
