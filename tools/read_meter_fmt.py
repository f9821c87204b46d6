# read_meter_fmt.py: turning COSEM values into text for tools/read_meter.py (CPython only).
# Spec short forms: "BB" = Blue Book (IEC 62056-6-2, interface classes), "GB" = Green Book
# (IEC 62056-5-3, xDLMS), "OBIS" = IEC 62056-6-1.
#
# Values arrive as the client library decodes A-XDR: ints (or int subclasses), bool, bytearray
# for octet strings, str, lists for arrays and structures, a bit-string object whose str() is
# the bits in order. Nothing here talks to a meter.
import datetime

# BB 4.1.6.1 date-time: year(2) month day weekday hour minute second hundredths deviation(2)
# clock_status. 0xFF (0xFFFF for the year) = not specified; deviation 0x8000 = not specified.
# Deviation is minutes from local time to UTC: UTC = local + deviation, so CET is -60.
_NS = 0xFF
_NS_YEAR = 0xFFFF
_NS_DEV = -0x8000
_DST_END = 0xFD  # month: end of daylight saving
_DST_BEGIN = 0xFE  # month: begin of daylight saving
_LAST_DAY = 0xFE  # day_of_month: last day; 0xFD = second-last
_ST_DST = 0x80  # clock_status bit 7: daylight saving active
_ST_NAMES = ((0x01, "invalid"), (0x02, "doubtful"), (0x04, "different clock base"),
             (0x08, "invalid clock status"))
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

# BB 4.3.2 unit enumeration (the ones a meter is likely to use); 255 = count, no unit.
UNITS = {
    1: "a", 2: "mo", 3: "wk", 4: "d", 5: "h", 6: "min", 7: "s", 8: "deg", 9: "degC",
    10: "currency", 11: "m", 12: "m/s", 13: "m3", 14: "m3", 15: "m3/h", 16: "m3/h", 17: "m3/d",
    18: "m3/d", 19: "l", 20: "kg", 21: "N", 22: "Nm", 23: "Pa", 24: "bar", 25: "J", 26: "J/h",
    27: "W", 28: "VA", 29: "var", 30: "Wh", 31: "VAh", 32: "varh", 33: "A", 34: "C", 35: "V",
    36: "V/m", 37: "F", 38: "Ohm", 39: "Ohm m2/m", 40: "Wb", 41: "T", 42: "A/m", 43: "H",
    44: "Hz", 45: "1/(Wh)", 46: "1/(varh)", 47: "1/(VAh)", 48: "V2h", 49: "A2h", 50: "kg/s",
    51: "S", 52: "K", 53: "1/(V2h)", 54: "1/(A2h)", 55: "1/m3", 56: "%", 57: "Ah", 255: "",
}
_KILO = (27, 28, 29, 30, 31, 32)  # W VA var Wh VAh varh: shown in k-units unless base units

CLASS_NAMES = {
    1: "Data", 3: "Register", 4: "Extended register", 5: "Demand register",
    6: "Register activation", 7: "Profile generic", 8: "Clock", 9: "Script table",
    11: "Special days table", 12: "Association SN", 15: "Association LN",
    17: "SAP assignment", 19: "IEC local port setup", 20: "Activity calendar",
    21: "Register monitor", 22: "Single action schedule", 23: "IEC HDLC setup",
    41: "TCP-UDP setup", 42: "IPv4 setup", 64: "Security setup", 70: "Disconnect control",
    71: "Limiter",
}

# BB attribute names per class (attribute 1 is always logical_name).
ATTR_NAMES = {
    1: ("value",),
    3: ("value", "scaler_unit"),
    4: ("value", "scaler_unit", "status", "capture_time"),
    5: ("current_average_value", "last_average_value", "scaler_unit", "status", "capture_time",
        "start_time_current", "period", "number_of_periods"),
    7: ("buffer", "capture_objects", "capture_period", "sort_method", "sort_object",
        "entries_in_use", "profile_entries"),
    8: ("time", "time_zone", "status", "daylight_savings_begin", "daylight_savings_end",
        "daylight_savings_deviation", "daylight_savings_enabled", "clock_base"),
    15: ("object_list", "associated_partners_id", "application_context_name",
         "xDLMS_context_info", "authentication_mechanism_name", "secret",
         "association_status", "security_setup_reference", "user_list", "current_user"),
    17: ("SAP_assignment_list",),
}

