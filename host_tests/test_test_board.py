# `make test-board` without a board: PORT=local runs the compiled tests and the figures under
# the MicroPython unix port in a temporary directory (the path CI exercises); a fake mpremote
# on the board path records the exact command lines and runs them locally; a failing test
# makes the run exit non-zero. Also: tools/bench_speed.py (part of `make bench`) prints every
# row. Figures are only checked to be there, never against limits.
import json
import os
import shutil
import stat
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
TOOL = os.path.join(ROOT, "tools", "test_board.py")
sys.path.append(os.path.join(ROOT, "tools"))  # last: tools/config.py must not shadow firmware/config.py
import test_board  # noqa: E402

MICROPYTHON = os.path.join(os.path.dirname(PY), "micropython")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    # `make mpy` into a private build directory (the shared build/ is left alone).
    build = tmp_path_factory.mktemp("build")
    subprocess.run(["make", "-s", "-f", "mk/boards.mk", "mpy", "BOARD=rp2040_pico",
                    "BUILD=%s" % build], cwd=ROOT, check=True, capture_output=True)
    return str(build / "rp2040_pico")


def _tool(args, **kw):
    return subprocess.run([PY, TOOL, "--board", "rp2040_pico"] + args, cwd=ROOT,
                          capture_output=True, text=True, timeout=300, **kw)


def _check_figures(out):
    for key, label, unit in test_board.FIGURES:
        line = [x for x in out.splitlines() if x.startswith("  " + label)]
        assert line, label
        value = line[0][len("  " + label):].split()[0]
        assert value.isdigit(), (label, line[0])
    assert [x for x in out.splitlines() if x.startswith("  allocated by a session")][0] \
        .split()[-2] == "0"


