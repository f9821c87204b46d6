# simdata.py: history for the simulator until the metering engine (issue 4) captures real
# rows: a deterministic daily curve (night base load, a PV export surplus around noon, an
# evening peak) written into the load profile, the billing profile and the registers. Setup
# code, run once at start; runs on MicroPython and CPython.
from clock import date_to_days


def _interval_wh(slot):
    # Import and export Wh of 15-minute slot 0..95 of a day (a 3-phase household with PV).
    hour = slot // 4
    if 10 <= hour < 15:
        return 0, 600 + 150 * (2 - abs(hour - 12))  # PV surplus: export
    if 17 <= hour < 21:
        return 900, 0  # evening peak
    if hour < 6:
        return 150, 0  # night base load
    return 400, 0


def _put_u32(buf, p, v):
    buf[p] = (v >> 24) & 0xFF
    buf[p + 1] = (v >> 16) & 0xFF
    buf[p + 2] = (v >> 8) & 0xFF
    buf[p + 3] = v & 0xFF


def _put_u64(buf, p, v):
    _put_u32(buf, p, v >> 32)
    _put_u32(buf, p + 4, v & 0xFFFFFFFF)


def fill(meter, days, now_days, now_secs):
    # Load profile: `days` days of 15-minute rows ending at the interval before now.
    lp = meter.profile("1-0:99.1.0*255")
    vals = bytearray(16)
    total_imp = total_exp = 0
    start = now_days - days
    first = True
    for d in range(start, now_days + 1):
        for slot in range(96):
            secs = slot * 900
            if d == now_days and secs + 900 > now_secs:
                break
            imp, exp = _interval_wh(slot)
            _put_u32(vals, 0, imp)  # 1.29.0 kWh del int
            _put_u32(vals, 4, imp // 4)  # 3.29.0 kVARh del int
            _put_u32(vals, 8, exp)  # 2.29.0 kWh rec int
            _put_u32(vals, 12, exp // 10)  # 4.29.0 kVARh rec int
            lp.rows.append(d, secs, 0x40 if first else 0, vals)  # power up on the first
            first = False
            total_imp += imp
            total_exp += exp
    _registers(meter, total_imp, total_exp)
    _billing(meter, start, now_days)


def _registers(meter, imp, exp):
    regs = meter.registers
    from cosem import parse_obis

    def put(obis, v):
        r = regs[parse_obis(obis)]
        if r.size == 8:
            _put_u64(r.raw, 0, v)
        elif r.size == 4:
            _put_u32(r.raw, 0, v & 0xFFFFFFFF)
        else:
            r.raw[0] = (v >> 8) & 0xFF
            r.raw[1] = v & 0xFF

    base = 1234567890  # a meter with history: past 2**30 Wh, held as bytes
    put("1-1:1.8.0", base + imp)
    put("1-1:2.8.0", base // 3 + exp)
    put("1-1:16.8.0", base - base // 3 + imp - exp)
    put("1-1:3.8.0", base // 4 + imp // 4)
    put("1-1:4.8.0", base // 30 + exp // 10)
    put("1-1:128.8.0", base // 4 - base // 30 + imp // 4 - exp // 10)
    put("1-1:9.8.0", base + base // 3 + imp + exp)
    put("1-1:16.4.0", 1600)
    put("1-1:128.4.0", 400)
    put("1-1:9.4.0", 1650)
    put("1-1:13.0.0", 970)


def _billing(meter, start, now_days):
    # One row at 00:00 on the 1st of each month in the filled span.
    bp = meter.profile("1-0:98.1.0*255")
    if bp is None:
        return
    vals = bytearray(bp.rows.size)
    ymd = [0, 0, 0]
    from clock import days_to_date

    days_to_date(start, ymd)
    y, m = ymd[0], ymd[1]
    k = 0
    while True:
        m += 1
        if m > 12:
            m = 1
            y += 1
        d = date_to_days(y, m, 1)
        if d > now_days:
            break
        k += 1
        for i in range(len(vals)):
            vals[i] = 0
        _put_u64(vals, 0, 1234567890 + k * 250000)
        bp.rows.append(d, 0, 0xFFFF, vals)  # seed: no periodic timer, status 0xFFFF
