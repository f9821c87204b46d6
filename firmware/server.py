# server.py: the DLMS/COSEM application layer behind a data link (HDLC or the TCP wrapper):
# association control (AARQ/AARE, RLRQ/RLRE) and xDLMS services for the associated client.
# Spec short forms: "GB" = Green Book (IEC 62056-5-3) 9.3 ACSE and 9.4 association rules.
#
# The link calls on_pdu(client_sap, req, n, resp) per request and on_link_lost() when the
# link drops (every association ends with its link). poll(now_ms) keeps time for the LLS
# lockout. Allocation-free after init.
from micropython import const

import acse
import xdlms
from hdlc import ticks_diff

_MIN_PDU = const(16)  # a client receive size below this cannot carry a block header and data
_SERVER_SAP = const(1)  # the management logical device (the seed: address 0x0001)


class Client:
    # One configured association: client SAP, mechanism (acse.MECH_LOWEST / MECH_LLS), LLS
    # password (bytes; None = LLS disabled) and its cosem.Profile (access rights).
    def __init__(self, sap, mechanism, password, profile):
        self.sap = sap
        self.mechanism = mechanism
        self.password = password
        self.profile = profile


class Association:
    # The calling association as Association LN (IC 15) shows it.
    def __init__(self):
        self.scratch = bytearray(3)
        self.reset()

    def reset(self):
        self.associated = False
        self.client_sap = 0
        self.server_sap = _SERVER_SAP
        self.conformance = 0
        self.max_receive_pdu = 0
        self.max_send_pdu = 0
        self.mechanism = acse.MECH_LOWEST
        self.profile = None


class Lockout:
    # The LLS lockout: after `limit` consecutive wrong passwords every LLS attempt is refused
    # for `ms`, the right password included. One per meter, shared by the servers of all its
    # ports, so a second port (the TCP wrapper beside RS-485) gives a guesser no more tries
    # and a lockout on one port holds on all of them.
    def __init__(self, limit=3, ms=60000):
        self.limit = limit
        self.ms = ms
        self.failures = 0  # consecutive failed LLS attempts, on any port
        self.locked = False
        self.start = 0

    def poll(self, now):
        if self.locked and ticks_diff(now, self.start) >= self.ms:
            self.locked = False
            self.failures = 0

    def failed(self, now):
        self.failures += 1
        if self.failures >= self.limit:
            self.locked = True
            self.start = now


class Server:
    def __init__(self, objects, clients, assoc, pdu_size=1024, lockout_failures=3,
                 lockout_ms=60000, assoc_ln=None, lockout=None):
        self.svc = xdlms.Services(objects)
        # Several ports (links) each have a Server and an Association over one object table;
        # the Association LN object shows the association of the port being served.
        self.assoc_ln = assoc_ln
        self.clients = clients
        self.assoc = assoc
        self.pdu_size = pdu_size
        self.aarq = acse.Aarq()
        self.lockout = lockout or Lockout(lockout_failures, lockout_ms)
        self.now = 0
        # Counters for diagnostics
        self.associations = 0
        self.refusals = 0

    def poll(self, now):
        self.now = now
        self.lockout.poll(now)

    # **** link upcalls ****

    def on_pdu(self, client, req, n, resp):
        if n == 0:
            return 0
        if self.assoc_ln is not None:
            self.assoc_ln.assoc = self.assoc
        tag = req[0]
        if tag == acse.AARQ:
            return self._aarq(client, req, n, resp)
        if tag == acse.RLRQ:
            self._release()
            if acse.parse_rlrq(req, 0, n) != acse.OK:
                return xdlms.exception(resp, xdlms.STATE_UNKNOWN, xdlms.SERVICE_OTHER)
            return acse.build_rlre(resp)
        a = self.assoc
        if not a.associated or client != a.client_sap:
            return xdlms.exception(resp, xdlms.STATE_NOT_ALLOWED, xdlms.SERVICE_NOT_POSSIBLE)
        return self.svc.handle(req, n, resp, a.max_send_pdu)

    def on_ui(self, client, req, n):
        pass  # no unconfirmed services are offered

    def on_link_lost(self):
        self._release()

    def _release(self):
        self.assoc.reset()
        self.svc.abort()
        self.svc.conformance = 0
        self.svc.profile = None

    # **** association ****

    def _aarq(self, sap, req, n, resp):
        # GB 9.4: a new AARQ replaces any current association.
        self._release()
        a = self.aarq
        if a.parse(req, 0, n) != acse.OK or not a.has_initiate:
            return self._refuse(resp, acse.DIAG_NO_REASON)
        if a.context != acse.CONTEXT_LN or a.ciphered:
            return self._refuse(resp, acse.DIAG_CONTEXT_NOT_SUPPORTED)
        client = self._client(sap)
        if client is None:
            return self._refuse(resp, acse.DIAG_NO_REASON)
        diag = self._authenticate(client, req)
        if diag:
            return self._refuse(resp, diag)
        if a.dlms_version < 6:
            return self._init_error(resp, acse.INIT_DLMS_VERSION_TOO_LOW)
        conf = a.conformance & xdlms.SUPPORTED
        if not conf & (xdlms.CONF_GET | xdlms.CONF_SET):
            return self._init_error(resp, acse.INIT_INCOMPATIBLE_CONFORMANCE)
        send = a.max_pdu
        if send == 0 or send > self.pdu_size:
            send = self.pdu_size  # 0 means the client has no limit
        if send < _MIN_PDU:
            return self._init_error(resp, acse.INIT_PDU_SIZE_TOO_SHORT)
        s = self.assoc
        s.associated = True
        s.client_sap = sap
        s.conformance = conf
        s.max_receive_pdu = self.pdu_size
        s.max_send_pdu = send
        s.mechanism = client.mechanism
        s.profile = client.profile
        self.svc.conformance = conf
        self.svc.profile = client.profile
        self.associations += 1
        return acse.build_aare(resp, acse.ACCEPTED, acse.DIAG_NULL, conf, self.pdu_size)

    def _authenticate(self, client, req):
        # Returns 0 or the acse-service-user diagnostic of the refusal.
        a = self.aarq
        got = a.mechanism
        if got == acse.MECH_ABSENT:
            got = acse.MECH_LOWEST
        if got != acse.MECH_LOWEST and got != acse.MECH_LLS:
            return acse.DIAG_MECHANISM_NOT_RECOGNISED
        if client.mechanism == acse.MECH_LOWEST:
            return 0 if got == acse.MECH_LOWEST else acse.DIAG_MECHANISM_NOT_RECOGNISED
        if got != acse.MECH_LLS or a.pw_len < 0:
            return acse.DIAG_AUTH_REQUIRED
        lock = self.lockout
        lock.poll(self.now)  # a lockout may just have ended
        if lock.locked or client.password is None:
            return acse.DIAG_AUTH_FAILURE
        if not a.password_equals(req, client.password):
            lock.failed(self.now)
            return acse.DIAG_AUTH_FAILURE
        lock.failures = 0
        return 0

    def _client(self, sap):
        for c in self.clients:
            if c.sap == sap:
                return c
        return None

    def _refuse(self, resp, diag):
        self.refusals += 1
        return acse.build_aare(resp, acse.REJECTED_PERMANENT, diag, 0, 0)

    def _init_error(self, resp, err):
        self.refusals += 1
        return acse.build_aare(resp, acse.REJECTED_PERMANENT, acse.DIAG_NO_REASON, 0, 0, err)
