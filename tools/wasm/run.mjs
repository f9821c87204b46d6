// run.mjs: runs a MicroPython script on the 32-bit WebAssembly port from Node.
//   node tools/wasm/run.mjs [--heapsize BYTES] --mount HOSTDIR=/FSDIR ... SCRIPT.py ARG ...
// Each mount copies a host directory (recursively, .py files only) into the in-memory
// filesystem. The script runs as __main__ with sys.argv = [SCRIPT, ARG, ...]; its sys.exit code
// (or 1 on an uncaught exception) becomes Node's exit code.
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
import fs from "node:fs";
import path from "node:path";

const args = process.argv.slice(2);
let heapsize = 4 * 1024 * 1024;
const mounts = [];
while (args.length && args[0].startsWith("--")) {
  const opt = args.shift();
  if (opt === "--heapsize") heapsize = parseInt(args.shift(), 10);
  else if (opt === "--mount") mounts.push(args.shift().split("="));
  else { console.error("run.mjs: unknown option " + opt); process.exit(2); }
}
const script = args.shift();

const mp = await loadMicroPython({
  heapsize,
  stdout: (s) => process.stdout.write(s + "\n"),
  stderr: (s) => process.stderr.write(s + "\n"),
});

function mkdirs(p) {
  let cur = "";
  for (const part of p.split("/").filter(Boolean)) {
    cur += "/" + part;
    try { mp.FS.mkdir(cur); } catch (e) { /* exists */ }
  }
}

function copyTree(src, dst) {
  mkdirs(dst);
  for (const ent of fs.readdirSync(src, { withFileTypes: true })) {
    if (ent.name === "__pycache__" || ent.name === "node_modules") continue;
    const s = path.join(src, ent.name);
    const d = dst + "/" + ent.name;
    if (ent.isDirectory()) copyTree(s, d);
    else if (ent.name.endsWith(".py")) mp.FS.writeFile(d, fs.readFileSync(s));
  }
}

for (const [host, dst] of mounts) copyTree(host, dst);
// The script itself is copied to the same absolute path inside the filesystem.
const scriptAbs = path.resolve(script);
mkdirs(path.posix.dirname(scriptAbs));
mp.FS.writeFile(scriptAbs, fs.readFileSync(scriptAbs));

const argv = JSON.stringify([scriptAbs, ...args]);
let code = 0;
try {
  mp.runPython(`
import sys
sys.argv[:] = ${argv}
_rc = 0
try:
    _g = {"__name__": "__main__", "__file__": sys.argv[0]}
    exec(open(sys.argv[0]).read(), _g)
except SystemExit as _e:
    _rc = _e.args[0] if _e.args else 0
except Exception as _e:
    sys.print_exception(_e)
    _rc = 1
`);
  code = mp.globals.get("_rc");
} catch (e) {
  console.error("run.mjs: " + (e && e.message ? e.message : e));
  code = 1;
}
process.exit(typeof code === "number" ? code : 1);
