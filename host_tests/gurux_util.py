# gurux_util.py: the real Gurux client driven request by request. Subclasses supply the
# transport: _exchange(frame, reply) sends one frame (an HDLC frame, or a WPDU of the
# IEC 62056-47 TCP wrapper with wrapper=True) and feeds the answer to Gurux.
from gurux_dlms import GXByteBuffer, GXDLMSClient, GXReplyData
from gurux_dlms.enums import Authentication, Command, InterfaceType
from gurux_dlms.GetCommandType import GetCommandType
from gurux_dlms.GXDLMS import GXDLMS
from gurux_dlms.GXDLMSLNParameters import GXDLMSLNParameters
from gurux_dlms.internal._GXCommon import _GXCommon


class GuruxSession:
    def __init__(self, client=16, auth=Authentication.NONE, password=None, unit_id=17,
                 wrapper=False):
        # The server is logical device 1: at HDLC unit unit_id, or wPort 1 over the wrapper.
        self.wrapper = wrapper
        if wrapper:
            self.c = GXDLMSClient(True, client, 1, auth, password, InterfaceType.WRAPPER)
        else:
            self.c = GXDLMSClient(True, client, GXDLMSClient.getServerAddress(1, unit_id, 4),
                                  auth, password, InterfaceType.HDLC)

    def request(self, frames):
        # One request (a frame, a list of frames, or Gurux's list of lists), including the
        # RRs for segmented answers and the GET-next requests of block transfers.
        if not isinstance(frames, list):
            frames = [frames]
        if frames and isinstance(frames[0], list):
            frames = [f for group in frames for f in group]
        reply = GXReplyData()
        for f in frames:
            reply.clear()
            self._exchange(f, reply)
            while reply.isMoreData():
                self._exchange(self.c.receiverReady(reply), reply)
        return reply

    def _exchange(self, frame, reply):
        raise NotImplementedError

    def connect(self):
        snrm = self.c.snrmRequest()  # None over the wrapper: no data link to set up
        if snrm:
            self.c.parseUAResponse(self.request(snrm).data)
        self.c.parseAareResponse(self.request(self.c.aarqRequest()).data)

    def objects(self):
        return self.c.parseObjects(self.request(self.c.getObjectsRequest()).data, True)

    def read(self, obj, attr):
        return self.c.updateValue(obj, attr, self.request(self.c.read(obj, attr)).value)

    def attribute0_request(self, obj):
        # GET attribute 0 (every attribute at once, BB 4.1.2), which
        # GXDLMSClient.read() refuses (ordinals below 1). Gurux's own GET-Request-Normal
        # encoder around a descriptor with attribute-id 0 and no selective access. The
        # association must have proposed Conformance.ATTRIBUTE_0_SUPPORTED_WITH_GET.
        c = self.c
        c.settings.resetBlockIndex()
        if c.autoIncreaseInvokeID:
            c.settings.setInvokeID((c.settings.invokeId + 1) & 0xF)
        desc = GXByteBuffer()
        desc.setUInt16(int(obj.objectType))
        desc.set(_GXCommon.logicalNameToBytes(obj.logicalName))
        desc.setUInt8(0)  # attribute-id 0
        desc.setUInt8(0)  # no access-selection
        return GXDLMS.getLnMessages(GXDLMSLNParameters(
            c.settings, 0, Command.GET_REQUEST, GetCommandType.NORMAL, desc, None, 0xFF))

    def read_list(self, items):
        # GET-with-list (readList) of up to 10 (object, attribute) pairs, one request: the
        # reply, with value the list of values (None for a refused item; reply.error holds the
        # last refusal). Gurux 1.0.203 parses a list answer that came in blocks only when
        # settings.command/commandType say GET-with-list, which its client never sets
        # (GXDLMS.handleGetResponseNextDataBlock), so it is parsed here by Gurux's own list
        # parser from the reassembled data.
        assert len(items) <= 10, "Gurux splits longer lists into several requests"
        reply = self.request(self.c.readList(items))
        if not isinstance(reply.value, list):
            reply.data.position = 0
            GXDLMS.handleGetResponseWithList(self.c.settings, reply)
        return reply

    def close(self):
        # RLRQ, then DISC over HDLC (over the wrapper the connection's end is the link's).
        self.request(self.c.releaseRequest())
        if not self.wrapper:
            self.request(self.c.disconnectRequest())
