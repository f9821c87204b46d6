# store.py: power-safe flash logs: an append-only ring of fixed-size records in segment files
# (SegmentLog) and the energy-counter checkpoint store (CheckpointStore). flashrows.py builds
# the profile row source on SegmentLog. Design notes: shared/design/embedded.md C and D.
#
# Record (big-endian, LSB-first CRC as in HDLC):
#   0   seq      u32: bits 0..29 = sequence number (< 2**30, so a small int on 32-bit ports),
#                bit 31 = clear marker (a record that only says "nothing older is served"),
#                bit 30 = 0 (so erased flash, 0xFF.., is never a valid record)
#   4   payload  payload_size bytes, opaque (values stay bytes: no heap ints)
#   4+n crc      CRC-16/X.25 (fcs16.py) over seq + payload, low byte first
# The slot of seq s is fixed: slot = s % total_slots; slot k * per_segment + j is record j of
# segment file `<dirpath>/<name>.<k>`. n_segments = ceil(capacity / per_segment) + 1: the spare
# segment is the one being overwritten, so `capacity` records stay readable while the oldest
# segment is rewritten in place (a rotation drops nothing a reader may still be served).
#
# Files: every segment is opened once in the constructor ("r+b", or "w+b" when missing) and
# kept open; steady state is seek + readinto / write of one preallocated memoryview + flush, no
# open() and no allocation. RAM: one file object per segment, and on LittleFS each holds a cache
# of 4 * max(readsize, progsize): 1 KiB with rp2's progsize 256, 128 B with esp32's defaults.
# So a log has at most max_files (8) segments, each the fewest whole seg_bytes units (4096 = one
# LittleFS block) that do it: logs up to 7 * (4096 // record size) records keep one-block
# segments (billing: 2 files, checkpoints: 2); the default load profile (3360 rows of 29 B)
# takes 7 files of 4 blocks instead of 25 of one, 8760 rows 8 files of 9 blocks instead of 64
# (rp2: 9.5 KB of RAM instead of 31.6 KB, 9.9 KB instead of 78 KB; tools/bench_budget.py).
# The price is paid in flash: LittleFS rewrites a file copy-on-write from the changed block to
# its end (embedded.md C), so overwriting a record in block b of a B-block segment erases B - b
# blocks: 1 per flushed record for one-block segments, (B + 1) / 2 on average over a turn for
# more (measured on LittleFS in RAM: 1.06 at B = 1, 2.6 at B = 4, 6.1 at B = 9). Wear stays far
# from the limit (LittleFS levels it over the whole file system: 96 rows a day at B = 4 are
# ~250 erases a day over ~350 blocks on a Pico, under a cycle per block a day), but rp2 stops
# its interrupts for each erase (embedded.md B: 33 ms of UART FIFO at 9600 baud), so an append
# keeps the port deaf for up to B erases instead of one. The engine writes only while no frame
# is arriving (metering.py); a request sent in that moment is lost and the client repeats it.
#
# Power safety without an index file: the boot scan reads every slot; a record is valid when
# its seq lies in its slot, bit 30 is clear and its CRC matches. The newest valid seq M wins;
# what is served is the contiguous run of valid records ending at M, at most `capacity` long,
# cut after the newest clear marker. A torn record (power cut in the write; on LittleFS the
# file falls back to its last flush instead) or a corrupt one is invalid, so it ends the run:
# a corrupt record in the middle hides every older record from then on (they are dropped, not
# served; base() moves past them). Every read checks the CRC and the exact seq again.
# Invariant the scan relies on: appends are attempted in seq order and a failed write does not
# advance the seq (it is retried in the same slot), so every valid record has its seq within
# (M - total_slots, M] and a valid slot in the walk back from M holds exactly the expected seq.
#
# clear() writes a marker record: it takes a seq, so base() then counts dropped records plus
# markers (readers only use differences of base(), profile_generic.py).
#
# Writes that fail (OSError: full or failing file system) return ERR_IO and are not counted;
# the meter keeps running and may retry. A segment that cannot be opened at boot reads as
# empty and fails its writes. Lifetime: 2**30 records, e.g. 30,000 years of 96 a day, 2,000
# years of one a minute; after that append() returns ERR_SEQ.
# Changing payload_size, capacity, seg_bytes or max_files changes the slot map: use a new name
# then (records in the old files then fail the slot check: they are not served).
# Only open/seek/readinto/write/flush/close and os.mkdir are used, which CPython, VfsPosix
# (unix, and wasm's in-memory Emscripten FS) and LittleFS all have.
import os

