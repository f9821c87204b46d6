# read_meter.py: read a DLMS/COSEM meter from a PC (this project's meter, its simulator, or any
# meter with logical name referencing): dump every object, export a load or billing profile to
# CSV, plot the load profile to PNG, set the clock.
#
#   read_meter.py --tcp 127.0.0.1:4059 dump
#   read_meter.py --serial /dev/ttyUSB0 --baud 9600 profile --last 96 --csv lp.csv
#   read_meter.py --wrapper 10.0.0.5:4059 profile --obis 1-0:98.1.0 --csv billing.csv
#   read_meter.py --tcp 127.0.0.1:4059 plot --png lp.png --days 2
#   read_meter.py --tcp 127.0.0.1:4059 --password PW set-clock [--to 2027-01-01T00:00:00+01:00]
#
# The DLMS client is Gurux (gurux_dlms, pinned in requirements-dev.txt), not this project's
# firmware: the tool is an independent peer, so it checks the meter rather than sharing its
# mistakes. Gurux over dlms-cosem because it is sans-IO (we own the transport, its timeouts and
# framing, which dlms-cosem 25.1.0 gets wrong at 0x7E bytes inside frames), it speaks both HDLC
# and the IEC 62056-47 wrapper, and it builds range and entry selective access.
#
# Exit status: 0 done, 1 the meter or the line failed (a one-line message on stderr), 2 usage.
import argparse
import csv
import datetime
import os
import sys
import time

import read_meter_fmt as fmt
import read_meter_png
from read_meter_link import AccessError, LinkError, SerialStream, Session, TcpStream, make_object
from read_meter_profile import (Profile, energy_columns, find, interval_series, object_list,
                                select_rows)

_CLOCK_LN = bytes([0, 0, 1, 0, 0, 255])
_LOAD_PROFILE = "1-0:99.1.0*255"
# BB 4.4.4 attribute_access_mode: 1 read-only, 3 read-and-write, 4 authenticated-read-only,
# 6 authenticated-read-and-write (0, 2 and 5 cannot be read).
_READABLE = (1, 3, 4, 6)


# **** connection ****


def open_session(args, client=None, password=None):
    if args.serial:
        stream = SerialStream(args.serial, args.baud, args.timeout)
    else:
        host, port = args.wrapper or args.tcp
        stream = TcpStream(host, port, args.timeout)
    s = Session(stream, client=client if client is not None else args.client,
                password=password, unit_id=args.unit_id, logical=args.logical,
                hdlc=args.wrapper is None, retries=args.retries)
    try:
        s.open()
    except Exception:
        s.retries = 0  # leave the link (DISC after a refused association), but do not linger
        close_session(s)
        raise
    return s


def close_session(s):
    try:
        s.close()
    finally:
        s.stream.close()


def profile_object(objs, ln):
    o = find(objs, ln)
    if o is None or o.cls != 7:
        raise LinkError("the meter has no profile %s in this association's object list"
                        % fmt.obis(ln))
    return o


# **** dump ****


def cmd_dump(args):
    s = open_session(args, password=args.password)
    try:
        rows = []
        for o in object_list(s):
            rows += dump_object(s, o, args)
    finally:
        close_session(s)
    print(fmt.table(rows, ("OBIS", "Name", "Class", "Attribute", "Value")))
    return 0


