# config.validate/load/report (firmware/config.py): every key's bad types and out-of-range
# values give the default and one message naming the key; cross-key rules; unknown and comment
# keys; no default password; the log exports of the seed; the example file; files that are
# missing, not JSON or not an object; the bounded boot log; and, for pseudo-random mixes of
# valid and invalid values, every consumer (model.Meter, metering.Engine, energy.Energy,
# hdlc.HdlcLink, the ATM90E32 driver against the chip model) accepts the validated config.
import json
import os
import sys
import time

import atm90e32
import config
import cosem
import model
import support
from frontend import OK
from rows import MemoryRows
from support import SkipTest, host_fake

NOTICE = "config: no lls_password: the management association (client 1) is disabled"
PW = "Zq7-m#Lp"


def _get(c, path):
    for k in path.split("."):
        c = c[k]
    return c


def _with(path, v, base=None):
    # A raw config holding v at path (sections made as needed).
    raw = {} if base is None else base
    keys = path.split(".")
    c = raw
    for k in keys[:-1]:
        c = c.setdefault(k, {})
    c[keys[-1]] = v
    return raw


def _leaves(c, pre=""):
    out = []
    for k in c:
        v = c[k]
        if isinstance(v, dict):
            out += _leaves(v, pre + k + ".")
        elif k not in ("lls_password", "log_exports"):
            out.append(pre + k)
    return out


def _others(msgs):
    return [m for m in msgs if m != NOTICE]


# **** defaults ****


def test_defaults_are_complete_and_match_their_owners():
    support.need_heap(47 * 1024)  # 64-bit unix port, fresh process, +10 %
    cfg, msgs = config.validate({})
    assert msgs == [NOTICE]
    assert config.replaced(msgs) == []
    for k in model.DEFAULTS:
        if k != "log_exports":
            assert cfg[k] == model.DEFAULTS[k], k
    for got, want in zip(cfg["log_exports"], model.DEFAULTS["log_exports"]):
        assert cosem.parse_obis(got["obis"]) == cosem.parse_obis(want["obis"])
        assert [cosem.parse_obis(s) for s in got["sources"]] == \
            [cosem.parse_obis(s) for s in want["sources"]]
        for k in ("status", "periodic", "entries"):
            assert got[k] == want[k]
    fe = atm90e32._DEFAULTS
    assert sorted(cfg["frontend"]) == sorted(fe)
    for k in fe:
        want = list(fe[k]) if isinstance(fe[k], tuple) else fe[k]
        assert cfg["frontend"][k] == want, k
    assert cfg["hdlc"]["max_info_tx"] == 128 and cfg["hdlc"]["window_rx"] == 1  # seed
    assert cfg["hdlc"]["inactivity_s"] == 120  # seed
    assert config.defaults() == cfg
    json.loads(json.dumps(cfg))  # plain JSON types only


def test_defaults_are_fresh_copies():
    support.need_heap(43 * 1024)  # 64-bit unix port, fresh process, +10 %
    a = config.defaults()
    a["billing"]["day"] = 9
    a["log_exports"][0]["sources"].append("x")
    a["frontend"]["ugain"][0] = 1
    b = config.defaults()
    assert b["billing"]["day"] == 1 and len(b["log_exports"][0]["sources"]) == 4
    assert b["frontend"]["ugain"][0] == 7305 and model.DEFAULTS["billing"]["day"] == 1


# **** every key: bad type and out of range ****