from micropython import const

from fcs16 import fcs16

OK = const(0)
ERR_IO = const(1)  # OSError from the file system (full, failing): not counted (see _commit)
ERR_SEQ = const(2)  # sequence numbers used up (2**30 records)

SEG_BYTES = const(4096)  # LittleFS block size on rp2 and esp32 (embedded.md C): the unit
MAX_FILES = const(8)  # segment files per log at most (each open file costs its cache in RAM)
_SEQ_LIMIT = const(0x40000000)  # seq < 2**30: a small int on RP2040, ESP32, wasm
_COUNT_MASK = const(0x3FFFFFFF)
_HDR = const(4)  # seq
_CRC = const(2)
_MARK = const(0x80)  # bit 31 of seq (in byte 0): clear marker
_BAD = const(0x40)  # bit 30 of seq: never set in a valid record


class _Files:
    # The default "file system": the port's own VFS (VfsPosix, LittleFS, CPython files). A test
    # may pass another object with the same two methods (a RAM-backed fake, a failing one).
    def open(self, path, mode):
        return open(path, mode)

    def mkdir(self, path):
        try:
            os.mkdir(path)
        except OSError:  # exists
            pass


FILES = _Files()


class SegmentLog:
    def __init__(self, dirpath, name, payload_size, capacity, fs=FILES, seg_bytes=SEG_BYTES,
                 max_files=MAX_FILES):
        self.rec = _HDR + payload_size + _CRC
        self.per_seg = _per_segment(self.rec, capacity, seg_bytes, max_files)
        self.n_seg = (capacity + self.per_seg - 1) // self.per_seg + 1
        self.total = self.n_seg * self.per_seg
        self.payload_size = payload_size
        self._cap = capacity
        self._buf = bytearray(self.rec)
        self._mv = memoryview(self._buf)
        self._pay = self._mv[_HDR : _HDR + payload_size]  # made once: a slice read allocates
        self._files = []
        self.reads = 0  # record reads (boot scan included), modulo 2**30; tests count them
        self._mark = 0  # set by _load: 1 when the record loaded is a clear marker
        self._next = 0  # seq the next append gets
        self._floor = 0  # lowest seq that may be served (after boot gaps and clear markers)
        fs.mkdir(dirpath)
        for k in range(self.n_seg):
            self._files.append(_open(fs, dirpath + "/" + name + "." + str(k)))
        self._boot()

    # **** BOOT: find the newest valid record and the run ending at it ****

    def _boot(self):
        total = self.total
        valid = bytearray((total + 7) >> 3)  # one bit per slot; boot only
        newest = -1
        mark = -1
        for slot in range(total):
            s = self._load(slot)
            if s < 0:
                continue
            valid[slot >> 3] |= 1 << (slot & 7)
            if s > newest:
                newest = s
            if self._mark and s > mark:
                mark = s
        k = 0  # length of the run ending at newest
        while k < self._cap and newest - k > mark:
            slot = (newest - k) % total
            if not (valid[slot >> 3] >> (slot & 7)) & 1:
                break
            k += 1
        self._next = newest + 1
        self._floor = newest + 1 - k

    def _load(self, slot):
        # Read slot into _buf; its seq if the record is valid there, else -1.
        self.reads = (self.reads + 1) & _COUNT_MASK
        seg = slot // self.per_seg
        f = self._files[seg]
        b = self._buf
        n = self.rec
        try:
            f.seek((slot - seg * self.per_seg) * n)
            got = f.readinto(self._mv)
        except OSError:
            return -1
        if got != n or b[0] & _BAD:
            return -1
        crc = fcs16(b, 0, n - _CRC)
        if b[n - 2] != crc & 0xFF or b[n - 1] != crc >> 8:
            return -1
        s = ((b[0] & 0x3F) << 24) | (b[1] << 16) | (b[2] << 8) | b[3]
        if s % self.total != slot:
            return -1
        self._mark = b[0] >> 7
        return s

    # **** STEADY STATE: nothing below allocates ****

    def capacity(self):
        return self._cap

    def count(self):
        return self._next - self.base()

    def base(self):
        # seq of the oldest served record (= next seq when empty)
        b = self._next - self._cap
        return self._floor if self._floor > b else b

    def newest_seq(self):
        # seq of the newest served record; base() - 1 when empty
        return self._next - 1 if self.count() else self.base() - 1

    def read(self, i, dst):
        # Copy the payload of record i (0 = oldest) into dst[0:payload_size] (dst holds at least
        # that much); False when i is out of range or the record fails its CRC or seq check
        # now (dst is then untouched).
        if i < 0 or i >= self.count():
            return False
        s = self.base() + i
        if self._load(s % self.total) != s or self._mark:
            return False
        dst[0 : self.payload_size] = self._pay
        return True

    def append(self, src):
        # Store src[0:payload_size] as the newest record; the oldest drops out when full.
        n = self.payload_size
        if len(src) == n:
            self._pay[0:n] = src
        else:
            p = self._buf
            for k in range(n):
                p[_HDR + k] = src[k]
        return self._commit(0)

    def clear(self):
        # Drop everything: a clear marker record takes the next seq, so the boot scan serves
        # nothing at or before it. It is one record write: torn, the clear did not happen.
        b = self._buf
        for k in range(self.payload_size):
            b[_HDR + k] = 0
        return self._commit(_MARK)

    def _commit(self, flags):
        s = self._next
        if s >= _SEQ_LIMIT:
            return ERR_SEQ
        b = self._buf
        n = self.rec
        b[0] = flags | (s >> 24)
        b[1] = (s >> 16) & 0xFF
        b[2] = (s >> 8) & 0xFF
        b[3] = s & 0xFF
        crc = fcs16(b, 0, n - _CRC)
        b[n - 2] = crc & 0xFF
        b[n - 1] = crc >> 8
        slot = s % self.total
        seg = slot // self.per_seg
        f = self._files[seg]
        try:
            f.seek((slot - seg * self.per_seg) * n)
            w = f.write(self._mv)
            f.flush()
        except OSError:  # the seq stays: the next append retries this slot
            return ERR_IO  # (the record may or may not be there after a reboot)
        if w != n:
            return ERR_IO
        self._next = s + 1
        if flags:
            self._floor = s + 1
        return OK

    def close(self):
        for f in self._files:
            f.close()
        self._files = []


