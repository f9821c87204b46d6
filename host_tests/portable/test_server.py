# Application layer through the server: association control (Green Book 9.3/9.4) and xDLMS
# GET/SET with block transfer, byte-exact APDUs both ways, and the allocation proof.
from app_util import (
    AARQ_LLS_12345678,
    AARQ_PUBLIC,
    LDN,
    Exchange,
    aarq,
    build,
    get,
    get_list,
    get_next,
    set_req,
)
from support import assert_no_alloc, unhex

LN_ASSOC = unhex("00 00 28 00 00 FF")
LN_SAP = unhex("00 00 29 00 00 FF")
LN_LDN = unhex("00 00 2A 00 00 FF")
LN_STATUS = unhex("00 00 61 61 00 FF")
LN_REG = unhex("01 01 01 08 00 FF")


def _assoc(x, req=AARQ_PUBLIC, client=16):
    return x(req, client)


# **** association ****


def test_published_public_aarq_is_accepted_byte_exact():
    x = Exchange(build())
    aare = _assoc(x)
    # conformance 00 1E 1D offered, ours 00 32 1C: 00 12 1C; server max receive PDU 1024.
    assert aare == unhex(
        "61 29 A1 09 06 07 60 85 74 05 08 01 01 A2 03 02 01 00 A3 05 A1 03 02 01 00 BE 10 04 0E"
        " 08 00 06 5F 1F 04 00 00 12 1C 04 00 00 07"
    )
    assert x.srv.assoc.associated and x.srv.assoc.max_send_pdu == 1024


def test_lls_with_right_password_is_accepted():
    x = Exchange(build(password=b"12345678"))
    aare = _assoc(x, AARQ_LLS_12345678, client=1)
    assert aare[17] == 0 and x.srv.assoc.associated and x.srv.assoc.max_send_pdu == 0xEF


def _result_diag(aare):
    # (result, diagnostic) from an AARE built by acse.build_aare
    return aare[17], aare[24]


def test_refusals_carry_result_and_diagnostic():
    srv = build(password=b"secret")
    x = Exchange(srv)
    cases = (
        (aarq(ctx=2), 16, (1, 2)),  # SN referencing: context not supported
        (aarq(ctx=3), 16, (1, 2)),  # ciphered context
        (aarq(mech=5, password=b"x"), 1, (1, 11)),  # HLS mechanism: not recognised
        (aarq(mech=1, password=b"x"), 16, (1, 11)),  # LLS to the lowest-security client
        (aarq(), 1, (1, 14)),  # management without authentication
        (aarq(mech=1), 1, (1, 14)),  # LLS without a password
        (aarq(mech=1, password=b"wrong!"), 1, (1, 13)),  # wrong password
        (aarq(), 77, (1, 1)),  # unknown client SAP
        (b"\x60\x03\xA1\x01\x00", 16, (1, 1)),  # malformed
    )
    for req, client, expect in cases:
        srv.lockout.failures = 0
        aare = x(req, client)
        assert aare[0] == 0x61 and _result_diag(aare) == expect, (req, aare)
        assert not srv.assoc.associated


def test_initiate_errors_are_confirmed_service_errors():
    x = Exchange(build())
    for req, err in ((aarq(version=5), 1), (aarq(conformance=0x000001), 2), (aarq(max_pdu=11), 3)):
        aare = x(req)
        assert _result_diag(aare) == (1, 1) and aare[-8:] == bytes([0xBE, 6, 4, 4, 0x0E, 1, 6, err])


def test_lls_lockout_after_three_failures():
    srv = build(password=b"12345678", lockout_ms=60000)
    x = Exchange(srv)
    srv.poll(1000)
    for _ in range(3):
        assert _result_diag(x(aarq(mech=1, password=b"nope"), 1)) == (1, 13)
    # Locked: even the right password is refused...
    srv.poll(60999)
    assert _result_diag(x(AARQ_LLS_12345678, 1)) == (1, 13)
    # ...until the lockout ends.
    srv.poll(61000)
    assert _result_diag(x(AARQ_LLS_12345678, 1)) == (0, 0)


def test_success_resets_the_failure_count():
    srv = build(password=b"12345678")
    x = Exchange(srv)
    for _ in range(2):
        x(aarq(mech=1, password=b"nope"), 1)
    assert x(AARQ_LLS_12345678, 1)[17] == 0
    for _ in range(2):
        x(aarq(mech=1, password=b"nope"), 1)
    assert x(AARQ_LLS_12345678, 1)[17] == 0


