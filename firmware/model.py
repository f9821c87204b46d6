# model.py: the meter's object table, built once at boot from a config structure whose
# defaults are the ION's default COSEM objects exactly (shared/seeds: "Default COSEM objects").
# "Scaled by 1000" (seed): the integers are the ION display values (kWh, kVARh, kVAh, kW, kVAR,
# kVA, PF) times 1000, so energies are Wh/varh/VAh and demands W/var/VA with scaler 0, and the
# power factor has scaler -3. Cumulative energies are long64-unsigned (net values long64),
# interval energies double-long-unsigned, demands double-long, PF long: nothing rolls over in
# ten years at full scale, and every value is held as bytes, never as a Python long int.
import acse
import axdr
import cosem
from association_ln import AssociationLN
from clock import Clock
from objects import (
    UNIT_NONE,
    UNIT_VA,
    UNIT_VAH,
    UNIT_VAR,
    UNIT_VARH,
    UNIT_W,
    UNIT_WH,
    Data,
    Register,
    SapAssignment,
)
from profile_generic import from_log_export
from rows import MemoryRows
from server import Association, Client, Lockout, Server

_U64 = axdr.LONG64_UNSIGNED
_I64 = axdr.LONG64
_U32 = axdr.DOUBLE_LONG_UNSIGNED
_I32 = axdr.DOUBLE_LONG

# (OBIS, A-XDR type, scaler, unit): every register the default objects capture, plus the
# reactive quadrants available as log-export sources.
REGISTERS = (
    ("1-1:1.29.0", _U32, 0, UNIT_WH),  # kWh del int
    ("1-1:3.29.0", _U32, 0, UNIT_VARH),  # kVARh del int
    ("1-1:2.29.0", _U32, 0, UNIT_WH),  # kWh rec int
    ("1-1:4.29.0", _U32, 0, UNIT_VARH),  # kVARh rec int
    ("1-1:1.8.0", _U64, 0, UNIT_WH),  # kWh del
    ("1-1:2.8.0", _U64, 0, UNIT_WH),  # kWh rec
    ("1-1:16.8.0", _I64, 0, UNIT_WH),  # kWh del-rec
    ("1-1:3.8.0", _U64, 0, UNIT_VARH),  # kVARh del
    ("1-1:4.8.0", _U64, 0, UNIT_VARH),  # kVARh rec
    ("1-1:128.8.0", _I64, 0, UNIT_VARH),  # kVARh del-rec
    ("1-1:9.8.0", _U64, 0, UNIT_VAH),  # kVAh del+rec
    ("1-1:16.4.0", _I32, 0, UNIT_W),  # kW sd del-rec
    ("1-1:128.4.0", _I32, 0, UNIT_VAR),  # kVAR sd del-rec
    ("1-1:9.4.0", _I32, 0, UNIT_VA),  # kVA sd del+rec
    ("1-1:13.0.0", axdr.LONG, -3, UNIT_NONE),  # PF sign mean
    ("1-1:5.8.0", _U64, 0, UNIT_VARH),  # QI
    ("1-1:6.8.0", _U64, 0, UNIT_VARH),  # QII
    ("1-1:7.8.0", _U64, 0, UNIT_VARH),  # QIII
    ("1-1:8.8.0", _U64, 0, UNIT_VARH),  # QIV
)

LOAD_PROFILE = {
    "obis": "1-0:99.1.0*255",
    "status": True,
    "sources": ["1-1:1.29.0", "1-1:3.29.0", "1-1:2.29.0", "1-1:4.29.0"],
    "periodic": True,
    "entries": 3360,  # 35 days of 15-minute rows
}
BILLING = {
    "obis": "1-0:98.1.0*255",
    "status": True,
    "sources": ["1-1:1.8.0", "1-1:2.8.0", "1-1:16.8.0", "1-1:3.8.0", "1-1:4.8.0",
                "1-1:128.8.0", "1-1:9.8.0", "1-1:16.4.0", "1-1:128.4.0", "1-1:9.4.0",
                "1-1:13.0.0"],
    "periodic": False,  # driven by the billing schedule, not a periodic timer: period 0
    "entries": 24,
}

DEFAULTS = {
    "ldn": "SCH" + "0" * 11 + "17",  # 3-letter manufacturer id + serial, at most 16 bytes
    "recording_interval": 900,
    "utc_offset": 60,  # minutes local standard time is ahead of UTC (CET)
    "dst": True,
    # DST rule: [month, week 1..4 or 5 = last, weekday 1 = Monday .. 7, hour UTC] of the
    # switches, and the minutes added (EU rule: last Sunday of March/October, 01:00 UTC).
    "dst_rule": {"begin": [3, 5, 7, 1], "end": [10, 5, 7, 1], "deviation": 60},
    # End of each billing period, local wall time: day 1..28 of every month at hour:minute.
    "billing": {"day": 1, "hour": 0, "minute": 0},
    # Sliding demand (.4.0): `subs` sub-intervals of `sub_s` seconds (one 15-minute block).
    "demand": {"sub_s": 900, "subs": 1},
    "public_sap": 16,
    "management_sap": 1,
    "lls_password": None,  # None: the management association is refused
    "lls_lockout_failures": 3,  # consecutive failed LLS attempts before the lockout
    "lls_lockout_s": 60,
    "log_exports": [LOAD_PROFILE, BILLING],
}

