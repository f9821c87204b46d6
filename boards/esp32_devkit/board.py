# board.py: the meter on an ESP32 DevKitC (ESP32-WROOM-32): pins, sizes and the machine
# objects firmware/mainloop.py asks for. The interface is boards/rp2040_pico/board.py's;
# wiring tables, biasing and flashing: boards/README.md. Runs on the board only.
import time

from machine import RTC, SPI, UART, WDT, Pin
from micropython import const

from rs485 import FLUSH_TIMED

NAME = "esp32_devkit"
ROOT = ""  # the LittleFS root ("vfs" partition): config.json, log.txt, resets, no-wdt, data/
CONFIG = "config.json"

# **** RS-485: MAX3485 / SP3485 on UART2 (UART0 is the USB REPL) ****
# GPIO 32/33/25: clear of the SPI bus, the CircuitSetup 6-channel CS pins (5, 4), the
# add-on boards' default CS pins (0, 16), the strapping pins and the flash pins.
_UART_ID = const(2)
_TX = const(32)  # -> DI
_RX = const(33)  # <- RO (the IDF pulls the RX pin up (?): RO floats while /RE is high)
_DE = const(25)  # -> DE and /RE tied together: high = transmit
_UART_BUF = const(512)  # IDF ring buffers (more than the 128-byte FIFO, B)
ECHO = False  # /RE tied to DE; True when /RE is tied to GND (the receiver hears us)
FLUSH = FLUSH_TIMED  # no RS-485 mode in mainline; DE waits for the computed frame time too
TURNAROUND_US = -1  # DE drops one bit time after the last stop bit
GUARD_US = 2000  # quiet time after a request before DE rises: 2 characters at 9600 baud
RX_SIZE = const(256)  # one rs485 read

# **** ATM90E32AS on VSPI (SPI 2, mode 3): CircuitSetup's ESP32 pins ****
_SPI_ID = const(2)
_SCK = const(18)  # -> SCLK (CLK)
_MOSI = const(23)  # -> SDI (MOSI)
_MISO = const(19)  # <- SDO (MISO)
_CS = const(5)  # -> /CS (CS1 of the 6-channel main board: CT1-CT3 and voltage 1)
_SPI_HZ = const(200000)  # CircuitSetup's rate; ESPHome runs 1 MHz (embedded.md A.2)

WDT_MS = const(8000)

ticks_ms = time.ticks_ms
ticks_us = time.ticks_us
sleep_ms = time.sleep_ms
sleep_us = time.sleep_us


def uart(baud):
    return UART(_UART_ID, baudrate=baud, bits=8, parity=None, stop=1, tx=_TX, rx=_RX,
                txbuf=_UART_BUF, rxbuf=_UART_BUF, timeout=0, timeout_char=0)


def de():
    return Pin(_DE, Pin.OUT, value=0)


def spi():
    return SPI(_SPI_ID, baudrate=_SPI_HZ, polarity=1, phase=1, bits=8, firstbit=SPI.MSB,
               sck=Pin(_SCK), mosi=Pin(_MOSI), miso=Pin(_MISO))


def cs():
    return Pin(_CS, Pin.OUT, value=1)


def led():
    return None  # the DevKitC has only a power LED


def wdt(ms):
    return WDT(timeout=ms)


def rtc():
    # Starts at 2000-01-01 at power-up (ignored by mainloop) and keeps counting through a
    # watchdog or soft reset, so the clock survives those.
    return RTC()


# **** Wi-Fi: the TCP wrapper (IEC 62056-47), config section "wrapper" ****
# Imported here, not at the top: only a meter with the wrapper enabled pays for them (and the
# unix port, which runs this module in host_tests/test_boards_build.py, has no `network`).


def wlan():
    # The station interface; mainloop (firmware/wrapper_tcp.py) activates and connects it.
    import network

    return network.WLAN(network.STA_IF)


def sockets():
    import select
    import socket

    return socket, select
