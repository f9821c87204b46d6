# A head-end's whole session, in process, through the HDLC link and the default meter
# (model.Meter, the load profile on flash rows in a real directory), each request proven
# allocation-free with support.assert_no_alloc and its answer checked against the meter.
#
# First a recording client (test code, allocates freely) talks to the link like a head-end:
# SNRM, AARQ (public, LLS), GETs of every attribute the object list names, the load profile
# by block transfer (GET-next, HDLC segments acknowledged by RR), range and entry selection,
# attribute 0, GET-with-list, clock SET, refused SETs, a wrong password, RLRQ, DISC. It
# decodes each answer (an A-XDR decoder of its own) and checks it against the meter's state
# and the rows written. Every step starts with SNRM and ends with DISC, so it is repeatable:
# the frames it sent are then replayed (Replayer.run, no allocation: the answers are copied
# byte by byte into a buffer made once) under assert_no_alloc, and what the link sent back
# under the lock must be the recorded answers, byte for byte.
from app_util import aarq, get, get_list, get_next, set_req
from fakefs import TmpDir
from flashrows import FlashRows
from hdlc import HdlcLink
from hdlc_util import C1, C16, DISC, LLC_REQ, SNRM, SRV, frame, i_ctrl, parse, rr, split_frames
from model import Meter
from support import assert_no_alloc, unhex, need_heap

PASSWORD = b"lock-pw-9"
DAY0 = 9830  # 2026-11-30, a Monday; days since 2000-01-01
SEC0 = 36000  # 10:00:00 UTC = 11:00:00 CET (local standard time, UTC+1, deviation -60)
N_ROWS = 200  # load-profile rows, 15 minutes apart (local standard time), before DAY0
FIRST_DAY = DAY0 - 3
LN_ASSOC = unhex("00 00 28 00 00 FF")
LN_CLOCK = unhex("00 00 01 00 00 FF")
LN_LDN = unhex("00 00 2A 00 00 FF")
LN_LP = unhex("01 00 63 01 00 FF")
LN_E = unhex("01 01 01 08 00 FF")  # kWh del, long64-unsigned
E_RAW = unhex("00 00 00 02 54 0B E4 01")  # 10 000 000 001 Wh: past 32 bits
TIME_COL = unhex("02 04 12 00 08 09 06 00 00 01 00 00 FF 0F 02 12 00 00")
NEW_TIME = unhex("09 0C 07 EB 03 01 FF 0A 14 1E 00 00 00 00")  # 2027-03-01 10:20:30 UTC
RLRQ = unhex("62 03 80 01 00")
UA = 0x73


# **** an A-XDR decoder of our own (GB 9.5; BB 4.1.5 Table 2) ****

_FIXED = {3: 1, 5: 4, 6: 4, 15: 1, 16: 2, 17: 1, 18: 2, 20: 8, 21: 8, 22: 1}
_SIGNED = (5, 15, 16, 20)


def _length(b, p):
    n = b[p]
    if n < 0x80:
        return n, p + 1
    k = n & 0x7F
    return int.from_bytes(bytes(b[p + 1 : p + 1 + k]), "big"), p + 1 + k


