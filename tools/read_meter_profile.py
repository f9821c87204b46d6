# read_meter_profile.py: the object list, Profile generic objects and their rows, and the
# progress bar, for tools/read_meter.py (CPython only).
import datetime
import sys
import time

import read_meter_fmt as fmt
from read_meter_link import LinkError, RowCounter, make_object

_MIN_BOUND = datetime.datetime(2000, 1, 2, tzinfo=datetime.timezone.utc)  # range "from" default
_MAX_BOUND = datetime.datetime(2099, 12, 30, tzinfo=datetime.timezone.utc)  # range "to" default


# **** progress on stderr ****


class Progress:
    # "rows 1234/3360 [#####.....] 37% 2.1 s" redrawn in place at most 10 times a second.
    def __init__(self, stream, enabled, what="rows"):
        self.stream = stream
        self.enabled = enabled
        self.what = what
        self.t0 = time.monotonic()
        self.last = 0.0
        self.shown = False
        self.state = (None, None)

    def update(self, done, total):
        self.state = (done, total)
        now = time.monotonic()
        if self.enabled and now - self.last >= 0.1:
            self.last = now
            self._draw()

    def _draw(self):
        done, total = self.state
        el = time.monotonic() - self.t0
        if done is None:
            line = "%s ... %.1f s" % (self.what, el)
        elif total:
            n = 30 * done // total
            line = "%s %d/%d [%s%s] %3d%% %.1f s" % (self.what, done, total, "#" * n,
                                                    "." * (30 - n), 100 * done // total, el)
        else:
            line = "%s %d %.1f s" % (self.what, done, el)
        self.stream.write("\r" + line + "\x1b[K")
        self.stream.flush()
        self.shown = True

    def finish(self):
        if self.enabled and self.shown:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()


def make_progress(args):
    return Progress(sys.stderr, not args.quiet and sys.stderr.isatty())


# **** the object list ****


class Obj:
    # One object_list entry (BB 4.4.4 object_list_element).
    def __init__(self, entry):
        self.cls = int(entry[0])
        self.version = int(entry[1])
        self.ln = bytes(entry[2])
        self.attrs = [(int(a[0]), int(a[1])) for a in entry[3][0]]
        self.g = make_object(self.cls, self.ln)


def object_list(s):
    return [Obj(e) for e in s.object_list()]


def find(objs, ln, cls=None):
    for o in objs:
        if o.ln == ln and (cls is None or o.cls == cls):
            return o
    return None


# **** profiles ****


class Column:
    def __init__(self, cdef):
        self.cls, self.ln, self.attr = int(cdef[0]), bytes(cdef[1]), int(cdef[2])
        self.kind = "value"
        self.su = None
        if self.cls == 8 and self.attr == 2:
            self.kind = "time"
        elif self.cls == 1 and self.attr == 2 and self.ln[2] in (96, 97):
            self.kind = "status"

    def is_quantity(self):
        return (self.cls, self.attr) in ((3, 2), (4, 2), (5, 2), (5, 3))

    def header(self, base_units):
        if self.kind == "time":
            return "timestamp"
        if self.kind == "status":
            return "status"
        h = fmt.obis(self.ln) + ("" if self.attr == 2 else " attr %d" % self.attr)
        if self.su is not None and fmt.UNITS.get(self.su[1]):
            h += " [%s]" % fmt.unit_text(self.su[1], base_units)
        return h


class Profile:
    # A Profile generic object: its columns (with scaler and unit) and its rows as text.
    def __init__(self, s, obj):
        self.s = s
        self.obj = obj
        g = obj.g
        caps = s.get(g, 3)
        self.columns = [Column(c) for c in caps]
        self.period = int(s.get(g, 4))
        self.entries = int(s.get(g, 7))
        self.depth = int(s.get(g, 8))
        sort = s.get(g, 6)
        if sort and int(sort[0]):
            g.sortObject = make_object(sort[0], sort[1])
        elif self.columns:
            g.sortObject = make_object(self.columns[0].cls, self.columns[0].ln)
        for c in self.columns:
            if c.is_quantity():
                su_attr = 4 if c.cls == 5 else 3
                c.su = fmt.scaler_unit(s.get(make_object(c.cls, c.ln), su_attr))

    def read(self, first=None, last=None, start=None, end=None, progress=None):
        # All rows, entries first..last (last 0 = the newest), or rows in [start, end].
        counter = RowCounter(progress.update) if progress else None
        if start is not None or end is not None:
            rows = self.s.get_rows_by_range(self.obj.g, start or _MIN_BOUND,
                                            end or _MAX_BOUND, counter)
        elif first is not None:
            count = 0 if not last else last - first + 1
            rows = self.s.get_rows_by_entry(self.obj.g, first, count, counter)
        else:
            rows = self.s.get(self.obj.g, 2, counter) or []
        if progress:
            progress.update(len(rows), len(rows))
            progress.finish()
        return rows

    def times(self, rows):
        # The timestamp of every row (aware datetime), a null one being the previous + period
        # (BB 4.3.6: a compressed buffer leaves out values that follow from the previous row).
        col = next((i for i, c in enumerate(self.columns) if c.kind == "time"), None)
        out = []
        prev = None
        for r in rows:
            t = fmt.dt_to_datetime(r[col]) if col is not None and r[col] is not None else None
            if t is None and prev is not None and self.period:
                t = prev + datetime.timedelta(seconds=self.period)
            out.append(t)
            prev = t
        return out

    def text_row(self, row, t, base_units):
        out = []
        for c, v in zip(self.columns, row):
            if c.kind == "time":
                out.append(fmt.iso(t) if t is not None else fmt.format_plain(v))
            elif c.kind == "status" and isinstance(v, int):
                out.append("0x%04X" % int(v))
            elif c.su is not None:
                out.append(fmt.quantity(v, c.su, base_units)[0])
            elif isinstance(v, (bytes, bytearray)) and fmt.dt_to_datetime(v):
                out.append(fmt.iso(fmt.dt_to_datetime(v)))
            else:
                out.append(fmt.format_plain(v))
        return out


def select_rows(p, args, start=None, end=None, last=None):
    # Rows (and their times) by --from/--to, --last N, or all.
    last = last if last is not None else getattr(args, "last", None)
    prog = make_progress(args)
    if start is not None or end is not None:
        rows = p.read(start=start, end=end, progress=prog)
    elif last is not None:
        if last <= 0 or not p.entries:
            return [], []
        # From the Nth newest to the newest; an entry added meanwhile is trimmed off.
        rows = p.read(first=max(1, p.entries - last + 1), last=0, progress=prog)[-last:]
    else:
        rows = p.read(progress=prog)
    return rows, p.times(rows)


def energy_columns(p):
    # (import, export, cumulative): the active energy + and - columns (OBIS C = 1 and 2) of a
    # profile, per interval (D = 29, time integral 5) or else cumulative (D = 8, time integral
    # 1, to be differenced). Export may be missing (None).
    for d, cumulative in ((29, False), (8, True)):
        cols = [None, None]
        for i, c in enumerate(p.columns):
            if c.su is not None and c.ln[2] in (1, 2) and c.ln[3] == d and c.ln[4] == 0:
                if cols[c.ln[2] - 1] is None:
                    cols[c.ln[2] - 1] = i
        if cols[0] is not None:
            return cols[0], cols[1], cumulative
    raise LinkError("%s has no active energy import column (OBIS C.D = 1.29 or 1.8) to plot"
                    % fmt.obis(p.obj.ln))


def interval_series(p, rows, col, cumulative, mean_power):
    # kWh per interval (or the mean kW) of column col, zeros for no column; a cumulative
    # column is differenced, so its first row is only the starting point.
    if col is None:
        return [0.0] * (len(rows) - (1 if cumulative else 0))
    su = p.columns[col].su
    vals = [float(fmt.quantity(r[col], su)[0]) if r[col] is not None else 0.0 for r in rows]
    if cumulative:
        vals = [b - a for a, b in zip(vals, vals[1:])]
    hours = p.period / 3600 if mean_power else 1
    return [v / hours for v in vals]
