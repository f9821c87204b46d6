# ACSE: AARQ parsing and AARE/RLRE building (Green Book 9.3), against published APDUs.
import acse
from support import assert_no_alloc, unhex

# GXDLMSDirector trace (gist knogi/f3d4853b...): public client, LN, no security.
AARQ_PUBLIC = (
    "60 1D A1 09 06 07 60 85 74 05 08 01 01 BE 10 04 0E 01 00 00 00 06 5F 1F 04 00 00 1E 1D FF FF"
)
# dlms-cosem issue #95: LLS with password "12345678" and a calling-AP-title.
AARQ_LLS = (
    "60 42 A1 09 06 07 60 85 74 05 08 01 01 A6 0A 04 08 75 74 69 C8 2E 8C 37 84 8A 02 07 80 8B 07"
    " 60 85 74 05 08 02 01 AC 0A 80 08 31 32 33 34 35 36 37 38 BE 10 04 0E 01 00 00 00 06 5F 1F"
    " 04 00 00 52 1D 00 EF"
)
# hdlc-translator hdlcflow-m203.txt: SN referencing, LLS with an empty password.
AARQ_SN = (
    "60 2E A1 09 06 07 60 85 74 05 08 01 02 8A 02 07 80 8B 07 60 85 74 05 08 02 01 AC 02 80 00 BE"
    " 10 04 0E 01 00 00 00 06 5F 1F 04 00 1C 03 20 FF FF"
)
# dlms-cosem tests (TestInformationResponseFrame): accepted AARE.
AARE_OK = (
    "61 29 A1 09 06 07 60 85 74 05 08 01 01 A2 03 02 01 00 A3 05 A1 03 02 01 00 BE 10 04 0E 08 00"
    " 06 5F 1F 04 00 00 1E 1D 04 C8 00 07"
)


def _parse(hexstr):
    b = unhex(hexstr)
    a = acse.Aarq()
    assert a.parse(b, 0, len(b)) == acse.OK
    return a, b


def test_public_aarq():
    a, _ = _parse(AARQ_PUBLIC)
    assert a.context == acse.CONTEXT_LN and a.mechanism == acse.MECH_ABSENT
    assert a.has_initiate and not a.ciphered and a.pw_len == -1
    assert (a.dlms_version, a.conformance, a.max_pdu) == (6, 0x001E1D, 0xFFFF)


def test_lls_aarq_with_password():
    a, b = _parse(AARQ_LLS)
    assert a.mechanism == acse.MECH_LLS and a.auth_required
    assert bytes(b[a.pw_pos : a.pw_pos + a.pw_len]) == b"12345678"
    assert a.password_equals(b, b"12345678")
    assert not a.password_equals(b, b"12345679")
    assert not a.password_equals(b, b"1234567")
    assert not a.password_equals(b, b"123456789")
    assert (a.conformance, a.max_pdu) == (0x00521D, 0x00EF)


def test_sn_context_is_seen_as_such():
    a, b = _parse(AARQ_SN)
    assert a.context == 2 and a.mechanism == acse.MECH_LLS and a.pw_len == 0
    assert a.password_equals(b, b"") and not a.password_equals(b, b"x")


def test_malformed_aarqs_are_rejected_at_every_truncation():
    b = unhex(AARQ_LLS)
    a = acse.Aarq()
    for n in range(len(b)):
        assert a.parse(b, 0, n) == acse.MALFORMED, n
    bad = bytearray(b)
    bad[1] += 1  # length says more than there is
    assert a.parse(bad, 0, len(bad)) == acse.MALFORMED


def test_accepted_aare_byte_exact():
    out = bytearray(64)
    n = acse.build_aare(out, acse.ACCEPTED, acse.DIAG_NULL, 0x001E1D, 0x04C8)
    assert bytes(out[:n]) == unhex(AARE_OK)


def test_refused_aare_forms():
    out = bytearray(64)
    n = acse.build_aare(out, acse.REJECTED_PERMANENT, acse.DIAG_AUTH_FAILURE, 0, 0)
    assert bytes(out[:n]) == unhex(
        "61 17 A1 09 06 07 60 85 74 05 08 01 01 A2 03 02 01 01 A3 05 A1 03 02 01 0D"
    )
    n = acse.build_aare(out, acse.REJECTED_PERMANENT, acse.DIAG_NO_REASON, 0, 0,
                        acse.INIT_DLMS_VERSION_TOO_LOW)
    assert bytes(out[n - 8 : n]) == unhex("BE 06 04 04 0E 01 06 01")
    assert out[1] == n - 2


def test_rlrq_rlre():
    b = unhex("62 03 80 01 00")
    assert acse.parse_rlrq(b, 0, len(b)) == acse.OK
    assert acse.parse_rlrq(b, 0, 4) == acse.MALFORMED
    out = bytearray(8)
    assert bytes(out[: acse.build_rlre(out)]) == unhex("63 03 80 01 00")


def test_parse_and_build_allocate_nothing():
    b = unhex(AARQ_LLS)
    a = acse.Aarq()
    out = bytearray(64)
    secret = b"12345678"

    def run(x):
        a.parse(b, 0, len(b))
        a.password_equals(b, secret)
        acse.build_aare(out, acse.ACCEPTED, acse.DIAG_NULL, a.conformance, 512)

    assert_no_alloc(run, 0, "AARQ parse + AARE build")
