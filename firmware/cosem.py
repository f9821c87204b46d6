# cosem.py: the COSEM object model core: result codes, access modes, the attribute cursor and
# the base class every interface class implements.
# Spec short forms: "BB" = Blue Book (IEC 62056-6-2, interface classes), "GB" = Green Book
# (IEC 62056-5-3, xDLMS services).
#
# Attributes are streamed, never built whole: xdlms asks an object to begin() an attribute
# read, then calls next() repeatedly; each call encodes the next piece (a header, one array
# element, one profile row...) into a staging buffer. Block transfer takes bytes from that
# stream as blocks are requested, so a 3360-row profile costs one row of RAM, not 3360.
from micropython import const

import axdr

# Data-Access-Result, GB 9.5 (xDLMS Data-Access-Result ENUMERATED)
SUCCESS = const(0)
HARDWARE_FAULT = const(1)
TEMPORARY_FAILURE = const(2)
READ_WRITE_DENIED = const(3)
OBJECT_UNDEFINED = const(4)
OBJECT_CLASS_INCONSISTENT = const(9)
OBJECT_UNAVAILABLE = const(11)
TYPE_UNMATCHED = const(12)
SCOPE_OF_ACCESS_VIOLATED = const(13)
DATA_BLOCK_UNAVAILABLE = const(14)
LONG_GET_ABORTED = const(15)
NO_LONG_GET_IN_PROGRESS = const(16)
DATA_BLOCK_NUMBER_INVALID = const(19)
OTHER_REASON = const(250)

# attribute_access_mode, BB 4.4.3 (Association LN, object_list access_rights)
NO_ACCESS = const(0)
READ = const(1)
WRITE = const(2)
READ_WRITE = const(3)

# Selective access selectors of Profile Generic attribute 2, BB 4.3.6
SEL_NONE = const(0)
SEL_RANGE = const(1)
SEL_ENTRY = const(2)

# Piece: next() returns the offset after what it wrote; returning `off` unchanged ends the
# attribute. A piece must fit in the staging buffer (STAGE_SIZE).
STAGE_SIZE = const(512)


class Cursor:
    # Where a streamed attribute read stands; one per server, reused for every request.
    def __init__(self):
        self.obj = None
        self.attr = 0
        self.i = 0  # next piece: 0 = header, then 1-based element/row numbers
        self.n = 0  # element count
        self.first = 0  # selection: first row (1-based), last row, column bitmask
        self.last = 0
        self.cols = 0
        self.ncols = 0
        self.sel = SEL_NONE
        self.all = False  # attribute 0: every readable attribute as one structure
        self.a0 = 0  # attribute 0: header written (1) or not (0)


class Profile:
    # What an association may do (from config): its client SAP, name for messages, and
    # whether it may write the clock.
    def __init__(self, sap, name, may_set_clock):
        self.sap = sap
        self.name = name
        self.may_set_clock = may_set_clock


class CosemObject:
    # BB 4.1: class_id, version, logical_name (6 bytes), attributes 1..n_attrs, methods.
    class_id = 0
    version = 0
    n_attrs = 1
    n_methods = 0

    def __init__(self, ln):
        assert len(ln) == 6
        self.ln = ln

    def access(self, attr, profile):
        # attribute_access_mode for an association; default: everything read-only.
        return READ

    def method_access(self, method, profile):
        return NO_ACCESS

    def selectors(self, attr):
        # Bitmask of selective-access selectors attribute `attr` accepts (1 << selector).
        return 0

    def begin(self, attr, cur, params):
        # Prepare cur for reading attr; `params` is an axdr.Reader on the selective-access
        # parameters (or None). Returns a Data-Access-Result.
        cur.obj = self
        cur.attr = attr
        cur.i = 0
        cur.n = 0
        cur.sel = SEL_NONE
        if attr == 1:
            return SUCCESS
        return self.begin_attr(attr, cur, params)

    def begin_attr(self, attr, cur, params):
        return SUCCESS

    def next(self, cur, out, off):
        # Encode the next piece of cur.attr into out at off; return the new offset.
        if cur.attr == 1:
            if cur.i:
                return off
            cur.i = 1
            return axdr.put_octets(out, off, self.ln, 0, 6)
        return self.next_attr(cur, out, off)

    def next_attr(self, cur, out, off):
        return off

    def set(self, attr, rd, profile):
        # SET of attr from the encoded value at rd (an axdr.Reader). Returns a
        # Data-Access-Result; on failure the attribute is unchanged.
        return READ_WRITE_DENIED


class ScalarMixin:
    # For attributes that are one piece: next_attr() calls put(attr, out, off) once.
    def next_attr(self, cur, out, off):
        if cur.i:
            return off
        cur.i = 1
        return self.put(cur.attr, out, off)


def obis(a, b, c, d, e, f=255):
    # Setup-time helper: OBIS code A-B:C.D.E*F as the 6-byte logical name.
    return bytes((a, b, c, d, e, f))


def parse_obis(text):
    # Setup-time: "1-0:99.1.0*255", "1-0.99.1.0.255" or "1.0.99.1.0.255" -> 6 bytes, or None.
    parts = []
    cur = ""
    for ch in text.strip():
        if ch in "-:.*":
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    if len(parts) == 5:
        parts.append("255")
    if len(parts) != 6:
        return None
    out = bytearray(6)
    for k in range(6):
        if not parts[k].isdigit() or int(parts[k]) > 255:
            return None
        out[k] = int(parts[k])
    return bytes(out)