REG3 = [[0, 0], [0, 0, 65536], [0, -32769, 0], 5, [0, 0, "0"]]
REG = [-1, 65536, "0", None]
BAD = (
    ("ldn", ["SC", "SCH", "sch123", "SCH" + "0" * 14, "SCH 12", "SC1234", "SCH\x01", 5, None]),
    ("recording_interval", [7, 0, 59, 1000, 86401, 172800, "900", 900.0, True, None, [900]]),
    ("utc_offset", [-721, 841, 7, 900, "60", 1.5, False]),
    ("dst", [1, 0, "true", None]),
    ("dst_rule.begin", [[3, 5, 7], [0, 5, 7, 1], [13, 5, 7, 1], [3, 0, 7, 1], [3, 6, 7, 1],
                        [3, 5, 0, 1], [3, 5, 8, 1], [3, 5, 7, 24], [3, 5, 7, -1],
                        [3, 5, 7, True], "3,5,7,1", 3]),
    ("dst_rule.end", [[10, 5, 7], [10, 5, 7, 1, 0], None]),
    ("dst_rule.deviation", [121, -121, "60", 60.0]),
    ("billing.day", [0, 29, 31, "1"]),
    ("billing.hour", [-1, 24, True]),
    ("billing.minute", [-1, 60, None]),
    ("demand.sub_s", [59, 86401, 7, 1000, "900"]),
    ("demand.subs", [0, 16, 1.0, False]),
    ("public_sap", [0, 127, 256, "16"]),
    ("management_sap", [0, 127, -1, [1]]),
    ("lls_lockout_failures", [0, 256, "3"]),
    ("lls_lockout_s", [0, 86401, -60, 60.5]),
    ("hdlc.unit_id", [0, 16382, "17", None]),
    ("hdlc.baud", [9601, 0, 230400, "9600"]),
    ("hdlc.rx_timeout_ms", [19, 5001, "1000"]),
    ("hdlc.inactivity_s", [9, 3601, 0, 120.0]),
    ("hdlc.max_info_tx", [15, 2031, "128"]),
    ("hdlc.max_info_rx", [15, 2031, -128]),
    ("hdlc.window_tx", [0, 8, True]),
    ("hdlc.window_rx", [0, 8, "1"]),
    ("frontend.meter_constant", [104, 16384, "3200", 3200.0]),
    ("frontend.resolution", [1, 50, 1000, "100"]),
    ("frontend.line_freq", [55, 0, "50"]),
    ("frontend.wiring", [2, 5, "4"]),
    ("frontend.mmode1", REG),
    ("frontend.ugain", REG3), ("frontend.igain", REG3), ("frontend.uoffset", REG3),
    ("frontend.ioffset", REG3), ("frontend.poffset", REG3), ("frontend.qoffset", REG3),
    ("frontend.pqgain", REG3), ("frontend.phi", REG3),
    ("frontend.pstartth", REG), ("frontend.qstartth", REG), ("frontend.sstartth", REG),
    ("frontend.pphaseth", REG), ("frontend.qphaseth", REG), ("frontend.sagpeak", REG),
    ("frontend.zxconfig", REG),
    ("frontend.meteren_every", [0, 3601, "8"]),
    ("frontend.retries", [0, 11, None]),
    ("frontend.reset_ms", [5, 1001, "6"]),
    ("wrapper.enabled", ["yes", 1, None]),
    ("wrapper.port", [0, 65536, "4059"]),
    ("wrapper.ssid", ["", "x" * 33, "\u00e9" * 17, 5]),
    ("wrapper.password", ["short12", "x" * 64, "p\u00e4sswort1", "tab\there1", 12345678]),
    ("flags.heap_lock", [0, "false", None]),
)


def test_every_key_is_in_the_bad_value_table():
    support.need_heap(39 * 1024)  # 64-bit unix port, fresh process, +10 %
    assert sorted(p for p, _ in BAD) == sorted(_leaves(config.defaults()))


def test_each_bad_value_gives_the_default_and_one_message_naming_the_key():
    support.need_heap(56 * 1024)  # 64-bit unix port, fresh process, +10 %
    dflt = config.defaults()
    for path, values in BAD:
        for v in values:
            cfg, msgs = config.validate(_with(path, v))
            assert _get(cfg, path) == _get(dflt, path), (path, v)
            bad = _others(msgs)
            assert len(bad) == 1, (path, v, msgs)
            m = bad[0]
            assert m.startswith("config: " + path + " "), m
            assert " invalid (must " in m and "): using " in m, m
            assert config.replaced(msgs) == bad


