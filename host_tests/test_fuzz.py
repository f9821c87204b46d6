# The fuzzer on CPython, bounded for `make test`: structured inputs from hypothesis (fixed,
# derandomized), a few thousand mutation cases, and the driver end to end (figures printed,
# failures written with the command that replays them). The long runs are `make fuzz`.
import os
import subprocess
import sys

import fuzz_harness as fh
import fuzz_hyp
import fuzz_mutate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_H = fh.Harness()


@settings(derandomize=True, max_examples=300, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(fuzz_hyp.case())
def test_structured_inputs_keep_every_invariant(c):
    code = fuzz_hyp.run_example(_H, c)
    detail = _H.detail
    _H.detail = None
    _H.failure = 0
    assert code == 0, (fh.FAILURES[code], detail, c)


@settings(derandomize=True, max_examples=150, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(st.lists(fuzz_hyp.apdu(), min_size=1, max_size=4), st.sampled_from((fh.P_PUBLIC, fh.P_MGMT)))
def test_apdus_in_valid_frames_reach_the_server_and_keep_every_invariant(apdus, prefix):
    # Every APDU in a well-formed I-frame (segmented as needed) after an association: the
    # application layer parses all of them.
    client = 0x03 if prefix == fh.P_MGMT else 0x21
    out = bytearray(fh.CAP)
    q = 0
    ns = 1
    for a in apdus:
        info = b"\xE6\xE6\x00" + a
        for off in range(0, len(info), fh.MAX_INFO):
            seg = info[off:off + fh.MAX_INFO]
            if q + len(seg) + 20 > len(out):
                break
            ctrl = 1 << 5 | 0x10 | ns << 1  # N(R) 1: the AARE of the prefix was I-frame 0
            q = fh.put_frame(out, q, fh.ADDRS[0], client, ctrl, seg, 0, len(seg),
                             off + fh.MAX_INFO < len(info))
            ns = (ns + 1) & 7
    pdus = _H.link.de.frames
    code = fuzz_hyp.run_example(_H, (fh.HDLC, prefix, bytes(out[:q]), [], [False]))
    assert code == 0, (fh.FAILURES[code], _H.detail, apdus)
    assert _H.link.de.frames > pdus


def test_thousands_of_mutation_cases_keep_every_invariant():
    run = fuzz_mutate.Run(check_every=1, limit_ms=5000)
    run.cases(2024, 0, 3000)
    assert run.failed == [], [fuzz_mutate.fail_line(2024, f)[:300] for f in run.failed]
    h = run.h
    assert h.inputs == 3000 and h.recoveries == 3001 and h.answers > 6000


def _fuzz(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "fuzz.py")] + list(args),
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_driver_prints_figures_and_the_same_cases_give_the_same_figures():
    a = _fuzz("--cases", "200", "--seed", "9")
    b = _fuzz("--cases", "200", "--seed", "9", "--jobs", "2")
    assert a.returncode == 0 and b.returncode == 0, a.stdout + a.stderr + b.stdout + b.stderr
    line_a = [x for x in a.stdout.splitlines() if "inputs" in x and "bytes" in x][0]
    line_b = [x for x in b.stdout.splitlines() if "inputs" in x and "bytes" in x][0]
    # "inputs N, bytes M, R inputs/s (...)": the work done is the same for 1 or 2 processes.
    assert line_a.split(" inputs/s")[0].rsplit(",", 1)[0] == \
        line_b.split(" inputs/s")[0].rsplit(",", 1)[0]
    assert "inputs 200," in line_a and "failures 0" in a.stdout
    assert "frames answered" in a.stdout and "recoveries checked 201" in a.stdout


def test_driver_reports_failures_with_the_command_that_replays_them(tmp_path):
    # A time limit of 0 ms fails every case that takes a millisecond or more (F_SLOW): the
    # failure path end to end.
    out = tmp_path / "f.txt"
    r = _fuzz("--cases", "30", "--seed", "3", "--limit-ms", "0", "--failures", str(out))
    assert r.returncode == 1, r.stdout + r.stderr
    text = out.read_text()
    assert "kind=slow_case" in text
    line = [x for x in text.splitlines() if x.startswith("# reproduce:")][0]
    assert "--seed 3 --start " in line and "--cases 1" in line
    assert "input=" in text
