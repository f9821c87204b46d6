# read_meter_png.py: a bar chart of load-profile intervals as a PNG file, without plotting
# libraries (zlib and struct only), for `tools/read_meter.py plot`.
#
# PNG (ISO/IEC 15948): signature, IHDR (width, height, bit depth 8, colour type 3 = palette),
# PLTE, IDAT (zlib stream of rows, each led by filter type 0), IEND; every chunk is length,
# type, data, CRC-32 of type and data. One byte per pixel (a palette index) keeps it simple.
import datetime
import struct
import zlib

WHITE, BLACK, GRID, DAYLINE, IMPORT, EXPORT = range(6)
PALETTE = ((255, 255, 255), (0, 0, 0), (225, 225, 225), (150, 150, 150), (31, 119, 180),
           (255, 127, 14))


def png_bytes(width, height, pixels, palette=PALETTE):
    # pixels: bytearray of width * height palette indices, row by row from the top.
    raw = bytearray()
    for y in range(height):
        raw.append(0)  # filter type 0 (None)
        raw += pixels[y * width:(y + 1) * width]
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)
    plte = b"".join(bytes(c) for c in palette)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"PLTE", plte)
            + _chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + _chunk(b"IEND", b""))


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


# **** a 5x7 pixel font, drawn for this tool ****
# Banks of glyphs: the characters, then 7 rows with one 5-pixel cell per character. Capitals
# and ascenders use rows 0-6 with the baseline at row 6; g, p, q, y are drawn 2 rows lower so
# their tails hang below it.

_BANKS = (
    ("0123456789-:", (
        ".###. ..#.. .###. ##### ...#. ##### ..##. ##### .###. .###. ..... .....",
        "#...# .##.. #...# ...#. ..##. #.... .#... ....# #...# #...# ..... ..#..",
        "#..## ..#.. ....# ..#.. .#.#. ####. #.... ...#. #...# #...# ..... ..#..",
        "#.#.# ..#.. ...#. ...#. #..#. ....# ####. ..#.. .###. .#### .###. .....",
        "##..# ..#.. ..#.. ....# ##### ....# #...# .#... #...# ....# ..... ..#..",
        "#...# ..#.. .#... #...# ...#. #...# #...# .#... #...# ...#. ..... ..#..",
        ".###. .###. ##### .###. ...#. .###. .###. .#... .###. .##.. ..... .....")),
    (" ./+()*,=%", (
        "..... ..... ..... ..... ...#. .#... ..... ..... ..... ##..#",
        "..... ..... ....# ..#.. ..#.. ..#.. ..#.. ..... ..... ##..#",
        "..... ..... ...#. ..#.. .#... ...#. #.#.# ..... ##### ...#.",
        "..... ..... ..#.. ##### .#... ...#. .###. ..... ..... ..#..",
        "..... ..... .#... ..#.. .#... ...#. #.#.# .##.. ##### .#...",
        "..... .##.. #.... ..#.. ..#.. ..#.. ..#.. ..#.. ..... #..##",
        "..... .##.. ..... ..... ...#. .#... ..... .#... ..... #..##")),
    ("ABCDEFGHIJKLM", (
        ".###. ####. .###. ####. ##### ##### .###. #...# .###. ..### #...# #.... #...#",
        "#...# #...# #...# #...# #.... #.... #...# #...# ..#.. ...#. #..#. #.... ##.##",
        "#...# #...# #.... #...# #.... #.... #.... #...# ..#.. ...#. #.#.. #.... #.#.#",
        "##### ####. #.... #...# ####. ####. #.### ##### ..#.. ...#. ##... #.... #.#.#",
        "#...# #...# #.... #...# #.... #.... #...# #...# ..#.. ...#. #.#.. #.... #...#",
        "#...# #...# #...# #...# #.... #.... #...# #...# ..#.. #..#. #..#. #.... #...#",
        "#...# ####. .###. ####. ##### #.... .#### #...# .###. .##.. #...# ##### #...#")),
    ("NOPQRSTUVWXYZ", (
        "#...# .###. ####. .###. ####. .#### ##### #...# #...# #...# #...# #...# #####",
        "#...# #...# #...# #...# #...# #.... ..#.. #...# #...# #...# #...# #...# ....#",
        "##..# #...# #...# #...# #...# #.... ..#.. #...# #...# #...# .#.#. .#.#. ...#.",
        "#.#.# #...# ####. #...# ####. .###. ..#.. #...# #...# #.#.# ..#.. ..#.. ..#..",
        "#..## #...# #.... #.#.# #.#.. ....# ..#.. #...# #...# #.#.# .#.#. ..#.. .#...",
        "#...# #...# #.... #..#. #..#. ....# ..#.. #...# .#.#. #.#.# #...# ..#.. #....",
        "#...# .###. #.... .##.# #...# ####. ..#.. .###. ..#.. .#.#. #...# ..#.. #####")),
    ("abcdefghijklm", (
        "..... #.... ..... ....# ..... ..##. .#### #.... ..#.. ...#. #.... .##.. .....",
        "..... #.... ..... ....# ..... .#..# #...# #.... ..... ..... #.... ..#.. .....",
        ".###. #.##. .###. .##.# .###. .#... #...# #.##. .##.. ..##. #..#. ..#.. ##.#.",
        "....# ##..# #.... #..## #...# ###.. #...# ##..# ..#.. ...#. #.#.. ..#.. #.#.#",
        ".#### #...# #.... #...# ##### .#... .#### #...# ..#.. ...#. ##... ..#.. #.#.#",
        "#...# #...# #...# #...# #.... .#... ....# #...# ..#.. #..#. #.#.. ..#.. #...#",
        ".#### ####. .###. .#### .###. .#... .###. #...# .###. .##.. #..#. .###. #...#")),
    ("nopqrstuvwxyz", (
        "..... ..... ####. .#### ..... ..... .#... ..... ..... ..... ..... #...# .....",
        "..... ..... #...# #...# ..... ..... .#... ..... ..... ..... ..... #...# .....",
        "#.##. .###. #...# #...# #.##. .#### ###.. #...# #...# #...# #...# #...# #####",
        "##..# #...# #...# #...# ##..# #.... .#... #...# #...# #...# .#.#. #...# ...#.",
        "#...# #...# ####. .#### #.... .###. .#... #...# #...# #.#.# ..#.. .#### ..#..",
        "#...# #...# #.... ....# #.... ....# .#..# #..## .#.#. #.#.# .#.#. ....# .#...",
        "#...# .###. #.... ....# #.... ####. ..##. .##.# ..#.. .#.#. #...# .###. #####")),
)