def test_message_format():
    support.need_heap(43 * 1024)  # 64-bit unix port, fresh process, +10 %
    _, msgs = config.validate({"recording_interval": 7})
    assert msgs[0] == "config: recording_interval 7 invalid (must divide 86400 and be " \
        "60..86400 s): using 900"
    _, msgs = config.validate({"hdlc": {"baud": "9600"}})
    assert msgs[0] == "config: hdlc.baud \"9600\" invalid (must be 300, 600, 1200, 2400, " \
        "4800, 9600, 19200, 38400, 57600 or 115200 baud): using 9600"
    _, msgs = config.validate({"ldn": "x" * 500})
    assert len(msgs[0]) < 250 and "..." in msgs[0]  # long values are clipped


def test_valid_values_are_kept():
    support.need_heap(39 * 1024)  # 64-bit unix port, fresh process, +10 %
    raw = {
        "ldn": "ABC1", "recording_interval": 60, "utc_offset": -570, "dst": False,
        "dst_rule": {"begin": [4, 1, 1, 0], "end": [9, 4, 6, 23], "deviation": -120},
        "billing": {"day": 28, "hour": 23, "minute": 59},
        "demand": {"sub_s": 60, "subs": 15},
        "public_sap": 126, "management_sap": 2, "lls_password": "~" * 16,
        "lls_lockout_failures": 255, "lls_lockout_s": 86400, "log_exports": [],
        "hdlc": {"unit_id": 16381, "baud": 300, "rx_timeout_ms": 101, "inactivity_s": 3600,
                 "max_info_tx": 2030, "max_info_rx": 16, "window_tx": 7, "window_rx": 1},
        "frontend": {"meter_constant": 16383, "resolution": 10, "line_freq": 60, "wiring": 3,
                     "mmode1": 0, "ugain": [65535, 0, 1], "phi": [-32768, -1, 0],
                     "zxconfig": 0xFFFF, "meteren_every": 3600, "retries": 1, "reset_ms": 1000},
        "wrapper": {"enabled": True, "port": 1, "ssid": "\u00e9" * 16, "password": "x" * 63},
        "flags": {"heap_lock": True},
    }
    cfg, msgs = config.validate(raw)
    assert msgs == []
    for path in _leaves(raw):
        assert _get(cfg, path) == _get(raw, path), path
    assert cfg["lls_password"] == "~" * 16 and cfg["log_exports"] == []
    assert config.validate({"recording_interval": 86400, "utc_offset": 840})[1] == [NOTICE]


# **** rules between keys ****


def test_cross_key_rules():
    support.need_heap(47 * 1024)  # 64-bit unix port, fresh process, +10 %
    cases = (
        ({"public_sap": 5, "management_sap": 5}, "management_sap 5 invalid",
         (("public_sap", 16), ("management_sap", 1))),
        ({"public_sap": 1}, "management_sap 1 invalid",
         (("public_sap", 16), ("management_sap", 1))),
        ({"dst_rule": {"begin": [10, 5, 7, 1]}}, "dst_rule.end [10, 5, 7, 1] invalid",
         (("dst_rule.begin", [3, 5, 7, 1]), ("dst_rule.end", [10, 5, 7, 1]))),
        ({"demand": {"sub_s": 7200, "subs": 13}}, "demand 13 x 7200 s invalid",
         (("demand.sub_s", 900), ("demand.subs", 1))),
        ({"hdlc": {"baud": 300, "rx_timeout_ms": 100}}, "hdlc.rx_timeout_ms 100 invalid",
         (("hdlc.rx_timeout_ms", 1000), ("hdlc.baud", 300))),
        ({"wrapper": {"enabled": True}}, "wrapper.enabled true invalid",
         (("wrapper.enabled", False),)),
    )
    for raw, start, want in cases:
        cfg, msgs = config.validate(raw)
        bad = _others(msgs)
        assert len(bad) == 1 and bad[0].startswith("config: " + start), (raw, msgs)
        for path, v in want:
            assert _get(cfg, path) == v, (raw, path)
    ok = {"demand": {"sub_s": 5760, "subs": 15}, "hdlc": {"baud": 300, "rx_timeout_ms": 101}}
    assert config.validate(ok)[1] == [NOTICE]