STATUS_TIME_CHANGED = 0x20  # seed: status bit 5
PUBLIC = cosem.Profile(16, "public", False)
MANAGEMENT = cosem.Profile(1, "management", True)


class Meter:
    # Everything the application layer serves; built once.
    def __init__(self, cfg=None, pdu_size=1024, rows_factory=None):
        # rows_factory(name, capacity, widths) -> a row source (rows.py interface) per
        # profile; default in RAM (tests), the meter passes flash-backed ones (store.py).
        self._rows_factory = rows_factory or _memory_rows
        c = dict(DEFAULTS)
        if cfg:
            c.update(cfg)
        self.cfg = c
        self.assoc = Association()
        objs = []
        self.objects = objs
        ldn = c["ldn"].encode() if isinstance(c["ldn"], str) else c["ldn"]
        rule = c["dst_rule"]
        self.clock = Clock(utc_offset=c["utc_offset"], dst_enabled=c["dst"],
                           dst_begin=tuple(rule["begin"]), dst_end=tuple(rule["end"]),
                           dst_deviation=rule["deviation"])
        # Status of the interval in progress (seed: status capture object bitmap); the
        # load-profile capture records it at each interval end and starts the next at 0.
        self.status = Data(cosem.obis(0, 0, 97, 97, 0), axdr.LONG_UNSIGNED, 2)
        self.clock.on_time_set = self._time_set
        self.assoc_ln = AssociationLN(cosem.obis(0, 0, 40, 0, 0), self.assoc, objs)
        objs.append(self.assoc_ln)
        objs.append(SapAssignment(cosem.obis(0, 0, 41, 0, 0), 1, ldn))
        self.ldn = Data(cosem.obis(0, 0, 42, 0, 0), axdr.OCTET_STRING, len(ldn))
        self.ldn.raw[:] = ldn
        objs.append(self.ldn)
        objs.append(self.clock)
        objs.append(self.status)
        self.registers = {}
        types = {}
        for obis, tag, scaler, unit in REGISTERS:
            ln = cosem.parse_obis(obis)
            reg = Register(ln, tag, scaler, unit)
            self.registers[ln] = reg
            types[ln] = tag
            objs.append(reg)
        self.profiles = []
        for export in c["log_exports"]:
            pg = self._profile(export, types, c)
            self.profiles.append(pg)
            objs.append(pg)
        clients = [Client(c["public_sap"], acse.MECH_LOWEST, None, PUBLIC)]
        pw = c["lls_password"]
        if pw is not None:
            pw = pw.encode() if isinstance(pw, str) else pw
            clients.append(Client(c["management_sap"], acse.MECH_LLS, pw, MANAGEMENT))
        self.clients = clients
        self.pdu_size = pdu_size
        # One LLS lockout for the meter, whichever port a guess arrives on.
        self.lockout = Lockout(c["lls_lockout_failures"], c["lls_lockout_s"] * 1000)
        self.server = self.port_server(self.assoc)

    def port_server(self, assoc=None):
        # A Server (own association and answer buffers) for each port (link).
        return Server(self.objects, self.clients, assoc or Association(),
                      pdu_size=self.pdu_size, assoc_ln=self.assoc_ln, lockout=self.lockout)

    def _time_set(self, old_days, old_secs, new_days, new_secs):
        # Seed: a clock set marks "time changed" (bit 5) in the current interval's status.
        raw = self.status.raw
        raw[1] |= STATUS_TIME_CHANGED

    def _profile(self, export, types, c):
        # The row source holds the export's real sources only ("none" slots take no room).
        srcs = [x for x in export["sources"] if x.strip().lower() != "none"]
        lns = [cosem.parse_obis(x) for x in srcs]
        widths = bytes(_width(types[ln]) for ln in lns)
        name = _rows_name(cosem.parse_obis(export["obis"]))
        rows = self._rows_factory(name, export.get("entries", 24), widths)
        periodic = bool(export.get("periodic"))
        period = c["recording_interval"] if periodic else 0
        packed = dict(export)
        packed["sources"] = srcs
        pg = from_log_export(packed, types, rows, period)
        pg.clock = self.clock
        pg.periodic = periodic
        pg.sources = [self.registers[ln] for ln in lns]  # what a capture copies, in row order
        return pg

    def profile(self, obis):
        ln = cosem.parse_obis(obis)
        for pg in self.profiles:
            if pg.ln == ln:
                return pg
        return None


def _memory_rows(name, capacity, widths):
    return MemoryRows(capacity, widths)


def _rows_name(ln):
    # A file-name-safe name of a profile: "p" + the OBIS code's 6 bytes in hex.
    return "p" + "".join("%02x" % b for b in ln)


def _width(tag):
    return 8 if tag in (_U64, _I64) else (4 if tag in (_U32, _I32) else 2)
