# gurux_util.py: the real Gurux client driven request by request. Subclasses supply the
# transport: _exchange(frame, reply) sends one frame and feeds the answer to Gurux.
from gurux_dlms import GXDLMSClient, GXReplyData
from gurux_dlms.enums import Authentication, InterfaceType


class GuruxSession:
    def __init__(self, client=16, auth=Authentication.NONE, password=None, unit_id=17):
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
        self.c.parseUAResponse(self.request(self.c.snrmRequest()).data)
        self.c.parseAareResponse(self.request(self.c.aarqRequest()).data)

    def objects(self):
        return self.c.parseObjects(self.request(self.c.getObjectsRequest()).data, True)

    def read(self, obj, attr):
        return self.c.updateValue(obj, attr, self.request(self.c.read(obj, attr)).value)

    def close(self):
        self.request(self.c.releaseRequest())
        self.request(self.c.disconnectRequest())