# **** unknown keys, comments, wrong shapes ****


def test_unknown_keys_are_reported_and_comment_keys_ignored():
    raw = {"_comment": "x", "recording_intervall": 900, "hdlc": {"baudrate": 9600, "_c": 1},
           "log_exports": [{"obis": "1-0:99.1.0*255", "sourcse": [], "_why": "y"}]}
    cfg, msgs = config.validate(raw)
    assert sorted(_others(msgs)) == [
        "config: unknown key hdlc.baudrate ignored",
        "config: unknown key log_exports[0].sourcse ignored",
        "config: unknown key recording_intervall ignored"]
    assert "_comment" not in cfg and "recording_intervall" not in cfg
    assert "baudrate" not in cfg["hdlc"] and "_c" not in cfg["hdlc"]
    assert cfg["log_exports"] == [{"obis": "1-0:99.1.0*255", "status": False, "sources": [],
                                   "periodic": False, "entries": 24}]


def test_a_section_of_the_wrong_type_takes_its_defaults():
    support.need_heap(51 * 1024)  # 64-bit unix port, fresh process, +10 %
    dflt = config.defaults()
    for sec in ("dst_rule", "billing", "demand", "hdlc", "frontend", "wrapper", "flags"):
        for v in (5, [], "x", None):
            cfg, msgs = config.validate({sec: v})
            assert cfg[sec] == dflt[sec]
            bad = _others(msgs)
            assert len(bad) == 1 and bad[0].startswith("config: " + sec + " "), msgs
            assert "using the defaults" in bad[0]
    for raw in ([], "x", 5, None):
        cfg, msgs = config.validate(raw)
        assert cfg == dflt and msgs[0].startswith("config: the file must hold one JSON object")


# **** no default password ****


def test_no_password_no_management_association():
    support.need_heap(190 * 1024, block=53 * 1024)  # 64-bit unix port, fresh process, +10 %
    cfg, msgs = config.validate({})
    assert cfg["lls_password"] is None and msgs == [NOTICE]
    assert [c.sap for c in model.Meter(cfg).clients] == [16]
    cfg, msgs = config.validate({"management_sap": 3, "lls_password": None})
    assert msgs == ["config: no lls_password: the management association (client 3) is "
                    "disabled"]
    assert config.replaced(msgs) == []


def test_a_valid_password_enables_the_management_association():
    support.need_heap(350 * 1024, block=53 * 1024)  # 64-bit unix port, fresh process, +10 %
    for pw in (PW, "a", " " * 16, "~!@#$%^&*()_+{}|"):
        cfg, msgs = config.validate({"lls_password": pw})
        assert msgs == [] and cfg["lls_password"] == pw
    m = model.Meter(config.validate({"lls_password": PW, "management_sap": 2})[0])
    assert [(c.sap, c.password) for c in m.clients] == [(16, None), (2, PW.encode())]