def _font():
    glyphs = {}
    for chars, rows in _BANKS:
        cells = [r.split(" ") for r in rows]
        for i, ch in enumerate(chars):
            glyphs[ch] = [c[i] for c in cells]
    return glyphs


FONT = _font()
_BOX = ["#####", "#...#", "#...#", "#...#", "#...#", "#...#", "#####"]  # unknown character
CHAR_W = 6  # 5 pixels and a gap
CHAR_H = 7
_DESCENDERS = "gpqy"


class Canvas:
    def __init__(self, width, height, bg=WHITE):
        self.w = width
        self.h = height
        self.px = bytearray([bg]) * (width * height)

    def rect(self, x0, y0, x1, y1, c):
        # Fill [x0, x1) x [y0, y1), clipped.
        x0, x1 = max(0, min(x0, x1)), min(self.w, max(x0, x1))
        y0, y1 = max(0, min(y0, y1)), min(self.h, max(y0, y1))
        if x0 >= x1:
            return
        row = bytes([c]) * (x1 - x0)
        for y in range(y0, y1):
            self.px[y * self.w + x0:y * self.w + x1] = row

    def text(self, x, y, s, c=BLACK):
        # Top-left at (x, y); returns the x after the text.
        for ch in s:
            g = FONT.get(ch, _BOX)
            y0 = y + 2 if ch in _DESCENDERS else y
            for dy in range(CHAR_H):
                for dx in range(5):
                    if g[dy][dx] == "#" and 0 <= x + dx < self.w and 0 <= y0 + dy < self.h:
                        self.px[(y0 + dy) * self.w + x + dx] = c
            x += CHAR_W
        return x

    def png(self):
        return png_bytes(self.w, self.h, self.px)


def text_width(s):
    return len(s) * CHAR_W - 1


# **** the chart ****


def nice_step(span, ticks=5):
    # A 1, 2 or 5 times a power of ten step giving about `ticks` ticks over span (> 0).
    raw = span / ticks
    p = 10.0 ** _floor_log10(raw)
    for m in (1, 2, 5, 10):
        if m * p >= raw:
            return m * p
    return 10 * p


