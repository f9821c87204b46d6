# main.py: the meter's boot entry on the ESP32 DevKitC; runs at every power-up and reset.
# Ctrl-C (mpremote) stops it at the REPL; with the watchdog running the board then resets
# within board.WDT_MS: create the no-wdt file first (boards/README.md, "Flashing").
import board
import mainloop

mainloop.boot(board, board.CONFIG).run()