def test_release_and_services_before_association():
    x = Exchange(build())
    assert x(get(1, LN_LDN, 2)) == unhex("D8 01 01")  # not associated
    _assoc(x)
    assert x(unhex("62 03 80 01 00")) == unhex("63 03 80 01 00")
    assert not x.srv.assoc.associated
    assert x(get(1, LN_LDN, 2)) == unhex("D8 01 01")


def test_link_loss_ends_the_association():
    x = Exchange(build())
    _assoc(x)
    x.srv.on_link_lost()
    assert x(get(1, LN_LDN, 2)) == unhex("D8 01 01")


def test_another_client_cannot_use_the_association():
    x = Exchange(build())
    _assoc(x)
    assert x(get(1, LN_LDN, 2), client=1) == unhex("D8 01 01")


# **** GET ****


def test_get_normal_byte_exact():
    x = Exchange(build())
    _assoc(x)
    assert x(get(1, LN_LDN, 2)) == unhex("C4 01 C1 00 09 10") + LDN
    assert x(get(1, LN_LDN, 1)) == unhex("C4 01 C1 00 09 06 00 00 2A 00 00 FF")
    assert x(get(1, LN_STATUS, 2, iip=0x81)) == unhex("C4 01 81 00 12 00 40")
    assert x(get(3, LN_REG, 2)) == unhex("C4 01 C1 00 15 00 00 00 01 00 00 00 05")
    assert x(get(3, LN_REG, 3)) == unhex("C4 01 C1 00 02 02 0F 00 16 1E")
    assert x(get(17, LN_SAP, 2)) == unhex("C4 01 C1 00 01 01 02 02 12 00 01 09 10") + LDN
    assert x(get(15, LN_ASSOC, 3)) == unhex("C4 01 C1 00 02 02 0F 10 12 00 01")
    assert x(get(15, LN_ASSOC, 8)) == unhex("C4 01 C1 00 16 02")


def test_get_errors_byte_exact():
    x = Exchange(build())
    _assoc(x)
    assert x(get(1, unhex("00 00 63 63 63 FF"), 2)) == unhex("C4 01 C1 01 04")  # undefined
    assert x(get(3, LN_LDN, 2)) == unhex("C4 01 C1 01 09")  # class inconsistent
    assert x(get(1, LN_LDN, 3)) == unhex("C4 01 C1 01 04")  # no such attribute
    assert x(get(15, LN_ASSOC, 7)) == unhex("C4 01 C1 01 03")  # secret: never readable
    assert x(get(1, LN_LDN, 2, sel=(1, b"\x00"))) == unhex("C4 01 C1 01 FA")  # no selection
    assert x(get(1, LN_LDN, 2)[:-2]) == unhex("D8 02 03")  # truncated request


def test_attribute_0():
    x = Exchange(build())
    _assoc(x, aarq())  # a client that proposes attribute0-supported-with-get
    out = x(get(3, LN_REG, 0))
    assert out == unhex(
        "C4 01 C1 00 02 03 09 06 01 01 01 08 00 FF 15 00 00 00 01 00 00 00 05 02 02 0F 00 16 1E"
    )
    # The association object: secret (7) left out, 8 of 9 attributes.
    out = x(get(15, LN_ASSOC, 0))
    assert out[4:6] == b"\x02\x08"


def test_attribute_0_needs_the_conformance_bit():
    x = Exchange(build())
    _assoc(x)  # the published AARQ does not propose attribute0-supported-with-get
    assert x(get(3, LN_REG, 0)) == unhex("C4 01 C1 01 03")


def test_get_with_list():
    x = Exchange(build())
    _assoc(x, aarq())
    out = x(get_list([(1, LN_STATUS, 2), (1, LN_LDN, 9), (3, LN_REG, 3)]))
    assert out == unhex("C4 03 C1 03 00 12 00 40 01 04 00 02 02 0F 00 16 1E")


def _blocks(x, first):
    # Drains a block transfer: returns (raw data, block count).
    data = b""
    out = first
    count = 0
    while True:
        assert out[:3] == unhex("C4 02 C1"), out
        count += 1
        block = int.from_bytes(out[4:8], "big")
        assert block == count and out[8] == 0
        n = out[9]
        p = 10
        if n == 0x81:
            n = out[10]
            p = 11
        elif n == 0x82:
            n = (out[10] << 8) | out[11]
            p = 12
        assert p + n == len(out)
        data += out[p:]
        if out[3]:
            return data, count
        out = x(get_next(block))


def test_block_transfer_of_object_list_matches_normal_answer():
    x = Exchange(build())
    _assoc(x, aarq())
    whole = x(get(15, LN_ASSOC, 2))
    assert whole[:4] == unhex("C4 01 C1 00")
    for pdu in (16, 40, 64, 100):
        x = Exchange(build())
        _assoc(x, aarq(max_pdu=pdu))
        first = x(get(15, LN_ASSOC, 2))
        assert len(first) <= pdu
        data, count = _blocks(x, first)
        assert data == whole[4:], pdu
        assert count == (len(data) + pdu - 13) // (pdu - 12) or count > 1


