# config.py: the board's one JSON configuration file, checked once at boot. Every key is
# checked (type and range); a missing key takes its default silently, an invalid one takes its
# default with one message naming the key, the rule and the value used; unknown keys are
# reported and ignored; keys starting with "_" are comments and ignored at every level (JSON
# has none). The PC runs the same rules: `python tools/config.py check FILE`.
# Setup code only (runs once, allocates freely); CPython and MicroPython alike.
#
#   load(path) -> (cfg, messages)     read + validate; an unreadable file or bad JSON: defaults
#   read(path) -> (raw, message)      the parsed file, or (None, why it could not be used)
#   validate(raw) -> (cfg, messages)  a complete config (a new dict, every key present)
#   defaults() -> cfg                 the default config
#   replaced(messages) -> list        the messages that report a value replaced (not notices)
#   report(messages, log_path=None, out=print, cap=LOG_CAP)  print, and keep in a bounded log
#
# The shape (defaults shown). The meter keys are model.DEFAULTS (model.Meter(cfg) takes cfg
# as it is); the sections are for the boot code (HdlcLink, ATM90E32, the ESP32 TCP wrapper).
# {
#   "ldn": "SCH0000000000017",    3-letter manufacturer id (A-Z) + serial, 4..16 printable ASCII
#   "recording_interval": 900,    s; divides 86400, 60..86400 (rows stay on local-time marks)
#   "utc_offset": 60,             minutes local standard time is ahead of UTC; -720..840, /15
#   "dst": true,
#   "dst_rule": {"begin": [3, 5, 7, 1], "end": [10, 5, 7, 1], "deviation": 60},
#                                 [month, week 1..4 or 5 = last, weekday 1 = Monday..7, hour
#                                 UTC]; deviation -120..120 minutes (BB 4.5.1 attribute 7)
#   "billing": {"day": 1, "hour": 0, "minute": 0},      local wall time, day 1..28
#   "demand": {"sub_s": 900, "subs": 1},  sub_s divides 86400, 60..86400; subs 1..15;
#                                 subs * sub_s <= 86400 (a window of at most one day)
#   "public_sap": 16, "management_sap": 1,   client SAPs 1..126, different
#   "lls_password": null,         1..16 printable ASCII; null: NO management association
#   "lls_lockout_failures": 3, "lls_lockout_s": 60,   1..255 failures, 1..86400 s
#   "log_exports": [              at most 8 (seed: "DLMS Log Export module" setup registers)
#     {"obis": "1-0:99.1.0*255",  the Profile Generic OBIS code; unique in the object table
#      "status": true,            status column (seed: "Status Register"), default false
#      "sources": ["1-1:1.29.0*255", ...],  <= 16: a register of model.REGISTERS or "none"
#      "periodic": true,          recorded every recording_interval; false: at billing
#      "entries": 3360},          rows kept, 1..8760 (default 24)
#     {"obis": "1-0:98.1.0*255", ... the billing profile (model.BILLING)}],
#   "hdlc": {"unit_id": 17,       the physical device address (seed: "Unit ID"), 1..16381
#            "baud": 9600,        300..115200, a standard rate
#            "rx_timeout_ms": 1000,   inter-frame timeout (seed: "RxTimeout"), 20..5000, and
#                                 at least 3 character times at `baud`
#            "inactivity_s": 120, 10..3600 (seed: 120 s)
#            "max_info_tx": 128, "max_info_rx": 128,   16..2030 (hdlc.HdlcLink)
#            "window_tx": 1, "window_rx": 1},          1..7
#   "frontend": {...},            the ATM90E32AS driver's keys, defaults from atm90e32.py
#   "wrapper": {"enabled": false, "port": 4059, "ssid": null, "password": null},
#                                 the ESP32 IEC 62056-47 TCP wrapper (IANA port 4059) over
#                                 Wi-Fi: SSID 1..32 bytes, WPA2 passphrase 8..63 printable
#                                 ASCII or null (open network); enabled needs an SSID
#   "flags": {"heap_lock": false} lock the heap in the main loop (allocation trips MemoryError)
# }
#
# No default password: without a valid lls_password the management association (client 1,
# the only one that may set the clock) does not exist, and a notice says so at every boot.
# The password is the AARQ calling-authentication-value, charstring = GraphicString (GB 9.3.2,
# ISO/IEC 8650-1): graphic characters, so printable ASCII, which every head-end can also type.
# At most 16: our limit (the seed gives no ION limit), twice the usual 8-character meter
# password. Secrets (lls_password, wrapper.password) never appear in messages or the log.
#
# MicroPython's json also takes a missing or trailing comma that CPython's refuses, so the PC
# check is the stricter one. The module costs RAM while it is loaded (15.6 KB imported from
# .mpy on the 32-bit WebAssembly port; frozen, its code stays in flash): the meter needs it
# only at boot, so mainloop.boot() drops it again once the config is read (report, the one
# function the running meter calls, lives in logfile.py).
import errno
import json