def test_a_bad_password_disables_the_association_and_is_never_shown():
    support.need_heap(47 * 1024)  # 64-bit unix port, fresh process, +10 %
    for pw in ("", "hunter2" * 3, "hunter2\u00e4", "hunter2\t", "hunter2\n", "\x7fhunter2",
               12345678, True, ["hunter2"], {"pw": "hunter2"}):
        cfg, msgs = config.validate({"lls_password": pw})
        assert cfg["lls_password"] is None
        assert len(msgs) == 2 and msgs[1] == NOTICE, msgs
        assert msgs[0].startswith("config: lls_password invalid (must be 1..16 printable ASCII")
        assert "hunter" not in msgs[0] and "1234" not in msgs[0], msgs[0]
    _, msgs = config.validate({"wrapper": {"password": "my-secret-pw\x01"}})
    assert "my-secret" not in msgs[0] and msgs[0].startswith("config: wrapper.password invalid")


# **** log exports ****

# The seed's worked example ("Changing the data exported...", Example): one Data Recorder,
# two DLMS Log Export modules, 1-0.99.1.0.255 taking sources 1-3 and 1-0.99.1.1.255 sources
# 4-6, NONE elsewhere. The seed labels the recorder inputs kWh del, kWh rec, kWh del-rec,
# kVARh del, kVARh rec, kVARh del-rec; this meter's interval registers for those are 1.29.0
# and 2.29.0 (kWh) and 3.29.0 and 4.29.0 (kVARh), so the kWh/kVARh split uses them.
SEED_1 = ["1-1:1.29.0*255", "1-1:2.29.0*255", "NONE"] + ["NONE"] * 13
SEED_2 = ["NONE"] * 3 + ["1-1:3.29.0*255", "1-1:4.29.0*255", "NONE"] + ["NONE"] * 10


def _seed_exports(s1, s2):
    return [{"obis": "1-0.99.1.0.255", "status": True, "sources": s1, "periodic": True,
             "entries": 96},
            {"obis": "1-0.99.1.1.255", "status": True, "sources": s2, "periodic": True,
             "entries": 96},
            model.BILLING]


def _tiny_rows(name, capacity, widths):
    return MemoryRows(min(capacity, 4), widths)


def test_seed_log_export_example_validates_and_builds():
    support.need_heap(47 * 1024)  # 64-bit unix port, fresh process, +10 %
    cfg, msgs = config.validate({"log_exports": _seed_exports(SEED_1, SEED_2)})
    assert msgs == [NOTICE]
    ex = cfg["log_exports"]
    assert ex[0]["obis"] == "1-0:99.1.0*255" and ex[1]["obis"] == "1-0:99.1.1*255"
    assert ex[0]["sources"][:3] == ["1-1:1.29.0*255", "1-1:2.29.0*255", "none"]
    assert ex[1]["sources"][3:6] == ["1-1:3.29.0*255", "1-1:4.29.0*255", "none"]
    assert len(ex[0]["sources"]) == 16 and ex[0]["sources"].count("none") == 14
    m = model.Meter(cfg, rows_factory=_tiny_rows)
    kwh = m.profile("1-0:99.1.0*255")
    kvarh = m.profile("1-0:99.1.1*255")
    assert [r.ln for r in kwh.sources] == [cosem.obis(1, 1, 1, 29, 0), cosem.obis(1, 1, 2, 29, 0)]
    assert [r.ln for r in kvarh.sources] == [cosem.obis(1, 1, 3, 29, 0),
                                             cosem.obis(1, 1, 4, 29, 0)]
    assert kwh.periodic and kvarh.periodic and not m.profile("1-0:98.1.0*255").periodic