def test_get_next_errors():
    x = Exchange(build())
    _assoc(x, aarq(max_pdu=40))
    assert x(get_next(1)) == unhex("C4 02 C1 01 00 00 00 01 01 10")  # nothing in progress
    first = x(get(15, LN_ASSOC, 2))
    assert first[3] == 0
    assert x(get_next(5)) == unhex("C4 02 C1 01 00 00 00 05 01 13")  # wrong block number
    assert x(get_next(1)) == unhex("C4 02 C1 01 00 00 00 01 01 10")  # aborted by it


def test_new_request_abandons_a_block_transfer():
    x = Exchange(build())
    _assoc(x, aarq(max_pdu=40))
    assert x(get(15, LN_ASSOC, 2))[3] == 0
    assert x(get(1, LN_STATUS, 2)) == unhex("C4 01 C1 00 12 00 40")
    assert x(get_next(1))[-1] == 0x10


# **** SET and unsupported services ****


def test_set_is_refused_and_value_unchanged():
    x = Exchange(build())
    _assoc(x, AARQ_LLS_12345678, client=1)
    before = x(get(3, LN_REG, 2), client=1)
    value = unhex("15 00 00 00 00 00 00 00 00")
    assert x(set_req(3, LN_REG, 2, value), client=1) == unhex("C5 01 C1 03")
    assert x(set_req(1, LN_LDN, 2, unhex("09 01 41")), client=1) == unhex("C5 01 C1 03")
    assert x(set_req(1, unhex("00 00 63 63 63 FF"), 2, unhex("00")), client=1) == unhex("C5 01 C1 04")
    assert x(get(3, LN_REG, 2), client=1) == before


def test_unsupported_services_get_exception_response():
    x = Exchange(build())
    _assoc(x)
    assert x(unhex("C3 01 C1 00 08 00 00 01 00 00 FF 01 00")) == unhex("D8 01 02")  # ACTION
    assert x(unhex("C1 02 C1 00 00 00 01 00 00 00 05 09 01 00")) == unhex("D8 01 02")  # SET block
    assert x(unhex("CB 01 C1")) == unhex("D8 02 02")  # unknown tag
    assert x(unhex("05 01 02 FA 08")) == unhex("D8 02 02")  # SN read request


# **** allocation ****


class _Session:
    # The request sequence of the allocation proof; a class, not a closure: MicroPython
    # allocates (and frees) the argument array when calling a closure over more than a
    # few variables, which heap_lock() reports.
    def __init__(self, srv, resp):
        self.srv = srv
        self.resp = resp
        self.reqs = [
            aarq(max_pdu=64),
            get(1, LN_LDN, 2),
            get(3, LN_REG, 0),
            get(15, LN_ASSOC, 7),
            get(1, unhex("00 00 63 63 63 FF"), 2),
            get_list([(1, LN_STATUS, 2), (1, LN_LDN, 9), (3, LN_REG, 3)]),
            set_req(3, LN_REG, 2, unhex("15 00 00 00 00 00 00 00 00")),
            unhex("C3 01 C1 00 08 00 00 01 00 00 FF 01 00"),
            get(15, LN_ASSOC, 2),  # block transfer, drained below
        ]
        self.nexts = [get_next(k) for k in range(1, 40)]
        self.rlrq = unhex("62 03 80 01 00")
        self.lls = AARQ_LLS_12345678
        self.bad = aarq(mech=1, password=b"nope")
        self.blocks = 0

    def run(self, _):
        srv = self.srv
        resp = self.resp
        for r in self.reqs:
            srv.on_pdu(16, r, len(r), resp)
        k = 0
        while resp[0] == 0xC4 and resp[1] == 2 and resp[3] == 0:
            r = self.nexts[k]
            srv.on_pdu(16, r, len(r), resp)
            k += 1
        self.blocks = k
        srv.on_pdu(16, self.rlrq, len(self.rlrq), resp)
        srv.on_pdu(1, self.bad, len(self.bad), resp)
        srv.on_pdu(1, self.lls, len(self.lls), resp)
        srv.lockout.failures = 0


def test_requests_allocate_nothing():
    srv = build()
    s = _Session(srv, bytearray(1024))
    s.run(0)
    assert s.blocks >= 4 and srv.assoc.associated and srv.assoc.client_sap == 1
    assert_no_alloc(s.run, 0, "association, GET, GET-with-list, attribute 0, block transfer, SET")