# Short names in the style of the ION front panel, by OBIS (A, C, D, E); B and F vary.
NAMES = {
    (0, 40, 0, 0): "Association", (0, 41, 0, 0): "SAP assignment",
    (0, 42, 0, 0): "Logical device name", (0, 1, 0, 0): "Clock",
    (0, 97, 97, 0): "Interval status", (1, 99, 1, 0): "Load profile",
    (1, 98, 1, 0): "Billing profile",
    (1, 1, 8, 0): "kWh del", (1, 2, 8, 0): "kWh rec", (1, 16, 8, 0): "kWh del-rec",
    (1, 3, 8, 0): "kvarh del", (1, 4, 8, 0): "kvarh rec", (1, 128, 8, 0): "kvarh del-rec",
    (1, 9, 8, 0): "kVAh del+rec", (1, 5, 8, 0): "kvarh Q1", (1, 6, 8, 0): "kvarh Q2",
    (1, 7, 8, 0): "kvarh Q3", (1, 8, 8, 0): "kvarh Q4",
    (1, 1, 29, 0): "kWh del int", (1, 2, 29, 0): "kWh rec int",
    (1, 3, 29, 0): "kvarh del int", (1, 4, 29, 0): "kvarh rec int",
    (1, 16, 4, 0): "kW sd del-rec", (1, 128, 4, 0): "kvar sd del-rec",
    (1, 9, 4, 0): "kVA sd del+rec", (1, 13, 0, 0): "PF sign mean",
}

# GB 8.4 conformance block, bit 0 first.
_CONFORMANCE = (
    "reserved-zero", "general-protection", "general-block-transfer", "read", "write",
    "unconfirmed-write", "delta-value-encoding", "reserved-seven", "attribute0-with-set",
    "priority-mgmt", "attribute0-with-get", "block-transfer-with-get", "block-transfer-with-set",
    "block-transfer-with-action", "multiple-references", "information-report",
    "data-notification", "access", "parameterized-access", "get", "set", "selective-access",
    "event-notification", "action")
_CONTEXTS = {1: "LN referencing, no ciphering", 2: "SN referencing, no ciphering",
             3: "LN referencing, with ciphering", 4: "SN referencing, with ciphering"}
_MECHANISMS = {0: "lowest level security", 1: "low level security (password)",
               2: "high level security", 3: "HLS MD5", 4: "HLS SHA-1", 5: "HLS GMAC",
               6: "HLS SHA-256", 7: "HLS ECDSA"}
_ASSOC_STATUS = {0: "non-associated", 1: "association-pending", 2: "associated"}
_CLOCK_BASES = {0: "not defined", 1: "internal crystal", 2: "mains 50 Hz", 3: "mains 60 Hz",
                4: "GPS", 5: "radio controlled"}
SORT_METHODS = {1: "FIFO", 2: "LIFO", 3: "largest", 4: "smallest", 5: "nearest to zero",
                6: "farthest from zero"}


# **** OBIS ****


def obis(ln):
    # 6-byte logical name -> "A-B:C.D.E", with "*F" only when F is not 255.
    b = bytes(ln)
    s = "%d-%d:%d.%d.%d" % (b[0], b[1], b[2], b[3], b[4])
    return s if b[5] == 255 else s + "*%d" % b[5]


def parse_obis(text):
    # "1-0:99.1.0*255", "1-0:99.1.0", "1.0.99.1.0.255" -> 6 bytes; ValueError otherwise.
    t = text.strip().replace("-", ".").replace(":", ".").replace("*", ".")
    parts = t.split(".")
    if len(parts) == 5:
        parts.append("255")
    if len(parts) != 6:
        raise ValueError("not an OBIS code: %r" % text)
    vals = [int(p) for p in parts]
    if any(not 0 <= v <= 255 for v in vals):
        raise ValueError("not an OBIS code: %r" % text)
    return bytes(vals)


def name_of(ln):
    b = bytes(ln)
    return NAMES.get((b[0], b[2], b[3], b[4]), "")


# **** date-time ****


def decode_dt(b):
    # 12-byte octet string -> dict of its fields (None where not specified), or None.
    b = bytes(b)
    if len(b) != 12:
        return None
    y = (b[0] << 8) | b[1]
    dev = (b[9] << 8) | b[10]
    dev = dev - 0x10000 if dev & 0x8000 else dev
    return {
        "year": None if y == _NS_YEAR else y, "month": b[2], "day": b[3],
        "weekday": None if b[4] == _NS else b[4], "hour": None if b[5] == _NS else b[5],
        "minute": None if b[6] == _NS else b[6], "second": None if b[7] == _NS else b[7],
        "hundredths": None if b[8] == _NS else b[8],
        "deviation": None if dev == _NS_DEV else dev,
        "status": None if b[11] == _NS else b[11],
    }