def test_seed_example_codes_this_meter_lacks_become_none():
    support.need_heap(51 * 1024)  # 64-bit unix port, fresh process, +10 %
    # The seed's own table names 1-1:5.29.0 and 1-1:6.29.0 (no such registers here).
    s2 = ["none"] * 3 + ["1-1:4.29.0*255", "1-1:5.29.0*255", "1-1:6.29.0*255"] + ["none"] * 10
    s1 = ["1-1:1.29.0*255", "1-1:2.29.0*255", "1-1:3.29.0*255"] + ["none"] * 13
    cfg, msgs = config.validate({"log_exports": _seed_exports(s1, s2)})
    bad = _others(msgs)
    assert len(bad) == 2
    assert bad[0].startswith('config: log_exports[1].sources[4] "1-1:5.29.0*255" invalid')
    assert bad[1].startswith('config: log_exports[1].sources[5] "1-1:6.29.0*255" invalid')
    assert bad[0].endswith("): using none") and "1.29.0 3.29.0" in bad[0]
    assert cfg["log_exports"][1]["sources"][3:6] == ["1-1:4.29.0*255", "none", "none"]
    m = model.Meter(cfg, rows_factory=_tiny_rows)
    assert [r.ln for r in m.profile("1-0:99.1.1*255").sources] == [cosem.obis(1, 1, 4, 29, 0)]


def test_log_export_rules():
    support.need_heap(60 * 1024)  # 64-bit unix port, fresh process, +10 %
    lp = {"obis": "1-0:99.1.0*255", "sources": ["1-1:1.29.0"]}
    cases = (
        ([{"obis": "1-0:99.1"}], "log_exports[0].obis", 0),
        ([{"obis": "1-0:99.1.0.256"}], "log_exports[0].obis", 0),
        ([{"sources": []}], "log_exports[0].obis", 0),
        ([{"obis": 99}], "log_exports[0].obis", 0),
        ([{"obis": "1-1:1.8.0*255"}], "log_exports[0].obis", 0),  # a register's OBIS
        ([{"obis": "0-0:1.0.0*255"}], "log_exports[0].obis", 0),  # the clock's
        ([lp, {"obis": "1-0.99.1.0.255"}], "log_exports[1].obis", 1),  # twice
        ([{"obis": "1-0:99.1.0", "sources": "none"}], "log_exports[0].sources", 0),
        ([{"obis": "1-0:99.1.0", "sources": ["none"] * 17}], "log_exports[0].sources", 0),
        (["1-0:99.1.0*255"], "log_exports[0]", 0),
        ([lp, 5], "log_exports[1]", 1),
    )
    for exports, path, kept in cases:
        cfg, msgs = config.validate({"log_exports": exports})
        bad = _others(msgs)
        assert len(bad) == 1 and bad[0].startswith("config: " + path + " "), (exports, msgs)
        assert bad[0].endswith(": export dropped") and len(cfg["log_exports"]) == kept
        model.Meter(cfg, rows_factory=_tiny_rows)
    dflt = config.defaults()["log_exports"]
    for v in (5, "x", {"obis": "1-0:99.1.0"}, [lp] * 9):
        cfg, msgs = config.validate({"log_exports": v})
        assert cfg["log_exports"] == dflt and len(_others(msgs)) == 1
        assert _others(msgs)[0].startswith("config: log_exports ")
    for key, v, want in (("status", 1, False), ("periodic", "yes", False), ("entries", 0, 24),
                         ("entries", 8761, 24), ("entries", "96", 24)):
        e = dict(lp)
        e[key] = v
        cfg, msgs = config.validate({"log_exports": [e]})
        assert cfg["log_exports"][0][key] == want
        assert _others(msgs)[0].startswith("config: log_exports[0].%s " % key), msgs
    for src in ("1-1:1.29", "0-0:97.97.0*255", "", 5, None, "1-1:1.29.0*254"):
        cfg, msgs = config.validate({"log_exports": [{"obis": "1-0:99.1.0",
                                                      "sources": ["none", src]}]})
        assert cfg["log_exports"][0]["sources"] == ["none", "none"], src
        assert _others(msgs)[0].startswith("config: log_exports[0].sources[1] "), msgs


# **** files ****