def _per_segment(rec, capacity, unit, max_files):
    # Records per segment: those of the fewest whole `unit`s holding capacity / (max_files - 1)
    # records (rounded up), so that ceil(capacity / per_segment) + 1 <= max_files.
    assert capacity > 0 and unit >= rec and max_files > 1
    need = (capacity + max_files - 2) // (max_files - 1)
    units = (need * rec + unit - 1) // unit
    return units * unit // rec


def _open(fs, path):
    # Setup only: keep an existing segment, create a missing one (empty: slots past its end
    # read short, which is invalid). One that cannot be created either (file system full or
    # failing at boot) becomes _DEAD: its slots read invalid and writes return ERR_IO, so the
    # meter runs on; the log stops growing when it reaches that segment.
    try:
        return fs.open(path, "r+b")
    except OSError:
        pass
    try:
        return fs.open(path, "w+b")
    except OSError:
        return _DEAD


class _DeadFile:
    def seek(self, off):
        raise OSError(5)  # EIO

    def close(self):
        pass


_DEAD = _DeadFile()


class CheckpointStore(SegmentLog):
    # The energy counters' checkpoint: save() writes a new record, latest() gives the newest
    # one that still checks out (a power cut during save() leaves the one before). A small
    # capacity is enough: 2 keeps a fallback if the newest goes bad later.
    def __init__(self, dirpath, name, payload_size, capacity=2, fs=FILES, seg_bytes=SEG_BYTES):
        super().__init__(dirpath, name, payload_size, capacity, fs, seg_bytes)

    def save(self, src):
        return self.append(src)

    def latest(self, dst):
        i = self.count() - 1
        while i >= 0:
            if self.read(i, dst):
                return True
            i -= 1
        return False
