# bench_hdlc.py: HDLC deframer + link throughput and RAM, on whatever Python runs it
# (MicroPython unix port or CPython with tools/stubs on the path). Prints figures only.
#   <python> tools/bench_hdlc.py FIRMWARE_DIR TESTS_DIR
import gc
import sys
import time

sys.path.insert(0, sys.argv[2])
sys.path.insert(0, sys.argv[1])

from hdlc import HdlcLink  # noqa: E402
from hdlc_util import C16, DISC, LLC_REQ, SNRM, SRV, EchoApp, frame, i_ctrl, rr  # noqa: E402


def now_us():
    if hasattr(time, "ticks_us"):
        return time.ticks_us()
    return int(time.perf_counter() * 1000000)


def elapsed_us(t0):
    if hasattr(time, "ticks_diff"):
        return time.ticks_diff(time.ticks_us(), t0)
    return now_us() - t0


def session():
    # SNRM, 10 request/answer I-frames of 40 bytes, an RR poll, DISC: 13 client frames.
    s = frame(SRV, C16, SNRM)
    for k in range(10):
        s += frame(SRV, C16, i_ctrl(k & 7, k & 7), LLC_REQ + bytes(range(40)))
    s += frame(SRV, C16, rr(10 & 7))
    s += frame(SRV, C16, DISC)
    return s, 13


def run(link, s, n_frames, reps):
    n = len(s)
    answers = 0
    for _ in range(reps):
        off = 0
        while True:
            off += link.receive(s, off, n - off, 0)
            if not link.tx_len:
                break
            answers += 1
            link.tx_len = 0
    return answers


def main():
    impl = sys.implementation.name
    gc.collect()
    if hasattr(gc, "mem_alloc"):
        before = gc.mem_alloc()
        link = HdlcLink(EchoApp())
        gc.collect()
        ram = gc.mem_alloc() - before
    else:
        link = HdlcLink(EchoApp())
        ram = -1
    s, per = session()
    run(link, s, per, 2)  # warm-up
    reps = 200
    t0 = now_us()
    answers = run(link, s, per, reps)
    us = elapsed_us(t0)
    frames = per * reps
    assert answers == frames, (answers, frames)
    print("hdlc.frames_per_s %s %d" % (impl, frames * 1000000 // us))
    print("hdlc.bytes_per_s %s %d" % (impl, len(s) * reps * 1000000 // us))
    print("hdlc.us_per_frame %s %d" % (impl, us // frames))
    print("hdlc.avg_frame_bytes %s %d" % (impl, len(s) // per))
    if ram >= 0:
        print("hdlc.link_heap_bytes %s %d" % (impl, ram))


main()
