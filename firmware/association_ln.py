# association_ln.py: Association LN (IC 15, version 1), always the current association.
# Spec short form: "BB" = Blue Book (IEC 62056-6-2) 4.4.3. object_list is streamed one entry
# per piece, with the access rights of the association that reads it.
from micropython import const

import axdr
from cosem import NO_ACCESS, READ, CosemObject

_ATTR_SECRET = const(7)
# association_status enum, BB 4.4.3
_NON_ASSOCIATED = const(0)
_ASSOCIATED = const(2)
# The DLMS-UA arcs of application-context and mechanism names, as BB 4.4.3 structures:
# {joint-iso-ctt 2, country 16, country-name 756, identified-organization 5, DLMS-UA 8, x, id}
_CONTEXT_ARC = const(1)
_MECHANISM_ARC = const(2)


class AssociationLN(CosemObject):
    class_id = 15
    version = 1
    n_attrs = 9
    n_methods = 4

    def __init__(self, ln, assoc, objects):
        CosemObject.__init__(self, ln)
        self.assoc = assoc  # server.Association: the calling association's state
        self.objects = objects  # the object table (includes this object)

    def access(self, attr, profile):
        return NO_ACCESS if attr == _ATTR_SECRET else READ

    def begin_attr(self, attr, cur, params):
        if attr == 2:
            cur.n = len(self.objects)
        return 0

    def next_attr(self, cur, out, off):
        a = cur.attr
        if a == 2:
            return self._object_list(cur, out, off)
        if cur.i:
            return off
        cur.i = 1
        s = self.assoc
        if a == 3:  # associated_partners_id {client_SAP integer, server_SAP long-unsigned}
            off = axdr.put_struct(out, off, 2)
            off = axdr.put_i8(out, off, s.client_sap)
            return axdr.put_u16(out, off, s.server_sap)
        if a == 4:
            return _name(out, off, _CONTEXT_ARC, 1)
        if a == 5:  # xDLMS_context_info
            off = axdr.put_struct(out, off, 6)
            c = s.conformance
            off = axdr.put_bits(out, off, 24, _conformance_bytes(self._scratch(), c), 0)
            off = axdr.put_u16(out, off, s.max_receive_pdu)
            off = axdr.put_u16(out, off, s.max_send_pdu)
            off = axdr.put_u8(out, off, 6)  # dlms_version_number
            off = axdr.put_i8(out, off, 0)  # quality_of_service
            return axdr.put_octets(out, off, b"", 0, 0)  # cyphering_info: none
        if a == 6:
            return _name(out, off, _MECHANISM_ARC, s.mechanism)
        if a == 8:
            return axdr.put_enum(out, off, _ASSOCIATED if s.associated else _NON_ASSOCIATED)
        if a == 9:  # security_setup_reference: none
            return axdr.put_octets(out, off, b"\x00\x00\x00\x00\x00\x00", 0, 6)
        return off

    def _scratch(self):
        return self.assoc.scratch

    def _object_list(self, cur, out, off):
        # array of {class_id, version, logical_name, access_rights}
        i = cur.i
        if i == 0:
            cur.i = 1
            return axdr.put_array(out, off, cur.n)
        if i > cur.n:
            return off
        cur.i = i + 1
        obj = self.objects[i - 1]
        off = axdr.put_struct(out, off, 4)
        off = axdr.put_u16(out, off, obj.class_id)
        off = axdr.put_u8(out, off, obj.version)
        off = axdr.put_octets(out, off, obj.ln, 0, 6)
        return self._rights(obj, out, off)

    def _rights(self, obj, out, off):
        # access_rights {attribute_access array of {id, mode, selectors}, method_access
        # array of {id, mode}} (BB 4.4.3, version 1: modes are enums)
        profile = self.assoc.profile
        off = axdr.put_struct(out, off, 2)
        off = axdr.put_array(out, off, obj.n_attrs)
        for a in range(1, obj.n_attrs + 1):
            off = axdr.put_struct(out, off, 3)
            off = axdr.put_i8(out, off, a)
            off = axdr.put_enum(out, off, obj.access(a, profile))
            sel = obj.selectors(a)
            if sel:
                n = 0
                for s in range(1, 8):
                    if sel & (1 << s):
                        n += 1
                off = axdr.put_array(out, off, n)
                for s in range(1, 8):
                    if sel & (1 << s):
                        off = axdr.put_i8(out, off, s)
            else:
                off = axdr.put_null(out, off)
        off = axdr.put_array(out, off, obj.n_methods)
        for m in range(1, obj.n_methods + 1):
            off = axdr.put_struct(out, off, 2)
            off = axdr.put_i8(out, off, m)
            off = axdr.put_enum(out, off, obj.method_access(m, profile))
        return off


def _name(out, off, arc, ident):
    off = axdr.put_struct(out, off, 7)
    off = axdr.put_u8(out, off, 2)
    off = axdr.put_u8(out, off, 16)
    off = axdr.put_u16(out, off, 756)
    off = axdr.put_u8(out, off, 5)
    off = axdr.put_u8(out, off, 8)
    off = axdr.put_u8(out, off, arc)
    return axdr.put_u8(out, off, ident)


def _conformance_bytes(buf, c):
    buf[0] = (c >> 16) & 0xFF
    buf[1] = (c >> 8) & 0xFF
    buf[2] = c & 0xFF
    return buf
