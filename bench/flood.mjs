// The pre-auth flood against `conclave serve` alone, as the reliability suite's flood row runs it:
// `--drivers` open-loop driver processes (packages/reliability/dist/flood.js) offer `--rate`
// upgrades/s in all for `--seconds`, while one established session (this process) posts to another
// every 100 ms. Prints what the drivers counted, the server's CPU per answered attempt (utime+stime
// from /proc: a figure of the code, not of the host's load), the established sessions' delivery p99
// before and during the flood, and the load average. With --cpu-prof <dir> the server writes a V8
// profile there on exit (summarise it with bench/profile-top.mjs).
// Usage: node bench/flood.mjs [--bin packages/cli/bin/conclave.js] [--seconds 10] [--rate 2000]
//   [--drivers 2] [--cpu-prof <dir>] [--serve-arg <flag>]… [--no-nice] (drivers at normal priority)
//   [--server-nice <n>] [--node-arg <flag>]… [--server-stdout <file>] (e.g. --node-arg --trace-gc)
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { procCpuUs } from "./lib/proc.mjs"
import { ConclaveAdapter } from "./lib/targets.mjs"

const args = process.argv.slice(2)
const opt = (name, def) => {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : def
}
const bin = opt("--bin", "packages/cli/bin/conclave.js")
const seconds = Number(opt("--seconds", "10"))
const rate = Number(opt("--rate", "2000"))
const drivers = Number(opt("--drivers", "2"))
const profDir = opt("--cpu-prof", undefined)
const serveArgs = args.flatMap((a, i) => (a === "--serve-arg" ? [args[i + 1]] : []))
const nodeArgs = args.flatMap((a, i) => (a === "--node-arg" ? [args[i + 1]] : []))

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "conclave-flood-"))
process.on("exit", () => fs.rmSync(dataDir, { recursive: true, force: true }))

const prof = profDir === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${profDir}`]
const server = spawn(
  process.execPath,
  [...prof, ...nodeArgs, bin, "serve", "--bind", "127.0.0.1:0", "--data-dir", dataDir, "--rate", "0", ...serveArgs],
  { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, CONCLAVE_LOG_FORMAT: "text", NO_COLOR: "1" } }
)
let logBytes = 0
const stdoutFile = opt("--server-stdout", undefined)
server.stdout.on("data", (d) => {
  logBytes += d.length
  if (stdoutFile !== undefined) fs.appendFileSync(stdoutFile, d)
})
if (args.includes("--server-nice")) os.setPriority(server.pid, Number(opt("--server-nice", "0")))
const port = await new Promise((resolve, reject) => {
  let buf = ""
  const timer = setTimeout(() => reject(new Error(`no listening line: ${buf}`)), 20_000)
  server.stderr.on("data", (d) => {
    logBytes += d.length
    if (buf.length < 100_000) buf += d
    const m = /listening[^\n]*address=\S*?:(\d+)/.exec(buf)
    if (m) {
      clearTimeout(timer)
      resolve(Number(m[1]))
    }
  })
})

// The established pair: `pub` posts a numbered message every 100 ms, `sub` receives it.
const adapter = new ConclaveAdapter({ host: "127.0.0.1", port })
await adapter.prepare(2)
await adapter.ensureChannels(["probe"])
const pub = await adapter.open(0, { channels: ["probe"] })
const sub = await adapter.open(1, { channels: ["probe"] })
const sentAt = new Map()
let latencies = []
sub.conn.onFrame = (buf, s, e) => {
  const m = /"text":"p(\d+)"/.exec(buf.toString("utf8", s, e))
  if (m === null) return
  const t0 = sentAt.get(Number(m[1]))
  if (t0 !== undefined) latencies.push(performance.now() - t0)
}
pub.conn.onFrame = () => {}
let seq = 0
const probe = setInterval(() => {
  const n = seq++
  sentAt.set(n, performance.now())
  pub.conn.sendText(
    JSON.stringify({ type: "channel_msg", channel: "probe", payload: { kind: "plain", text: `p${n}` } })
  )
}, 100)
const p = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? 0 : s[Math.min(s.length - 1, Math.floor(q * s.length))]
}

await new Promise((r) => setTimeout(r, 3000))
const baseline = { n: latencies.length, p50: p(latencies, 0.5), p99: p(latencies, 0.99) }
latencies = []

const load0 = os.loadavg()[0]
const cpu0 = procCpuUs(server.pid)
const t0 = performance.now()
const children = Array.from({ length: drivers }, () =>
  spawn(process.execPath, [
    "packages/reliability/dist/flood.js",
    "--port",
    String(port),
    "--seconds",
    String(seconds),
    "--rate",
    String(Math.round(rate / drivers)),
    "--hold-ms",
    "100"
  ], { stdio: ["ignore", "pipe", "inherit"] }))
// as in the reliability suite: the attackers get only the CPU the server and the probe leave
if (!args.includes("--no-nice")) { for (const c of children) os.setPriority(c.pid, 19) }
const driverCpu = new Map()
const sampler = setInterval(() => {
  for (const c of children) {
    const us = procCpuUs(c.pid)
    if (us !== null) driverCpu.set(c.pid, us)
  }
}, 200)
let cpuFlood = null
const counts = await Promise.all(children.map((c) =>
  new Promise((resolve) => {
    let out = ""
    c.stdout.on("data", (d) => void (out += d))
    c.on("exit", () => resolve(JSON.parse(out.trim().split("\n").pop())))
  })
))
clearInterval(sampler)
// the flood's own window (the drivers' last attempts finish within their timeouts)
cpuFlood = procCpuUs(server.pid) - cpu0
const wall = performance.now() - t0
const load1 = os.loadavg()[0]
clearInterval(probe)
await new Promise((r) => setTimeout(r, 500))
const during = { n: latencies.length, p50: p(latencies, 0.5), p99: p(latencies, 0.99) }

const sum = (k) => counts.reduce((a, c) => a + c[k], 0)
const answered = sum("upgraded") + sum("refused429") + sum("refused503")
const driversUs = [...driverCpu.values()].reduce((a, b) => a + b, 0)
console.log(JSON.stringify({
  bin,
  seconds,
  rate,
  attempts: sum("attempts"),
  skipped: sum("skipped"),
  upgraded: sum("upgraded"),
  refused429: sum("refused429"),
  refused503: sum("refused503"),
  failed: sum("failed"),
  displaced: sum("displaced"),
  closedWrongFirst: `${sum("closedWrongFirst")}/${sum("wrongFirst")} (${sum("cutWrongFirst")} cut)`,
  answeredPerS: Math.round(answered / seconds),
  upgradeP99Ms: Math.round(Math.max(...counts.map((c) => c.upgradeP99Ms))),
  serverCpuUsPerAnswered: Math.round(cpuFlood / Math.max(1, answered)),
  serverCores: +(cpuFlood / 1000 / wall).toFixed(2),
  driversCores: +(driversUs / 1000 / wall).toFixed(2),
  serverLogBytes: logBytes,
  probeBefore: baseline,
  probeDuring: during,
  load: `${load0.toFixed(1)} → ${load1.toFixed(1)} on ${os.cpus().length} cores`
}))
server.kill("SIGTERM")
await new Promise((r) => server.on("exit", r))
process.exit(0)