def _tmp(name):
    for p in ("/tmp", "."):
        try:
            os.stat(p)
            break
        except OSError:
            pass
    t = time.ticks_us() if hasattr(time, "ticks_us") else int(time.time() * 1000000)
    return "%s/cfg_%d_%s" % (p, t & 0xFFFFFF, name)


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def test_load_a_valid_file():
    support.need_heap(51 * 1024)  # 64-bit unix port, fresh process, +10 %
    path = _tmp("ok.json")
    raw = {"lls_password": PW, "recording_interval": 1800, "hdlc": {"unit_id": 42},
           "log_exports": _seed_exports(SEED_1, SEED_2)}
    _write(path, json.dumps(raw).encode())
    try:
        cfg, msgs = config.load(path)
    finally:
        os.remove(path)
    assert msgs == []
    assert cfg["recording_interval"] == 1800 and cfg["hdlc"]["unit_id"] == 42
    assert cfg == config.validate(raw)[0]
    assert config.validate(json.loads(json.dumps(cfg))) == (cfg, [])  # normalised: a fixpoint


def test_load_missing_file():
    support.need_heap(43 * 1024)  # 64-bit unix port, fresh process, +10 %
    cfg, msgs = config.load(_tmp("absent.json"))
    assert cfg == config.defaults()
    if sys.platform == "webassembly":  # Emscripten's FS says errno 44, not errno.ENOENT (2)
        assert msgs[0].startswith("config: cannot open ")
    else:
        assert msgs[0].startswith("config: no file ")
    assert msgs[0].endswith(": using the defaults")
    assert msgs[1:] == [NOTICE]


def test_load_invalid_json_and_non_objects():
    support.need_heap(47 * 1024)  # 64-bit unix port, fresh process, +10 %
    # Only what every parser refuses: MicroPython's also takes a missing or trailing comma.
    for data, why in ((b'{"ldn": "SCH1", ', "is not valid JSON ("),
                      (b'{"recording_interval": 900, "dst": tru}', "is not valid JSON ("),
                      (b"", "is not valid JSON ("),
                      (b"\xff\xfe{}", " ("),
                      (b"[1, 2]", None)):
        path = _tmp("bad.json")
        _write(path, data)
        try:
            cfg, msgs = config.load(path)
        finally:
            os.remove(path)
        assert cfg == config.defaults(), data
        if why is None:
            assert msgs[0].startswith("config: the file must hold one JSON object")
        else:
            assert msgs[0].startswith("config: ") and path in msgs[0] and why in msgs[0], msgs
            assert msgs[0].endswith(": using the defaults")
        assert msgs[-1] == NOTICE


def _example_path():
    root = support.__file__.rsplit("/", 3)[0]
    path = root + "/boards/config.example.json"
    try:
        os.stat(path)
    except OSError:
        raise SkipTest("no boards/config.example.json here (the wasm runner copies .py only)")
    return path


def test_example_file_is_complete_and_valid():
    support.need_heap(68 * 1024)  # 64-bit unix port, fresh process, +10 %
    path = _example_path()
    cfg, msgs = config.load(path)
    assert msgs == [NOTICE]  # the example carries no password, on purpose
    with open(path) as f:
        raw = json.loads(f.read())
    assert raw["lls_password"] is None
    assert sorted(k for k in raw if not k.startswith("_")) == sorted(cfg)
    for sec in ("dst_rule", "billing", "demand", "hdlc", "frontend", "wrapper", "flags"):
        assert sorted(k for k in raw[sec] if not k.startswith("_")) == sorted(cfg[sec]), sec
    assert cfg == config.defaults()
    model.Meter(cfg, rows_factory=_tiny_rows)


# **** the boot log ****


def test_report_prints_and_keeps_a_bounded_log():
    support.need_heap(39 * 1024)  # 64-bit unix port, fresh process, +10 %
    path = _tmp("boot.log")
    printed = []
    try:
        for boot in range(40):
            msgs = ["config: boot %d message %d" % (boot, k) for k in range(3)]
            config.report(msgs, path, printed.append, cap=200)
            with open(path, "rb") as f:
                data = f.read()
            assert len(data) <= 200 and data.endswith(("boot %d message 2\n" % boot).encode())
            assert data.startswith(b"config: boot "), data  # whole lines only
        assert len(printed) == 120 and printed[-1] == "config: boot 39 message 2"
        config.report([], path, printed.append)  # nothing to say: nothing written
        with open(path, "rb") as f:
            assert f.read() == data
        config.report(["config: x"], None, printed.append)  # no log file
        assert printed[-1] == "config: x"
    finally:
        os.remove(path)