def dump_object(s, o, args):
    names = fmt.ATTR_NAMES.get(o.cls, ())
    values = {}
    for attr, access in o.attrs:
        if attr == 1 or (o.cls == 7 and attr == 2):
            continue  # the logical name is the first column; a buffer is summarised below
        if access not in _READABLE:
            values[attr] = _Note("(no read access)")
            continue
        try:
            values[attr] = s.get(o.g, attr)
        except AccessError as e:
            values[attr] = _Note("(%s)" % str(e).split(": ", 1)[1])
    su = None
    if o.cls in (3, 4, 5):
        su = fmt.scaler_unit(values.get(4 if o.cls == 5 else 3))
    out = []
    head = [fmt.obis(o.ln), fmt.name_of(o.ln), "%s (%d)" % (
        fmt.CLASS_NAMES.get(o.cls, "class"), o.cls)]
    for attr, access in o.attrs:
        if attr == 1:
            continue
        label = "%d %s" % (attr, names[attr - 2] if attr - 2 < len(names) else "")
        if o.cls == 7 and attr == 2:
            lines = buffer_summary(s, o, args) if access in _READABLE else ["(no read access)"]
        elif isinstance(values[attr], _Note):
            lines = [values[attr].text]
        else:
            lines = fmt.format_attr(o.cls, o.ln, attr, values[attr], su, args.base_units)
        out.append(head + [label.rstrip(), lines])
        head = ["", "", ""]
    if not out:
        out.append(head + ["", []])
    return out


class _Note:
    # Stands in for a value that could not be read.
    def __init__(self, text):
        self.text = text


def buffer_summary(s, o, args):
    # entries_in_use rows; the newest one column by column.
    try:
        p = Profile(s, o)
        if not p.entries:
            return ["0 rows"]
        rows = p.read(first=p.entries, last=0)
    except AccessError as e:
        return ["(%s)" % str(e).split(": ", 1)[1]]
    if not rows:
        return ["%d rows" % p.entries]
    text = p.text_row(rows[-1], p.times(rows)[-1], args.base_units)
    lines = ["%d rows, the newest:" % p.entries]
    for c, v in zip(p.columns, text):
        lines.append("  %s = %s" % (c.header(args.base_units), v))
    return lines


# **** profile ****


def cmd_profile(args):
    s = open_session(args, password=args.password)
    try:
        p = Profile(s, profile_object(object_list(s), args.obis))
        rows, times = select_rows(p, args, args.from_, args.to)
    finally:
        close_session(s)
    out = open(args.csv, "w", newline="") if args.csv and args.csv != "-" else sys.stdout
    try:
        w = csv.writer(out)
        w.writerow([c.header(args.base_units) for c in p.columns])
        for r, t in zip(rows, times):
            w.writerow(p.text_row(r, t, args.base_units))
    finally:
        if out is not sys.stdout:
            out.close()
    if not args.quiet and args.csv and args.csv != "-":
        sys.stderr.write("%d rows of %s written to %s\n" % (len(rows), fmt.obis(p.obj.ln),
                                                           args.csv))
    return 0


# **** plot ****


