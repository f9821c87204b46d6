# acse.py: ACSE APDUs of the DLMS/COSEM application layer: AARQ parsing, AARE and RLRE building,
# with the xDLMS InitiateRequest/InitiateResponse carried in user-information.
# Spec short forms: "GB" = DLMS UA Green Book (IEC 62056-5-3), clause 9.3 (ACSE, BER encoded)
# and 9.5 (xDLMS APDUs, A-XDR encoded); "X.227" = ISO ACSE.
# Everything writes into caller-owned buffers and parses by offset; nothing allocates after
# the Aarq object is made.
from micropython import const

# APDU tags, GB 9.5 (BER [APPLICATION n]).
AARQ = const(0x60)
AARE = const(0x61)
RLRQ = const(0x62)
RLRE = const(0x63)

# AARQ/AARE components (BER context tags), GB 9.3.2.
_PROTOCOL_VERSION = const(0x80)
_APP_CONTEXT = const(0xA1)
_RESULT = const(0xA2)
_DIAGNOSTIC = const(0xA3)
_ACSE_REQUIREMENTS = const(0x8A)
_MECHANISM = const(0x8B)
_AUTH_VALUE = const(0xAC)
_USER_INFO = const(0xBE)
_OCTET_STRING = const(0x04)
_OBJECT_ID = const(0x06)

# Object identifier prefix {joint-iso-ccitt(2) country(16) country-name(756) identified-
# organization(5) DLMS-UA(8)} = 60 85 74 05 08, then 01 x for application contexts (GB 9.4.2.2.2)
# and 02 x for authentication mechanisms (GB 9.4.2.2.3).
CONTEXT_LN = const(1)  # logical name referencing, no ciphering: the only one we serve
MECH_LOWEST = const(0)
MECH_LLS = const(1)
MECH_ABSENT = const(-1)
UNKNOWN = const(99)  # a context or mechanism not in the DLMS-UA arc

# xDLMS, GB 9.5 (A-XDR).
_INITIATE_REQUEST = const(0x01)
_INITIATE_RESPONSE = const(0x08)
_CONFIRMED_SERVICE_ERROR = const(0x0E)
_CONFORMANCE_TAG1 = const(0x5F)  # [APPLICATION 31] IMPLICIT BIT STRING (SIZE(24))
_CONFORMANCE_TAG2 = const(0x1F)
_VAA_NAME_LN = const(0x0007)

# association-result, X.227 / GB 9.3.2
ACCEPTED = const(0)
REJECTED_PERMANENT = const(1)
REJECTED_TRANSIENT = const(2)
# acse-service-user diagnostics
DIAG_NULL = const(0)
DIAG_NO_REASON = const(1)
DIAG_CONTEXT_NOT_SUPPORTED = const(2)
DIAG_MECHANISM_NOT_RECOGNISED = const(11)
DIAG_MECHANISM_REQUIRED = const(12)
DIAG_AUTH_FAILURE = const(13)
DIAG_AUTH_REQUIRED = const(14)
# ConfirmedServiceError initiateError values, GB 9.5 (ServiceError: initiate [6])
INIT_OTHER = const(0)
INIT_DLMS_VERSION_TOO_LOW = const(1)
INIT_INCOMPATIBLE_CONFORMANCE = const(2)
INIT_PDU_SIZE_TOO_SHORT = const(3)

# Parse status
OK = const(0)
MALFORMED = const(1)


class Aarq:
    # What an AARQ asked for; offsets point into the caller's request buffer.
    def __init__(self):
        self._len = 0  # scratch for _ber_len (set here so parsing adds no attribute)
        self.clear()

    def clear(self):
        self.context = UNKNOWN
        self.mechanism = MECH_ABSENT
        self.auth_required = False
        self.pw_pos = 0
        self.pw_len = -1  # -1: no calling-authentication-value
        self.has_initiate = False
        self.ciphered = False  # a glo/ded-initiate-request or a dedicated key
        self.dlms_version = 0
        self.conformance = 0  # 24 bits, bit 0 of the BER bit string = bit 23 here
        self.max_pdu = 0  # client-max-receive-pdu-size; 0 means no limit

    def parse(self, buf, pos, end):
        # GB 9.3.2 AARQ: 60 len { components }. Unknown components are skipped.
        self.clear()
        if end - pos < 2 or buf[pos] != AARQ:
            return MALFORMED
        p = _ber_len(buf, pos + 1, end, self)
        if p < 0 or p + self._len != end:
            return MALFORMED
        while p < end:
            tag = buf[p]
            q = _ber_len(buf, p + 1, end, self)
            if q < 0 or q + self._len > end:
                return MALFORMED
            n = self._len
            if tag == _APP_CONTEXT:
                self.context = _oid_tail(buf, q, n, 1)
            elif tag == _MECHANISM:
                self.mechanism = _oid_last(buf, q, n, 2)
            elif tag == _ACSE_REQUIREMENTS:
                # BIT STRING: unused-bits byte, then bit 0 = authentication functional unit
                self.auth_required = n >= 2 and buf[q + 1] & 0x80 != 0
            elif tag == _AUTH_VALUE:
                # Authentication-value CHOICE charstring [0] (0x80) or bitstring [1] (0x81)
                if n < 2 or buf[q] & 0xFE != 0x80:
                    return MALFORMED
                r = _ber_len(buf, q + 1, q + n, self)
                if r < 0 or r + self._len != q + n:
                    return MALFORMED
                self.pw_pos = r
                self.pw_len = self._len
            elif tag == _USER_INFO:
                if not self._user_info(buf, q, q + n):
                    return MALFORMED
            p = q + n
        return OK

    def _user_info(self, buf, p, end):
        # user-information: OCTET STRING holding the A-XDR xDLMS-Initiate.request, GB 9.5:
        # 01 dedicated-key? response-allowed(default) qos? dlms-version conformance max-pdu
        if end - p < 2 or buf[p] != _OCTET_STRING:
            return False
        q = _ber_len(buf, p + 1, end, self)
        if q < 0 or q + self._len != end or q == end:  # empty: no InitiateRequest tag
            return False
        if buf[q] != _INITIATE_REQUEST:
            self.ciphered = True  # glo-/ded-initiate-request: ciphered contexts, not served
            self.has_initiate = True
            return True
        q += 1
        if q < end and buf[q]:  # dedicated-key present
            if q + 1 >= end:
                return False
            self.ciphered = True
            q += 2 + buf[q + 1]
        else:
            q += 1
        for _ in range(2):  # response-allowed (default TRUE), proposed-quality-of-service
            if q >= end:
                return False
            q += 2 if buf[q] else 1
        if q + 10 != end:
            return False
        if buf[q + 1] != _CONFORMANCE_TAG1 or buf[q + 2] != _CONFORMANCE_TAG2 or buf[q + 3] != 4:
            return False
        self.dlms_version = buf[q]
        self.conformance = (buf[q + 5] << 16) | (buf[q + 6] << 8) | buf[q + 7]
        self.max_pdu = (buf[q + 8] << 8) | buf[q + 9]
        self.has_initiate = True
        return True

    def password_equals(self, buf, secret):
        # Constant time in the length of the secret: every byte is compared, a length
        # mismatch only changes the outcome, not the work done.
        n = self.pw_len
        diff = 0 if n == len(secret) else 1
        p = self.pw_pos
        for k in range(len(secret)):
            b = buf[p + k] if k < n else 0
            diff |= b ^ secret[k]
        return diff == 0 and n >= 0


