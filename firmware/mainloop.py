# mainloop.py: the meter on a board: boot (config, object table, metering, RS-485 link,
# watchdog, clock from the RTC) and one cooperative, non-blocking main loop. Board-independent:
# everything that touches `machine` comes from the board module (boards/<board>/board.py), so
# host tests run this with fakes. shared/design/embedded.md B (RS-485), C (flash), D, E (WDT).
#
#   m = mainloop.boot(board, "config.json")     # boards/<board>/main.py
#   m.run()                                     # never returns (KeyboardInterrupt: REPL)
#
# The board module (duck-typed; boards/rp2040_pico/board.py documents it):
#   NAME, CONFIG, ROOT ("" = the filesystem root), WDT_MS, RX_SIZE, FLUSH, ECHO,
#   TURNAROUND_US, GUARD_US; uart(baud), de(), spi(), cs(), led(), wdt(ms), rtc() (each
#   may return None where it makes sense: de, led, rtc); ticks_ms, ticks_us, sleep_ms,
#   sleep_us (the time module's). Networking, optional (a board without it lacks wlan() or
#   returns None): wlan() the Wi-Fi station interface (network.WLAN(network.STA_IF)), and
#   sockets() the (socket, select) modules, asked for only when wlan() gave one.
#
# Files under ROOT: the config, LOG (boot messages and faults, bounded: logfile.report),
# NO_WDT (exists: no watchdog; for development with mpremote), RESETS (boots in a row that
# did not serve _HEALTHY_MS without a fault), DATA/ (profile rows and energy checkpoints).
#
# One loop iteration (step): read what the UART holds and feed the HDLC link, sending each
# answer as soon as the link has one (two-way alternate); every _POLL_MS the link and server
# timers, the clock and the metering engine (which polls the front-end once a second and
# writes flash only while no frame is arriving: the bus is idle when the link is between
# frames); then the watchdog is fed; when nothing arrived, sleep _IDLE_MS. After boot() the
# loop allocates nothing (host_tests/portable/test_mainloop.py) except on the rare paths that
# say so: a fault, the RTC update after a clock SET, clearing RESETS.
#
# The TCP wrapper (IEC 62056-47, config section wrapper; firmware/wrapper_tcp.py): when it is
# enabled and the board has networking, boot joins the Wi-Fi network (waiting at most
# _WIFI_BOOT_MS; without it the meter starts anyway and the station retries in the
# background) and the loop serves one TCP connection beside the RS-485 port: every iteration
# reads and answers it, every _POLL_MS checks the station, accepts and runs the wrapper's
# timers. It has its own association (model.Meter.port_server()), so an RS-485 client and a
# TCP client are served side by side. The engine writes flash only while neither link is in
# the middle of a request. Faults in the network path are logged like the others but never
# starve the watchdog: the connection is dropped, and _BURST of them within _BURST_MS stop the
# wrapper for _BURST_MS, twice that the next time and so on up to an hour (then it starts
# again); the RS-485 meter serves on. Wi-Fi coming and going is logged (the first
# _NET_LOG_MAX times per boot; later ones are only printed).
#
# Faults: an exception in an iteration is logged (at most _LOG_PER_BURST per burst, so a fault
# that repeats every iteration does not wear the flash) and the loop goes on serving. _BURST
# faults within _BURST_MS stop feeding the watchdog, which then resets the board. No boot
# loop: every boot counts itself in RESETS, and _HEALTHY_MS of fault-free serving clears it;
# a boot that finds more than _MAX_RESETS there starts without the watchdog and only starts it
# once it has served _HEALTHY_MS without a fault (until then faults are only logged).
#
# Clock: a board RTC that reads a plausible date (year >= _RTC_MIN_YEAR: the rp2 RTC restarts
# at 2021-01-01 on every boot, the esp32 one at 2000-01-01 after power-up but keeps counting
# through a watchdog or soft reset) sets the meter clock at boot; the RTC holds UTC. A client's
# clock SET is written back to the RTC. Without a plausible RTC date the clock stays invalid
# until a client sets it: energy counts, nothing is captured (metering.py).
import gc
import os
import sys