from micropython import const

import atm90e32
import cosem
import energy
import model
from logfile import LOG_CAP, report  # noqa: F401  (config.report: the interface above)
from logfile import why as _why
NO_PASSWORD = "config: no lls_password:"  # the notice's prefix (not a replacement)
_EXPORTS_MAX = const(8)
_SOURCES_MAX = const(16)  # seed: "OBIS Code Source 1 - OBIS Code Source 16"
_ENTRIES_MAX = const(8760)  # a year of hourly rows; flash files cost RAM (store.py, README)
_PW_MAX = const(16)
_SHOW_MAX = const(40)  # characters of a value or key quoted in a message
_DAY = const(86400)
# model.Meter's fixed objects: Association LN, SAP assignment, LDN, clock, status
_FIXED = ("0-0:40.0.0", "0-0:41.0.0", "0-0:42.0.0", "0-0:1.0.0", "0-0:97.97.0")
_BAUDS = (300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
_HDLC = {"unit_id": 17, "baud": 9600, "rx_timeout_ms": 1000, "inactivity_s": 120,
         "max_info_tx": 128, "max_info_rx": 128, "window_tx": 1, "window_rx": 1}
_WRAPPER = {"enabled": False, "port": 4059, "ssid": None, "password": None}
_FLAGS = {"heap_lock": False}
_MISSING = object()


# **** value tests: (test(v) -> bool, what a valid value is) ****


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _rng(lo, hi, unit=""):
    return (lambda v: _is_int(v) and lo <= v <= hi), "must be an integer %d..%d%s" % (lo, hi, unit)


def _oneof(vals, unit=""):
    text = ", ".join(str(x) for x in vals[:-1]) + " or " + str(vals[-1])
    return (lambda v: _is_int(v) and v in vals), "must be " + text + unit


def _printable(s, lo, hi):
    if not isinstance(s, str) or not lo <= len(s) <= hi:
        return False
    for ch in s:
        if not 0x20 <= ord(ch) <= 0x7E:
            return False
    return True


def _day_part(v):
    return _is_int(v) and 60 <= v <= _DAY and _DAY % v == 0


def _ldn(v):
    if not _printable(v, 4, 16) or " " in v:
        return False
    for ch in v[:3]:
        if not "A" <= ch <= "Z":
            return False
    return True


def _utc_offset(v):
    return _is_int(v) and -720 <= v <= 840 and v % 15 == 0


def _dst_switch(v):
    if not isinstance(v, list) or len(v) != 4 or not all(_is_int(x) for x in v):
        return False
    return 1 <= v[0] <= 12 and 1 <= v[1] <= 5 and 1 <= v[2] <= 7 and 0 <= v[3] <= 23


def _reg3(v):
    return isinstance(v, list) and len(v) == 3 and all(
        _is_int(x) and -0x8000 <= x <= 0xFFFF for x in v)


def _ssid(v):
    return v is None or (isinstance(v, str) and 1 <= len(v.encode()) <= 32)


def _wifi_password(v):
    return v is None or _printable(v, 8, 63)


_BOOL = (lambda v: isinstance(v, bool)), "must be true or false"
_SWITCH = _dst_switch, ("must be [month 1..12, week 1..4 or 5 = last, weekday 1..7 (Monday "
                        "= 1), hour 0..23 UTC]")
_SAP = _rng(1, 126, " (client SAP: 0 is no-station, 127 all-station)")
_REG = _rng(0, 0xFFFF, " (a 16-bit register value)")
_REG3 = _reg3, "must be [A, B, C]: 3 register values -32768..65535 (negative: two's complement)"
_DAY_PART = _day_part, "must divide 86400 and be 60..86400 s"
_WIFI_PW = _wifi_password, "must be a WPA2 passphrase of 8..63 printable ASCII, or null (open)"


# **** the table: section = list, value = (test, rule) tuple, special = function ****


def _password(v, d, path, msgs):
    if v is _MISSING or v is None:
        return None
    if _printable(v, 1, _PW_MAX):
        return v
    msgs.append(_bad(path, "", "must be 1..16 printable ASCII characters: the LLS secret is a "
                     "GraphicString, GB 9.3.2", "using no password"))
    return None


def _exports(v, d, path, msgs):
    if v is _MISSING:
        v = d
    elif not isinstance(v, list) or len(v) > _EXPORTS_MAX:
        msgs.append(_bad(path, _show(v), "must be a list of at most 8 exports {obis, status, "
                         "sources, periodic, entries}", "using the defaults"))
        v = d
    taken = [cosem.parse_obis(x) for x in _FIXED]
    taken += [cosem.parse_obis(r[0]) for r in model.REGISTERS]
    out = []
    for i in range(len(v)):
        e = _export(v[i], "%s[%d]" % (path, i), taken, msgs)
        if e is not None:
            out.append(e)
    return out


_EXPORT = [("obis", None), ("status", _BOOL), ("sources", None), ("periodic", _BOOL),
           ("entries", _rng(1, _ENTRIES_MAX, " rows"))]
_EXPORT_DEFAULTS = {"status": False, "periodic": False, "entries": 24}  # as model.Meter reads


def _export(e, path, taken, msgs):
    # One log export, normalised ("1-0.99.1.0.255" -> "1-0:99.1.0*255", "NONE" -> "none"),
    # or None (dropped, with a message) when its OBIS code or its source list is unusable.
    if not isinstance(e, dict):
        msgs.append(_bad(path, _show(e), "must be an object {obis, status, sources, periodic, "
                         "entries}", "export dropped"))
        return None
    o = e.get("obis")
    ln = cosem.parse_obis(o) if isinstance(o, str) else None
    if ln is None or ln in taken:
        msgs.append(_bad(path + ".obis", _show(o), "must be an OBIS code such as "
                         "1-0:99.1.0*255 that no other object uses", "export dropped"))
        return None
    srcs = e.get("sources", [])
    if not isinstance(srcs, list) or len(srcs) > _SOURCES_MAX:
        msgs.append(_bad(path + ".sources", _show(srcs), "must be a list of at most 16 OBIS "
                         "codes or \"none\"", "export dropped"))
        return None
    taken.append(ln)
    out = _section(e, _EXPORT, _EXPORT_DEFAULTS, path, msgs)
    out["obis"] = _text(ln)
    out["sources"] = [_source(srcs[k], "%s.sources[%d]" % (path, k), msgs)
                      for k in range(len(srcs))]
    return out


def _source(s, path, msgs):
    if isinstance(s, str) and s.strip().lower() == "none":
        return "none"
    ln = cosem.parse_obis(s) if isinstance(s, str) else None
    for r in model.REGISTERS:
        if ln is not None and cosem.parse_obis(r[0]) == ln:
            return _text(ln)
    regs = " ".join(r[0][4:] for r in model.REGISTERS)
    msgs.append(_bad(path, _show(s), "must be \"none\" or a register of this meter, 1-1:C.D.E "
                     "with C.D.E one of " + regs, "using none"))
    return "none"


_SPEC = [
    ("ldn", (_ldn, "must be 4..16 printable ASCII characters without spaces: a 3-letter "
             "manufacturer id (A-Z), then the serial")),
    ("recording_interval", _DAY_PART),
    ("utc_offset", (_utc_offset, "must be the minutes local standard time is ahead of UTC, "
                    "a multiple of 15 in -720..840")),
    ("dst", _BOOL),
    ("dst_rule", [("begin", _SWITCH), ("end", _SWITCH), ("deviation", _rng(-120, 120, " min"))]),
    ("billing", [("day", _rng(1, 28)), ("hour", _rng(0, 23)), ("minute", _rng(0, 59))]),
    ("demand", [("sub_s", _DAY_PART), ("subs", _rng(1, energy.SUBS_MAX))]),
    ("public_sap", _SAP),
    ("management_sap", _SAP),
    ("lls_password", _password),
    ("lls_lockout_failures", _rng(1, 255)),
    ("lls_lockout_s", _rng(1, _DAY, " s")),
    ("log_exports", _exports),
    ("hdlc", [("unit_id", _rng(1, 16381)), ("baud", _oneof(_BAUDS, " baud")),
              ("rx_timeout_ms", _rng(20, 5000, " ms")), ("inactivity_s", _rng(10, 3600, " s")),
              ("max_info_tx", _rng(16, 2030, " bytes")), ("max_info_rx", _rng(16, 2030, " bytes")),
              ("window_tx", _rng(1, 7)), ("window_rx", _rng(1, 7))]),
    ("frontend", [
        ("meter_constant", _rng(105, 16383, " imp/kWh (PLconstH/L = 450e9 / meter_constant)")),
        ("resolution", _oneof((10, 100), " energy LSBs per CF pulse")),
        ("line_freq", _oneof((50, 60), " Hz")),
        ("wiring", _oneof((3, 4), " (3P3W, 3P4W)")),
        ("mmode1", _REG), ("ugain", _REG3), ("igain", _REG3), ("uoffset", _REG3),
        ("ioffset", _REG3), ("poffset", _REG3), ("qoffset", _REG3), ("pqgain", _REG3),
        ("phi", _REG3), ("pstartth", _REG), ("qstartth", _REG), ("sstartth", _REG),
        ("pphaseth", _REG), ("qphaseth", _REG), ("sagpeak", _REG), ("zxconfig", _REG),
        ("meteren_every", _rng(1, 3600, " polls")), ("retries", _rng(1, 10)),
        ("reset_ms", _rng(6, 1000, " ms"))]),
    ("wrapper", [("enabled", _BOOL), ("port", _rng(1, 65535)),
                 ("ssid", (_ssid, "must be a Wi-Fi SSID of 1..32 bytes, or null")),
                 ("password", _WIFI_PW)]),
    ("flags", [("heap_lock", _BOOL)]),
]


# **** validation ****


def validate(raw):
    msgs = []
    if not isinstance(raw, dict):
        msgs.append("config: the file must hold one JSON object {...}: using the defaults")
        raw = {}
    cfg = _section(raw, _SPEC, _defaults(), "", msgs)
    _cross(cfg, msgs)
    if cfg["lls_password"] is None:
        msgs.append(NO_PASSWORD + " the management association (client %d) is disabled"
                    % cfg["management_sap"])
    return cfg, msgs


def _section(raw, spec, dflt, path, msgs):
    out = {}
    pre = path + "." if path else ""
    if raw is _MISSING:
        raw = {}
    elif not isinstance(raw, dict):
        msgs.append(_bad(path, _show(raw), "must be an object {...}", "using the defaults"))
        raw = {}
    for key, rule in spec:
        v = raw.get(key, _MISSING)
        d = dflt.get(key)
        if isinstance(rule, list):
            out[key] = _section(v, rule, d, pre + key, msgs)
        elif callable(rule):
            out[key] = rule(v, d, pre + key, msgs)
        elif rule is None or v is _MISSING:
            out[key] = _copy(d)
        elif rule[0](v):
            out[key] = _copy(v)
        else:
            secret = rule is _WIFI_PW
            msgs.append(_bad(pre + key, "" if secret else _show(v), rule[1], "using " + _show(d)))
            out[key] = _copy(d)
    for key in sorted(raw):
        if key not in out and not key.startswith("_"):
            msgs.append("config: unknown key %s%s ignored" % (pre, _clip(key)))
    return out


def _cross(c, msgs):
    # Rules between keys; each puts the defaults of the keys involved back.
    d = _defaults()
    if c["public_sap"] == c["management_sap"]:
        msgs.append(_bad("management_sap", str(c["public_sap"]), "must differ from public_sap",
                         "using public_sap %d, management_sap %d" % (d["public_sap"],
                                                                d["management_sap"])))
        c["public_sap"], c["management_sap"] = d["public_sap"], d["management_sap"]
    r = c["dst_rule"]
    if r["begin"] == r["end"]:
        msgs.append(_bad("dst_rule.end", _show(r["end"]), "must differ from begin",
                         "using the default rule"))
        r["begin"], r["end"] = d["dst_rule"]["begin"], d["dst_rule"]["end"]
    m = c["demand"]
    if m["subs"] * m["sub_s"] > _DAY:
        c["demand"] = d["demand"]
        msgs.append(_bad("demand", "%d x %d s" % (m["subs"], m["sub_s"]), "subs x sub_s must be "
                         "at most 86400 s", "using %d x %d s" % (d["demand"]["subs"],
                                                           d["demand"]["sub_s"])))
    h = c["hdlc"]
    least = 30000 // h["baud"] + 1  # 3 characters of 10 bits (8N1), ms
    if h["rx_timeout_ms"] < least:
        msgs.append(_bad("hdlc.rx_timeout_ms", str(h["rx_timeout_ms"]), "must be at least 3 "
                         "character times: %d ms at %d baud" % (least, h["baud"]), "using 1000"))
        h["rx_timeout_ms"] = d["hdlc"]["rx_timeout_ms"]
    w = c["wrapper"]
    if w["enabled"] and w["ssid"] is None:
        msgs.append(_bad("wrapper.enabled", "true", "needs wrapper.ssid",
                         "using false (no TCP wrapper)"))
        w["enabled"] = False


def _defaults():
    d = _copy(model.DEFAULTS)
    d["hdlc"] = _copy(_HDLC)
    d["frontend"] = _copy(atm90e32._DEFAULTS)  # the driver's own defaults (tuples -> lists)
    d["wrapper"] = _copy(_WRAPPER)
    d["flags"] = _copy(_FLAGS)
    return d


def defaults():
    return validate({})[0]


def replaced(messages):
    return [m for m in messages if not m.startswith(NO_PASSWORD)]


# **** messages ****


def _bad(path, shown, rule, then):
    # "config: recording_interval 7 invalid (must divide ...): using 900"
    return "config: %s%s invalid (%s): %s" % (path, " " + shown if shown else "", rule, then)


def _show(v):
    try:
        s = json.dumps(v)
    except (TypeError, ValueError):
        s = repr(v)
    return _clip(s)


def _clip(s):
    return s if len(s) <= _SHOW_MAX else s[: _SHOW_MAX - 3] + "..."


def _text(ln):
    return "%d-%d:%d.%d.%d*%d" % (ln[0], ln[1], ln[2], ln[3], ln[4], ln[5])


def _copy(v):
    if isinstance(v, dict):
        return {k: _copy(v[k]) for k in v}
    if isinstance(v, (list, tuple)):
        return [_copy(x) for x in v]
    return v


# **** the file ****


def read(path):
    try:
        f = open(path, "rb")
    except OSError as e:
        if e.args and e.args[0] == errno.ENOENT:
            return None, "config: no file %s: using the defaults" % path
        return None, "config: cannot open %s (%s): using the defaults" % (path, _why(e))
    try:
        text = f.read().decode()
    except (OSError, ValueError) as e:  # UnicodeError is a ValueError
        return None, "config: cannot read %s (%s): using the defaults" % (path, _why(e))
    finally:
        f.close()
    try:
        return json.loads(text), None
    except ValueError as e:
        return None, "config: %s is not valid JSON (%s): using the defaults" % (path, _why(e))


def load(path):
    raw, why = read(path)
    cfg, msgs = validate({} if raw is None else raw)
    if why is not None:
        msgs.insert(0, why)
    return cfg, msgs
