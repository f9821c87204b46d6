# objects.py: the small interface classes: Data (IC 1), Register (IC 3), SAP Assignment (IC 17).
# Spec short forms: "BB" = Blue Book (IEC 62056-6-2) 4.3.1 Data, 4.3.2 Register, 4.4.5 SAP
# assignment. Values are held as raw big-endian bytes with their A-XDR tag, so 32- and 64-bit
# values never become Python ints (31-bit small ints on the boards).
from micropython import const

import axdr
from cosem import CosemObject

# Units, BB 4.3.2 Table 4 (enum)
UNIT_W = const(27)
UNIT_VA = const(28)
UNIT_VAR = const(29)
UNIT_WH = const(30)
UNIT_VAH = const(31)
UNIT_VARH = const(32)
UNIT_NONE = const(255)

# Bytes of a fixed-size value by A-XDR tag (BB 4.1.5 Table 2); 0 = not fixed-size.
_SIZES = b"\x00\x00\x00\x01\x00\x04\x04\x00\x00\x00\x00\x00\x00\x00\x00\x01\x02\x01\x02\x00\x08\x08\x01"


def value_size(tag):
    return _SIZES[tag] if tag < len(_SIZES) else 0


def put_raw(out, off, tag, src, soff, n):
    # A value held as raw bytes: fixed-size types are tag + bytes, strings tag + length + bytes.
    if value_size(tag):
        if off < 0 or off + 1 + n > len(out):
            return -1
        out[off] = tag
        for k in range(n):
            out[off + 1 + k] = src[soff + k]
        return off + 1 + n
    return axdr.put_octets(out, off, src, soff, n) if tag == axdr.OCTET_STRING else \
        axdr.put_visible(out, off, src, soff, n)


class Data(CosemObject):
    # IC 1: attribute 2 value.
    class_id = 1
    version = 0
    n_attrs = 2

    def __init__(self, ln, tag, size):
        CosemObject.__init__(self, ln)
        self.tag = tag
        self.raw = bytearray(size)
        self.size = size  # bytes in use (strings may be shorter than the buffer)

    def set_u16(self, v):
        self.raw[0] = (v >> 8) & 0xFF
        self.raw[1] = v & 0xFF

    def next_attr(self, cur, out, off):
        if cur.i:
            return off
        cur.i = 1
        return put_raw(out, off, self.tag, self.raw, 0, self.size)


class Register(CosemObject):
    # IC 3: attribute 2 value, 3 scaler_unit {scaler integer, unit enum}; method 1 reset.
    class_id = 3
    version = 0
    n_attrs = 3
    n_methods = 1

    def __init__(self, ln, tag, scaler, unit):
        CosemObject.__init__(self, ln)
        self.tag = tag
        self.size = value_size(tag)
        self.raw = bytearray(self.size)
        self.scaler = scaler
        self.unit = unit

    def next_attr(self, cur, out, off):
        if cur.i:
            return off
        cur.i = 1
        if cur.attr == 2:
            return put_raw(out, off, self.tag, self.raw, 0, self.size)
        off = axdr.put_struct(out, off, 2)
        off = axdr.put_i8(out, off, self.scaler)
        return axdr.put_enum(out, off, self.unit)


class SapAssignment(CosemObject):
    # IC 17: attribute 2 SAP_assignment_list, array of {SAP long-unsigned, LDN octet-string};
    # method 1 connect_logical_device. One logical device (the seed: management LD at 1).
    class_id = 17
    version = 0
    n_attrs = 2
    n_methods = 1

    def __init__(self, ln, sap, ldn):
        CosemObject.__init__(self, ln)
        self.sap = sap
        self.ldn = ldn

    def next_attr(self, cur, out, off):
        if cur.i:
            return off
        cur.i = 1
        off = axdr.put_array(out, off, 1)
        off = axdr.put_struct(out, off, 2)
        off = axdr.put_u16(out, off, self.sap)
        return axdr.put_octets(out, off, self.ldn, 0, len(self.ldn))