def _ber_len(buf, p, end, out):
    # BER definite length at buf[p]: short form, 0x81 nn or 0x82 nn nn. Stores it in
    # out._len and returns the position after it, or -1.
    if p >= end:
        return -1
    b = buf[p]
    if b < 0x80:
        out._len = b
        return p + 1
    if b == 0x81 and p + 1 < end:
        out._len = buf[p + 1]
        return p + 2
    if b == 0x82 and p + 2 < end:
        out._len = (buf[p + 1] << 8) | buf[p + 2]
        return p + 3
    return -1


_DLMS_OID = b"\x60\x85\x74\x05\x08"


def _oid_last(buf, p, n, arc):
    # Implicitly tagged OID body: 60 85 74 05 08 <arc> <id> -> id, else UNKNOWN.
    if n != 7:
        return UNKNOWN
    for k in range(5):
        if buf[p + k] != _DLMS_OID[k]:
            return UNKNOWN
    if buf[p + 5] != arc:
        return UNKNOWN
    return buf[p + 6]


def _oid_tail(buf, p, n, arc):
    # Explicitly tagged OID: 06 07 <body>.
    if n != 9 or buf[p] != _OBJECT_ID or buf[p + 1] != 7:
        return UNKNOWN
    return _oid_last(buf, p + 2, 7, arc)


# **** building ****


def build_aare(out, result, diagnostic, conformance, max_pdu, init_error=-1):
    # GB 9.3.2 AARE for LN referencing without ciphering. Accepted: user-information carries
    # the InitiateResponse (negotiated conformance, server-max-receive-pdu-size, VAA name 0x0007).
    # init_error >= 0: it carries a ConfirmedServiceError (initiateError) instead. A refusal by
    # the ACSE (context, mechanism, authentication) carries no user-information. Returns length.
    p = 2
    p = _put(out, p, _APP_CTX_LN)
    p = _put(out, p, b"\xA2\x03\x02\x01")
    out[p] = result
    p += 1
    p = _put(out, p, b"\xA3\x05\xA1\x03\x02\x01")  # acse-service-user diagnostic
    out[p] = diagnostic
    p += 1
    if init_error >= 0:
        p = _put(out, p, b"\xBE\x06\x04\x04\x0E\x01\x06")  # ConfirmedServiceError, initiate
        out[p] = init_error
        p += 1
    elif result == ACCEPTED:
        p = _put(out, p, b"\xBE\x10\x04\x0E\x08\x00\x06\x5F\x1F\x04\x00")
        out[p] = (conformance >> 16) & 0xFF
        out[p + 1] = (conformance >> 8) & 0xFF
        out[p + 2] = conformance & 0xFF
        out[p + 3] = (max_pdu >> 8) & 0xFF
        out[p + 4] = max_pdu & 0xFF
        out[p + 5] = _VAA_NAME_LN >> 8
        out[p + 6] = _VAA_NAME_LN & 0xFF
        p += 7
    out[0] = AARE
    out[1] = p - 2
    return p


def parse_rlrq(buf, pos, end):
    # GB 9.3.2 RLRQ: 62 len [80 01 reason] [BE user-information]; only its form is checked.
    if end - pos < 2 or buf[pos] != RLRQ or buf[pos + 1] != end - pos - 2:
        return MALFORMED
    return OK


def build_rlre(out, reason=0):
    # GB 9.3.2 RLRE: 63 03 80 01 <reason>, release-response-reason normal (0).
    out[0] = RLRE
    out[1] = 3
    out[2] = 0x80
    out[3] = 1
    out[4] = reason
    return 5


_APP_CTX_LN = b"\xA1\x09\x06\x07\x60\x85\x74\x05\x08\x01\x01"


def _put(out, p, const_bytes):
    for k in range(len(const_bytes)):
        out[p + k] = const_bytes[k]
    return p + len(const_bytes)