import micropython
from micropython import const

import logfile
import model
from atm90e32 import ATM90E32
from clock import date_to_days, days_to_date, weekday
from energy import Energy
from flashrows import FlashRows
from hdlc import HdlcLink, ticks_diff
from metering import Engine, checkpoint_size
from rows import Row
from rs485 import RS485
from store import CheckpointStore

LOG = "log.txt"
NO_WDT = "no-wdt"
RESETS = "resets"
DATA = "data"
_CK = "ck"  # energy checkpoints in DATA

_POLL_MS = const(50)  # link/server timers, clock, metering engine (it polls at 1 Hz itself)
_IDLE_MS = const(1)  # sleep when nothing arrived (the UART buffer holds 0.5 s at 9600 baud)
_BEAT_MS = const(500)  # status LED toggles: the loop runs
_BURST = const(5)  # faults within _BURST_MS that let the watchdog reset the board
_BURST_MS = const(60000)
_LOG_PER_BURST = const(3)  # faults logged per burst window; the rest are counted
_MAX_RESETS = const(3)  # unhealthy boots in a row before a boot starts without the watchdog
_HEALTHY_MS = const(600000)  # fault-free serving that clears RESETS
_RTC_MIN_YEAR = const(2024)  # an RTC date before this was never set
_WIFI_BOOT_MS = const(5000)  # boot waits this long for Wi-Fi (less than a watchdog period)
_NET_PAUSE_MAX_MS = const(3840000)  # the longest stop of the wrapper after a burst of faults
_NET_LOG_MAX = const(20)  # Wi-Fi events written to the log per boot (a flapping AP wears flash)


def _path(root, name):
    return root + "/" + name if root else name


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _read_int(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or "0")
    except (OSError, ValueError):
        return 0


def _write_int(path, v):
    try:
        with open(path, "w") as f:
            f.write(str(v))
    except OSError:
        pass


def _mkdir(path):
    try:
        os.mkdir(path)
    except OSError:  # exists
        pass


def _trace(e):
    # The exception with its traceback, as text (fault path: allocates).
    import io

    s = io.StringIO()
    if hasattr(sys, "print_exception"):
        sys.print_exception(e, s)
    else:
        import traceback

        traceback.print_exception(type(e), e, e.__traceback__, file=s)
    return s.getvalue().rstrip("\n")


def boot(board, cfg_path):
    # First the buffer for exceptions raised without heap (rp2/esp32 have none by default,
    # embedded.md D; the unix and wasm ports have a static one and no such function).
    if hasattr(micropython, "alloc_emergency_exception_buf"):
        micropython.alloc_emergency_exception_buf(100)
    root = board.ROOT
    cfg = _config(cfg_path, _path(root, LOG))
    try:
        return Main(board, cfg, root)  # its gc.collect() frees config.py's code and tables
    except Exception as e:  # no watchdog yet: the board stops at the REPL, no boot loop
        logfile.report(["boot failed: " + _trace(e)], _path(root, LOG))
        raise


def _config(cfg_path, log_path):
    # The checked config, its messages logged. config.py is needed only here: imported here
    # and dropped from sys.modules again (unless something imported it before), so nothing
    # refers to it after boot and the collector frees its code (15.6 KB of a 32-bit heap when
    # the firmware is loaded from .mpy; frozen, its tables and function objects).
    loaded = "config" in sys.modules
    import config

    cfg, messages = config.load(cfg_path)
    if not loaded:
        del sys.modules["config"]
    logfile.report(messages, log_path)
    return cfg


