# The real Gurux client against our HDLC link and application layer in one process (no
# sockets): association, object list, every attribute, block transfer with small PDUs and
# frames, GET-with-list, refusals. The simulator tests repeat this over TCP and the pty.
import pytest
from app_util import build
from gurux_dlms import GXByteBuffer
from gurux_dlms.enums import Authentication, ObjectType
from gurux_util import GuruxSession
from hdlc import HdlcLink


class Peer(GuruxSession):
    # Gurux against our link and server in this process.
    def __init__(self, srv, client=16, auth=Authentication.NONE, password=None, pdu=None,
                 info=None, window=None):
        GuruxSession.__init__(self, client, auth, password)
        self.srv = srv
        self.link = HdlcLink(srv, max_info_tx=512, max_info_rx=512, window_tx=7, window_rx=7)
        if pdu:
            self.c.maxReceivePDUSize = pdu
        if info:
            self.c.hdlcSettings.maxInfoRX = info
            self.c.hdlcSettings.maxInfoTX = info
        if window:
            self.c.hdlcSettings.windowSizeRX = window
            self.c.hdlcSettings.windowSizeTX = window
        self.frames = 0

    def send(self, frame):
        frame = bytes(frame)
        out = bytearray()
        off = 0
        while True:
            off += self.link.receive(frame, off, len(frame) - off, 0)
            if not self.link.tx_len:
                break
            out += self.link.tx[: self.link.tx_len]
            self.link.tx_len = 0
        self.frames += 1
        return bytes(out)

    def _exchange(self, frame, reply):
        # A window of several frames arrives in one piece: Gurux takes one frame per call.
        data = GXByteBuffer(self.send(frame))
        while data.available():
            assert self.c.getData(data, reply, None), data


def _read_everything(peer):
    objs = peer.objects()
    values = {}
    for obj in objs:
        for attr in range(1, obj.getAttributeCount() + 1):
            if obj.objectType == ObjectType.ASSOCIATION_LOGICAL_NAME and attr == 7:
                continue  # the secret: refused, see below
            values[(obj.logicalName, attr)] = peer.read(obj, attr)
    return objs, values


def test_public_client_reads_every_object_and_attribute():
    srv = build()
    p = Peer(srv)
    p.connect()
    assert srv.assoc.associated
    objs, values = _read_everything(p)
    assert [o.objectType for o in objs] == [
        ObjectType.ASSOCIATION_LOGICAL_NAME, ObjectType.SAP_ASSIGNMENT, ObjectType.DATA,
        ObjectType.DATA, ObjectType.REGISTER,
    ]
    assert values[("0.0.42.0.0.255", 2)] in (b"SCH0000000000017", "SCH0000000000017")
    assert values[("1.1.1.8.0.255", 2)] == 2**32 + 5
    assert values[("0.0.40.0.0.255", 3)] == [16, 1]
    assert values[("0.0.40.0.0.255", 8)] == 2
    p.close()
    assert not srv.assoc.associated and p.link.state == 0


# Window 1 for Gurux: gurux_dlms 1.0.203 GXDLMSSettings.checkFrame cannot take windows of
# answers (a misspelt local `ReceiverFrame` there: the third frame of a window is rejected and
# an RR answer raises UnboundLocalError). Windows up to 7 are tested against our own frame
# parser in test_hdlc_link.py.
@pytest.mark.parametrize("pdu,info,window", [(64, 32, 1), (128, 64, 1), (256, 128, 1), (0xFFFF, 128, 1)])
def test_small_pdus_and_frames_use_block_transfer_and_segmentation(pdu, info, window):
    srv = build()
    p = Peer(srv, pdu=pdu, info=info, window=window)
    p.connect()
    assert p.link.max_tx == info and p.link.win_tx == window
    big = Peer(build())
    big.connect()
    assert [(o.objectType, o.logicalName) for o in p.objects()] == [
        (o.objectType, o.logicalName) for o in big.objects()
    ]
    if pdu < 1024 or info < 128:
        assert p.frames > big.frames  # more blocks or more segments than with the defaults


def test_get_with_list():
    p = Peer(build())
    p.connect()
    objs = p.objects()
    items = [(o, 2) for o in objs if o.objectType != ObjectType.ASSOCIATION_LOGICAL_NAME]
    reply = p.request(p.c.readList(items))
    assert reply.value[1] in (b"SCH0000000000017", "SCH0000000000017")
    assert reply.value[3] == 2**32 + 5


def test_secret_and_writes_are_refused():
    p = Peer(build(password=b"12345678"), client=1, auth=Authentication.LOW, password="12345678")
    p.connect()
    objs = p.objects()
    assert p.request(p.c.read(objs[0], 7)).error == 3  # read-write-denied
    reg = [o for o in objs if o.objectType == ObjectType.REGISTER][0]
    p.read(reg, 2)
    before = reg.value
    reg.value = 1
    assert p.request(p.c.write(reg, 2)).error == 3
    assert p.read(reg, 2) == before


def test_wrong_password_is_refused():
    p = Peer(build(password=b"12345678"), client=1, auth=Authentication.LOW, password="nope")
    p.c.parseUAResponse(p.request(p.c.snrmRequest()).data)
    with pytest.raises(Exception):
        p.c.parseAareResponse(p.request(p.c.aarqRequest()).data)
    assert not p.srv.assoc.associated
