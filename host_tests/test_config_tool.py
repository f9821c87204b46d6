# tools/config.py, the PC-side checker of board config files, run as a user runs it (a
# subprocess, from another directory): exit codes 0 (valid), 1 (values replaced or ignored),
# 2 (unreadable or not JSON); messages on stderr, the effective config as JSON on stdout.
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, "tools", "config.py")
EXAMPLE = os.path.join(ROOT, "boards", "config.example.json")
NOTICE = "config: no lls_password: the management association (client 1) is disabled"


def run(*args, cwd="/"):
    p = subprocess.run([sys.executable, TOOL] + list(args), cwd=cwd, capture_output=True,
                       text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr.splitlines()


def write(tmp_path, text, name="config.json"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def defaults():
    rc, out, err = run("defaults")
    assert rc == 0 and err == []
    return json.loads(out)


def test_defaults():
    d = defaults()
    assert d["lls_password"] is None  # no default password
    assert d["recording_interval"] == 900 and d["hdlc"]["unit_id"] == 17
    assert d["frontend"]["meter_constant"] == 3200 and d["wrapper"]["enabled"] is False
    assert [e["obis"] for e in d["log_exports"]] == ["1-0:99.1.0*255", "1-0:98.1.0*255"]


def test_example_file_is_valid():
    rc, out, err = run("check", EXAMPLE)
    assert rc == 0
    assert err == [NOTICE, EXAMPLE + ": valid"]
    assert json.loads(out) == defaults()


def test_a_valid_file_with_a_password(tmp_path):
    raw = {"lls_password": "Zq7-m#Lp", "recording_interval": 1800, "_comment": "x",
           "log_exports": [{"obis": "1-0.99.1.0.255", "status": True, "periodic": True,
                            "sources": ["1-1:1.29.0*255", "NONE", "1-1:2.29.0"]}]}
    path = write(tmp_path, json.dumps(raw))
    rc, out, err = run("check", path)
    assert rc == 0 and err == [path + ": valid"]
    cfg = json.loads(out)
    assert cfg["lls_password"] == "Zq7-m#Lp" and cfg["recording_interval"] == 1800
    assert "_comment" not in cfg
    assert cfg["log_exports"] == [{"obis": "1-0:99.1.0*255", "status": True,
                                   "sources": ["1-1:1.29.0*255", "none", "1-1:2.29.0*255"],
                                   "periodic": True, "entries": 24}]
    # The effective config is itself a valid config file, and a fixpoint.
    path2 = write(tmp_path, out, "effective.json")
    rc, out2, err = run("check", path2)
    assert rc == 0 and json.loads(out2) == cfg


def test_replaced_values_exit_1(tmp_path):
    raw = {"recording_interval": 7, "hdlc": {"baud": 1234, "speed": 1},
           "lls_password": "p\u00e4sswort"}
    path = write(tmp_path, json.dumps(raw))
    rc, out, err = run("check", path)
    assert rc == 1
    assert err == [
        "config: recording_interval 7 invalid (must divide 86400 and be 60..86400 s): "
        "using 900",
        "config: lls_password invalid (must be 1..16 printable ASCII characters: the LLS "
        "secret is a GraphicString, GB 9.3.2): using no password",
        "config: hdlc.baud 1234 invalid (must be 300, 600, 1200, 2400, 4800, 9600, 19200, "
        "38400, 57600 or 115200 baud): using 9600",
        "config: unknown key hdlc.speed ignored",
        NOTICE,
        path + ": 4 value(s) replaced or ignored",
    ]
    cfg = json.loads(out)
    assert cfg["recording_interval"] == 900 and cfg["hdlc"]["baud"] == 9600
    assert cfg["lls_password"] is None and "speed" not in cfg["hdlc"]


def test_not_an_object_exits_1(tmp_path):
    rc, out, err = run("check", write(tmp_path, "[1, 2]"))
    assert rc == 1 and err[0].startswith("config: the file must hold one JSON object")
    assert json.loads(out) == defaults()


def test_unreadable_or_not_json_exits_2(tmp_path):
    cases = (
        (write(tmp_path, '{"ldn": "SCH1",}', "trailing.json"), "is not valid JSON ("),
        (write(tmp_path, "", "empty.json"), "is not valid JSON ("),
        (str(tmp_path / "absent.json"), "config: no file "),
        (str(tmp_path), "config: cannot open "),
    )
    for path, want in cases:
        rc, out, err = run("check", path)
        assert rc == 2 and out == "", path
        assert len(err) == 1 and want in err[0] and err[0].endswith(": using the defaults")
    bad = tmp_path / "latin1.json"
    bad.write_bytes(b'{"ldn": "\xe9"}')
    rc, out, err = run("check", str(bad))
    assert rc == 2 and out == "" and err[0].startswith("config: cannot read ")


def test_relative_path_from_any_directory(tmp_path):
    write(tmp_path, '{"utc_offset": 0}')
    rc, out, err = run("check", "config.json", cwd=str(tmp_path))
    assert rc == 0 and json.loads(out)["utc_offset"] == 0


def test_usage_errors():
    for args in ((), ("check",), ("frobnicate",)):
        rc, out, err = run(*args)
        assert rc == 2 and out == "" and any("usage:" in line for line in err)
