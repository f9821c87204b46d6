# CRC-16/X.25 used as HDLC HCS/FCS (IEC 62056-46 6.4.3.8; ISO/IEC 13239 4.2.5).
from fcs16 import fcs16
from support import assert_no_alloc, unhex


def _bitwise(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


def test_check_value():
    # The catalogued check value of CRC-16/X.25 (a.k.a. CRC-16/IBM-SDLC) over "123456789".
    assert fcs16(b"123456789", 0, 9) == 0x906E


def test_table_matches_bitwise_definition():
    for i in range(256):
        assert fcs16(bytes([i]), 0, 1) == _bitwise(bytes([i])), i
    data = bytes(range(256)) * 3
    assert fcs16(data, 0, len(data)) == _bitwise(data)


def test_offset_and_length_without_slicing():
    data = b"xx123456789yy"
    assert fcs16(data, 2, 9) == 0x906E
    assert fcs16(bytearray(data), 2, 9) == 0x906E
    assert fcs16(memoryview(data), 2, 9) == 0x906E
    assert fcs16(data, 5, 0) == 0x0000  # empty: init complemented


def test_published_snrm_frame():
    # SNRM from client 0x10 to server upper address 1 (1-byte), as printed in Gurux's HDLC
    # framing notes: 7E A0 07 03 21 93 0F 01 7E. FCS 0x010F travels low byte first.
    f = unhex("7E A0 07 03 21 93 0F 01 7E")
    assert fcs16(f, 1, 5) == 0x010F
    # Residue property: the CRC over data plus its FCS is the constant 0xF0B8 ^ 0xFFFF.
    assert fcs16(f, 1, 7) == 0x0F47


def test_no_allocation():
    buf = bytearray(range(200))

    def run(b):
        fcs16(b, 0, 200)

    assert_no_alloc(run, buf, "fcs16 over 200 bytes")
