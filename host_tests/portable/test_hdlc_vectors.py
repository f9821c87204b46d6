# Byte-exact HDLC exchanges from published traces of real meters and clients, replayed
# against our link: the request goes in whole, split and byte by byte; our answer must be the
# published answer byte for byte. Where an answer carries an APDU, a scripted upper layer
# returns the published APDU, so what is checked is the framing around it.
from hdlc_util import LLC_RSP, MODES, SNRM, EchoApp, feed, frame, new_link, parse
from support import tohex, unhex

# GXDLMSDirector trace, 1-byte addresses (gist knogi/f3d4853b..., also pastebin iKKsDimZ).
SNRM_1010 = "7E A0 14 03 21 93 63 E7 81 80 08 05 02 03 F2 06 02 03 F2 03 F0 7E"
UA_1010 = (
    "7E A0 20 21 03 73 73 98 81 80 14 05 02 03 F2 06 02 03 F2 07 04 00 00 00 01 08 04 00 00 00"
    " 01 0A 75 7E"
)
AARQ_1 = (
    "7E A0 2B 03 21 10 FB AF E6 E6 00 60 1D A1 09 06 07 60 85 74 05 08 01 01 BE 10 04 0E 01 00"
    " 00 00 06 5F 1F 04 00 00 1E 1D FF FF C5 E4 7E"
)
AARE_1 = (
    "7E A0 39 21 03 30 2E D2 E6 E7 00 61 82 00 29 A1 09 06 07 60 85 74 05 08 01 01 A2 03 02 01"
    " 00 A3 05 A1 03 02 01 00 BE 10 04 0E 08 00 06 5F 1F 04 00 00 10 1D 03 EF 00 07 44 36 7E"
)
# Kamstrup meter, 1-byte addresses (UtilitechAS/amsreader-firmware KamstrupPullCommunicator).
DISC_1 = "7E A0 07 03 21 53 03 C7 7E"
UA_DISC_1 = "7E A0 07 21 03 73 01 40 7E"
# Meter log, 2-byte server address 02 57 (tohasan/hdlc-translator hdlcflow-aln.txt).
GET_ALN = "7E A0 1A 02 57 21 32 4F 91 E6 E6 00 C0 01 C1 00 0F 00 00 28 00 00 FF 02 00 91 53 7E"
GET_RSP_ALN = "7E A0 19 21 02 57 52 51 5B E6 E7 00 C4 02 C1 00 00 00 00 01 00 02 01 50 99 F4 7E"
# Green Book / DLMS UA example, 4-byte address, no parameters (epri-dev UnitTest-HDLC-Packet).
SNRM_4 = "7E A0 0A 00 02 00 23 21 93 18 71 7E"


class ScriptedApp(EchoApp):
    # Answers with a fixed APDU.
    def __init__(self, apdu):
        EchoApp.__init__(self)
        self.apdu = apdu

    def on_pdu(self, client, req, n, resp):
        self.pdus += 1
        self.req = bytes(req[:n])
        for i in range(len(self.apdu)):
            resp[i] = self.apdu[i]
        return len(self.apdu)


def _apdu_of(frame_hex, llc=LLC_RSP):
    info = parse(unhex(frame_hex))[4]
    assert info[:3] == llc
    return info[3:]


def test_snrm_with_parameters_gets_published_ua():
    for mode in MODES:
        link = new_link(max_info_tx=1010, max_info_rx=1010)
        out = feed(link, unhex(SNRM_1010), mode)
        assert out == [unhex(UA_1010)], (mode, [tohex(f) for f in out])
        assert link.max_tx == 1010 and link.max_rx == 1010 and link.win_tx == 1


def test_aarq_frame_gets_published_aare_frame():
    for mode in MODES:
        app = ScriptedApp(_apdu_of(AARE_1))
        link = new_link(app, max_info_tx=1010, max_info_rx=1010)
        feed(link, unhex(SNRM_1010))
        out = feed(link, unhex(AARQ_1), mode)
        assert out == [unhex(AARE_1)], (mode, [tohex(f) for f in out])
        # The upper layer got the AARQ without the LLC header.
        assert app.req == _apdu_of(AARQ_1, b"\xE6\xE6\x00")


def test_disc_gets_published_ua():
    for mode in MODES:
        link = new_link()
        feed(link, unhex("7E A0 07 03 21 93 0F 01 7E"))  # published SNRM, 1-byte addresses
        out = feed(link, unhex(DISC_1), mode)
        assert out == [unhex(UA_DISC_1)], (mode, [tohex(f) for f in out])


def test_get_on_two_byte_address_gets_published_frame():
    # The published GET arrives as our second I-frame (N(S)=1, N(R)=1); the answer is
    # N(S)=1, N(R)=2 with the final bit: control 0x52.
    for mode in MODES:
        app = ScriptedApp(b"\x01")
        link = new_link(app, unit_id=43)
        feed(link, frame(unhex("02 57"), 0x21, SNRM))
        feed(link, frame(unhex("02 57"), 0x21, 0x10, b"\xE6\xE6\x00\x01"))  # N(S)=0 N(R)=0
        app.apdu = _apdu_of(GET_RSP_ALN)
        out = feed(link, unhex(GET_ALN), mode)
        assert out == [unhex(GET_RSP_ALN)], (mode, [tohex(f) for f in out])


def test_four_byte_snrm_without_parameters():
    for mode in MODES:
        link = new_link()
        out = feed(link, unhex(SNRM_4), mode)
        seg, dst, src, ctrl, info = parse(out[0])
        assert (dst, src, ctrl) == (b"\x21", unhex("00 02 00 23"), 0x73)
        # Defaults (128, window 1) since nothing was proposed; sizes below 256 in one byte.
        assert info == unhex("81 80 12 05 01 80 06 01 80 07 04 00 00 00 01 08 04 00 00 00 01")
