# board.py: the meter on a Raspberry Pi Pico (RP2040): pins, sizes and the machine objects
# firmware/mainloop.py asks for. Wiring tables, biasing and flashing: boards/README.md.
# Runs on the board only (imports machine); host tests use a fake with the same names
# (host_tests/portable/test_mainloop.py FakeBoard).
#
# The interface (every board module has it):
#   NAME, ROOT, CONFIG                     board name, directory of the meter's files, config
#   ECHO, FLUSH, TURNAROUND_US, GUARD_US   RS-485 wiring and timing (firmware/rs485.py)
#   RX_SIZE, WDT_MS                        rs485 read buffer, watchdog timeout
#   uart(baud), de(), spi(), cs(), led(), wdt(ms), rtc()   the machine objects (de, led and
#                                          rtc may be None)
#   ticks_ms, ticks_us, sleep_ms, sleep_us the time module's
#   wlan(), sockets()                      networking, for the TCP wrapper: the Wi-Fi station
#                                          (network.WLAN(network.STA_IF)) or None, and the
#                                          (socket, select) modules (boards/esp32_devkit)
import time

from machine import RTC, SPI, UART, WDT, Pin
from micropython import const

from rs485 import FLUSH_UART

NAME = "rp2040_pico"
ROOT = ""  # the LittleFS root: config.json, log.txt, resets, no-wdt, data/
CONFIG = "config.json"

# **** RS-485: MAX3485 / SP3485 on UART0 ****
_UART_ID = const(0)
_TX = const(0)  # GP0, pin 1 -> DI
_RX = const(1)  # GP1, pin 2 <- RO (pulled up: RO floats while /RE is high)
_DE = const(2)  # GP2, pin 4 -> DE and /RE tied together: high = transmit
_UART_BUF = const(512)  # machine.UART rx/tx ring buffers: a 143-byte frame and margin (B)
ECHO = False  # /RE tied to DE; True when /RE is tied to GND (the receiver hears us)
FLUSH = FLUSH_UART  # uart.flush() returns after the last stop bit since v1.24 (#16052)
TURNAROUND_US = -1  # DE drops one bit time after the last stop bit
GUARD_US = 2000  # quiet time after a request before DE rises: 2 characters at 9600 baud
RX_SIZE = const(256)  # one rs485 read

# **** ATM90E32AS on SPI0 (mode 3) ****
_SPI_ID = const(0)
_SCK = const(18)  # GP18, pin 24 -> SCLK
_MOSI = const(19)  # GP19, pin 25 -> SDI
_MISO = const(16)  # GP16, pin 21 <- SDO
_CS = const(17)  # GP17, pin 22 -> /CS
_SPI_HZ = const(200000)  # CircuitSetup's rate; ESPHome runs 1 MHz (embedded.md A.2)

WDT_MS = const(8000)  # rp2 maximum 8388 ms

ticks_ms = time.ticks_ms
ticks_us = time.ticks_us
sleep_ms = time.sleep_ms
sleep_us = time.sleep_us


def uart(baud):
    Pin(_RX, Pin.IN, Pin.PULL_UP)  # the pad pull stays when the UART takes the pin (?)
    return UART(_UART_ID, baudrate=baud, bits=8, parity=None, stop=1, tx=Pin(_TX),
                rx=Pin(_RX), txbuf=_UART_BUF, rxbuf=_UART_BUF, timeout=0, timeout_char=0)


def de():
    return Pin(_DE, Pin.OUT, value=0)


def spi():
    return SPI(_SPI_ID, baudrate=_SPI_HZ, polarity=1, phase=1, bits=8, firstbit=SPI.MSB,
               sck=Pin(_SCK), mosi=Pin(_MOSI), miso=Pin(_MISO))


def cs():
    return Pin(_CS, Pin.OUT, value=1)


def led():
    return Pin("LED", Pin.OUT, value=0)  # GP25 on the Pico, the CYW43 LED on a Pico W


def wdt(ms):
    return WDT(timeout=ms)


def rtc():
    # Restarts at 2021-01-01 on every boot (no battery): mainloop ignores that date, and the
    # clock waits for a client's SET.
    return RTC()


def wlan():
    # No radio on the Pico: a config with the wrapper enabled boots without it (and says so).
    # A Pico W could return network.WLAN(network.STA_IF) and add esp32_devkit's sockets().
    return None