def cmd_plot(args):
    s = open_session(args, password=args.password)
    try:
        p = Profile(s, profile_object(object_list(s), args.obis))
        if not p.period:
            raise LinkError("%s has no capture period: not an interval profile"
                            % fmt.obis(p.obj.ln))
        imp, exp, cumulative = energy_columns(p)
        n = args.days * 86400 // p.period + (1 if cumulative else 0)
        rows, times = select_rows(p, args, last=n)
    finally:
        close_session(s)
    keep = [(t, r) for t, r in zip(times, rows) if t is not None]
    if len(keep) < (2 if cumulative else 1):
        raise LinkError("%s has no rows to plot" % fmt.obis(p.obj.ln))
    rows = [r for _, r in keep]
    ts = [t for t, _ in keep][1 if cumulative else 0:]
    up = interval_series(p, rows, imp, cumulative, args.kw)
    down = interval_series(p, rows, exp, cumulative, args.kw)
    unit = "kW (mean)" if args.kw else "kWh per %d min" % (p.period // 60)
    z = ts[-1].strftime("%z")
    title = "%s %s  %s .. %s (UTC%s:%s)" % (
        fmt.name_of(p.obj.ln) or "Profile", fmt.obis(p.obj.ln),
        ts[0].strftime("%Y-%m-%d %H:%M"), ts[-1].strftime("%Y-%m-%d %H:%M"), z[:3], z[3:5])
    legend = [(read_meter_png.IMPORT, "import " + fmt.obis(p.columns[imp].ln))]
    if exp is not None:
        legend.append((read_meter_png.EXPORT, "export " + fmt.obis(p.columns[exp].ln)))
    data = read_meter_png.bar_chart(ts, up, down, p.period, title, unit, legend,
                                    args.width, args.height)
    with open(args.png, "wb") as f:
        f.write(data)
    if not args.quiet:
        sys.stderr.write("%d intervals plotted to %s\n" % (len(ts), args.png))
    return 0


# **** set-clock ****


def cmd_set_clock(args):
    client = args.client if args.client_given else 1
    s = open_session(args, client=client, password=args.password)
    try:
        clock = make_object(8, _CLOCK_LN)
        tb = time.monotonic()
        before = s.get(clock, 2)
        half_rtt = datetime.timedelta(seconds=(time.monotonic() - tb) / 2)
        pc_before = datetime.datetime.now(datetime.timezone.utc) - half_rtt
        f = fmt.decode_dt(before)
        meter_before = fmt.dt_to_datetime(before)
        dev = f["deviation"] if f and f["deviation"] is not None else None
        status = (f["status"] & 0x80) if f and f["status"] is not None else 0
        # The PC's time when the SET arrives, about half a round trip from now.
        target = args.to or datetime.datetime.now(datetime.timezone.utc) + half_rtt
        if dev is not None:  # in the meter's own offset, as it shows its time
            target = target.astimezone(datetime.timezone(datetime.timedelta(minutes=-dev)))
        clock.time = fmt.encode_dt(target, status)
        t0 = time.monotonic()
        s.set(clock, 2)
        t1 = time.monotonic()
        after = s.get(clock, 2)
        t2 = time.monotonic()
        # The meter took the time about mid-way through the SET and sampled it mid-way
        # through the GET.
        elapsed = (t1 + t2) / 2 - (t0 + t1) / 2
    finally:
        close_session(s)
    meter_after = fmt.dt_to_datetime(after)
    print("meter clock before: %s" % fmt.format_dt(before) + (
        "  (meter - PC %+.1f s)" % (meter_before - pc_before).total_seconds()
        if meter_before else ""))
    print("set to:             %s" % fmt.iso(target))
    if meter_after is None:
        print("meter clock now:    %s" % fmt.format_dt(after))
        return 1
    diff = (meter_after - (target + datetime.timedelta(seconds=elapsed))).total_seconds()
    print("meter clock now:    %s  (difference %+.1f s)" % (fmt.format_dt(after), diff))
    return 0


# **** command line ****


def hostport(text):
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError("expected HOST:PORT, got %r" % text)
    return host.strip("[]"), int(port)


def positive(text):
    try:
        v = float(text)
    except ValueError:
        v = -1
    if v <= 0:
        raise argparse.ArgumentTypeError("expected a positive number, got %r" % text)
    return v


def obis_arg(text):
    try:
        return fmt.parse_obis(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))


