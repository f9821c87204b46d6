# app_util.py: a small object table and APDU helpers for the application-layer tests.
import acse
import axdr
import cosem
from association_ln import AssociationLN
from objects import UNIT_WH, Data, Register, SapAssignment
from server import Association, Client, Server
from support import unhex

LDN = b"SCH0000000000017"
PUBLIC = cosem.Profile(16, "public", False)
MANAGEMENT = cosem.Profile(1, "management", True)

# Published AARQs (see test_acse.py for sources)
AARQ_PUBLIC = unhex(
    "60 1D A1 09 06 07 60 85 74 05 08 01 01 BE 10 04 0E 01 00 00 00 06 5F 1F 04 00 00 1E 1D FF FF"
)
AARQ_LLS_12345678 = unhex(
    "60 42 A1 09 06 07 60 85 74 05 08 01 01 A6 0A 04 08 75 74 69 C8 2E 8C 37 84 8A 02 07 80 8B 07"
    " 60 85 74 05 08 02 01 AC 0A 80 08 31 32 33 34 35 36 37 38 BE 10 04 0E 01 00 00 00 06 5F 1F"
    " 04 00 00 52 1D 00 EF"
)


def aarq(conformance=0x00FFFF, max_pdu=0xFFFF, version=6, mech=None, password=None, ctx=1):
    # An AARQ built field by field (LN context ctx, optional LLS).
    body = bytes([0xA1, 9, 6, 7, 0x60, 0x85, 0x74, 5, 8, 1, ctx])
    if mech is not None:
        body += bytes([0x8A, 2, 7, 0x80, 0x8B, 7, 0x60, 0x85, 0x74, 5, 8, 2, mech])
    if password is not None:
        body += bytes([0xAC, len(password) + 2, 0x80, len(password)]) + password
    ini = bytes([1, 0, 0, 0, version, 0x5F, 0x1F, 4, 0,
                 (conformance >> 16) & 0xFF, (conformance >> 8) & 0xFF, conformance & 0xFF,
                 max_pdu >> 8, max_pdu & 0xFF])
    body += bytes([0xBE, len(ini) + 2, 4, len(ini)]) + ini
    return bytes([0x60, len(body)]) + body


def get(cls, ln, attr, iip=0xC1, sel=None):
    # GET-Request-Normal; sel = (selector, encoded parameters) or None.
    b = bytes([0xC0, 1, iip, cls >> 8, cls & 0xFF]) + ln + bytes([attr])
    if sel is None:
        return b + b"\x00"
    return b + bytes([1, sel[0]]) + sel[1]


def get_next(block, iip=0xC1):
    return bytes([0xC0, 2, iip, block >> 24, (block >> 16) & 0xFF, (block >> 8) & 0xFF,
                  block & 0xFF])


def get_list(items, iip=0xC1):
    b = bytes([0xC0, 3, iip, len(items)])
    for cls, ln, attr in items:
        b += bytes([cls >> 8, cls & 0xFF]) + ln + bytes([attr, 0])
    return b


def set_req(cls, ln, attr, value, iip=0xC1):
    return bytes([0xC1, 1, iip, cls >> 8, cls & 0xFF]) + ln + bytes([attr, 0]) + value


def build(password=b"12345678", lockout_ms=60000, pdu_size=1024):
    # Association LN, SAP assignment, LDN, status, one energy register.
    assoc = Association()
    objs = []
    objs.append(AssociationLN(cosem.obis(0, 0, 40, 0, 0), assoc, objs))
    objs.append(SapAssignment(cosem.obis(0, 0, 41, 0, 0), 1, LDN))
    ldn = Data(cosem.obis(0, 0, 42, 0, 0), axdr.OCTET_STRING, 16)
    ldn.raw[:] = LDN
    objs.append(ldn)
    status = Data(cosem.obis(0, 0, 97, 97, 0), axdr.LONG_UNSIGNED, 2)
    status.set_u16(0x0040)
    objs.append(status)
    reg = Register(cosem.obis(1, 1, 1, 8, 0), axdr.LONG64_UNSIGNED, 0, UNIT_WH)
    reg.raw[:] = unhex("00 00 00 01 00 00 00 05")  # 2**32 + 5 Wh: past 32 bits
    objs.append(reg)
    clients = [
        Client(16, acse.MECH_LOWEST, None, PUBLIC),
        Client(1, acse.MECH_LLS, password, MANAGEMENT),
    ]
    return Server(objs, clients, assoc, pdu_size=pdu_size, lockout_ms=lockout_ms)


class Exchange:
    # Calls the server like the link does, with a reusable response buffer.
    def __init__(self, srv, size=1024):
        self.srv = srv
        self.resp = bytearray(size)

    def __call__(self, req, client=16):
        n = self.srv.on_pdu(client, req, len(req), self.resp)
        return bytes(self.resp[:n])
