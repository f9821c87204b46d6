# boards/manifest.py: a custom MicroPython image with the meter frozen in (firmware/*.py and
# the board module as frozen bytecode: it runs from flash and leaves the heap to the meter;
# embedded.md E). main.py stays a file on the board (a frozen main.py would run instead of
# any file, so the meter could not be kept from starting).
#
#   git clone https://github.com/micropython/micropython && cd micropython
#   make -C mpy-cross && make -C ports/rp2 submodules
#   METER_BOARD=rp2040_pico make -C ports/rp2 BOARD=RPI_PICO \
#       FROZEN_MANIFEST=/path/to/repo/boards/manifest.py
#   METER_BOARD=esp32_devkit make -C ports/esp32 BOARD=ESP32_GENERIC \
#       FROZEN_MANIFEST=/path/to/repo/boards/manifest.py      (ESP-IDF environment set up)
# then flash the image (rp2: copy firmware.uf2 to the RPI-RP2 drive; esp32: `idf.py flash` or
# esptool) and copy boards/<board>/main.py and a config.json to the board (boards/README.md).
# Another manifest can include this one with the board as an option:
#   include("/path/to/repo/boards/manifest.py", board="esp32_devkit")
# Paths here are relative to this file (tools/manifestfile.py runs it from its directory).
import os

metadata(description="DLMS/COSEM electricity meter", version="0.1.0")

include("$(PORT_DIR)/boards/manifest.py")  # the port's own frozen modules (_boot.py, ...)

options.defaults(board=os.environ.get("METER_BOARD"))
if options.board not in ("rp2040_pico", "esp32_devkit"):
    raise ValueError("set METER_BOARD=rp2040_pico or esp32_devkit (got %r)" % options.board)

for _name in sorted(os.listdir("../firmware")):
    if _name.endswith(".py"):
        module(_name, base_path="../firmware")
module("board.py", base_path=options.board)