def decode(b, p=0):
    # One value at p -> (value, offset after it): arrays and structures as lists, integers as
    # ints, strings as bytes, null as None.
    tag = b[p]
    p += 1
    if tag == 0:
        return None, p
    if tag in (1, 2):
        n, p = _length(b, p)
        out = []
        for _ in range(n):
            v, p = decode(b, p)
            out.append(v)
        return out, p
    if tag in (9, 10):
        n, p = _length(b, p)
        return bytes(b[p : p + n]), p + n
    if tag == 4:
        n, p = _length(b, p)
        return bytes(b[p : p + (n + 7) // 8]), p + (n + 7) // 8
    n = _FIXED[tag]
    v = int.from_bytes(bytes(b[p : p + n]), "big")
    if tag in _SIGNED and v >> (8 * n - 1):
        v -= 1 << (8 * n)
    return v, p + n


def decode_one(b):
    v, p = decode(b)
    assert p == len(b), "%d bytes for one value of %d" % (p, len(b))
    return v


# **** calendar, independent of the firmware ****


def civil(days):
    # days since 2000-01-01 -> (year, month, day)
    y = 2000
    while True:
        n = 366 if (y % 4 == 0 and y % 100 != 0) or y % 400 == 0 else 365
        if days < n:
            break
        days -= n
        y += 1
    lengths = [31, 29 if n == 366 else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    m = 0
    while days >= lengths[m]:
        days -= lengths[m]
        m += 1
    return y, m + 1, days + 1


def local_dt(days, secs):
    # The date-time octets the meter sends for local standard time (days, secs) in winter:
    # weekday, hundredths 0, deviation -60 (CET), clock status 0 (no DST).
    y, m, d = civil(days)
    wd = (days + 5) % 7 + 1  # 2000-01-01 was a Saturday (6)
    return bytes([y >> 8, y & 0xFF, m, d, wd, secs // 3600, secs // 60 % 60, secs % 60, 0,
                  0xFF, 0xC4, 0])


def shown(days, secs):
    # The date-time octets of the UTC instant (days, secs), in CET (rows hold UTC instants).
    s = secs + 3600
    return local_dt(days + s // 86400, s % 86400)


def bound(days, secs):
    # A range bound for the UTC instant (days, secs): CET, deviation not specified (taken as
    # the meter's local time).
    secs += 3600
    days += secs // 86400
    secs %= 86400
    y, m, d = civil(days)
    return bytes([0x09, 0x0C, y >> 8, y & 0xFF, m, d, 0xFF, secs // 3600, secs // 60 % 60,
                  secs % 60, 0, 0x80, 0x00, 0xFF])


def entry(first, last, col_from=1, col_to=0):
    return bytes([0x02, 0x04, 0x06, 0, 0, first >> 8, first & 0xFF, 0x06, 0, 0, last >> 8,
                  last & 0xFF, 0x12, 0, col_from, 0x12, 0, col_to])


# **** the meter and the rows it serves ****


def row_stamp(k):
    return FIRST_DAY + k // 96, (k % 96) * 900


def row_values(k):
    return [k * (c + 1) + 1 for c in range(4)]


def build(dirpath):
    def rows(name, capacity, widths):
        return FlashRows(dirpath, name, capacity, widths)

    m = Meter({"lls_password": PASSWORD.decode()}, rows_factory=rows)
    lp = m.profile("1-0:99.1.0*255")
    vals = bytearray(16)
    for k in range(N_ROWS):
        for c, v in enumerate(row_values(k)):
            vals[4 * c : 4 * c + 4] = v.to_bytes(4, "big")
        d, s = row_stamp(k)
        lp.rows.append(d, s, (k % 4) << 2, vals)
    m.registers[LN_E].raw[:] = E_RAW
    return m


# **** the recording client ****


class Recorder:
    # A head-end on the link: every frame it sends is kept per step, with what came back.
    def __init__(self, link):
        self.link = link
        self.steps = []  # (name, [frames sent], answer bytes)
        self.blocks = 0  # GET-next requests sent in all

    def begin(self, name, client=C16):
        self.client = client
        self.ns = self.nr = 0
        self.steps.append((name, [], bytearray()))
        seg, dst, src, ctrl, info = parse(self.send(frame(SRV, client, SNRM))[0])
        assert ctrl == UA, name

    def end(self):
        assert self.apdu(RLRQ)[0] == 0x63  # RLRE
        assert parse(self.send(frame(SRV, self.client, DISC))[0])[3] == UA

    def send(self, f):
        name, frames, out = self.steps[-1]
        frames.append(f)
        link = self.link
        got = bytearray()
        off = 0
        while True:
            off += link.receive(f, off, len(f) - off, 0)
            if not link.tx_len:
                break
            got += link.tx[: link.tx_len]
            link.tx_len = 0
        assert off == len(f)
        out += got
        return split_frames(got)

    def apdu(self, req):
        # One request in an I-frame; the answer's segments are fetched with RR. -> the APDU.
        assert len(req) + 3 <= 128
        f = frame(SRV, self.client, i_ctrl(self.ns, self.nr), LLC_REQ + req)
        self.ns = (self.ns + 1) % 8
        answer = bytearray()
        while True:
            frames = self.send(f)
            assert len(frames) == 1
            seg, dst, src, ctrl, info = parse(frames[0])
            assert ctrl & 1 == 0 and (ctrl >> 1) & 7 == self.nr, hex(ctrl)  # I-frame, N(S)
            self.nr = (self.nr + 1) % 8
            answer += info
            if not seg:
                break
            f = frame(SRV, self.client, rr(self.nr))
        assert answer[:3] == b"\xe6\xe7\x00"
        return bytes(answer[3:])

    def get(self, req):
        # A GET with its block transfer: (0, data) or (1, data-access-result) for a normal
        # answer, ("blocks", data) for one in blocks.
        r = self.apdu(req)
        if r[:2] == b"\xc4\x01":
            return r[3], (r[4:] if r[3] == 0 else r[4])
        assert r[:2] == b"\xc4\x02", r[:4]
        raw = bytearray()
        while True:
            assert r[8] == 0  # raw-data
            n, p = _length(r, 9)
            raw += r[p : p + n]
            assert p + n == len(r)
            if r[3]:
                return "blocks", bytes(raw)
            block = int.from_bytes(r[4:8], "big")
            r = self.apdu(get_next(block))
            self.blocks += 1
            assert r[:2] == b"\xc4\x02" and int.from_bytes(r[4:8], "big") == block + 1

    def data(self, req):
        kind, v = self.get(req)
        assert kind in (0, "blocks"), (kind, v)
        return decode_one(v)


# **** replay: what runs under the lock ****


class Replayer:
    # Sends a recorded step's frames again from the same state and keeps what the link sends
    # back in a buffer made once. Allocation-free (indexed copies, no slices, no bytes()).
    def __init__(self, meter, link, steps):
        self.clock = meter.clock
        self.status = meter.status.raw
        self.link = link
        self.frames = [s[1] for s in steps]
        self.out = bytearray(max(len(s[2]) for s in steps) + 64)
        self.n = 0
        self.overflow = False

    def run(self, k):
        self.clock.set_utc(DAY0, SEC0)
        self.status[0] = 0
        self.status[1] = 0  # "time changed" (bit 5) from a clock SET in an earlier run
        self.n = 0
        self.overflow = False
        for f in self.frames[k]:
            self._feed(f)

    def _feed(self, f):
        link = self.link
        out = self.out
        n = len(f)
        off = 0
        while True:
            off += link.receive(f, off, n - off, 0)
            t = link.tx_len
            if not t:
                break
            p = self.n
            if p + t > len(out):
                self.overflow = True
                t = len(out) - p
            tx = link.tx
            for i in range(t):
                out[p + i] = tx[i]
            self.n = p + t
            link.tx_len = 0


# **** the scenario ****


def _associate(rec, name, lls=False, password=PASSWORD):
    # A new step: SNRM, then AARQ (public, or LLS with the password); -> the AARE.
    rec.begin(name, C1 if lls else C16)
    if lls:
        aare = rec.apdu(aarq(max_pdu=512, mech=1, password=password))
    else:
        aare = rec.apdu(aarq(max_pdu=512))
    assert aare[0] == 0x61
    return aare


def _accepted(aare):
    return b"\xa2\x03\x02\x01\x00" in aare  # association-result accepted (ISO 8650 / GB 9.4)


def _every_attribute(rec, meter, lls):
    # Object list, then one step per object: every attribute it names, checked.
    tag = "lls" if lls else "public"
    assert _accepted(_associate(rec, tag + " object_list", lls))
    olist = rec.data(get(15, LN_ASSOC, 2))
    rec.end()
    assert [(e[0], e[2]) for e in olist] == [(o.class_id, o.ln) for o in meter.objects]
    for class_id, version, ln, rights in olist:
        _associate(rec, "%s %d %s" % (tag, class_id, ln), lls)
        for attr, mode, selectors in rights[0]:
            kind, v = rec.get(get(class_id, ln, attr))
            if mode == 0:  # no_access: the LLS secret
                assert (class_id, attr, kind, v) == (15, 7, 1, 3), (ln, attr, kind, v)
                continue
            assert kind in (0, "blocks"), (ln, attr, kind, v)
            value = decode_one(v)
            if attr == 1:
                assert value == ln
            _check_value(meter, class_id, ln, attr, value)
        rec.end()


def _check_value(meter, class_id, ln, attr, value):
    if ln == LN_LDN and attr == 2:
        assert value == b"SCH0000000000017"
    if ln == LN_CLOCK and attr == 2:
        assert value == shown(DAY0, SEC0)
    if ln == LN_CLOCK and attr == 3:
        assert value == -60
    if ln == LN_E and attr == 2:
        assert value == int.from_bytes(E_RAW, "big")
    if ln == LN_E and attr == 3:
        assert value == [0, 30]  # scaler 0, unit Wh
    if ln == LN_LP:
        if attr == 2:
            _check_rows(value, 0, N_ROWS)
        elif attr == 4:
            assert value == 900
        elif attr == 7:
            assert value == N_ROWS
        elif attr == 8:
            assert value == 3360


def _check_rows(rows, first, last, cols=None):
    # rows == the rows first..last-1 as written (all columns, or those of cols).
    assert len(rows) == last - first, (len(rows), first, last)
    for i, r in enumerate(rows):
        k = first + i
        d, s = row_stamp(k)
        full = [shown(d, s), (k % 4) << 2] + row_values(k)
        assert r == (full if cols is None else [full[c] for c in cols]), (k, r)


def _profile(rec):
    assert _accepted(_associate(rec, "profile by block transfer"))
    before = rec.blocks
    _check_rows(rec.data(get(7, LN_LP, 2)), 0, N_ROWS)
    assert rec.blocks - before >= 10, rec.blocks - before  # 200 rows in blocks of <= 512
    rec.end()
    assert _accepted(_associate(rec, "range and entry selection"))
    i, j = 60, 75
    sel = (1, b"\x02\x04" + TIME_COL + bound(*row_stamp(i)) + bound(*row_stamp(j)) + b"\x01\x00")
    _check_rows(rec.data(get(7, LN_LP, 2, sel=sel)), i, j + 1)
    d, s = row_stamp(j)
    after = (1, b"\x02\x04" + TIME_COL + bound(d, s + 1) + bound(DAY0 + 1, 0) + b"\x01\x00")
    _check_rows(rec.data(get(7, LN_LP, 2, sel=after)), j + 1, N_ROWS)
    _check_rows(rec.data(get(7, LN_LP, 2, sel=(2, entry(1, 3)))), 0, 3)
    _check_rows(rec.data(get(7, LN_LP, 2, sel=(2, entry(N_ROWS - 1, 0)))), N_ROWS - 2, N_ROWS)
    _check_rows(rec.data(get(7, LN_LP, 2, sel=(2, entry(11, 14, 3, 4)))), 10, 14, [2, 3])
    assert rec.data(get(7, LN_LP, 2, sel=(2, entry(N_ROWS + 1, 0)))) == []
    rec.end()


def _attribute0_and_list(rec):
    assert _accepted(_associate(rec, "attribute 0 and GET-with-list"))
    whole = rec.data(get(8, LN_CLOCK, 0))
    assert len(whole) == 9 and whole[0] == LN_CLOCK and whole[1] == shown(DAY0, SEC0)
    r = rec.apdu(get_list([(1, LN_LDN, 2), (3, LN_E, 2), (15, LN_ASSOC, 7), (8, LN_CLOCK, 3)]))
    assert r[:4] == b"\xc4\x03\xc1\x04", r[:4]
    want = unhex("00 09 10") + b"SCH0000000000017" + b"\x00\x15" + E_RAW + \
        unhex("01 03 00 10 FF C4")  # data, data, read-write-denied, data
    assert r[4:] == want, r[4:]
    rec.end()


def _sets(rec, meter):
    # Public: clock SET refused. LLS: clock SET done, register and time zone SETs refused.
    assert _accepted(_associate(rec, "public SET refused"))
    assert rec.apdu(set_req(8, LN_CLOCK, 2, NEW_TIME)) == unhex("C5 01 C1 03")
    rec.end()
    assert (meter.clock.days, meter.clock.secs) == (DAY0, SEC0)
    assert _accepted(_associate(rec, "LLS clock SET", lls=True))
    assert rec.apdu(set_req(8, LN_CLOCK, 2, NEW_TIME)) == unhex("C5 01 C1 00")
    # 2027-03-01 10:20:30 UTC (day 9921, a Monday) = 11:20:30 CET
    assert rec.data(get(8, LN_CLOCK, 2)) == shown(9921, 37230)
    assert rec.apdu(set_req(3, LN_E, 2, b"\x15" + bytes(8))) == unhex("C5 01 C1 03")
    assert rec.apdu(set_req(8, LN_CLOCK, 3, unhex("10 00 3C"))) == unhex("C5 01 C1 03")
    assert rec.data(get(3, LN_E, 2)) == int.from_bytes(E_RAW, "big")
    rec.end()
    assert (meter.clock.days, meter.clock.secs) == (9921, 37230)
    assert meter.status.raw[1] & 0x20  # time changed


def _wrong_password(rec):
    # Refused (authentication failure, 13), then the right one gets in (the failure count
    # is reset: the step can be repeated without a lockout).
    aare = _associate(rec, "wrong password", lls=True, password=b"nope")
    assert not _accepted(aare) and b"\xa3\x05\xa1\x03\x02\x01\x0d" in aare, aare
    aare = rec.apdu(aarq(max_pdu=512, mech=1, password=PASSWORD))
    assert _accepted(aare)
    rec.end()


def _recorded(meter):
    link = HdlcLink(meter.server, pdu_size=meter.pdu_size)
    rec = Recorder(link)
    meter.clock.set_utc(DAY0, SEC0)
    _every_attribute(rec, meter, False)
    _every_attribute(rec, meter, True)
    _profile(rec)
    _attribute0_and_list(rec)
    meter.clock.set_utc(DAY0, SEC0)
    _sets(rec, meter)
    _wrong_password(rec)
    assert rec.steps[0][1][0] == frame(SRV, C16, SNRM)
    return link, rec.steps


def test_whole_session_answers_right_and_allocates_nothing():
    need_heap(1168 * 1024)  # 64-bit unix port, fresh process, +10 %
    with TmpDir() as d:
        meter = build(d)
        link, steps = _recorded(meter)
        assert len(steps) > 2 * 26
        rep = Replayer(meter, link, steps)
        for k in range(len(steps)):
            name, frames, want = steps[k]
            assert_no_alloc(rep.run, k, name)
            assert not rep.overflow
            assert rep.n == len(want) and rep.out[: rep.n] == want, name
        assert (meter.clock.days, meter.clock.secs) == (DAY0, SEC0)  # the last step: no SET
        for pg in meter.profiles:
            pg.rows.close()