def _floor_log10(v):
    n = 0
    while v >= 10:
        v /= 10
        n += 1
    while v < 1:
        v *= 10
        n -= 1
    return n


def _label(v, step):
    decimals = max(0, -_floor_log10(step)) if step < 1 else 0
    return "%.*f" % (decimals, v)


def bar_chart(times, up, down, period, title, unit, legend, width=960, height=480):
    # times: aware datetimes, each the END of its interval (as profiles stamp rows); up/down:
    # floats per interval drawn above and below the zero line (import and export). Returns PNG
    # bytes. The x axis is wall-clock time in the rows' own offset.
    cv = Canvas(width, height)
    left, right, top, bottom = 64, 14, 34, 40
    x0, x1, y0, y1 = left, width - right, top, height - bottom
    hi = max([v for v in up if v is not None] + [0.0])
    lo = max([v for v in down if v is not None] + [0.0])
    if hi == 0 and lo == 0:
        hi = 1.0
    step = nice_step(hi + lo)
    ymax = step * _ceil_div(hi, step)
    ymin = -step * _ceil_div(lo, step)

    def ypix(v):
        return int(round(y1 - (v - ymin) * (y1 - y0) / (ymax - ymin)))

    t0 = times[0] - datetime.timedelta(seconds=period)
    span = (times[-1] - t0).total_seconds() or float(period)

    def xpix(t):
        return x0 + int(round((t - t0).total_seconds() * (x1 - x0) / span))

    # horizontal grid and y labels
    v = ymin
    while v <= ymax + step / 2:
        y = ypix(v)
        cv.rect(x0, y, x1, y + 1, GRID if abs(v) > step / 2 else BLACK)
        s = _label(v, step)
        cv.text(x0 - 6 - text_width(s), y - 3, s)
        v += step
    _time_axis(cv, t0, times[-1], xpix, x0, x1, y0, y1)
    # bars: each interval from its start to its end, at least one pixel wide
    zero = ypix(0.0)
    for t, a, b in zip(times, up, down):
        xa, xb = xpix(t - datetime.timedelta(seconds=period)), xpix(t)
        xb = max(xb, xa + 1)
        if a:
            cv.rect(xa, ypix(a), xb, zero, IMPORT)
        if b:
            cv.rect(xa, zero + 1, xb, ypix(-b) + 1, EXPORT)
    cv.rect(x0, y0, x0 + 1, y1 + 1, BLACK)  # y axis
    cv.text(x0, 6, title)
    cv.text(4, y0 - 14, unit)
    _legend(cv, legend, x1, 20)
    return cv.png()


def _ceil_div(v, step):
    n = int(v / step)
    return n + 1 if n * step < v - 1e-9 else max(n, 0)


def _time_axis(cv, t0, t1, xpix, x0, x1, y0, y1):
    # Vertical lines at whole hours: a darker one and the date at each midnight, lighter ones
    # with the hour at a step that leaves room for the labels.
    hours = max((t1 - t0).total_seconds() / 3600, 1)
    per_px = hours / max(x1 - x0, 1)
    hstep = next((h for h in (1, 2, 3, 6, 12, 24, 48, 168) if h / per_px >= 48), 336)
    t = t0.replace(minute=0, second=0, microsecond=0)
    if t < t0:
        t += datetime.timedelta(hours=1)
    while t <= t1:
        x = xpix(t)
        if t.hour == 0:
            cv.rect(x, y0, x + 1, y1 + 1, DAYLINE)
            s = t.strftime("%Y-%m-%d")
            if hstep <= 24 or t.day == 1 or (t - t0).days % max(1, hstep // 24) == 0:
                cv.text(min(max(0, x - text_width(s) // 2), cv.w - text_width(s)), y1 + 18, s)
        if t.hour % hstep == 0 and hstep < 24:
            if t.hour:
                cv.rect(x, y0, x + 1, y1, GRID)
            s = t.strftime("%H:%M")
            if x + text_width(s) // 2 < cv.w:
                cv.text(x - text_width(s) // 2, y1 + 6, s)
        t += datetime.timedelta(hours=1)


def _legend(cv, legend, right, y):
    # legend: (palette index, text) pairs, laid out right-aligned on one line.
    total = sum(12 + text_width(s) + 14 for _, s in legend)
    x = right - total
    for c, s in legend:
        cv.rect(x, y - 1, x + 9, y + 8, c)
        x = cv.text(x + 12, y, s) + 14
