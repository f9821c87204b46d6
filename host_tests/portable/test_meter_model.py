# The default ION meter (model.Meter) through the server: the complete request sequence of a
# head-end session allocates nothing, on both MicroPython runtimes under heap_lock().
import cosem
from app_util import aarq, get, get_list, get_next, set_req
from model import Meter
from support import assert_no_alloc, unhex, need_heap

LN_ASSOC = unhex("00 00 28 00 00 FF")
LN_CLOCK = unhex("00 00 01 00 00 FF")
LN_LP = unhex("01 00 63 01 00 FF")
LN_BILL = unhex("01 00 62 01 00 FF")
LN_REG = unhex("01 01 01 08 00 FF")
DAY0 = 9800  # 2026-10-31
TIME_COL = unhex("02 04 12 00 08 09 06 00 00 01 00 00 FF 0F 02 12 00 00")


def _meter(rows=3360):
    m = Meter({"lls_password": "12345678"})
    m.clock.set_utc(DAY0 + 35, 0)
    lp = m.profile("1-0:99.1.0*255")
    vals = bytearray(16)
    for k in range(rows):
        vals[3] = k & 0xFF
        lp.rows.append(DAY0 + k // 96, (k % 96) * 900, 0, vals)
    return m


def _dt(y, mo, d, h, mi):
    return bytes([0x09, 0x0C, y >> 8, y & 0xFF, mo, d, 0xFF, h, mi, 0, 0xFF, 0x80, 0x00, 0xFF])


def _range(frm, to):
    return b"\x02\x04" + TIME_COL + frm + to + b"\x01\x00"


def _entry(first, last):
    return bytes([0x02, 0x04, 0x06, 0, 0, first >> 8, first & 0xFF,
                  0x06, 0, 0, last >> 8, last & 0xFF, 0x12, 0, 1, 0x12, 0, 0])


class _Session:
    # A head-end session as request APDUs; a class, not a closure (see support.alloc_bytes).
    def __init__(self, meter):
        self.srv = meter.server
        self.resp = bytearray(1024)
        clock_value = unhex("09 0C 07 EB 03 01 FF 0A 14 1E 00 00 00 00")  # 2027-03-01 10:20:30 UTC
        self.public = [
            aarq(max_pdu=512),
            get(15, LN_ASSOC, 2),  # object_list, block transfer
            get(7, LN_LP, 2),  # the whole load profile, block transfer
            get(7, LN_LP, 2, sel=(1, _range(_dt(2026, 11, 30, 0, 0), _dt(2026, 12, 1, 0, 0)))),
            get(7, LN_LP, 2, sel=(2, _entry(3300, 0))),
            get(8, LN_CLOCK, 0),  # attribute 0
            get(7, LN_BILL, 0),
            get_list([(3, LN_REG, 2), (3, LN_REG, 3), (8, LN_CLOCK, 2)]),
            set_req(8, LN_CLOCK, 2, clock_value),  # refused: public association
            get(1, unhex("00 00 63 63 63 FF"), 2),  # undefined object
            unhex("62 03 80 01 00"),
        ]
        self.management = [
            aarq(max_pdu=512, mech=1, password=b"12345678"),
            set_req(8, LN_CLOCK, 2, clock_value),
            set_req(3, LN_REG, 2, unhex("15 00 00 00 00 00 00 00 00")),  # refused
            get(8, LN_CLOCK, 2),
            unhex("62 03 80 01 00"),
        ]
        self.nexts = [get_next(k) for k in range(1, 400)]
        self.blocks = 0
        self.results = bytearray(16)  # each public answer's result choice: 00 = data

    def _send(self, client, req):
        srv = self.srv
        resp = self.resp
        srv.on_pdu(client, req, len(req), resp)
        k = 0
        while resp[0] == 0xC4 and resp[1] == 2 and resp[3] == 0:
            r = self.nexts[k]
            srv.on_pdu(client, r, len(r), resp)
            k += 1
        self.blocks += k

    def run(self, _):
        self.blocks = 0
        for i in range(len(self.public)):
            self._send(16, self.public[i])
            r = self.resp
            # Result choice: GET-Response-Normal at byte 3, the last datablock at byte 8.
            self.results[i] = r[8] if (r[0] == 0xC4 and r[1] == 2) else r[3]
        for i in range(len(self.management)):
            self._send(1, self.management[i])
        self.results[15] = self.resp[0]


def test_head_end_session_allocates_nothing():
    need_heap(207 * 1024, block=65 * 1024)  # 64-bit unix port, fresh process, +10 %
    m = _meter()
    s = _Session(m)
    s.run(0)
    assert s.blocks > 200  # 3360 rows in blocks of up to 512 bytes
    blocks = s.blocks
    # The clock set by the management association marked "time changed".
    assert m.status.raw[1] & 0x20 and m.clock.days == 9921
    assert_no_alloc(s.run, 0, "head-end session on the default meter")
    assert s.blocks == blocks
    # Every read in the session returned data (none an error or an exception response).
    for i in (1, 2, 3, 4, 5, 6):
        assert s.results[i] == 0, (i, s.results[i])


def test_session_results():
    need_heap(207 * 1024, block=65 * 1024)  # 64-bit unix port, fresh process, +10 %
    m = _meter(96 * 3)
    s = _Session(m)
    srv = m.server
    resp = s.resp
    out = []
    for req in s.public:
        srv.on_pdu(16, req, len(req), resp)
        out.append(bytes(resp[:6]))
    assert out[0][:2] == b"\x61\x29"  # AARE accepted
    assert out[3][:6] == unhex("C4 01 C1 00 01 00")  # a range after the last row: empty
    assert out[4][:6] == unhex("C4 01 C1 00 01 00")  # entries past the end: empty
    assert out[5][:6] == unhex("C4 01 C1 00 02 09")  # clock attribute 0: 9 attributes
    assert out[8][:4] == unhex("C5 01 C1 03")  # public may not set the clock
    assert out[9][:5] == unhex("C4 01 C1 01 04")
    assert cosem.parse_obis("1-0:99.1.0*255") == LN_LP