class Main:
    def __init__(self, board, cfg, root="", out=print):
        # out: where log lines are printed as well (the REPL; tests capture them).
        self.board = board
        self.root = root
        self.out = out
        self._ticks_ms = board.ticks_ms
        self._sleep_ms = board.sleep_ms
        self._locked = False
        notes = []
        self.resets = _read_int(_path(root, RESETS)) + 1
        _write_int(_path(root, RESETS), self.resets)
        self._build(board, cfg)
        self._build_net(board, cfg, notes)
        self._clock_from_rtc(board.rtc(), notes)
        eng = self.engine
        eng.boot(Row(self._row_size()))
        eng.capture()  # start-up rows (power down/up) now, not at the first poll
        eng.flush()
        now = self._ticks_ms()
        self.clock.tick(now)
        self.led = board.led()
        self._led_on = False
        self._poll_t = now
        self._beat_t = now
        self.heap_lock = cfg["flags"]["heap_lock"]
        self.faults = 0  # since boot, modulo 2**30
        self.suppressed = 0  # faults not logged (more than _LOG_PER_BURST in a window)
        self._win_t = now
        self._win_n = 0
        self.net_faults = 0  # faults in the network path, modulo 2**30
        self._nwin_t = now
        self._nwin_n = 0
        self._net_off_t = now  # when the wrapper was stopped by a burst of its faults
        self._net_pause = _BURST_MS  # for how long: doubles each time, up to _NET_PAUSE_MAX_MS
        self._last_fault = now
        self.starving = False  # the watchdog is no longer fed: it resets the board
        self.no_wdt = _exists(_path(root, NO_WDT))
        self.wdt = None
        if self.no_wdt:
            notes.append("watchdog off: %s exists" % _path(root, NO_WDT))
        elif self.resets > _MAX_RESETS:
            notes.append("watchdog deferred: boot %d in a row without %d s of fault-free "
                         "serving" % (self.resets, _HEALTHY_MS // 1000))
        else:
            self.wdt = board.wdt(board.WDT_MS)
        notes.append("meter %s: unit %d, %d baud, %s, clock %s" % (
            board.NAME, cfg["hdlc"]["unit_id"], cfg["hdlc"]["baud"],
            "watchdog %d ms" % board.WDT_MS if self.wdt is not None else "no watchdog",
            "from RTC" if self.rtc_ok else "not set"))
        self.log(notes)
        gc.collect()

    def _build(self, board, cfg):
        # The object table on flash rows, the front-end, energy, engine, link and port.
        self.dir = _path(self.root, DATA)
        _mkdir(self.dir)
        self.meter = model.Meter(cfg, rows_factory=self._rows)
        self.clock = self.meter.clock
        self.server = self.meter.server
        fe = ATM90E32(board.spi(), board.cs(), cfg["frontend"], sleep_ms=board.sleep_ms)
        self.frontend = fe
        dem = self.meter.cfg["demand"]
        self.energy = Energy(fe.lsb_num, fe.lsb_den, dem["sub_s"], dem["subs"])
        self.energy.bind(self.meter.registers)
        self.ck = CheckpointStore(self.dir, _CK, checkpoint_size(self.meter, self.energy))
        self.engine = Engine(self.meter, fe, self.energy, self.ck)
        self.meter.cfg = None  # read by the builders above only; kept, ~1.9 KB of a 32-bit heap
        h = cfg["hdlc"]
        self.link = HdlcLink(self.server, unit_id=h["unit_id"], max_info_tx=h["max_info_tx"],
                             max_info_rx=h["max_info_rx"], window_tx=h["window_tx"],
                             window_rx=h["window_rx"], pdu_size=self.meter.pdu_size,
                             rx_timeout_ms=h["rx_timeout_ms"],
                             inactivity_ms=h["inactivity_s"] * 1000)
        self.port = RS485(board.uart(h["baud"]), board.de(), baud=h["baud"],
                          rx_size=board.RX_SIZE, flush=board.FLUSH,
                          turnaround_us=board.TURNAROUND_US, guard_us=board.GUARD_US,
                          echo=board.ECHO, ticks_us=board.ticks_us, sleep_us=board.sleep_us)

    def _build_net(self, board, cfg, notes):
        # The TCP wrapper when configured and the board has networking (boot: allocates).
        self.net = None
        self._net_logged = 0
        w = cfg["wrapper"]
        if not w["enabled"]:
            return
        wlan = board.wlan() if hasattr(board, "wlan") else None
        if wlan is None:
            notes.append("wrapper: board %s has no networking: TCP wrapper off" % board.NAME)
            return
        from wrapper_tcp import WrapperPort  # loaded only here: RAM for boards without it

        socket, select = board.sockets()
        self.net = WrapperPort(wlan, socket, select, self.meter.port_server(), w,
                               self.meter.pdu_size, board.ticks_ms, board.sleep_ms,
                               self._unlock)
        notes.append(self.net.start(_WIFI_BOOT_MS))

    def _rows(self, name, capacity, widths):
        return FlashRows(self.dir, name, capacity, widths)

    def _row_size(self):
        n = 8
        for pg in self.meter.profiles:
            if pg.rows.size > n:
                n = pg.rows.size
        return n

    # **** clock and RTC ****

    def _clock_from_rtc(self, rtc, notes):
        self.rtc = rtc
        self.rtc_ok = False
        self._rtc_due = False
        if rtc is None:
            return
        t = rtc.datetime()  # (year, month, day, weekday, hours, minutes, seconds, subseconds)
        if _RTC_MIN_YEAR <= t[0] <= 2099:
            self.clock.set_utc(date_to_days(t[0], t[1], t[2]), t[4] * 3600 + t[5] * 60 + t[6])
            self.rtc_ok = True
        else:
            notes.append("clock not set: RTC reads %d-%02d-%02d" % (t[0], t[1], t[2]))
        self._meter_hook = self.clock.on_time_set
        self.clock.on_time_set = self._time_set

    def _time_set(self, old_days, old_secs, new_days, new_secs):
        # A client's SET: the meter's own hook, then the RTC (written from the loop: the
        # datetime tuple allocates, and this runs inside the request).
        if self._meter_hook is not None:
            self._meter_hook(old_days, old_secs, new_days, new_secs)
        self._rtc_due = True

    def _clock_to_rtc(self):
        self._rtc_due = False
        self._unlock()
        c = self.clock
        ymd = [0, 0, 0]
        days_to_date(c.days, ymd)
        s = c.secs
        self.rtc.datetime((ymd[0], ymd[1], ymd[2], weekday(c.days) - 1, s // 3600,
                           s // 60 % 60, s % 60, 0))  # weekday 0 = Monday (rp2)

    # **** the loop ****

    def run(self, steps=-1):
        # Forever (steps < 0), or that many iterations (tests).
        try:
            while steps:
                if self.heap_lock:
                    self._lock()
                self.step()
                if steps > 0:
                    steps -= 1
        finally:
            self._unlock()

    def step(self):
        now = self._ticks_ms()
        got = 0
        due = ticks_diff(now, self._poll_t) >= _POLL_MS
        try:
            got = self._serve(now)
            if due:
                self._poll_t = now
                self._poll(now)
        except Exception as e:  # anything: log it, keep serving
            self._fault(e, now)
        if self.net is not None:
            got += self._serve_net(now, due)
        self._watch(now)
        if not got:
            self._sleep_ms(_IDLE_MS)

    def _serve(self, now):
        # Bytes from the line to the link; each answer goes out before the link takes more.
        port = self.port
        n = port.read()
        if not n:
            return 0
        link = self.link
        self.clock.tick(now)
        rx = port.rx
        off = port.rx_off
        end = off + n
        while True:
            off += link.receive(rx, off, end - off, now)
            if not link.tx_len:
                break
            port.send(link.tx, link.tx_len)
            link.tx_len = 0
            now = self._ticks_ms()
            self.clock.tick(now)
        return n

    def _serve_net(self, now, due):
        # The TCP wrapper's turn; its faults are its own (_net_fault).
        net = self.net
        try:
            if net.stopped:
                if due and ticks_diff(now, self._net_off_t) >= self._net_pause:
                    if self._net_pause < _NET_PAUSE_MAX_MS:
                        self._net_pause *= 2  # a fault that comes back logs ever less often
                    net.resume(now)
                    self.log(["wrapper: started again"])
                return 0
            if net.srv.conn is not None:
                self.clock.tick(now)  # a request may read the clock
            n = net.serve(now)
            if due:
                ev = net.poll(now)
                if ev:
                    self._unlock()  # the line is formatted first
                    self._net_log(net.note(ev))
            return n
        except Exception as e:
            self._net_fault(e, now)
            return 0

    def _poll(self, now):
        self.clock.tick(now)
        self.link.poll(now)
        self.server.poll(now)
        busy = self.link.rx_busy() or (self.net is not None and self.net.rx_busy())
        self.engine.poll(now, not busy)
        if self._rtc_due:
            self._clock_to_rtc()
        if self.led is not None and ticks_diff(now, self._beat_t) >= _BEAT_MS:
            self._beat_t = now
            self._led_on = not self._led_on
            self.led.value(1 if self._led_on else 0)

    def _watch(self, now):
        if self.wdt is not None and not self.starving:
            self.wdt.feed()
        if self.resets and ticks_diff(now, self._last_fault) >= _HEALTHY_MS:
            self._healthy()

    def _healthy(self):
        # Served _HEALTHY_MS without a fault: this boot is good (allocates: once per boot).
        self._unlock()
        self.resets = 0
        _write_int(_path(self.root, RESETS), 0)
        if self.wdt is None and not self.no_wdt:
            self.wdt = self.board.wdt(self.board.WDT_MS)
            self.log(["watchdog started after %d s of fault-free serving"
                      % (_HEALTHY_MS // 1000)])

    # **** faults ****

    def _fault(self, e, now):
        self._unlock()
        self.faults = (self.faults + 1) & 0x3FFFFFFF
        self._last_fault = now
        if self._win_n == 0 or ticks_diff(now, self._win_t) > _BURST_MS:
            self._win_t = now
            self._win_n = 0
        self._win_n += 1
        lines = []
        if self._win_n <= _LOG_PER_BURST:
            more = " (%d more not logged before it)" % self.suppressed if self.suppressed else ""
            self.suppressed = 0
            lines.append("fault %d at %d ms%s: %s" % (self.faults, now, more, _trace(e)))
        else:
            self.suppressed += 1
        if self._win_n >= _BURST and self.wdt is not None and not self.starving:
            self.starving = True
            lines.append("%d faults in %d s: watchdog reset" % (self._win_n, _BURST_MS // 1000))
        if lines:
            self.log(lines)

    def _net_fault(self, e, now):
        # As _fault, without the watchdog: the connection goes (its association with it), and
        # a burst stops the wrapper for _BURST_MS. The RS-485 meter is not touched.
        self._unlock()
        self.net_faults = (self.net_faults + 1) & 0x3FFFFFFF
        if self._nwin_n == 0 or ticks_diff(now, self._nwin_t) > _BURST_MS:
            self._nwin_t = now
            self._nwin_n = 0
        self._nwin_n += 1
        lines = []
        if self._nwin_n <= _LOG_PER_BURST:
            lines.append("wrapper fault %d at %d ms: %s" % (self.net_faults, now, _trace(e)))
        try:
            if self._nwin_n >= _BURST:
                self.net.stop()
                self._net_off_t = now
                self._nwin_n = 0
                lines.append("wrapper: %d faults in %d s: stopped for %d s" % (
                    _BURST, _BURST_MS // 1000, self._net_pause // 1000))
            else:
                self.net.drop()  # what it was in the middle of is lost
        except Exception as e2:  # the clean-up failed too: stop serving TCP for a while
            self.net.stopped = True
            self._nwin_n = 0
            self._net_off_t = now
            lines.append("wrapper: stopped, clean-up failed: %s" % _trace(e2))
        if lines:
            self.log(lines)

    def _net_log(self, line):
        # Wi-Fi events: logged _NET_LOG_MAX times per boot, then only printed.
        self._net_logged += 1
        if self._net_logged <= _NET_LOG_MAX:
            if self._net_logged == _NET_LOG_MAX:
                line += " (later Wi-Fi events are not logged)"
            self.log([line])
        else:
            self._unlock()
            self.out(line)

    def log(self, lines):
        # Printed and kept in the bounded log (logfile.report never raises OSError).
        self._unlock()
        logfile.report(lines, _path(self.root, LOG), self.out)

    def _lock(self):
        if not self._locked:
            micropython.heap_lock()
            self._locked = True

    def _unlock(self):
        if self._locked:
            micropython.heap_unlock()
            self._locked = False
