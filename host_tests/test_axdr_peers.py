# CPython only: firmware/axdr.py checked byte for byte against two independent DLMS stacks.
# Gurux (gurux_dlms, _GXCommon.setData/getData) encodes and decodes every type; dlms_cosem
# (DlmsDataParser, encode_variable_integer) parses our output and encodes lengths. Values are
# drawn at the boundaries and at random; 32/64-bit ones reach our writers as 16-bit parts or bytes.
import datetime
import random

import pytest
from dlms_cosem import dlms_data
from gurux_dlms import GXByteBuffer, GXDateTime, GXDLMSSettings
from gurux_dlms.enums import ClockStatus, DataType
from gurux_dlms.internal._GXCommon import _GXCommon
from gurux_dlms.internal._GXDataInfo import _GXDataInfo

import axdr
from test_axdr import DT, I64_MAX, LONG130, NESTED, OBIS, U64_SEQ


def gurux(data_type, value):
    bb = GXByteBuffer()
    _GXCommon.setData(None, bb, data_type, value)
    return bytes(bb.array())


def ours(fn, *args):
    buf = bytearray(0x10010)
    n = fn(buf, 0, *args)
    assert n > 0
    return bytes(buf[:n])


def words(v, count):
    # v (two's complement) as `count` 16-bit parts, most significant first.
    return tuple((v >> (16 * i)) & 0xFFFF for i in reversed(range(count)))


def bits_str(nbits, data):
    return "".join("1" if data[i >> 3] & (0x80 >> (i & 7)) else "0" for i in range(nbits))


RNG = random.Random(62056)
I32 = [-(2**31), -(2**30) - 1, -(2**30), -1, 0, 1, 2**30 - 1, 2**30, 2**31 - 1]
U32 = [0, 1, 2**30 - 1, 2**30, 2**31, 2**32 - 1]
I64 = [-(2**63), -(2**32), -1, 0, 1, 2**32, 2**63 - 1]
U64 = [0, 1, 2**32, 2**63, 2**64 - 1]
I32 += [RNG.randrange(-(2**31), 2**31) for _ in range(50)]
U32 += [RNG.randrange(0, 2**32) for _ in range(50)]
I64 += [RNG.randrange(-(2**63), 2**63) for _ in range(50)]
U64 += [RNG.randrange(0, 2**64) for _ in range(50)]
SMALL = [-(2**30), -123456, -1, 0, 1, 1000, 2**30 - 1]


@pytest.mark.parametrize("v", I32)
def test_double_long(v):
    want = gurux(DataType.INT32, v)
    assert ours(axdr.put_i32_parts, *words(v, 2)) == want
    hi = v >> 16  # signed hi16, as the firmware would hold it
    assert ours(axdr.put_i32_parts, hi, v & 0xFFFF) == want
    if -(2**30) <= v < 2**30:
        assert ours(axdr.put_i32, v) == want


@pytest.mark.parametrize("v", U32)
def test_double_long_unsigned(v):
    want = gurux(DataType.UINT32, v)
    assert ours(axdr.put_u32_parts, *words(v, 2)) == want
    if v < 2**30:
        assert ours(axdr.put_u32, v) == want


@pytest.mark.parametrize("v", I64)
def test_long64(v):
    want = gurux(DataType.INT64, v)
    assert ours(axdr.put_i64_parts, *words(v, 4)) == want
    assert ours(axdr.put_i64_bytes, v.to_bytes(8, "big", signed=True), 0) == want
    assert want == dlms_data.Long64Data(v).to_bytes()


@pytest.mark.parametrize("v", U64)
def test_long64_unsigned(v):
    want = gurux(DataType.UINT64, v)
    assert ours(axdr.put_u64_parts, *words(v, 4)) == want
    assert ours(axdr.put_u64_bytes, b"\x00" + v.to_bytes(8, "big"), 1) == want
    assert want == dlms_data.UnsignedLong64Data(v).to_bytes()


@pytest.mark.parametrize("v", SMALL)
def test_small_int_conveniences(v):
    assert ours(axdr.put_i32, v) == gurux(DataType.INT32, v)
    assert ours(axdr.put_i64, v) == gurux(DataType.INT64, v)
    if v >= 0:
        assert ours(axdr.put_u32, v) == gurux(DataType.UINT32, v)
        assert ours(axdr.put_u64, v) == gurux(DataType.UINT64, v)