def test_make_test_board_local_prints_the_summary_and_the_figures(tmp_path):
    # The whole path: the Makefile target, make mpy, staging, the unix port in a temp dir.
    p = subprocess.run(["make", "-s", "test-board", "BOARD=rp2040_pico", "PORT=local",
                        "BUILD=%s" % tmp_path, "ARGS=test_fcs16 test_atm90e32"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout
    assert "PASS test_fcs16.test_no_allocation" in out
    # the chip model is a host-side fake: not copied, the module skips with the reason
    assert "SKIP test_atm90e32 (module) - needs the host-side fake tools/atm90e32_model.py" \
        in out
    assert "  tests: micropython64-linux: 5 passed, 0 failed, 1 skipped" in out
    _check_figures(out)
    # compiled tests and runner were staged, no host-side fake
    tb = os.path.join(str(tmp_path), "rp2040_pico", "test-board", "tb")
    assert os.path.exists(os.path.join(tb, "tests", "test_fcs16.mpy"))
    assert os.path.exists(os.path.join(tb, "tools", "portable_runner.mpy"))
    assert not os.path.exists(os.path.join(tb, "tests", "test_fcs16.py"))
    assert sorted(os.listdir(os.path.join(tb, "tools"))) == ["bench_requests.mpy",
                                                              "portable_runner.mpy"]


def _tests_dir(tmp_path, body):
    d = tmp_path / "tests"
    d.mkdir()
    shutil.copy(os.path.join(ROOT, "host_tests", "portable", "support.py"), d)
    (d / "test_one.py").write_text(body)
    return str(d)


def test_a_failing_test_exits_non_zero(bundle, tmp_path):
    d = _tests_dir(tmp_path, "def test_fine():\n    assert 1 + 1 == 2\n\n\n"
                             "def test_broken():\n    assert 1 + 1 == 3, 'broken on purpose'\n")
    p = _tool(["--port", "local", "--bundle", bundle, "--stage", str(tmp_path / "stage"),
               "--tests-dir", d, "--no-bench"])
    assert p.returncode == 1, p.stdout + p.stderr
    assert "FAIL test_one.test_broken" in p.stdout
    assert "AssertionError: broken on purpose" in p.stdout
    assert "  tests: micropython64-linux: 1 passed, 1 failed, 0 skipped" in p.stdout
    assert "  FAILED test_one.test_broken" in p.stdout


@pytest.mark.parametrize("name, body, args", [
    # a board that runs out of memory or resets mid-run prints no summary line
    ("test_dies", "import sys\n\n\ndef test_dies():\n    sys.exit(3)\n", []),
    # a test that never returns is stopped after --timeout seconds
    ("test_hangs", "def test_hangs():\n    while True:\n        pass\n", ["--timeout", "3"]),
])
def test_a_run_that_dies_or_hangs_exits_non_zero_and_the_next_module_runs(bundle, tmp_path,
                                                                          name, body, args):
    d = _tests_dir(tmp_path, body)
    (tmp_path / "tests" / "test_two.py").write_text("def test_fine():\n    pass\n")
    p = _tool(["--port", "local", "--bundle", bundle, "--stage", str(tmp_path / "stage"),
               "--tests-dir", d, "--no-bench"] + args)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "  tests: no summary line: the run died or hung in test_one." + name in p.stdout
    assert "PASS test_two.test_fine" in p.stdout  # on its own fresh heap
    assert "  tests: micropython64-linux: 1 passed, 0 failed, 0 skipped" in p.stdout


def test_each_module_starts_on_a_fresh_heap(bundle, tmp_path):
    # One runner per module: what a module leaves behind (here most of the heap, hung on the
    # support module, which one runner keeps across modules) is gone for the next, as after a
    # board's soft reset. The interned strings of every module loaded are such a leftover.
    d = _tests_dir(tmp_path, "import gc\n\nimport support\n\n\ndef test_hog():\n"
                             "    support.HOG = []\n"
                             "    while gc.mem_free() > 64 * 1024:\n"
                             "        support.HOG.append(bytearray(16 * 1024))\n")
    (tmp_path / "tests" / "test_two.py").write_text(
        "import gc\n\n\ndef test_room():\n    gc.collect()\n"
        "    assert gc.mem_free() > 150 * 1024, gc.mem_free()\n")
    p = _tool(["--port", "local", "--bundle", bundle, "--stage", str(tmp_path / "stage"),
               "--tests-dir", d, "--no-bench", "--heap", "256k"])
    assert p.returncode == 0, p.stdout + p.stderr
    assert "PASS test_one.test_hog" in p.stdout and "PASS test_two.test_room" in p.stdout


def test_no_bundle_is_a_setup_error(tmp_path):
    p = _tool(["--port", "local", "--bundle", str(tmp_path)])
    assert p.returncode == 2
    assert "make mpy BOARD=" in p.stdout


# What a test may skip for on a board (tools/test_board.py stages no host-side fakes and no
# CPython-only peers); a heap skip names the need and what the board had.
SKIP_REASONS = ("needs the host-side fake tools/", "Gurux is a CPython library",
                "only a 32-bit MicroPython shows this", "tools/fuzz_*.py not on the path")


def _results(out):
    # {test: "PASS" | "FAIL" | "SKIP heap" | "SKIP other"} from the PASS/FAIL/SKIP lines
    res = {}
    for line in out.splitlines():
        word, _, rest = line.partition(" ")
        if word not in ("PASS", "FAIL", "SKIP"):
            continue
        name = rest.split(" ")[0]
        if word != "SKIP":
            res[name] = word
            continue
        reason = rest.split(" - ", 1)[1]
        if reason.startswith("needs ~"):
            # "needs ~N KB of heap, this board has M KB free": only when M < N
            need = int(reason.split("~")[1].split()[0])
            have = int(reason.split("has ")[1].split()[0])
            assert have < need, line
            res[name] = "SKIP heap"
        elif reason.startswith("needs one free block of ~"):
            res[name] = "SKIP heap"
        else:
            assert reason.startswith(SKIP_REASONS), line
            res[name] = "SKIP other"
    return res


def test_on_a_board_sized_heap_every_test_passes_or_skips_for_heap(bundle, tmp_path):
    # The whole portable suite as make test-board runs it, on a PC-sized heap and on two
    # board-sized ones of the 64-bit unix port (which needs more heap than a 32-bit board for
    # the same objects, so these are harder than a Pico's ~190 KB). Each module starts on a
    # fresh heap; a test too big for the heap skips with its need, every other test passes.
    runs = {}
    for heap in ("4m", "256k", "192k"):
        p = _tool(["--port", "local", "--bundle", bundle, "--stage", str(tmp_path / "stage"),
                   "--heap", heap, "--no-bench"])
        assert p.returncode == 0, heap + "\n" + p.stdout[-3000:] + p.stderr
        assert ", 0 failed, " in p.stdout
        runs[heap] = _results(p.stdout)
    pc = runs["4m"]
    assert "FAIL" not in pc.values() and "SKIP heap" not in pc.values()
    assert sum(1 for v in pc.values() if v == "PASS") > 250
    heap_skips = []
    for heap in ("256k", "192k"):
        res = runs[heap]
        assert sorted(res) == sorted(pc), heap  # the same tests ran
        for name, v in res.items():
            # a test passes or skips for heap; what skips for another reason does so anywhere
            assert v in ("PASS", "SKIP heap") if pc[name] == "PASS" else v == pc[name], \
                (heap, name, v)
        heap_skips.append(set(n for n, v in res.items() if v == "SKIP heap"))
    # less heap, more skips; the board-sized heaps do skip some
    assert heap_skips[0] and heap_skips[0] < heap_skips[1], heap_skips


FAKE_MPREMOTE = r'''
# A stand-in for mpremote: records its arguments, then does what they say to a directory that
# plays the board's file system; exec runs the code under the MicroPython unix port there.
import json, os, shutil, subprocess, sys

root = os.environ["FAKE_BOARD"]
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\n")
args = sys.argv[1:]
assert args[0] == "connect", args
args = args[2:]
cmds = [[]]
for a in args:
    if a == "+":
        cmds.append([])
    else:
        cmds[-1].append(a)
for c in cmds:
    if c[:2] == ["fs", "touch"]:
        open(os.path.join(root, c[2][1:]), "w").close()
    elif c[:3] == ["fs", "rm", "-r"]:
        shutil.rmtree(os.path.join(root, c[3][1:]))
    elif c[:2] == ["fs", "rm"]:
        os.remove(os.path.join(root, c[2][1:]))
    elif c[:3] == ["fs", "cp", "-r"] and c[4] == ":":
        shutil.copytree(c[3], os.path.join(root, os.path.basename(c[3])), dirs_exist_ok=True)
    elif c == ["reset"]:
        pass
    elif c[0] == "exec":
        rc = subprocess.run([os.environ["FAKE_MICROPYTHON"], "-X", "heapsize=4m", "-c", c[1]],
                            cwd=root).returncode
        if rc:
            sys.exit(1)  # mpremote: an exception on the board
    else:
        sys.exit("fake mpremote: unknown command %r" % c)
'''


@pytest.mark.parametrize("keep_no_wdt, keep_tb, end", [
    # the last call: :tb/ removed (the meter's logs share the flash), :no-wdt removed, a reset
    (False, False, ["fs", "rm", "-r", ":tb", "+", "fs", "rm", ":no-wdt", "+", "reset"]),
    (True, False, ["fs", "rm", "-r", ":tb"]),
    (False, True, ["fs", "rm", ":no-wdt", "+", "reset"]),
    (True, True, None),
])
def test_mpremote_command_lines(bundle, tmp_path, keep_no_wdt, keep_tb, end):
    fake = tmp_path / "mpremote"
    fake.write_text("#!" + PY + "\n" + FAKE_MPREMOTE)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    board = tmp_path / "board"
    board.mkdir()
    log = tmp_path / "log"
    env = dict(os.environ, FAKE_BOARD=str(board), FAKE_LOG=str(log),
               FAKE_MICROPYTHON=MICROPYTHON)
    stage = str(tmp_path / "stage")
    p = _tool(["--port", "/dev/ttyACM7", "--bundle", bundle, "--stage", stage,
               "--mpremote", str(fake), "--reset-wait", "0", "-k", "check",
               "test_fcs16", "test_support"] + (["--keep-no-wdt"] if keep_no_wdt else []) +
              (["--keep-tb"] if keep_tb else []), env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    calls = [json.loads(x) for x in log.read_text().splitlines()]
    port = ["connect", "/dev/ttyACM7"]
    runner_args = ["tb/fw", "tb/tests", "tb/tools/stubs", "--board", "-k", "check"]
    expect = [
        port + ["fs", "touch", ":no-wdt", "+", "reset"],
        port + ["fs", "cp", "-r", os.path.join(stage, "tb"), ":"],
        port + ["exec", "import sys\nsys.path.insert(0, 'tb/tools')\nimport bench_requests\n"
                        "bench_requests.main(['tb/fw', 'board', 'tb/rows'])\n"],
    ] + [  # one connection (a soft reset: a fresh heap) per test module
        port + ["exec", "import sys\nsys.path.insert(0, 'tb/tools')\nimport portable_runner\n"
                        "portable_runner.main(%r)\n" % (runner_args + [module],)]
        for module in ("test_fcs16", "test_support")
    ]
    if end:
        expect.append(port + end)
    assert calls == expect
    assert os.path.exists(board / "no-wdt") == keep_no_wdt
    assert os.path.exists(board / "tb" / "fw" / "hdlc.mpy") == keep_tb
    assert "PASS test_fcs16.test_check_value" in p.stdout
    assert "PASS test_support.test_need_heap_checks_the_largest_block_on_a_board" in p.stdout
    assert "  tests: micropython64-linux: 2 passed, 0 failed, 0 skipped" in p.stdout
    _check_figures(p.stdout)


def test_bench_speed_prints_every_row():
    import bench_speed

    p = subprocess.run([PY, os.path.join(ROOT, "tools", "bench_speed.py")], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    for key, label in bench_speed.REQUESTS:
        row = [x for x in lines if x.startswith("  " + label.split("{")[0])]
        assert row, label
        assert row[0].split()[-2].isdigit() and row[0].split()[-1].isdigit(), row[0]
    for label in ("frames client / meter", "bytes client / meter", "exchanges",
                  "bytes on the line, s", "wire time, s", "server time on micropython",
                  "server time on cpython", "CRC-16/X.25"):
        assert [x for x in lines if x.startswith("  " + label)], label
    assert "?" not in p.stdout
