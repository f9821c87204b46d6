# logfile.py: the board's bounded text log (boot messages and faults): print each line and
# keep the newest LOG_CAP bytes of them in a file. The running meter needs only this of the
# boot-time configuration code, so mainloop.py can drop config.py (15 KB of code when it is
# loaded from .mpy) once the config is read; config.report is this function.
#
#   report(messages, log_path=None, out=print, cap=LOG_CAP)
#
# Fault and boot path only: it allocates (reads the log's tail, writes it back). Never raises
# OSError: a log that cannot be written is reported through out() and the meter goes on.
from micropython import const

LOG_CAP = const(4096)  # bytes of messages kept in the log file (the newest lines)


def report(messages, log_path=None, out=print, cap=LOG_CAP):
    # Prints each message; appends them to log_path, keeping only the newest `cap` bytes (whole
    # lines). Once per boot: the rewrite costs one small file write. Never raises OSError.
    for m in messages:
        out(m)
    if log_path is None or not messages:
        return
    data = "".join(m + "\n" for m in messages).encode()
    try:
        with open(log_path, "rb") as f:
            f.seek(0, 2)  # read the tail only: RAM stays bounded whatever the file holds
            f.seek(max(0, f.tell() - cap))
            data = f.read() + data
    except OSError:
        pass  # no log yet
    if len(data) > cap:
        nl = data.find(b"\n", len(data) - cap - 1)  # the cut ends a line
        data = data[nl + 1 :]
    try:
        with open(log_path, "wb") as f:
            f.write(data)
    except OSError as e:
        out("config: cannot write %s (%s)" % (log_path, why(e)))


def why(e):
    return str(e) or type(e).__name__  # MicroPython's UnicodeError has no text
