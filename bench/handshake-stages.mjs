// Server CPU per handshake stage, conclave against the bare `ws` server: where a handshake's cost goes.
// Each stage opens N connections, 64 in flight, and closes each once it reached the stage; the
// server's CPU time (utime+stime from /proc) over the stage is divided by N. Two repetitions (the
// first warms the JIT). Usage: node bench/handshake-stages.mjs [N=3000] [--cpu-prof <dir>]
//   [--only upgrade|auth|joins]
//   upgrade + close         TCP accept, HTTP upgrade, 101, close (bare: the same)
//   auth + close            + hello, challenge, Ed25519 verify, key lookup, established, server_info
//   auth + 2 joins + close  + two pipelined joins (the benchmark's handshake scenario)
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { procCpuUs } from "./lib/proc.mjs"
import { RawWs } from "./lib/rawws.mjs"
import { ConclaveAdapter } from "./lib/targets.mjs"

const args = process.argv.slice(2)
const N = Number(args.find((a) => /^\d+$/.test(a)) ?? 3000)
const profAt = args.indexOf("--cpu-prof")
const profDir = profAt >= 0 ? args[profAt + 1] : undefined
const onlyAt = args.indexOf("--only")
const only = onlyAt >= 0 ? args[onlyAt + 1] : undefined // upgrade | auth | joins
const C = 64

const start = (argv, pattern) =>
  new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, argv, { stdio: ["ignore", "ignore", "pipe"] })
    let buf = ""
    const timer = setTimeout(() => reject(new Error(`no listening line from ${argv.join(" ")}`)), 15000)
    proc.stderr.on("data", (d) => {
      buf += d
      const m = pattern.exec(buf)
      if (m) {
        clearTimeout(timer)
        resolve({ proc, port: Number(m[1]) })
      }
    })
  })

const pool = async (n, fn) => {
  let next = 0
  await Promise.all(Array.from({ length: C }, async () => {
    while (next < n) await fn(next++)
  }))
}

const stage = async (pid, name, fn) => {
  await pool(200, fn)
  const c0 = procCpuUs(pid)
  const t0 = performance.now()
  await pool(N, fn)
  await new Promise((r) => setTimeout(r, 300)) // let the closes be processed
  const c1 = procCpuUs(pid)
  const dt = performance.now() - t0
  return { name, us: Math.round((c1 - c0) / N), perS: Math.round((N / dt) * 1000) }
}

const upgrade = (port) => async () => {
  const c = new RawWs({ host: "127.0.0.1", port, hostHeader: `127.0.0.1:${port}`, timeoutMs: 15000 })
  await c.connect()
  c.close()
}

const results = []
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "conclave-stages-"))
process.on("exit", () => fs.rmSync(dataDir, { recursive: true, force: true }))
{
  const bare = await start(["bench/servers/bare-ws.mjs", "127.0.0.1:0", "raw"], /bare-ws listening [\d.]+:(\d+)/)
  for (let rep = 0; rep < 2; rep++) {
    results.push({ target: "bare", rep, ...(await stage(bare.proc.pid, "upgrade + close", upgrade(bare.port))) })
  }
  bare.proc.kill("SIGTERM")
}
{
  const prof = profDir === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${profDir}`]
  const srv = await start(
    [
      ...prof,
      "packages/cli/bin/conclave.js",
      "serve",
      "--bind",
      "127.0.0.1:0",
      // a data dir, as in `npm run bench` (a file store answers point reads without a fiber)
      "--data-dir",
      dataDir,
      "--rate",
      "0",
      "--max-pending-per-ip",
      "0",
      "--register-limit",
      "0"
    ],
    /listening address=[^\s]*:(\d+)/
  )
  const a = new ConclaveAdapter({ host: "127.0.0.1", port: srv.port })
  await a.prepare(200)
  await a.ensureChannels(["idle-a", "idle-b"])
  for (let rep = 0; rep < 2; rep++) {
    if (only === undefined || only === "upgrade") {
      results.push({ target: "conclave", rep, ...(await stage(srv.proc.pid, "upgrade + close", upgrade(srv.port))) })
    }
    if (only === undefined || only === "auth") {
      results.push({
        target: "conclave",
        rep,
        ...(await stage(srv.proc.pid, "auth + close", async (i) => (await a.open(i)).conn.close()))
      })
    }
    if (only === undefined || only === "joins") {
      results.push({
        target: "conclave",
        rep,
        ...(await stage(
          srv.proc.pid,
          "auth + 2 joins + close",
          async (i) => (await a.open(i, { channels: ["idle-a", "idle-b"] })).conn.close()
        ))
      })
    }
  }
  srv.proc.kill("SIGTERM")
  await new Promise((r) => srv.proc.on("exit", r))
}
for (const r of results.filter((r) => r.rep === 1)) {
  console.log(`${r.target.padEnd(9)} ${r.name.padEnd(24)} ${String(r.us).padStart(5)} µs server CPU each  ${r.perS}/s`)
}
process.exit(0)
