# config.py (tools): check a board configuration file on this PC with the board's own rules
# (firmware/config.py, imported, not copied).
#
#   python tools/config.py check FILE   messages on stderr, the effective config (JSON) on stdout
#   python tools/config.py defaults     the default config (JSON) on stdout
#
# check exits 0 when the file is valid as written (the "no lls_password" notice alone does not
# count: a board without a management association is a valid choice), 1 when any value was
# replaced by its default or ignored, 2 when the file cannot be read or is not JSON (the board
# would run on the defaults). CPython's JSON parser is stricter than MicroPython's (a trailing
# comma passes on the board), so a file that passes here passes there.
import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# firmware/ first: this script's own directory (tools/) holds this file, also named config.py.
sys.path[0:0] = [os.path.join(ROOT, "firmware"), os.path.join(ROOT, "tools", "stubs")]

import config as rules  # noqa: E402  (firmware/config.py)


def dumps(v, indent=0):
    # JSON with one key per line, lists of plain values on one line (as the example file).
    pad = "  " * (indent + 1)
    if isinstance(v, dict) and v:
        items = [pad + json.dumps(k) + ": " + dumps(v[k], indent + 1) for k in v]
        return "{\n" + ",\n".join(items) + "\n" + "  " * indent + "}"
    if isinstance(v, list) and any(isinstance(x, (dict, list)) for x in v):
        items = [pad + dumps(x, indent + 1) for x in v]
        return "[\n" + ",\n".join(items) + "\n" + "  " * indent + "]"
    return json.dumps(v)


def check(path):
    raw, why = rules.read(path)
    if raw is None:
        print(why, file=sys.stderr)
        return 2
    cfg, msgs = rules.validate(raw)
    for m in msgs:
        print(m, file=sys.stderr)
    bad = rules.replaced(msgs)
    if bad:
        print("%s: %d value(s) replaced or ignored" % (path, len(bad)), file=sys.stderr)
    else:
        print("%s: valid" % path, file=sys.stderr)
    print(dumps(cfg))
    return 1 if bad else 0


def main(argv=None):
    ap = argparse.ArgumentParser(description="Check a board config file with the firmware's "
                                 "rules (firmware/config.py).")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="validate FILE; print messages and the effective config")
    c.add_argument("file")
    sub.add_parser("defaults", help="print the default config")
    a = ap.parse_args(argv)
    if a.cmd == "check":
        return check(a.file)
    print(dumps(rules.defaults()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