def dt_to_datetime(b):
    # A fully specified date-time -> aware datetime (offset = -deviation); None if it is not
    # one instant (a pattern with wildcards, or no deviation).
    f = decode_dt(b)
    if f is None or None in (f["year"], f["hour"], f["minute"], f["second"], f["deviation"]):
        return None
    if not (1 <= f["month"] <= 12 and 1 <= f["day"] <= 31):
        return None
    tz = datetime.timezone(datetime.timedelta(minutes=-f["deviation"]))
    us = (f["hundredths"] or 0) * 10000
    try:
        return datetime.datetime(f["year"], f["month"], f["day"], f["hour"], f["minute"],
                                 f["second"], us, tzinfo=tz)
    except ValueError:
        return None


def iso(dt):
    # ISO 8601 with the offset; milliseconds only when there are any.
    return dt.isoformat(timespec="milliseconds" if dt.microsecond else "seconds")


def format_dt(b):
    # Local time with deviation as ISO 8601 when it is one instant, otherwise the pattern with
    # "*" for unspecified fields; status flags other than DST are appended.
    dt = dt_to_datetime(b)
    f = decode_dt(b)
    if f is None:
        return format_plain(b)
    if dt is not None:
        text = iso(dt)
    else:
        text = _pattern(f)
    st = f["status"]
    flags = [n for bit, n in _ST_NAMES if st is not None and st & bit]
    if st is not None and st & _ST_DST and dt is None:
        flags.append("DST")
    return text + (" [" + ", ".join(flags) + "]" if flags else "")


def _pattern(f):
    m = f["month"]
    month = {_NS: "*", _DST_END: "DST-end", _DST_BEGIN: "DST-begin"}.get(m, "%02d" % m)
    d = f["day"]
    day = {_NS: "*", _LAST_DAY: "last", 0xFD: "2nd-last"}.get(d, "%02d" % d)
    year = "*" if f["year"] is None else "%04d" % f["year"]
    text = "%s-%s-%s" % (year, month, day)
    if f["weekday"] is not None and 1 <= f["weekday"] <= 7:
        text += " " + _WEEKDAYS[f["weekday"] - 1]
    parts = [("*" if f[k] is None else "%02d" % f[k]) for k in ("hour", "minute", "second")]
    text += " " + ":".join(parts)
    if f["deviation"] is None:
        return text + " (local)"
    return text + _offset(-f["deviation"])


