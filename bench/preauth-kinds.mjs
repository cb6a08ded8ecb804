// Server CPU per pre-auth attempt, by kind, for `conclave serve` (this checkout's or --bin's): each
// kind opens N connections, 32 in flight, and the server's CPU time (utime+stime from /proc) over
// the kind is divided by N; two repetitions, the second printed (the first warms the JIT).
//   silent   upgrade, then the client goes (no frame)
//   wrong    upgrade, a non-`hello` first frame; the server answers `error` and closes 1008
//   hello    upgrade, `hello`; the server answers `challenge`; the client goes
//   displaced  (--max-pending-per-ip 32) 64 silent sockets held per round: past the cap each new
//            upgrade displaces the oldest
// Usage: node bench/preauth-kinds.mjs [N=3000] [--bin packages/cli/bin/conclave.js] [--only <kind>]
//   [--cpu-prof <dir>] (the server's V8 profiles; summarise with bench/profile-top.mjs)
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { procCpuUs } from "./lib/proc.mjs"
import { RawWs } from "./lib/rawws.mjs"

const args = process.argv.slice(2)
const N = Number(args.find((a) => /^\d+$/.test(a)) ?? 3000)
const binAt = args.indexOf("--bin")
const bin = binAt >= 0 ? args[binAt + 1] : "packages/cli/bin/conclave.js"
const onlyAt = args.indexOf("--only")
const only = onlyAt >= 0 ? args[onlyAt + 1] : undefined
const profAt = args.indexOf("--cpu-prof")
const prof = profAt >= 0 ? ["--cpu-prof", `--cpu-prof-dir=${args[profAt + 1]}`] : []

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "conclave-kinds-"))
process.on("exit", () => fs.rmSync(dataDir, { recursive: true, force: true }))
const start = (extra) =>
  new Promise((resolve, reject) => {
    const proc = spawn(
      process.execPath,
      [...prof, bin, "serve", "--bind", "127.0.0.1:0", "--data-dir", dataDir, "--rate", "0", ...extra],
      { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, CONCLAVE_LOG_FORMAT: "text", NO_COLOR: "1" } }
    )
    let buf = ""
    const timer = setTimeout(() => reject(new Error(`no listening line: ${buf}`)), 20000)
    proc.stderr.on("data", (d) => {
      if (buf.length < 100_000) buf += d
      const m = /listening[^\n]*address=\S*?:(\d+)/.exec(buf)
      if (m) {
        clearTimeout(timer)
        resolve({ proc, port: Number(m[1]) })
      }
    })
  })

const pool = async (n, c, fn) => {
  let next = 0
  await Promise.all(Array.from({ length: c }, async () => {
    while (next < n) await fn(next++)
  }))
}
const closedBy = (c) =>
  new Promise((resolve) => {
    if (c.closed) return resolve()
    c.onClose = () => resolve()
    c.socket.once("close", () => resolve())
  })

const kinds = {
  silent: async (port) => {
    const c = new RawWs({ host: "127.0.0.1", port })
    await c.connect()
    c.destroy()
  },
  wrong: async (port) => {
    const c = new RawWs({ host: "127.0.0.1", port })
    await c.connect()
    const done = closedBy(c)
    c.sendText("{\"type\":\"list_users\"}")
    await done
    c.destroy()
  },
  hello: async (port) => {
    const c = new RawWs({ host: "127.0.0.1", port })
    await c.connect()
    const got = new Promise((resolve) => (c.onFrame = () => resolve()))
    c.sendText(JSON.stringify({ type: "hello", protocol_version: 1, session: "s", host: null }))
    await got
    c.destroy()
  }
}

const results = []
const measure = async (pid, name, fn, c = 32) => {
  await pool(300, c, fn)
  const c0 = procCpuUs(pid)
  const t0 = performance.now()
  await pool(N, c, fn)
  await new Promise((r) => setTimeout(r, 300))
  const us = Math.round((procCpuUs(pid) - c0) / N)
  results.push(
    `${name.padEnd(10)} ${String(us).padStart(5)} µs server CPU each  ${
      Math.round((N / (performance.now() - t0)) * 1000)
    }/s`
  )
}
{
  const srv = await start(["--max-pending-per-ip", "0"])
  for (let rep = 0; rep < 2; rep++) {
    results.length = 0
    for (const [name, fn] of Object.entries(kinds)) {
      if (only === undefined || only === name) await measure(srv.proc.pid, name, () => fn(srv.port))
    }
  }
  srv.proc.kill("SIGTERM")
  await new Promise((r) => srv.proc.on("exit", r))
}
if (only === undefined || only === "displaced") {
  // displacement: keep every upgraded socket open; the server closes the oldest past its cap of 32
  const srv = await start(["--max-pending-per-ip", "32"])
  const held = []
  let refused = 0
  const fn = async () => {
    const c = new RawWs({ host: "127.0.0.1", port: srv.port })
    // a build without displacement refuses past the cap (429)
    if (!(await c.connect().then(() => true, () => false))) return void refused++
    held.push(c)
    if (held.length > 256) held.shift().destroy()
  }
  const keep = results.slice()
  for (let rep = 0; rep < 2; rep++) {
    results.length = 0
    await measure(srv.proc.pid, "displaced", fn)
  }
  if (refused > 0) results.push(`(displaced: ${refused} refused with 429 instead)`)
  results.unshift(...keep)
  for (const c of held) c.destroy()
  srv.proc.kill("SIGTERM")
  await new Promise((r) => srv.proc.on("exit", r))
}
console.log(`${bin} (load ${os.loadavg()[0].toFixed(1)})\n${results.join("\n")}`)
process.exit(0)
