# bench_speed.py: server-side time per request and the wire efficiency of a load-profile read,
# on the MicroPython unix port and CPython (part of `make bench`). Figures, not assertions.
# Runs tools/bench_requests.py (the same timing module a board runs, tools/test_board.py) in
# host mode on each runtime, with the profile rows in flash files in a temporary directory,
# and prints one table.
#   python tools/bench_speed.py
import os
import subprocess
import sys
import tempfile

import hosttools

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE = os.path.join(ROOT, "firmware")
STUBS = os.path.join(ROOT, "tools", "stubs")
SCRIPT = os.path.join(ROOT, "tools", "bench_requests.py")
RUNTIMES = ("micropython", "cpython")

# (figure, label); {name} fields are filled from the micropython (else cpython) figures.
REQUESTS = (
    ("req.setup_us", "session set-up (SNRM + AARQ)"),
    ("req.get_register_us", "GET register (1-1:1.8.0, value)"),
    ("req.get_clock_us", "GET clock (time)"),
    ("req.object_list_us", "object_list, all of it ({rows.object_list} objects)"),
    ("req.lp_block_us", "one load-profile block (GET-next, PDU 1024)"),
    ("req.lp35_us", "load profile, 35 days ({rows.lp35} rows, {blocks.lp35} blocks)"),
    ("req.lp365_day_us", "last day of a 365-day profile (range, {rows.lp365_day} rows)"),
    ("req.release_us", "release (RLRQ + DISC)"),
)


def command(runtime, rows_dir):
    args = [SCRIPT, FIRMWARE, "host", rows_dir]
    if runtime == "micropython":
        return [hosttools.find("micropython", "make setup installs it"), "-X", "heapsize=8m"] \
            + args, None
    return [sys.executable] + args, dict(os.environ, PYTHONPATH=STUBS)


def run(runtime):
    with tempfile.TemporaryDirectory() as d:
        cmd, env = command(runtime, os.path.join(d, "rows"))
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    figures = {}
    done = False
    for line in p.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == runtime:
            figures[parts[0]] = int(parts[2])
        done = done or line == "bench_requests done"
    if p.returncode or not done:
        print("%s: bench_requests FAILED (exit %d)\n%s%s" % (runtime, p.returncode, p.stdout,
                                                              p.stderr))
        return None
    return figures


def _fill(label, figs):
    out = label
    while "{" in out:
        a = out.index("{")
        b = out.index("}", a)
        out = out[:a] + str(figs.get(out[a + 1:b], "?")) + out[b + 1:]
    return out


def table(res):
    ref = res.get("micropython") or res.get("cpython") or {}
    lines = ["Server time per request, us (HdlcLink + server on the default meter, 128-byte "
             "frames, window 1; rows in flash files)",
             "  %-62s %12s %12s" % ("", "micropython", "cpython")]
    for key, label in REQUESTS:
        lines.append("  %-62s %12s %12s" % (_fill(label, ref), _get(res, "micropython", key),
                                              _get(res, "cpython", key)))
    lines.append("  %-62s %12s %12s" % ("CRC-16/X.25 (fcs16), kB/s",
                                          _kb(res, "micropython"), _kb(res, "cpython")))
    lines.append("Wire: a 7-day read of the 15-minute load profile (%s rows, 4 channels, range "
                 "by clock), 128-byte frames, 9600 baud 8N1 (10 bits per byte)"
                 % ref.get("wire.w7.rows", "?"))
    lines.append("  %-62s %12s %12s" % ("", "window 1", "window 7"))
    for label, fn in (
        ("frames client / meter", lambda w: "%d / %d" % (w["client_frames"], w["server_frames"])),
        ("bytes client / meter", lambda w: "%d / %d" % (w["client_bytes"], w["server_bytes"])),
        ("exchanges (client frame -> meter answer)", lambda w: "%d" % w["exchanges"]),
        ("bytes on the line, s", lambda w: "%.1f" % (w["bytes_ms"] / 1000)),
        ("wire time, s (+12 ms per exchange: 2 ms guard, 10 ms client)",
         lambda w: "%.1f" % (w["wire_ms"] / 1000)),
    ):
        lines.append("  %-62s %12s %12s" % (label, _wire(ref, 1, fn), _wire(ref, 7, fn)))
    for rt in RUNTIMES:
        lines.append("  %-62s %12s %12s" % ("server time on %s, ms (share of wire time)" % rt,
                                              _share(res.get(rt), 1), _share(res.get(rt), 7)))
    lines.append("  published reference: 7 days of a 4-channel profile in 29 s at 9600 baud, "
                 "window 7")
    return lines


def _get(res, rt, key):
    figs = res.get(rt)
    return "-" if figs is None or key not in figs else str(figs[key])


def _kb(res, rt):
    figs = res.get(rt)
    return "-" if not figs else "%d" % (figs["crc.bytes_per_s"] // 1000)


def _wire(figs, window, fn):
    p = "wire.w%d." % window
    w = {k[len(p):]: v for k, v in figs.items() if k.startswith(p)}
    return fn(w) if w else "-"


def _share(figs, window):
    if not figs:
        return "-"
    p = "wire.w%d." % window
    us = figs[p + "server_us"]
    return "%.1f (%.2f%%)" % (us / 1000, us / 10 / figs[p + "wire_ms"])


def main():
    res = {}
    for rt in RUNTIMES:
        figs = run(rt)
        if figs is not None:
            res[rt] = figs
    for line in table(res):
        print(line)
    return 0 if len(res) == len(RUNTIMES) else 1


if __name__ == "__main__":
    sys.exit(main())