def test_report_trims_a_log_grown_elsewhere():
    support.need_heap(76 * 1024)  # 64-bit unix port, fresh process, +10 %
    path = _tmp("big.log")
    _write(path, b"x" * 9000 + b"\n" + b"old line\n" * 100)
    try:
        config.report(["config: new"], path, _no_print, cap=300)
        with open(path, "rb") as f:
            data = f.read()
    finally:
        os.remove(path)
    assert len(data) <= 300 and data.startswith(b"old line\n")
    assert data.endswith(b"old line\nconfig: new\n")


def _no_print(s):
    pass


def test_report_survives_an_unwritable_log():
    printed = []
    d = _tmp("dir")
    os.mkdir(d)
    try:
        config.report(["config: y"], d, printed.append)
    finally:
        os.rmdir(d)
    assert printed[0] == "config: y" and printed[1].startswith("config: cannot write " + d)


# **** any validated config builds the meter ****

POOL = (-1, 0, 1, 2, 3, 4, 5, 7, 10, 15, 16, 17, 28, 50, 59, 60, 100, 126, 127, 300, 900,
        1000, 2030, 2031, 3600, 5760, 16381, 65535, 86400, 86401, "x", "", None, True, False,
        1.5, [], [1, 2, 3], [3, 5, 7, 1], [10, 5, 7, 1], {}, "1-1:1.8.0", "SCH1")


class _Rand:
    # A small LCG (the same sequence on every runtime; values stay below 2**30).
    def __init__(self, seed):
        self.s = seed

    def below(self, n):
        self.s = (self.s * 1103515245 + 12345) & 0x3FFFFFFF
        return (self.s >> 8) % n


def test_consumers_accept_every_validated_config():
    rnd = _Rand(2027)
    paths = _leaves(config.defaults())
    for trial in range(60):
        raw = {}
        for _ in range(1 + rnd.below(6)):
            _with(paths[rnd.below(len(paths))], POOL[rnd.below(len(POOL))], raw)
        if rnd.below(2):
            raw["lls_password"] = PW
        cfg, msgs = config.validate(raw)
        for m in msgs:
            assert m.startswith("config: "), m
        _build(cfg)


def _build(cfg):
    # the consumers are imported here, after the chip model is found: on a board (no model)
    # the test skips, and the module's import does not carry four more modules
    chip = host_fake("atm90e32_model").ATM90E32Model(host_fake("loadscenario").Scenario(1))
    from atm90e32 import ATM90E32
    from energy import Energy
    from hdlc import HdlcLink
    from metering import Engine

    m = model.Meter(cfg, rows_factory=_tiny_rows)
    fe = ATM90E32(chip.spi, chip.cs, cfg["frontend"], sleep_ms=_no_sleep)
    assert fe.config_error is None and fe.start() == OK, cfg["frontend"]
    d = cfg["demand"]
    en = Energy(fe.lsb_num, fe.lsb_den, d["sub_s"], d["subs"])
    en.bind(m.registers)
    Engine(m, fe, en)
    h = cfg["hdlc"]
    HdlcLink(None, unit_id=h["unit_id"], max_info_tx=h["max_info_tx"],
             max_info_rx=h["max_info_rx"], window_tx=h["window_tx"], window_rx=h["window_rx"],
             rx_timeout_ms=h["rx_timeout_ms"], inactivity_ms=h["inactivity_s"] * 1000)


def _no_sleep(ms):
    pass