def _offset(minutes):
    sign = "+" if minutes >= 0 else "-"
    m = abs(minutes)
    return "%s%02d:%02d" % (sign, m // 60, m % 60)


def encode_dt(dt, status=0):
    # Aware datetime -> 12-byte date-time in its own offset (deviation = -offset).
    off = int(dt.utcoffset().total_seconds()) // 60
    dev = (-off) & 0xFFFF
    return bytes([dt.year >> 8, dt.year & 0xFF, dt.month, dt.day, dt.isoweekday(), dt.hour,
                  dt.minute, dt.second, dt.microsecond // 10000, dev >> 8, dev & 0xFF,
                  status])


def parse_when(text):
    # ISO 8601 date or date-time from the command line -> aware datetime. Without an offset it
    # is this PC's local time.
    t = text.strip()
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    dt = datetime.datetime.fromisoformat(t)
    return dt if dt.tzinfo is not None else dt.astimezone()


# **** numbers and units ****


def scaled(v, exp):
    # int v * 10**exp as exact decimal text (no float rounding): 52850, -3 -> "52.850".
    v = int(v)
    if exp >= 0:
        return str(v * 10 ** exp)
    s = str(abs(v)).rjust(1 - exp, "0")
    return ("-" if v < 0 else "") + s[:exp] + "." + s[exp:]


def unit_text(unit, base_units=False):
    u = UNITS.get(int(unit), "unit %d" % int(unit))
    return u if base_units or int(unit) not in _KILO else "k" + u


def scaler_unit(su):
    # BB scaler_unit structure {scaler: integer, unit: enum} -> (scaler, unit), or None.
    if isinstance(su, (list, tuple)) and len(su) == 2:
        return int(su[0]), int(su[1])
    return None


def quantity(v, su, base_units=False):
    # A register value with its scaler and unit applied: (number text, unit text).
    if su is None or not isinstance(v, int) or isinstance(v, bool):
        return format_plain(v), ""
    scaler, unit = su
    exp = scaler if base_units or unit not in _KILO else scaler - 3
    return scaled(v, exp), unit_text(unit, base_units)


# **** values by class and attribute ****


def format_plain(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(int(v))
    if isinstance(v, (bytes, bytearray)):
        b = bytes(v)
        if b and all(32 <= c < 127 for c in b):
            return repr(b.decode("ascii"))
        return "0x" + b.hex().upper() if b else "(empty)"
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(format_plain(x) for x in v) + "]"
    return str(v)


def _oid(v):
    return ".".join(str(int(x)) for x in v)


def capture_def(c):
    # capture_object_definition {class_id, logical_name, attribute_index, data_index}
    text = "%s %s attr %d" % (CLASS_NAMES.get(int(c[0]), "class %d" % c[0]), obis(c[1]),
                              int(c[2]))
    return text + (" data %d" % c[3] if c[3] else "")


def format_attr(cls, ln, attr, v, su=None, base_units=False):
    # One attribute as a list of text lines (most are one line).
    fn = _FORMATTERS.get((cls, attr))
    if fn is not None:
        out = fn(v)
        return out if isinstance(out, list) else [out]
    if (cls, attr) in ((3, 2), (4, 2), (5, 2), (5, 3)):
        num, unit = quantity(v, su, base_units)
        return [(num + " " + unit).rstrip()]
    if (cls, attr) in ((3, 3), (4, 3), (5, 4)) and scaler_unit(v):
        s, u = scaler_unit(v)
        return ["10^%d %s" % (s, UNITS.get(u, "unit %d" % u) or "(no unit)")]
    if cls == 1 and attr == 2 and isinstance(v, int) and bytes(ln)[2] in (96, 97):
        return ["0x%04X" % int(v)]  # status words (C = 96/97) read best in hex
    if isinstance(v, (bytes, bytearray)) and len(v) == 12 and dt_to_datetime(v):
        return [format_dt(v)]
    return [format_plain(v)]


def _time_zone(v):
    return "%d min (standard time UTC%s)" % (int(v), _offset(-int(v)))


def _clock_status(v):
    v = int(v)
    flags = [n for bit, n in _ST_NAMES if v & bit] + (["DST"] if v & _ST_DST else [])
    return "0x%02X" % v + (" (" + ", ".join(flags) + ")" if flags else "")


def _conformance(v):
    bits = str(v[0])
    names = [_CONFORMANCE[i] for i, b in enumerate(bits) if b == "1" and i < len(_CONFORMANCE)]
    return ["conformance: " + ", ".join(names),
            "max receive PDU %d, max send PDU %d, DLMS version %d" % (v[1], v[2], v[3])]


def _partners(v):
    return "client SAP %d, server SAP %d" % (int(v[0]), int(v[1]))


def _context(v):
    return "%s (%s)" % (_oid(v), _CONTEXTS.get(int(v[-1]), "unknown"))


def _mechanism(v):
    return "%s (%s)" % (_oid(v), _MECHANISMS.get(int(v[-1]), "unknown"))


def _sap_list(v):
    return ["SAP %d: %s" % (int(e[0]), format_plain(e[1])) for e in v] or ["(empty)"]


def _captures(v):
    return [capture_def(c) for c in v] or ["(none)"]


def _sort_object(v):
    return "(none)" if not int(v[0]) else capture_def(v)


_FORMATTERS = {
    (8, 2): format_dt, (8, 3): _time_zone, (8, 4): _clock_status, (8, 5): format_dt,
    (8, 6): format_dt, (8, 7): lambda v: "%d min" % int(v),
    (8, 8): lambda v: "yes" if v else "no",
    (8, 9): lambda v: "%d (%s)" % (int(v), _CLOCK_BASES.get(int(v), "?")),
    (4, 5): format_dt, (5, 6): format_dt, (5, 7): format_dt,
    (5, 8): lambda v: "%d s" % int(v),
    (7, 3): _captures, (7, 4): lambda v: "%d s" % int(v),
    (7, 5): lambda v: "%d (%s)" % (int(v), SORT_METHODS.get(int(v), "?")),
    (7, 6): _sort_object,
    (15, 2): lambda v: "%d objects" % len(v), (15, 3): _partners, (15, 4): _context,
    (15, 5): _conformance, (15, 6): _mechanism,
    (15, 8): lambda v: "%d (%s)" % (int(v), _ASSOC_STATUS.get(int(v), "?")),
    (15, 9): obis, (17, 2): _sap_list,
}


# **** table ****


def table(rows, head):
    # rows: (obis, name, class, attr, [value lines]); the first three only on an object's first
    # line. Column widths from the content; the last column is not padded.
    w = [len(h) for h in head[:4]]
    for r in rows:
        for i in range(4):
            w[i] = max(w[i], len(r[i]))
    fmt = "  ".join("%%-%ds" % n for n in w) + "  %s"
    out = [(fmt % tuple(head)).rstrip()]
    for r in rows:
        lines = r[4] or [""]
        out.append((fmt % (r[0], r[1], r[2], r[3], lines[0])).rstrip())
        for more in lines[1:]:
            out.append((fmt % ("", "", "", "", more)).rstrip())
    return "\n".join(out)