def test_8_and_16_bit_types_every_value():
    for v in range(-128, 128):
        want = gurux(DataType.INT8, v)
        assert ours(axdr.put_i8, v) == want == dlms_data.IntegerData(v).to_bytes()
    for v in range(256):
        assert ours(axdr.put_u8, v) == gurux(DataType.UINT8, v)
        assert ours(axdr.put_enum, v) == gurux(DataType.ENUM, v)
    for v in list(range(-32768, 32768, 97)) + [-32768, -1, 32767]:
        want = gurux(DataType.INT16, v)
        assert ours(axdr.put_i16, v) == want == dlms_data.LongData(v).to_bytes()
    for v in list(range(0, 65536, 97)) + [65535]:
        assert ours(axdr.put_u16, v) == gurux(DataType.UINT16, v)
    assert ours(axdr.put_null) == gurux(DataType.NONE, None)
    for v in (True, False):
        assert ours(axdr.put_bool, v) == gurux(DataType.BOOLEAN, v)


LENGTHS = [0, 1, 0x7F, 0x80, 0x81, 0xFF, 0x100, 0x101, 0x1234, 0xFFFF]
LENGTHS += [RNG.randrange(0, 0x10000) for _ in range(20)]


@pytest.mark.parametrize("n", LENGTHS)
def test_lengths_strings_and_counts(n):
    data = bytes(RNG.randrange(256) for _ in range(n))
    text = "".join(chr(0x20 + (b % 0x5F)) for b in data)
    assert ours(axdr.put_len, n) == dlms_data.encode_variable_integer(n)
    assert ours(axdr.put_octets, data, 0, n) == gurux(DataType.OCTET_STRING, data)
    assert ours(axdr.put_visible, text.encode(), 0, n) == gurux(DataType.STRING, text)
    assert ours(axdr.put_array, n) + b"\x00" * n == gurux(DataType.ARRAY, [None] * n)
    # bit-string: the count is in bits, so the byte length differs from the count
    nbits = n if n < 0x2000 else n & 0x1FFF
    raw = data[: (nbits + 7) // 8] + b"\x00"
    raw = bytes(raw[i] & (0xFF if 8 * i + 8 <= nbits else (0xFF00 >> (nbits & 7)) & 0xFF)
                for i in range((nbits + 7) // 8))
    assert ours(axdr.put_bits, nbits, raw, 0) == gurux(DataType.BITSTRING, bits_str(nbits, raw))


@pytest.mark.parametrize("dev", [-720, -60, 0, 60, 120, 720])
def test_datetime(dev):
    # Gurux writes deviation = -(UTC offset) unless useUtc2NormalTime; we write what we are given.
    tz = datetime.timezone(datetime.timedelta(minutes=-dev))
    g = GXDateTime(datetime.datetime(2024, 3, 15, 13, 45, 30, 500000, tzinfo=tz))
    g.dayOfWeek = 5
    g.status = ClockStatus.DAYLIGHT_SAVE_ACTIVE
    dt = list(DT)
    dt[axdr.DT_DEVIATION] = dev
    assert ours(axdr.put_datetime, dt) == gurux(DataType.OCTET_STRING, g)


def gurux_decode(data):
    bb = GXByteBuffer(data)
    info = _GXDataInfo()
    value = _GXCommon.getData(None, bb, info)
    assert info.complete and bb.position == len(data)
    return value


def test_gurux_decodes_nested_every_type():
    v = gurux_decode(NESTED)
    assert len(v) == 21
    assert v[0] is None and v[1] is True and str(v[2]) == "101001011111"
    assert v[3:7] == [-(2**31), -123456, 2**32 - 1, 12345678]
    assert bytes(v[7]) == OBIS and v[8] == "ABC"
    assert v[9:13] == [-128, -32768, 255, 65535]
    assert v[13] == -(2**63) and v[14] == int.from_bytes(I64_MAX, "big")
    assert v[15] == 2**64 - 1 and v[16] == int.from_bytes(U64_SEQ, "big")
    assert int(v[17]) == 3
    g = _GXCommon.changeType(GXDLMSSettings(True, None), bytes(v[18]), DataType.DATETIME)
    assert g.value == datetime.datetime(
        2024, 3, 15, 13, 45, 30, 500000, datetime.timezone(datetime.timedelta(minutes=60)))
    assert g.dayOfWeek == 5 and g.status == 0x80  # deviation -60: gurux reads UTC+01:00
    assert [list(s) for s in v[19]] == [[1, -1], [2, 1000]]
    assert bytes(v[20]) == LONG130


def test_dlms_cosem_parses_our_encodings():
    buf = bytearray(64)
    o = axdr.put_struct(buf, 0, 8)
    o = axdr.put_u32_parts(buf, o, 0xFFFF, 0xFFFF)
    o = axdr.put_i32_parts(buf, o, -0x8000, 0)
    o = axdr.put_i64_parts(buf, o, 0x8000, 0, 0, 0)
    o = axdr.put_u64_parts(buf, o, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF)
    o = axdr.put_octets(buf, o, OBIS, 0, 6)
    o = axdr.put_visible(buf, o, b"ABC", 0, 3)
    o = axdr.put_i16(buf, o, -2)
    o = axdr.put_enum(buf, o, 9)
    (s,) = dlms_data.DlmsDataParser().parse(bytes(buf[:o]))
    assert s.to_python() == [2**32 - 1, -(2**31), -(2**63), 2**64 - 1, OBIS, "ABC", -2, 9]


def _random_value(rng, depth):
    kinds = [DataType.NONE, DataType.BOOLEAN, DataType.INT8, DataType.INT16, DataType.INT32,
             DataType.INT64, DataType.UINT8, DataType.UINT16, DataType.UINT32, DataType.UINT64,
             DataType.ENUM, DataType.OCTET_STRING, DataType.STRING, DataType.BITSTRING]
    if depth < 3:
        kinds += [DataType.STRUCTURE, DataType.ARRAY]
    t = rng.choice(kinds)
    if t in (DataType.STRUCTURE, DataType.ARRAY):
        return t, [_random_value(rng, depth + 1) for _ in range(rng.choice((0, 1, 3, 130)))]
    bits = {DataType.INT8: 8, DataType.INT16: 16, DataType.INT32: 32, DataType.INT64: 64}
    ubits = {DataType.UINT8: 8, DataType.ENUM: 8, DataType.UINT16: 16, DataType.UINT32: 32,
             DataType.UINT64: 64}
    if t in bits:
        return t, rng.randrange(-(2 ** (bits[t] - 1)), 2 ** (bits[t] - 1))
    if t in ubits:
        return t, rng.randrange(0, 2 ** ubits[t])
    n = rng.choice((0, 5, 127, 128, 300))
    if t == DataType.OCTET_STRING:
        return t, bytes(rng.randrange(256) for _ in range(n))
    if t == DataType.STRING:
        return t, "x" * n
    if t == DataType.BITSTRING:
        return t, "".join(rng.choice("01") for _ in range(n))
    return t, (rng.random() < 0.5) if t == DataType.BOOLEAN else None


def _gurux_tree(bb, node):
    t, v = node
    if t in (DataType.STRUCTURE, DataType.ARRAY):
        bb.setUInt8(t)
        _GXCommon.setObjectCount(len(v), bb)
        for child in v:
            _gurux_tree(bb, child)
    else:
        _GXCommon.setData(None, bb, t, v)


def test_reader_skips_random_gurux_trees():
    rng = random.Random(7)
    r = axdr.Reader()
    for _ in range(60):
        bb = GXByteBuffer()
        _gurux_tree(bb, (DataType.STRUCTURE, [_random_value(rng, 1) for _ in range(4)]))
        data = bytes(bb.array()) + b"\xaa"
        n = len(data) - 1
        assert axdr.value_end(data, 0, n + 1) == n
        for end in (0, 1, n // 2, n - 1):
            assert axdr.value_end(data, 0, end) == -1
        r.attach(data, 0, n)
        assert r.tag() == axdr.STRUCTURE and r.length() == 4
        for _ in range(4):
            assert r.skip_value() > 0
        assert r.pos == n and r.err == 0