def when_arg(text):
    try:
        return fmt.parse_when(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected an ISO 8601 date or date-time such as "
                                          "2026-11-20T00:00:00+01:00, got %r" % text)


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="read_meter.py",
        description="Read a DLMS/COSEM meter (logical name referencing) over HDLC on TCP or a "
        "serial line, or over the IEC 62056-47 wrapper on TCP.")
    line = ap.add_mutually_exclusive_group()
    line.add_argument("--tcp", metavar="HOST:PORT", type=hostport,
                      help="HDLC byte stream over TCP (serial-to-Ethernet gateway, simulator). "
                      "Default: 127.0.0.1:4059")
    line.add_argument("--serial", metavar="DEVICE", help="HDLC on a serial line, 8N1")
    line.add_argument("--wrapper", metavar="HOST:PORT", type=hostport,
                      help="IEC 62056-47 wrapper over TCP (no HDLC, no unit id)")
    ap.add_argument("--baud", type=int, metavar="BAUD", default=9600,
                    help="serial speed (default 9600)")
    ap.add_argument("--client", type=int, default=None, metavar="SAP",
                    help="client SAP: 16 public (default), 1 management (default with "
                    "--password)")
    ap.add_argument("--password", metavar="PW", help="low-level security (LLS) password")
    ap.add_argument("--unit-id", type=int, default=17, metavar="N",
                    help="HDLC physical address of the meter (default 17)")
    ap.add_argument("--logical", type=int, default=1, metavar="N",
                    help="server logical device / wPort (default 1, the management device)")
    ap.add_argument("--timeout", type=positive, default=5.0, metavar="S",
                    help="seconds to wait for each answer frame (default 5)")
    ap.add_argument("--retries", type=int, default=2, metavar="N",
                    help="resend a request frame that got no answer this often (HDLC; "
                    "default 2)")
    ap.add_argument("--base-units", action="store_true",
                    help="energy and power in the meter's units (Wh, W) instead of kWh, kW")
    ap.add_argument("--quiet", "-q", action="store_true",
                    help="no progress bar and no summary on stderr")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    sub.add_parser("dump", help="every object of the association's object list as a table")
    p = sub.add_parser("profile", help="profile rows (load profile, billing) to CSV")
    p.add_argument("--obis", type=obis_arg, default=_LOAD_PROFILE,
                   help="the Profile generic object (default %s; billing: 1-0:98.1.0*255)"
                   % _LOAD_PROFILE)
    p.add_argument("--from", dest="from_", metavar="ISO", type=when_arg,
                   help="first time (ISO 8601; no offset = this PC's time zone), inclusive")
    p.add_argument("--to", metavar="ISO", type=when_arg, help="last time, inclusive")
    p.add_argument("--last", type=int, metavar="N", help="the N newest rows")
    p.add_argument("--csv", metavar="FILE", help="output file (default: stdout)")
    p = sub.add_parser("plot", help="plot the load profile (import and export) to PNG")
    p.add_argument("--png", metavar="FILE", required=True)
    p.add_argument("--days", type=int, default=1, help="the newest N days (default 1)")
    p.add_argument("--obis", type=obis_arg, default=_LOAD_PROFILE,
                   help="default %s" % _LOAD_PROFILE)
    p.add_argument("--kw", action="store_true", help="mean power (kW) instead of kWh")
    p.add_argument("--width", type=int, default=960)
    p.add_argument("--height", type=int, default=480)
    p = sub.add_parser("set-clock", help="set the meter clock (needs --password)")
    p.add_argument("--to", metavar="ISO", type=when_arg,
                   help="the time to set (ISO 8601; no offset = this PC's time zone). "
                   "Default: this PC's time")
    a = ap.parse_args(argv)
    if a.cmd == "profile" and a.last is not None and (a.from_ or a.to):
        ap.error("--last and --from/--to exclude each other")
    if a.cmd == "profile" and a.from_ and a.to and a.from_ > a.to:
        ap.error("--from is after --to")
    if a.cmd == "set-clock" and not a.password:
        ap.error("set-clock needs --password PW (low-level security; client 1 by default)")
    if a.cmd == "plot" and (a.days < 1 or a.width < 200 or a.height < 120):
        ap.error("plot needs --days >= 1, --width >= 200, --height >= 120")
    a.client_given = a.client is not None
    if a.client is None:
        a.client = 1 if a.password else 16
    if not (a.tcp or a.serial or a.wrapper):
        a.tcp = ("127.0.0.1", 4059)
    return a


_COMMANDS = {"dump": cmd_dump, "profile": cmd_profile, "plot": cmd_plot,
             "set-clock": cmd_set_clock}


def main(argv=None):
    args = parse_args(argv)
    try:
        return _COMMANDS[args.cmd](args)
    except LinkError as e:
        sys.stderr.write("read_meter: %s\n" % e)
        return 1
    except BrokenPipeError:
        # stdout's reader left (`| head`): stop quietly (Python docs, "Note on SIGPIPE").
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as e:
        sys.stderr.write("read_meter: %s\n" % e)
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("\nread_meter: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
