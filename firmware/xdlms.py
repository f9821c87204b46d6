# xdlms.py: xDLMS services with logical name referencing: GET (normal, next, with-list,
# attribute 0, selective access, block transfer), SET (normal) and the exception response.
# Spec short forms: "GB" = Green Book (IEC 62056-5-3) 9.3.x service descriptions and 9.5 APDU
# ASN.1; "BB" = Blue Book (IEC 62056-6-2).
#
# GET answers are streamed: the requested attributes produce pieces (cosem.py) into a staging
# buffer and the response takes bytes from it until the PDU is full. Whatever does not fit goes
# as GET-Response-With-Datablock, one block per GET-Request-Next, resuming where the last block
# ended; nothing builds a whole answer. All buffers are allocated at init.
from micropython import const

import axdr
import cosem
from cosem import (
    OBJECT_CLASS_INCONSISTENT,
    OBJECT_UNDEFINED,
    OTHER_REASON,
    READ,
    READ_WRITE_DENIED,
    SUCCESS,
    TYPE_UNMATCHED,
    WRITE,
    Cursor,
)

# APDU tags, GB 9.5
GET_REQUEST = const(0xC0)
SET_REQUEST = const(0xC1)
ACTION_REQUEST = const(0xC3)
GET_RESPONSE = const(0xC4)
SET_RESPONSE = const(0xC5)
EXCEPTION_RESPONSE = const(0xD8)
_NORMAL = const(1)
_NEXT = const(2)
_WITH_LIST = const(3)
_DATA = const(0)  # Get-Data-Result CHOICE data [0]
_DAR = const(1)  # ... data-access-result [1]

# Conformance bits as a 24-bit number (GB 9.5 Conformance BIT STRING; bit 0 is the MSB).
CONF_ATTR0_GET = const(0x002000)  # bit 10 attribute0-supported-with-get
CONF_BLOCK_GET = const(0x001000)  # bit 11 block-transfer-with-get-or-read
CONF_MULTI_REF = const(0x000200)  # bit 14 multiple-references
CONF_GET = const(0x000010)  # bit 19
CONF_SET = const(0x000008)  # bit 20
CONF_SELECTIVE = const(0x000004)  # bit 21 selective-access
SUPPORTED = const(0x00321C)  # the services above: what we offer in the AARE

# ExceptionResponse, GB 9.5: state-error, service-error
STATE_NOT_ALLOWED = const(1)
STATE_UNKNOWN = const(2)
SERVICE_NOT_POSSIBLE = const(1)
SERVICE_NOT_SUPPORTED = const(2)
SERVICE_OTHER = const(3)

_HDR_MAX = const(12)  # C4 02 iip last block(4) 00 length(up to 3): data starts here
_M_SINGLE = const(0)
_M_LIST = const(1)


