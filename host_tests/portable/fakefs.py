# fakefs.py: file systems for tests of store.SegmentLog users (the `fs` argument: open(path,
# mode) and mkdir(path)): RamFS keeps files as bytearrays, numbers every flash write operation,
# can log them and can lose power in the middle of any of them; TmpDir gives a fresh directory
# of the port's real files. Test helpers: they allocate freely.
import os
import time

CREATE = "c"  # an operation that creates (or truncates) a file
WRITE = "w"  # an operation that writes bytes at a position


class PowerCut(Exception):
    # The power failed in a flash operation. Not an OSError: the store must not "handle" it (a
    # CPU without power handles nothing); it unwinds out of whatever the meter was doing.
    pass


def apply_op(data, kind, path, pos, payload, n):
    # The first n bytes of one logged operation reach the files in `data` ({path: bytearray});
    # a creation has one "byte": n = 0 means it did not happen.
    if kind == CREATE:
        if n > 0:
            data[path] = bytearray()
        return
    d = data[path]
    if len(d) < pos:
        d.extend(bytes(pos - len(d)))  # a write past the end fills the gap with zeros (POSIX)
    d[pos : pos + n] = payload[:n]


def copy_image(data):
    out = {}
    for p in data:
        out[p] = bytearray(data[p])
    return out


class RamFS:
    # data: {path: bytearray}, shared with the caller (an image to boot from). Every file
    # creation and every write() is one operation, numbered from 0 (n_ops counts them). With
    # log = [] each operation is appended as (kind, path, pos, bytes, ctx), ctx = context() (a
    # test's snapshot of the meter at that moment; None without a context). cut_op >= 0: that
    # operation loses power after cut_bytes of its bytes reached the files; PowerCut is raised
    # and every later operation raises it too (a flush included).
    def __init__(self, data=None):
        self.data = {} if data is None else data
        self.n_ops = 0
        self.log = None
        self.context = None
        self.cut_op = -1
        self.cut_bytes = 0
        self.dead = False

    def mkdir(self, path):
        pass

    def open(self, path, mode):
        if mode == "w+b":
            self.op(CREATE, path, 0, b"\x00")
        elif path not in self.data:
            raise OSError(2)  # ENOENT
        return RamFile(self, path)

    def op(self, kind, path, pos, payload):
        if self.dead:
            raise PowerCut()
        k = self.n_ops
        self.n_ops += 1
        if self.log is not None:
            ctx = self.context() if self.context is not None else None
            self.log.append((kind, path, pos, bytes(payload), ctx))
        n = len(payload)
        if k == self.cut_op:
            n = min(n, self.cut_bytes)
        apply_op(self.data, kind, path, pos, payload, n)
        if k == self.cut_op:
            self.dead = True
            raise PowerCut()


class RamFile:
    def __init__(self, fs, path):
        self.fs = fs
        self.path = path
        self.pos = 0

    def seek(self, off):
        self.pos = off
        return off

    def readinto(self, buf):
        d = self.fs.data[self.path]
        n = min(len(buf), len(d) - self.pos)
        if n <= 0:
            return 0
        buf[0:n] = d[self.pos : self.pos + n]
        self.pos += n
        return n

    def write(self, buf):
        n = len(buf)
        self.fs.op(WRITE, self.path, self.pos, buf)
        self.pos += n
        return n

    def flush(self):
        if self.fs.dead:
            raise PowerCut()

    def close(self):
        pass


class Replay:
    # Rebuilds the files as they were at any point of a logged run: image(k, j) = every
    # operation before k whole, then the first j bytes of operation k. k must not decrease
    # between calls (the image before k is kept and advanced).
    def __init__(self, log):
        self.log = log
        self.data = {}
        self.at = 0

    def image(self, k, j):
        while self.at < k:
            kind, path, pos, payload, _ = self.log[self.at]
            apply_op(self.data, kind, path, pos, payload, len(payload))
            self.at += 1
        out = copy_image(self.data)
        kind, path, pos, payload, _ = self.log[k]
        apply_op(out, kind, path, pos, payload, j)
        return out


# **** real files ****

_made = [0]


def _tmp_base():
    for p in ("/tmp", "."):
        try:
            os.stat(p)
            return p
        except OSError:
            pass
    return "."


class TmpDir:
    # with TmpDir() as d: ... -> a fresh empty directory, removed (with its files) afterwards.
    def __enter__(self):
        t = time.ticks_us() if hasattr(time, "ticks_us") else int(time.time() * 1000000)
        for _ in range(100):
            _made[0] += 1
            self.path = "%s/fakefs_%d_%d" % (_tmp_base(), t & 0xFFFFFF, _made[0])
            try:
                os.mkdir(self.path)
                return self.path
            except OSError:  # taken (another run): next name
                pass
        raise OSError("cannot make a directory under " + _tmp_base())

    def __exit__(self, *exc):
        for n in os.listdir(self.path):
            os.remove(self.path + "/" + n)
        os.rmdir(self.path)
        return False