class Services:
    def __init__(self, objects, max_list=16):
        self.objects = objects
        self.stage = bytearray(cosem.STAGE_SIZE)
        self.curs = [Cursor() for _ in range(max_list)]
        self.res = bytearray(max_list)
        self.max_list = max_list
        self.prd = axdr.Reader()  # selective-access parameters, or a SET value
        self.iip = 0  # invoke-id-and-priority of the request being answered, echoed
        self._obj = None  # set by _target()
        self.conformance = 0  # negotiated, set by the association
        self.profile = None
        self._p = 0
        self.abort()

    def abort(self):
        # Forget any answer in progress (new request, release, link lost).
        self.active = False
        self.block = 0
        self.mode = _M_SINGLE
        self.items = 0
        self.item = -1
        self.item_open = False
        self.s_pos = self.s_end = 0
        self.done = False
        self.error = False

    # **** dispatch ****

    def handle(self, req, n, resp, limit):
        # One xDLMS request APDU -> its answer in resp[0:returned] (limit: the client's PDU).
        if n < 3:
            return exception(resp, STATE_UNKNOWN, SERVICE_OTHER)
        tag = req[0]
        kind = req[1]
        if tag == GET_REQUEST and self.conformance & CONF_GET:
            if kind == _NEXT:
                return self._get_next(req, n, resp, limit)
            self.abort()  # a new request abandons an unfinished block transfer
            if kind == _NORMAL:
                return self._get_normal(req, n, resp, limit)
            if kind == _WITH_LIST and self.conformance & CONF_MULTI_REF:
                return self._get_list(req, n, resp, limit)
        elif tag == SET_REQUEST and kind == _NORMAL and self.conformance & CONF_SET:
            self.abort()
            return self._set_normal(req, n, resp)
        elif tag not in (GET_REQUEST, SET_REQUEST, ACTION_REQUEST):
            return exception(resp, STATE_UNKNOWN, SERVICE_NOT_SUPPORTED)
        return exception(resp, STATE_NOT_ALLOWED, SERVICE_NOT_SUPPORTED)

    # **** GET ****

    def _get_normal(self, req, n, resp, limit):
        # C0 01 iip descriptor access-selection
        self.iip = req[2]
        r = self._begin_item(self.curs[0], req, 3, n)
        if self._p != n:
            return exception(resp, STATE_UNKNOWN, SERVICE_OTHER)
        if r != SUCCESS:
            return _normal_dar(resp, self.iip, r)
        self.mode = _M_SINGLE
        return self._first(resp, limit, _NORMAL)

    def _get_list(self, req, n, resp, limit):
        # C0 03 iip count descriptor*; items past max_list get OTHER_REASON.
        self.iip = req[2]
        rd = self.prd
        rd.attach(req, 3, n)
        count = rd.length()
        if count <= 0:
            return exception(resp, STATE_UNKNOWN, SERVICE_OTHER)
        p = rd.pos
        for k in range(count):
            if k < self.max_list:
                r = self._begin_item(self.curs[k], req, p, n)
                self.res[k] = r
            else:
                self._skip_item(req, p, n)
            if self._p < 0:
                return exception(resp, STATE_UNKNOWN, SERVICE_OTHER)
            p = self._p
        if p != n:
            return exception(resp, STATE_UNKNOWN, SERVICE_OTHER)
        self.mode = _M_LIST
        self.items = count
        self.item = -1
        return self._first(resp, limit, _WITH_LIST)

    def _first(self, resp, limit, kind):
        end = self._fill(resp, _HDR_MAX, limit)
        if self.error:
            self.abort()
            return _normal_dar(resp, self.iip, OTHER_REASON)
        if self.done:
            hdr = 4 if kind == _NORMAL else 3
            _move(resp, _HDR_MAX, hdr, end - _HDR_MAX)
            resp[0] = GET_RESPONSE
            resp[1] = kind
            resp[2] = self.iip
            if kind == _NORMAL:
                resp[3] = _DATA  # with-list: the count follows the invoke-id directly
            self.abort()
            return hdr + end - _HDR_MAX
        if not self.conformance & CONF_BLOCK_GET:
            self.abort()
            return _normal_dar(resp, self.iip, OTHER_REASON)
        self.active = True
        self.block = 1
        return self._block(resp, end, False)

    def _get_next(self, req, n, resp, limit):
        # C0 02 iip block-number(4): the number of the last block received.
        if n != 7:
            return exception(resp, STATE_UNKNOWN, SERVICE_OTHER)
        self.iip = req[2]
        hi = (req[3] << 8) | req[4]
        lo = (req[5] << 8) | req[6]
        if not self.active:
            return self._block_dar(resp, hi, lo, cosem.NO_LONG_GET_IN_PROGRESS)
        if hi != self.block >> 16 or lo != self.block & 0xFFFF:
            self.abort()
            return self._block_dar(resp, hi, lo, cosem.DATA_BLOCK_NUMBER_INVALID)
        self.block += 1
        end = self._fill(resp, _HDR_MAX, limit)
        if self.error:
            self.abort()
            return self._block_dar(resp, hi, lo, cosem.LONG_GET_ABORTED)
        last = self.done
        n = self._block(resp, end, last)
        if last:
            self.abort()
        return n

    def _block(self, resp, end, last):
        # C4 02 iip last-block block-number(4) raw-data [0] OCTET STRING
        size = end - _HDR_MAX
        hdr = 9 + axdr.len_size(size)
        _move(resp, _HDR_MAX, hdr, size)
        resp[0] = GET_RESPONSE
        resp[1] = _NEXT
        resp[2] = self.iip
        resp[3] = 1 if last else 0
        _put_u32(resp, 4, self.block >> 16, self.block & 0xFFFF)
        resp[8] = _DATA
        axdr.put_len(resp, 9, size)
        return hdr + size

    def _block_dar(self, resp, hi, lo, dar):
        resp[0] = GET_RESPONSE
        resp[1] = _NEXT
        resp[2] = self.iip
        resp[3] = 1
        _put_u32(resp, 4, hi, lo)
        resp[8] = _DAR
        resp[9] = dar
        return 10

    # **** attribute descriptors ****

    def _begin_item(self, cur, req, p, end):
        # Cosem-Attribute-Descriptor (class-id 2, instance-id 6, attribute-id 1) and
        # Selective-Access-Descriptor OPTIONAL (0 | 1 selector parameters); sets self._p to
        # the position after it (-1 if malformed) and returns a Data-Access-Result.
        cur.all = False
        if p + 10 > end:
            self._p = -1
            return OTHER_REASON
        attr = req[p + 8]
        sel = 0
        params = None
        q = p + 10
        if req[p + 9]:
            if q >= end:
                self._p = -1
                return OTHER_REASON
            sel = req[q]
            e = axdr.value_end(req, q + 1, end)
            if e < 0:
                self._p = -1
                return OTHER_REASON
            self.prd.attach(req, q + 1, e)
            params = self.prd
            q = e
        self._p = q
        r = self._target(req, p)
        if r != SUCCESS:
            return r
        obj = self._obj
        if attr == 0:
            if sel or not self.conformance & CONF_ATTR0_GET:
                return READ_WRITE_DENIED
            cur.obj = obj
            cur.all = True
            cur.a0 = 0
            return SUCCESS
        if attr > obj.n_attrs:
            return OBJECT_UNDEFINED
        if not obj.access(attr, self.profile) & READ:
            return READ_WRITE_DENIED
        if sel and (not self.conformance & CONF_SELECTIVE or not obj.selectors(attr) & (1 << sel)):
            return OTHER_REASON
        return obj.begin(attr, cur, params)

    def _skip_item(self, req, p, end):
        q = p + 10
        if q > end:
            self._p = -1
            return
        if req[p + 9]:
            q = axdr.value_end(req, q + 1, end) if q < end else -1
        self._p = q

    def _target(self, req, p):
        # The object a Cosem-Attribute-Descriptor at req[p] names (class-id 2, instance-id 6):
        # into self._obj; returns SUCCESS or why there is none.
        obj = self._find(req, p + 2)
        self._obj = obj
        if obj is None:
            return OBJECT_UNDEFINED
        if obj.class_id != (req[p] << 8) | req[p + 1]:
            return OBJECT_CLASS_INCONSISTENT
        return SUCCESS

    def _find(self, buf, p):
        for obj in self.objects:
            ln = obj.ln
            if (
                ln[0] == buf[p]
                and ln[1] == buf[p + 1]
                and ln[2] == buf[p + 2]
                and ln[3] == buf[p + 3]
                and ln[4] == buf[p + 4]
                and ln[5] == buf[p + 5]
            ):
                return obj
        return None

    # **** the answer stream ****

    def _fill(self, out, off, end):
        # Copy stream bytes into out[off:end]; sets done when the stream is exhausted (looking
        # one piece ahead, so a stream ending exactly at the PDU end is seen as done).
        st = self.stage
        while True:
            if self.s_pos >= self.s_end:
                q = self._piece(st, 0)
                if q <= 0:
                    self.error = q < 0
                    self.done = True
                    return off
                self.s_pos = 0
                self.s_end = q
            if off >= end:
                return off
            k = self.s_end - self.s_pos
            if k > end - off:
                k = end - off
            s = self.s_pos
            for j in range(k):
                out[off + j] = st[s + j]
            off += k
            self.s_pos = s + k

    def _piece(self, out, off):
        if self.mode == _M_SINGLE:
            return self._cur_piece(self.curs[0], out, off)
        if self.item < 0:
            self.item = 0
            return axdr.put_len(out, off, self.items)
        while self.item < self.items:
            k = self.item
            r = self.res[k] if k < self.max_list else OTHER_REASON
            if r != SUCCESS:
                out[off] = _DAR
                out[off + 1] = r
                self.item += 1
                return off + 2
            if not self.item_open:
                self.item_open = True
                out[off] = _DATA
                return off + 1
            q = self._cur_piece(self.curs[k], out, off)
            if q != off:
                return q
            self.item += 1
            self.item_open = False
        return off

    def _cur_piece(self, cur, out, off):
        if not cur.all:
            return cur.obj.next(cur, out, off)
        # Attribute 0 (BB 4.1.2): a structure of every attribute the association may read.
        # cur.a0: 0 header not written, 1 streaming cur.attr, 2 cur.attr failed to begin.
        obj = cur.obj
        if cur.a0 == 0:
            count = 0
            for a in range(1, obj.n_attrs + 1):
                if obj.access(a, self.profile) & READ:
                    count += 1
            self._begin_a0(obj, self._next_readable(obj, 0), cur)
            return axdr.put_struct(out, off, count)
        while True:
            if cur.a0 == 2:
                cur.a0 = 1
                return axdr.put_null(out, off)  # keeps the structure's count honest
            q = obj.next(cur, out, off) if cur.attr else off
            if q != off:
                return q
            a = self._next_readable(obj, cur.attr)
            if not a:
                return off
            self._begin_a0(obj, a, cur)

    def _begin_a0(self, obj, a, cur):
        cur.a0 = 1
        cur.attr = 0
        if a and obj.begin(a, cur, None) != SUCCESS:
            cur.a0 = 2
            cur.attr = a

    def _next_readable(self, obj, a):
        for b in range(a + 1, obj.n_attrs + 1):
            if obj.access(b, self.profile) & READ:
                return b
        return 0

    # **** SET ****

    def _set_normal(self, req, n, resp):
        # C1 01 iip descriptor access-selection value -> C5 01 iip result
        iip = req[2]
        r = self._set_item(req, 3, n)
        resp[0] = SET_RESPONSE
        resp[1] = _NORMAL
        resp[2] = iip
        resp[3] = r
        return 4

    def _set_item(self, req, p, end):
        if p + 10 > end:
            return TYPE_UNMATCHED
        attr = req[p + 8]
        if req[p + 9]:
            return READ_WRITE_DENIED  # no selective SET
        r = self._target(req, p)
        if r != SUCCESS:
            return r
        obj = self._obj
        if attr == 0 or attr > obj.n_attrs:
            return OBJECT_UNDEFINED
        if not obj.access(attr, self.profile) & WRITE:
            return READ_WRITE_DENIED
        if axdr.value_end(req, p + 10, end) != end:
            return TYPE_UNMATCHED
        self.prd.attach(req, p + 10, end)
        return obj.set(attr, self.prd, self.profile)


def exception(resp, state, service):
    # GB 9.5 ExceptionResponse: D8 state-error service-error
    resp[0] = EXCEPTION_RESPONSE
    resp[1] = state
    resp[2] = service
    return 3


def _normal_dar(resp, iip, dar):
    resp[0] = GET_RESPONSE
    resp[1] = _NORMAL
    resp[2] = iip
    resp[3] = _DAR
    resp[4] = dar
    return 5


def _put_u32(buf, p, hi, lo):
    buf[p] = hi >> 8
    buf[p + 1] = hi & 0xFF
    buf[p + 2] = lo >> 8
    buf[p + 3] = lo & 0xFF


def _move(buf, src, dst, n):
    # Overlapping copy within one buffer, towards the start (dst <= src): no allocation.
    if dst == src:
        return
    for k in range(n):
        buf[dst + k] = buf[src + k]
