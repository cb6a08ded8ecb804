#!/usr/bin/env node
// Side-by-side benchmark of conclave against a bare `ws` broadcast server (same runtime floor) and
// NATS with its WebSocket listener (when `nats-server` is installed). See BENCHMARKS.md.
//
//   node bench/run.mjs [--quick] [--only s1,s2] [--reps N] [--duration S] [--targets a,b]
//                      [--write-md] [--profile] [--conclave-store disk|memory] [--ab REV]
//
// A/B mode (`--ab REV`): the conclave of an earlier commit (target `base`, built in a worktree under
// bench/.ab/) runs interleaved with the working tree's, and the table gains "conclave / base".
// Targets `embedded` and `traced` run the working tree's server embedded in a default Effect app
// (bench/servers/embedded.mjs), without and with an in-memory tracer. Target `cluster-local` is the
// same two-node deployment with the publisher on node B too (no NATS hop: the baseline of the hop
// on the same backends). Target `cluster` runs two
// nodes on PostgreSQL + NATS with the publisher on one and the subscribers on the other (fanout1:
// cross-node fan-out; needs psql, PostgreSQL at BENCH_POSTGRES and nats-server).
//
// Servers are pinned to CPU0 and the load generator to CPU1 (taskset, when available). Targets run
// interleaved (A, B, C, A, B, C, …) per scenario. One JSON line per run goes to stdout and to
// bench/results/<timestamp>.jsonl; a table of medians and conclave/bare, conclave/NATS ratios ends it.
import { execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { measureCliStart } from "./cli-start.mjs"
import { heapTop } from "./heap-top.mjs"
import { loadavg } from "./lib/proc.mjs"
import { authMessage } from "./lib/targets.mjs"
import { summarize } from "./profile-top.mjs"

const BENCH = path.dirname(fileURLToPath(import.meta.url))
const ROOT = path.dirname(BENCH)
const RESULTS = path.join(BENCH, "results")
const CONCLAVE_BIN = path.join(ROOT, "packages/cli/bin/conclave.js")
const SCENARIOS = ["clistart", "coldstart", "fanout1", "fanout100", "whisper", "handshake", "history"]
const EXTRA_SCENARIOS = ["profile"] // only when asked for: --profile or --only profile
const TARGETS = ["bare", "bare-json", "nats", "base", "embedded", "traced", "conclave", "cluster-local", "cluster"]
// targets that run a conclave server (the load generator speaks conclave's protocol to them)
const CONCLAVE_LIKE = new Set(["conclave", "base", "embedded", "traced", "cluster-local", "cluster"])
const DEFAULT_TARGETS = ["bare", "nats", "conclave"] // bare-json on request (--targets)

// ---------------------------------------------------------------------------------------------
// options
// ---------------------------------------------------------------------------------------------

const usage = `usage: node bench/run.mjs [options]
  --quick                 short windows, 1 repetition, small session counts (smoke test, < 2 min)
  --only <a,b,…>          scenarios: ${SCENARIOS.join(", ")} (and "profile")
  --targets <a,b,…>       targets: ${TARGETS.join(", ")} (default: ${DEFAULT_TARGETS.join(", ")})
  --reps N                repetitions per scenario and target (default 3; --quick: 1)
  --duration S            measured seconds per load step (default 5; --quick: 1)
  --sessions N            sessions for the handshake/idle-memory scenario (default 10000; --quick: 1000)
  --ladder R1,R2,…        fan-out/whisper offered rates (msg/s) instead of the default ladder
  --conclave-store disk|memory   conclave store: --data-dir in a temp dir (default) or --ephemeral
  --ab REV                A/B: also run the conclave of commit REV (target "base", built in bench/.ab/);
                          default targets become base,conclave
                          targets "embedded" and "traced": the working tree's server in a default Effect
                          app (bench/servers/embedded.mjs), without / with an in-memory tracer
  --write-md              regenerate BENCHMARKS.md at the repo root from this run
  --profile               also profile conclave (node --cpu-prof) under the selected scenarios' load
                          (fanout1, history, whisper, handshake; all with --only profile) and print hot spots
  --profile-only          profile the selected scenarios without the measured runs (implies --profile)
  --heap-snapshot         handshake scenario: heap snapshot of Node servers while the idle sessions are
                          held, summarised per session (bench/results/heap-*.heapsnapshot)
  --help
environment (diagnostics): BENCH_SERVER_FLAGS="--perf-basic-prof …" adds node flags to the conclave
  server; BENCH_SERVER_LOG=<file> appends every server output line to <file>`

const argv = process.argv.slice(2)
const opts = {
  quick: false,
  only: null,
  targets: null,
  reps: null,
  duration: null,
  sessions: null,
  ladder: null,
  store: "disk",
  writeMd: false,
  profile: false,
  profileOnly: false,
  heapSnapshot: false,
  ab: null
}
for (let i = 0; i < argv.length; i++) {
  const a = argv[i]
  const val = () => {
    const v = argv[++i]
    if (v === undefined) die(`${a} needs a value`)
    return v
  }
  const num = () => {
    const v = Number(val())
    if (!Number.isFinite(v) || v <= 0) die(`${a} needs a positive number`)
    return v
  }
  if (a === "--quick") opts.quick = true
  else if (a === "--only") opts.only = val().split(",")
  else if (a === "--targets") opts.targets = val().split(",")
  else if (a === "--reps") opts.reps = Math.round(num())
  else if (a === "--duration") opts.duration = num()
  else if (a === "--sessions") opts.sessions = Math.round(num())
  else if (a === "--ladder") {
    opts.ladder = val().split(",").map(Number)
    if (opts.ladder.some((r) => !Number.isFinite(r) || r <= 0)) die("--ladder needs positive rates, e.g. 300,500")
  } else if (a === "--conclave-store") opts.store = val()
  else if (a === "--write-md") opts.writeMd = true
  else if (a === "--profile") opts.profile = true
  else if (a === "--profile-only") opts.profile = opts.profileOnly = true
  else if (a === "--heap-snapshot") opts.heapSnapshot = true
  else if (a === "--ab") opts.ab = val()
  else if (a === "--help" || a === "-h") {
    console.log(usage)
    process.exit(0)
  } else die(`unknown option ${a}\n${usage}`)
}
function die(msg) {
  console.error(msg)
  process.exit(64)
}
for (const s of opts.only ?? []) {
  if (!SCENARIOS.includes(s) && !EXTRA_SCENARIOS.includes(s)) die(`unknown scenario ${s}`)
}
if (opts.only?.includes("profile")) opts.profile = true
if (opts.only !== null) opts.only = opts.only.filter((s) => s !== "profile")
for (const t of opts.targets ?? []) if (!TARGETS.includes(t)) die(`unknown target ${t}`)
if (!["disk", "memory"].includes(opts.store)) die("--conclave-store must be disk or memory")

const Q = opts.quick
const params = {
  reps: opts.reps ?? (Q ? 1 : 3),
  warm: Q ? 0.3 : 2,
  measure: opts.duration ?? (Q ? 1 : 5),
  drain: Q ? 1 : 3,
  // Steps about 1.4× apart: saturation is the last passing step, so a coarse ladder under-reports
  // whichever target stops just short of the next step.
  fanoutLadder: opts.ladder ??
    (Q ? [300, 500, 700, 1000, 1400, 2000] : [300, 500, 700, 1000, 1400, 2000, 2800, 4000, 5600, 8000]),
  whisperLadder: opts.ladder ??
    (Q
      ? [5000, 7000, 10000, 14000, 20000, 30000]
      : [1000, 5000, 7000, 10000, 14000, 20000, 30000, 42000, 60000, 85000]),
  subs: 100,
  pairs: 100,
  sessions: opts.sessions ?? (Q ? 1000 : 10000),
  keys: Q ? 100 : 1000,
  concurrency: Q ? 128 : 256,
  steadyRate: 500,
  steadySecs: Q ? 1 : 5,
  // The first fan-out step gives T3's latency and T4's CPU figures: it warms up 3 s and measures 20 s,
  // as BENCH-AND-RELIABILITY §5.3 prescribes (the steps above it, which only search for saturation,
  // keep the shorter window). A JIT-compiled server is still compiling during a 2 s warm-up.
  t3Warm: Q ? 0.3 : 3,
  t3Measure: opts.duration ?? (Q ? 1 : 20),
  settleMs: Q ? 500 : 1000,
  histSessions: Q ? 4 : 8,
  histWindow: 32,
  coldSpawns: Q ? 3 : 5,
  cliRounds: Q ? 5 : 15
}

// ---------------------------------------------------------------------------------------------
// environment
// ---------------------------------------------------------------------------------------------

const has = (cmd, args = ["--version"]) => {
  try {
    return execFileSync(cmd, args, { stdio: ["ignore", "pipe", "pipe"], timeout: 10000 }).toString().trim() || "ok"
  } catch {
    return null
  }
}
const taskset = has("taskset", ["-c", "0", "true"]) !== null && os.cpus().length >= 2
const natsVersion = has("nats-server", ["--version"])
const clkTck = Number(has("getconf", ["CLK_TCK"]) ?? 100)
const wsVersion = JSON.parse(fs.readFileSync(path.join(ROOT, "node_modules/ws/package.json"), "utf8")).version
const gitRev = has("git", ["-C", ROOT, "rev-parse", "--short", "HEAD"])
const machine = {
  nproc: os.cpus().length,
  cpu_model: (fs.readFileSync("/proc/cpuinfo", "utf8").match(/^model name\s*:\s*(.*)$/m) ?? [])[1] ??
    os.cpus()[0]?.model,
  mem_gib: Math.round(os.totalmem() / 2 ** 30),
  kernel: os.release(),
  node: process.version,
  ws: wsVersion,
  nats_server: natsVersion,
  taskset,
  git_rev: gitRev,
  loadavg_start: loadavg()
}
const noisy = Number(machine.loadavg_start.split(" ")[0]) >= 0.5
if (taskset) {
  try {
    execFileSync("taskset", ["-pc", "1", String(process.pid)], { stdio: "ignore" })
  } catch {
    // not fatal
  }
}
const pin = (cpu, cmd) => (taskset ? ["taskset", "-c", String(cpu), ...cmd] : cmd)

const stamp = new Date().toISOString().replace(/[:.]/g, "-")
fs.mkdirSync(RESULTS, { recursive: true })
const outFile = path.join(RESULTS, `${stamp}.jsonl`)
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "conclave-bench-"))
const note = (msg) => process.stderr.write(`[bench] ${msg}\n`)

// ---------------------------------------------------------------------------------------------
// process management
// ---------------------------------------------------------------------------------------------

const children = new Set()
const cleanup = () => {
  for (const c of children) {
    try {
      c.kill("SIGKILL")
    } catch {
      // gone
    }
  }
  fs.rmSync(tmpRoot, { recursive: true, force: true })
}
process.on("exit", cleanup)
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    note(`${sig}: stopping`)
    cleanup()
    process.exit(130)
  })
}

const freePort = () =>
  new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once("error", reject)
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })

/** Spawn a server and wait for its "listening" line; resolves with pid, port and spawn→listening ms. */
const spawnServer = (cmd, env, matcher, timeoutMs = 30000) =>
  new Promise((resolve, reject) => {
    const t0 = performance.now()
    const proc = spawn(cmd[0], cmd.slice(1), {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    children.add(proc)
    const tail = []
    let buf = ""
    let done = false
    const onLine = (line) => {
      if (process.env.BENCH_SERVER_LOG) fs.appendFileSync(process.env.BENCH_SERVER_LOG, line + "\n")
      tail.push(line)
      if (tail.length > 40) tail.shift()
      if (done) return
      const port = matcher(line)
      if (port !== null) {
        done = true
        clearTimeout(timer)
        resolve({ proc, pid: proc.pid, port, coldMs: performance.now() - t0, tail })
      }
    }
    const onData = (d) => {
      buf += d.toString()
      let i
      while ((i = buf.indexOf("\n")) !== -1) {
        onLine(buf.slice(0, i))
        buf = buf.slice(i + 1)
      }
    }
    proc.stdout.on("data", onData)
    proc.stderr.on("data", onData)
    proc.on("exit", (code, sig) => {
      children.delete(proc)
      if (!done) {
        done = true
        clearTimeout(timer)
        reject(new Error(`server exited (${code ?? sig}) before listening:\n${tail.join("\n")}`))
      }
    })
    const timer = setTimeout(() => {
      if (done) return
      done = true
      proc.kill("SIGKILL")
      reject(new Error(`server not listening after ${timeoutMs} ms:\n${tail.join("\n")}`))
    }, timeoutMs)
  })

const stopServer = (srv, graceMs = 8000) =>
  Promise.all((srv.extra ?? []).map((other) => stopOne(other, graceMs))).then(() => stopOne(srv, graceMs))

const stopOne = (srv, graceMs) =>
  new Promise((resolve) => {
    if (srv.proc.exitCode !== null || srv.proc.signalCode !== null) return resolve()
    const t = setTimeout(() => srv.proc.kill("SIGKILL"), graceMs)
    srv.proc.once("exit", () => {
      clearTimeout(t)
      resolve()
    })
    srv.proc.kill("SIGTERM")
  })

const conclaveArgs = (dataDir) => [
  "serve",
  "--bind",
  "127.0.0.1:0",
  ...(dataDir === null ? ["--ephemeral"] : ["--data-dir", dataDir]),
  "--rate",
  "1000000",
  "--burst",
  "1000000",
  "--max-pending-per-ip",
  "1000000",
  "--register-limit",
  "0"
]

const matchConclave = (line) => {
  if (!line.includes("listening")) return null
  try {
    const j = JSON.parse(line)
    const addr = j.annotations?.address ?? j.address
    if (typeof addr === "string") return Number(addr.slice(addr.lastIndexOf(":") + 1))
  } catch {
    // not JSON: fall through
  }
  const m = line.match(/(?:127\.0\.0\.1|localhost|\[::1\]):(\d+)/)
  return m ? Number(m[1]) : null
}

let dataDirs = 0
// event-loop delay of Node servers, sampled by a preload (no change to the server's code)
const ELD_FLAGS = ["--expose-gc", "--import", path.join(BENCH, "lib/eld-preload.mjs")]
const eldFile = path.join(tmpRoot, "eld.json")
const startTarget = async (target, { dataDir, nodeFlags = [], preload = true } = {}) => {
  const ELD = preload ? ELD_FLAGS : []
  if (target === "bare" || target === "bare-json") {
    return spawnServer(
      pin(0, [
        process.execPath,
        ...nodeFlags,
        ...ELD,
        path.join(BENCH, "servers/bare-ws.mjs"),
        "127.0.0.1:0",
        target === "bare" ? "raw" : "json"
      ]),
      { BENCH_ELD_FILE: eldFile },
      (l) => {
        const m = l.match(/^bare-ws listening [\d.]+:(\d+)/)
        return m ? Number(m[1]) : null
      }
    )
  }
  if (target === "nats") {
    const [p1, p2] = [await freePort(), await freePort()]
    const conf = path.join(tmpRoot, `nats-${p2}.conf`)
    fs.writeFileSync(
      conf,
      `listen: "127.0.0.1:${p1}"\nwebsocket {\n  listen: "127.0.0.1:${p2}"\n  no_tls: true\n  compression: false\n}\n`
    )
    return spawnServer(pin(0, ["nats-server", "-c", conf]), {}, (l) => (l.includes("Server is ready") ? p2 : null))
  }
  if (target === "cluster" || target === "cluster-local") {
    return startCluster(nodeFlags, ELD, target === "cluster-local")
  }
  const dir = dataDir === undefined
    ? (opts.store === "memory" ? null : path.join(tmpRoot, `data-${++dataDirs}`))
    : dataDir
  if (target === "embedded" || target === "traced") {
    if (dir !== null) fs.mkdirSync(dir, { recursive: true })
    return spawnServer(
      pin(0, [
        process.execPath,
        ...nodeFlags,
        ...ELD,
        path.join(BENCH, "servers/embedded.mjs"),
        dir ?? ":memory:",
        target === "traced" ? "traced" : "plain"
      ]),
      { BENCH_ELD_FILE: eldFile },
      matchConclave
    ).then((s) => ({ ...s, dataDir: dir }))
  }
  return spawnServer(
    pin(0, [
      process.execPath,
      ...nodeFlags,
      ...(process.env.BENCH_SERVER_FLAGS?.split(" ") ?? []),
      ...ELD,
      target === "base" ? baseBin : CONCLAVE_BIN,
      ...conclaveArgs(dir)
    ]),
    { CONCLAVE_LOG_FORMAT: "json", CONCLAVE_LOG_LEVEL: "info", BENCH_ELD_FILE: eldFile },
    matchConclave
  ).then((s) => ({ ...s, dataDir: dir }))
}

// Target `cluster` (issue 17): two `conclave serve` nodes on a scratch PostgreSQL database
// (BENCH_POSTGRES, default postgres://postgres@127.0.0.1:5432/test; dropped at exit) and a
// nats-server of its own. The load generator's subscribers dial node B (`port`), the publishers node
// A (`pubPort`), so every delivery crosses NATS: cross-node fan-out, side by side with `conclave`.
const BENCH_POSTGRES = process.env.BENCH_POSTGRES ?? "postgres://postgres@127.0.0.1:5432/test"
let clusters = 0
const startCluster = async (nodeFlags, ELD, local = false) => {
  const db = `conclave_bench_${process.pid}_${++clusters}`
  execFileSync("psql", [BENCH_POSTGRES, "-qc", `CREATE DATABASE ${db}`])
  process.on("exit", () => {
    try {
      execFileSync("psql", [BENCH_POSTGRES, "-qc", `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`])
    } catch {
      // best effort
    }
  })
  const store = new URL(BENCH_POSTGRES)
  store.pathname = `/${db}`
  const natsPort = await freePort()
  const nats = await spawnServer(
    pin(0, ["nats-server", "-a", "127.0.0.1", "-p", String(natsPort)]),
    {},
    (l) => (l.includes("Server is ready") ? natsPort : null)
  )
  const node = (id, eld) =>
    spawnServer(
      pin(0, [
        process.execPath,
        ...nodeFlags,
        ...eld,
        CONCLAVE_BIN,
        ...conclaveArgs(null).filter((a) => a !== "--ephemeral"),
        "--store",
        store.toString(),
        "--broker",
        `nats://127.0.0.1:${natsPort}`,
        "--node-id",
        id
      ]),
      { CONCLAVE_LOG_FORMAT: "json", CONCLAVE_LOG_LEVEL: "info", BENCH_ELD_FILE: eldFile },
      matchConclave
    )
  const a = await node("bench-a", [])
  const b = await node("bench-b", ELD)
  return { ...b, pubPort: local ? b.port : a.port, extra: [a, nats], dataDir: null }
}

// A/B: the conclave of an earlier commit, checked out in a worktree under bench/.ab/<sha> and built
// with this tree's dependencies (its node_modules links to ours, except its own workspace packages).
let baseBin = null
const prepareBase = (rev) => {
  let sha
  try {
    sha = execFileSync("git", ["-C", ROOT, "rev-parse", "--verify", `${rev}^{commit}`]).toString().trim()
  } catch {
    die(`--ab: unknown revision ${rev}`)
  }
  const dir = path.join(BENCH, ".ab", sha)
  if (!fs.existsSync(path.join(dir, "package.json"))) {
    fs.mkdirSync(path.dirname(dir), { recursive: true })
    execFileSync("git", ["-C", ROOT, "worktree", "add", "--force", "--detach", dir, sha], { stdio: "inherit" })
  }
  const modules = path.join(dir, "node_modules")
  fs.mkdirSync(modules, { recursive: true })
  for (const entry of fs.readdirSync(path.join(ROOT, "node_modules"))) {
    if (entry === "@conclave" || entry === ".bin" || entry.startsWith(".")) continue
    const link = path.join(modules, entry)
    if (!fs.existsSync(link)) fs.symlinkSync(path.join(ROOT, "node_modules", entry), link)
  }
  fs.mkdirSync(path.join(modules, "@conclave"), { recursive: true })
  for (const pkg of fs.readdirSync(path.join(dir, "packages"))) {
    const manifest = path.join(dir, "packages", pkg, "package.json")
    if (!fs.existsSync(manifest)) continue
    const name = JSON.parse(fs.readFileSync(manifest, "utf8")).name
    const link = path.join(modules, name)
    if (name.startsWith("@conclave/") && !fs.existsSync(link)) fs.symlinkSync(path.join(dir, "packages", pkg), link)
  }
  note(`A/B: building ${sha.slice(0, 10)} in ${path.relative(ROOT, dir)}`)
  execFileSync(process.execPath, [
    path.join(ROOT, "node_modules/typescript/bin/tsc"),
    "-b",
    path.join(dir, "packages/cli")
  ], {
    stdio: "inherit"
  })
  LABELS.base = `conclave@${sha.slice(0, 7)}`
  machine.ab_base = sha
  return path.join(dir, "packages/cli/bin/conclave.js")
}

const runLoadgen = (target, scenario, srv, extra = {}) =>
  new Promise((resolve) => {
    const deadlineMs = Q ? 120_000 : 900_000
    const cfg = {
      target: CONCLAVE_LIKE.has(target) ? "conclave" : target,
      scenario,
      host: "127.0.0.1",
      port: srv.port,
      serverPid: srv.pid,
      eldFile: target === "nats" ? null : eldFile,
      // No explicit source address: bind-before-connect takes the slow port-search path in the kernel
      // and cannot reuse TIME_WAIT ports (a 10 k reconnect storm then spends seconds in the kernel).
      localAddress: null,
      clkTck,
      deadlineMs,
      ladder: scenario === "whisper" ? params.whisperLadder : params.fanoutLadder,
      ...params,
      ...(scenario === "whisper" ? { t3Warm: undefined, t3Measure: undefined } : {}),
      ...(srv.pubPort === undefined ? {} : { pubPort: srv.pubPort }),
      ...extra
    }
    const proc = spawn(pin(1, [process.execPath])[0], [
      ...pin(1, [process.execPath]).slice(1),
      "--max-old-space-size=4096",
      path.join(BENCH, "loadgen.mjs"),
      JSON.stringify(cfg)
    ], { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] })
    children.add(proc)
    let out = ""
    proc.stdout.on("data", (d) => (out += d.toString()))
    const killer = setTimeout(() => proc.kill("SIGKILL"), deadlineMs + 15_000)
    proc.on("exit", (code) => {
      clearTimeout(killer)
      children.delete(proc)
      const last = out.trim().split("\n").pop() ?? ""
      try {
        resolve(JSON.parse(last))
      } catch {
        resolve({ ok: false, error: `load generator exited ${code} without a result` })
      }
    })
  })

// ---------------------------------------------------------------------------------------------
// runs
// ---------------------------------------------------------------------------------------------

const rows = []
const heapSummaries = []
const emit = (row) => {
  rows.push(row)
  const line = JSON.stringify(row)
  fs.appendFileSync(outFile, line + "\n")
  console.log(line)
}

const median = (xs) => {
  const v = xs.filter((x) => typeof x === "number" && Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return null
  const m = Math.floor(v.length / 2)
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2
}
const dirSize = (dir) => {
  let n = 0
  try {
    for (const f of fs.readdirSync(dir)) n += fs.statSync(path.join(dir, f)).size
  } catch {
    return null
  }
  return n
}

const runOne = async (target, scenario, rep) => {
  const base = { ts: new Date().toISOString(), target, scenario, rep, quick: Q, noisy, loadavg: loadavg() }
  if (scenario === "clistart") {
    // CLI verbs against a bare `node -e ''` (bench/cli-start.mjs): measured once, under target conclave.
    if (target !== "conclave") return { ...base, ok: true, result: { skipped: "conclave CLI only" } }
    const { samples_ms: _samples, ...result } = measureCliStart(params.cliRounds)
    return { ...base, ok: true, result }
  }
  if (scenario === "coldstart") {
    const samples = []
    for (let i = 0; i < params.coldSpawns; i++) {
      const srv = await startTarget(target, { preload: false })
      samples.push(Math.round(srv.coldMs))
      await stopServer(srv)
    }
    return { ...base, ok: true, result: { cold_start_ms: median(samples), samples_ms: samples } }
  }
  if (scenario === "history" && !CONCLAVE_LIKE.has(target)) {
    return { ...base, ok: true, result: { skipped: "no message store in this target" } }
  }
  const srv = await startTarget(target)
  const snapFile = opts.heapSnapshot && scenario === "handshake" && target !== "nats"
    ? path.join(RESULTS, `heap-${stamp}-${target}-rep${rep}.heapsnapshot`)
    : null
  let res
  try {
    res = await runLoadgen(target, scenario, srv, snapFile === null ? {} : { heapSnapshot: snapFile })
  } finally {
    if (srv.proc.exitCode !== null || srv.proc.signalCode !== null) {
      note(`${target} server died during ${scenario}:\n${srv.tail.slice(-10).join("\n")}`)
    }
    await stopServer(srv)
  }
  const row = { ...base, ok: res.ok, ...(res.ok ? { result: res.result } : { error: res.error }) }
  if (!res.ok) row.server_log_tail = srv.tail.slice(-10)
  if (snapFile !== null && fs.existsSync(snapFile)) {
    const before = snapFile.replace(/\.heapsnapshot$/, "-before.heapsnapshot")
    const text = heapTop(snapFile, params.sessions, 25, fs.existsSync(before) ? before : null)
    fs.writeFileSync(snapFile.replace(/\.heapsnapshot$/, ".txt"), text + "\n")
    note(`heap summary:\n${text}`)
    if (rep === 1) heapSummaries.push(`${target} (rep ${rep}):\n${text.replaceAll(ROOT + "/", "")}`)
    if (row.result) row.result.heap_snapshot = path.relative(ROOT, snapFile)
  }
  if (scenario === "history" && CONCLAVE_LIKE.has(target) && srv.dataDir) {
    // cold start on the populated store
    const bytes = dirSize(srv.dataDir)
    const again = await startTarget(target, { dataDir: srv.dataDir, preload: false })
    await stopServer(again)
    if (row.result) {
      Object.assign(row.result, { cold_start_with_data_ms: Math.round(again.coldMs), data_dir_bytes: bytes })
    }
  }
  return row
}

const probeConclave = async (target) => {
  if (!fs.existsSync(path.join(ROOT, "packages/cli/dist/bin.js"))) {
    return "packages/cli/dist/bin.js missing (build with `npx tsc -b packages/cli`)"
  }
  // the load generator signs its own D-3 message: check it against the protocol package's
  try {
    const { authMessage: theirs } = await import(path.join(ROOT, "packages/protocol/dist/Auth.js"))
    const a = Buffer.from(theirs("127.0.0.1:4390", "h1", "bm9uY2U"))
    if (!a.equals(authMessage("127.0.0.1:4390", "h1", "bm9uY2U"))) {
      return "bench/lib/targets.mjs authMessage differs from @conclave/protocol Auth.authMessage: update the harness"
    }
  } catch (e) {
    note(`could not cross-check authMessage with packages/protocol/dist/Auth.js: ${e.message}`)
  }
  try {
    const srv = await startTarget(target, {}).catch((e) => {
      throw e
    })
    await stopServer(srv)
    return null
  } catch (e) {
    return String(e.message).split("\n").slice(0, 8).join("\n")
  }
}

const main = async () => {
  note(`results → ${path.relative(ROOT, outFile)}`)
  note(
    `machine: ${machine.nproc} CPU (${machine.cpu_model}), node ${machine.node}, ws ${machine.ws}, loadavg ${machine.loadavg_start}${
      noisy ? " (NOISY: 1-min load ≥ 0.5)" : ""
    }`
  )
  if (!taskset) note("taskset unavailable (or < 2 CPUs): server and load generator are NOT pinned")
  if (opts.ab !== null) baseBin = prepareBase(opts.ab)
  const wanted = opts.targets ?? (opts.ab !== null ? ["base", "conclave"] : DEFAULT_TARGETS)
  const targets = []
  const absent = {}
  for (const t of wanted) {
    if (t === "nats" && natsVersion === null) {
      absent.nats = "nats-server not installed (apt-get install nats-server); NATS columns are empty"
      note(`NATS ABSENT: ${absent.nats}`)
      continue
    }
    if (CONCLAVE_LIKE.has(t)) {
      const why = await probeConclave(t)
      if (why !== null) {
        absent[t] = why
        note(`CONCLAVE UNAVAILABLE, skipping it: ${why}`)
        continue
      }
    }
    targets.push(t)
  }
  emit({ ts: new Date().toISOString(), kind: "machine", quick: Q, noisy, params, ...machine, absent })
  const scenarios = opts.only ?? SCENARIOS
  const t0 = Date.now()
  for (const scenario of opts.profileOnly ? [] : scenarios) {
    for (let rep = 1; rep <= params.reps; rep++) {
      for (const target of targets) {
        note(`── ${scenario} · ${target} · rep ${rep}/${params.reps}`)
        try {
          emit(await runOne(target, scenario, rep))
        } catch (e) {
          emit({ ts: new Date().toISOString(), target, scenario, rep, ok: false, error: String(e?.message ?? e) })
        }
      }
    }
  }
  let profileText = null
  if (opts.profile && targets.includes("conclave")) profileText = await profile(scenarios)
  const table = summaryTable(targets)
  console.log("\n" + table.text)
  note(`done in ${((Date.now() - t0) / 1000).toFixed(0)} s; results in ${path.relative(ROOT, outFile)}`)
  if (profileText) console.log("\n" + profileText)
  if (opts.writeMd) {
    fs.writeFileSync(path.join(ROOT, "BENCHMARKS.md"), markdown(table, absent, profileText))
    note("BENCHMARKS.md written")
  }
}

const PROFILES = [
  ["fanout1", "fan-out 1→100 at 1000 msg/s", (q) => ({ ladder: [1000], measure: q ? 3 : 10, warm: 1 })],
  ["history", "history append (ack after commit) + read_since", (q) => ({ measure: q ? 3 : 10, warm: 1 })],
  ["whisper", "whispers at 5000/s", (q) => ({ ladder: [5000], measure: q ? 3 : 10, warm: 1 })],
  ["handshake", "handshakes: steady 500/s + storm + reconnect", (q) => ({ sessions: q ? 1000 : 5000 })]
]

const profile = async (scenarios) => {
  const out = []
  const chosen = PROFILES.filter(([s]) => scenarios.includes(s))
  for (const [scenario, what, extra] of chosen.length > 0 ? chosen : PROFILES) {
    const dir = path.join(RESULTS, `prof-${stamp}`, scenario)
    fs.mkdirSync(dir, { recursive: true })
    note(`profiling conclave (node --cpu-prof): ${what}`)
    const srv = await startTarget("conclave", { nodeFlags: ["--cpu-prof", `--cpu-prof-dir=${dir}`] })
    const load = { ...extra(Q), t3Warm: undefined, t3Measure: undefined } // one step, its own window
    if (opts.ladder !== null && load.ladder !== undefined) load.ladder = opts.ladder // e.g. T3's 300 msg/s
    const res = await runLoadgen("conclave", scenario, srv, load)
    await stopServer(srv, 15000)
    if (!res.ok) note(`profile load failed: ${res.error}`)
    const files = fs.readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"))
    if (files.length === 0) {
      out.push(`## ${what}\nno .cpuprofile written (the server did not exit normally on SIGTERM?)`)
      continue
    }
    const text = `## ${what}\n${summarize(path.join(dir, files[0]), 30)}`.replaceAll(ROOT + "/", "")
    fs.writeFileSync(path.join(dir, "top.txt"), text + "\n")
    out.push(text)
  }
  return out.join("\n\n")
}

// ---------------------------------------------------------------------------------------------
// summary
// ---------------------------------------------------------------------------------------------

// [scenario, metric, label, gate text (BENCH-AND-RELIABILITY.md §0), gate check (conclave median c, ratios r)]
const atMost = (x) => (c) => c <= x
const atLeast = (x) => (c) => c >= x
// The issue's latency gate: p99 ≤ 2× the bare server's p99 + 2 ms (bare p99 = c ÷ ratio), and T3's 15 ms.
const p99Gate = (c, r) => c <= 15000 && r.bare > 0 && c <= 2 * (c / r.bare) + 2000
const METRICS = [
  [
    "fanout1",
    "saturation_deliveries_per_s",
    "1→100 saturation deliveries/s",
    "T1 ≥ 0.5× bare",
    (_c, r) => r.bare >= 0.5
  ],
  ["fanout1", "t3_p50_us", "1→100 p50 µs at 30 k deliveries/s", "T3 ≤ 2000", atMost(2000)],
  ["fanout1", "t3_p99_us", "1→100 p99 µs at 30 k deliveries/s", "T3 ≤ 15000 and ≤ 2× bare + 2000", p99Gate],
  ["fanout1", "t3_loop_delay_p99_us", "1→100 server event-loop delay p99 µs at 30 k/s", "", null],
  [
    "fanout1",
    "t3_us_cpu_per_delivery",
    "1→100 server CPU µs/delivery at 30 k/s",
    "T4 ≤ 2× bare",
    (_c, r) => r.bare <= 2
  ],
  [
    "fanout100",
    "saturation_deliveries_per_s",
    "100→100 saturation deliveries/s",
    "T2 ≥ 0.5× bare",
    (_c, r) => r.bare >= 0.5
  ],
  ["fanout100", "t3_p50_us", "100→100 p50 µs at ~30 k deliveries/s", "T3 ≤ 2000", atMost(2000)],
  ["fanout100", "t3_p99_us", "100→100 p99 µs at ~30 k deliveries/s", "T3 ≤ 15000 and ≤ 2× bare + 2000", p99Gate],
  ["fanout100", "t3_us_cpu_per_delivery", "100→100 server CPU µs/delivery", "T4 ≤ 2× bare", (_c, r) => r.bare <= 2],
  ["whisper", "saturation_whispers_per_s", "whispers/s (saturation)", "T5 ≥ 30000", atLeast(30000)],
  ["whisper", "p99_us_at_5k", "whisper p99 µs at 5 k/s", "T5 ≤ 10000", atMost(10000)],
  ["whisper", "us_cpu_per_whisper_at_5k", "server CPU µs/whisper at 5 k/s", "", null],
  ["handshake", "handshakes_per_s", "handshakes/s (storm)", "T6 ≥ 1500", atLeast(1500)],
  ["handshake", "steady_p99_us", "handshake p99 µs at 500/s", "T6 ≤ 50000", atMost(50000)],
  ["handshake", "storm_us_cpu_per_handshake", "server CPU µs/handshake", "", null],
  ["handshake", "reconnect_secs", "reconnect storm s (all sessions)", "T6 ≤ 10 (10 k sessions)", atMost(10)],
  ["handshake", "reconnect_failures", "reconnect storm failures", "T6 = 0", atMost(0)],
  ["handshake", "rss_per_session_bytes", "server RSS bytes per idle session", "T7 ≤ 16384", atMost(16384)],
  ["handshake", "heap_per_session_bytes", "server heap bytes per idle session (after GC)", "", null],
  ["handshake", "kernel_slab_per_session_bytes", "kernel slab bytes per session (pair)", "", null],
  ["history", "append_acks_per_s", "history append acks/s (ack after commit)", "T8 ≥ 20000", atLeast(20000)],
  ["history", "ack_p99_us", "append ack p99 µs", "", null],
  ["history", "read_rows_per_s", "read_since rows/s over WS", "T9 ≥ 50000", atLeast(50000)],
  ["history", "cold_start_with_data_ms", "cold start ms with that store", "T10 ≤ 1500 (1 M rows)", atMost(1500)],
  ["coldstart", "cold_start_ms", "cold start ms (spawn → listening)", "T10 ≤ 1000", atMost(1000)],
  ["clistart", "node_ms", "`node -e ''` ms (spawn → exit)", "", null],
  ["clistart", "version_ms", "`conclave --version` ms", "", null],
  ["clistart", "hook_ms", "`conclave hook claude` ms, nothing new", "", null],
  ["clistart", "version_over_node", "`conclave --version` ÷ `node -e ''`", "issue 21 ≤ 2", atMost(2)],
  ["clistart", "hook_over_node", "`conclave hook claude` ÷ `node -e ''`", "issue 21 ≤ 2", atMost(2)]
]

const fmtNum = (x) => {
  if (x === null || x === undefined) return "—"
  if (Math.abs(x) >= 1000) return Math.round(x).toLocaleString("en-US")
  if (Math.abs(x) >= 10) return String(Math.round(x * 10) / 10)
  return String(Math.round(x * 100) / 100)
}

const LABELS = {
  bare: "bare ws",
  "bare-json": "bare ws + JSON",
  nats: "NATS",
  base: "conclave@base",
  embedded: "embedded",
  traced: "embedded + tracer",
  conclave: "conclave",
  "cluster-local": "cluster, one node (PostgreSQL + NATS)",
  cluster: "cluster (cross-node)"
}

const summaryTable = (targets) => {
  const ok = rows.filter((r) => r.ok && r.result && !r.result.skipped)
  const val = (scenario, target, rep, metric) =>
    ok.find((r) => r.scenario === scenario && r.target === target && r.rep === rep)?.result?.[metric]
  const reps = [...new Set(ok.map((r) => r.rep))]
  // always show bare / NATS / conclave (empty when absent); bare-json only when it ran
  const OPTIONAL = ["bare-json", "base", "embedded", "traced", "cluster-local", "cluster"]
  const cols = TARGETS.filter((t) => !OPTIONAL.includes(t) || targets.includes(t))
  const others = cols.filter((t) => t !== "conclave")
  const lines = []
  const header = ["metric", ...cols.map((t) => LABELS[t]), ...others.map((t) => `conclave / ${LABELS[t]}`), "gate"]
  lines.push(`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`)
  const data = []
  for (const [scenario, metric, label, gate, check] of METRICS) {
    if (!ok.some((r) => r.scenario === scenario)) continue
    const med = (t) => (targets.includes(t) ? median(reps.map((rep) => val(scenario, t, rep, metric))) : null)
    const ratio = (other) =>
      median(reps.map((rep) => {
        const c = val(scenario, "conclave", rep, metric)
        const o = val(scenario, other, rep, metric)
        return typeof c === "number" && typeof o === "number" && o !== 0 && c !== 0 ? c / o : null
      }))
    const m = Object.fromEntries(cols.map((t) => [t, med(t)]))
    const r = Object.fromEntries(others.map((t) => [t, ratio(t)]))
    // a saturation of 0 means the first ladder step already failed: no ratio, shown as "< 1st step"
    const show = (x) => (metric.startsWith("saturation") && x === 0 ? "< 1st step" : fmtNum(x))
    let verdict = ""
    if (check !== null && typeof m.conclave === "number") {
      if (!gate.includes("bare") || typeof r.bare === "number") verdict = check(m.conclave, r) ? " ✅" : " ❌"
    }
    data.push({
      scenario,
      metric,
      label,
      medians: m,
      conclave_over: r,
      gate,
      pass: verdict === "" ? null : verdict === " ✅"
    })
    lines.push(
      `| ${
        [
          label,
          ...cols.map((t) => show(m[t])),
          ...others.map((t) => (r[t] === null ? "—" : r[t].toFixed(2))),
          gate + verdict
        ].join(" | ")
      } |`
    )
  }
  const failed = rows.filter((r) => r.ok === false)
  if (failed.length > 0) {
    lines.push("", "Failed runs:")
    for (const f of failed) {
      lines.push(`- ${f.scenario} · ${f.target} · rep ${f.rep}: ${String(f.error).split("\n")[0]}`)
    }
  }
  return { text: lines.join("\n"), data }
}

// The hand-written reading of the figures (targets missed: by how much and why), kept in
// bench/ANALYSIS.md so that regenerating BENCHMARKS.md does not lose it.
const analysis = () => {
  const file = path.join(BENCH, "ANALYSIS.md")
  return fs.existsSync(file) ? `\n${fs.readFileSync(file, "utf8").trim()}\n` : ""
}

const markdown = (table, absent, profileText) => {
  const mode = Q
    ? `\`--quick\` (${params.measure} s windows, ${params.reps} repetition${
      params.reps > 1 ? "s" : ""
    }, ${params.sessions} sessions: a smoke test, not a measurement)`
    : `${params.reps} repetitions, ${params.measure} s measured per step`
  return `# Benchmarks

Generated by \`npm run bench -- --write-md\` (\`node bench/run.mjs\`) on ${new Date().toISOString()}.
Raw rows: \`bench/results/${path.basename(outFile)}\` (not committed; one JSON line per run).

## Latest figures

Mode: ${mode}.${
    noisy
      ? `\n\n**Noisy machine:** 1-minute load average was ${
        machine.loadavg_start.split(" ")[0]
      } at the start (other work was running). Trust ratios taken within this run more than absolute numbers.`
      : ""
  }
Medians over repetitions; ratios are the median of per-repetition ratios (conclave ÷ other: above 1 is
better for throughput rows, worse for latency/CPU/memory rows).

${table.text}

${Object.entries(absent).map(([t, why]) => `- **${t} absent:** ${why.split("\n")[0]}`).join("\n")}
${analysis()}
## Machine

| | |
|---|---|
| CPUs (nproc) | ${machine.nproc} |
| CPU model | ${machine.cpu_model} |
| memory | ${machine.mem_gib} GiB |
| kernel | ${machine.kernel} |
| Node | ${machine.node} |
| ws | ${machine.ws} |
| nats-server | ${machine.nats_server ?? "not installed"} |
| pinning | ${machine.taskset ? "server on CPU0, load generator on CPU1 (taskset)" : "none (taskset unavailable)"} |
| commit | ${machine.git_rev ?? "?"} |
| load average at start | ${machine.loadavg_start} |

## Method

- **Targets**, run interleaved per scenario (bare, NATS, conclave, bare, NATS, conclave, …), each a
  fresh process pinned to CPU0: (A) \`bench/servers/bare-ws.mjs\`, a bare \`ws\` ${machine.ws} broadcast
  server (no auth, no store, payload bytes forwarded without re-encoding: the same-runtime floor);
  (B) \`nats-server\` with its WebSocket listener (\`no_tls\`, no compression; clients connect with
  \`echo:false\`); (C) \`conclave serve --bind 127.0.0.1:0 ${
    opts.store === "memory" ? "--ephemeral" : "--data-dir <tmp>"
  }\`
  with \`--rate\`/\`--burst\`/\`--max-pending-per-ip\` raised and \`--register-limit 0\` so D-10's limits do not
  cap the load (every post is still committed before its ack, D-5).
- **Load generator** (\`bench/loadgen.mjs\`, a fresh process per run pinned to CPU1): raw TCP +
  hand-written RFC 6455 parser, no per-message allocation on the receive path; each body is 200 bytes
  starting with a 12-digit µs timestamp from the generator's own clock (\`performance.now()\`), so
  latency needs no clock sync. Conclave sessions do the real handshake: \`hello\` with \`host\` = the
  dialed authority, Ed25519 signature over \`conclave-auth-v1\\n<host>\\n<handle>\\n<nonce>\` (D-3),
  \`register\` for each user once, then \`auth\`, \`join\`, \`channel_msg\` posts, \`whisper\`, \`read_since\`.
- **Open loop:** publishers send on a 1-ms tick whatever the schedule says is due, whatever the server
  does; when the generator itself falls > 1 ms behind, the message keeps its scheduled time (no
  coordinated omission). Deliveries are counted when their stamp falls in the measured window;
  latency is per delivery (send stamp → that subscriber's receipt, read once per TCP chunk), and
  "lost" means not received by the end of the drain.
- **Steps:** warm-up ${params.warm} s, measured ${params.measure} s, drain ≤ ${params.drain} s (the first fan-out step, which
  gives the T3 latency and T4 CPU figures: warm-up ${params.t3Warm} s, measured ${params.t3Measure} s, as §5.3 prescribes); a ladder of rates
  (fan-out ${params.fanoutLadder.join(", ")} msg/s; whispers ${params.whisperLadder.join(", ")}/s), stopping at
  the first step that fails. **Saturation** = the highest offered rate (deliveries/s) of a step with 0 loss, p99 ≤ 100 ms,
  server CPU ≤ 0.95 core, no error frames; a step where the load generator exceeds 0.8 core is marked
  client-bound (the figure is then a floor, not the server's limit).
- **Optional target \`bare-json\`** (\`--targets bare,bare-json,nats,conclave\`): the bare server in JSON
  mode — conclave-shaped \`channel_msg\`/\`whisper\` frames parsed with \`JSON.parse\`, the delivery
  \`JSON.stringify\`'d once, an \`ack\` per post: what the wire format costs without auth, store,
  Schema or Effect.
- **Fan-out 1→100:** 100 subscribers + 1 publisher in one channel (publisher joined; senders never get
  their own message). **100→100:** 100 sessions all publishing and subscribing (99 deliveries per message).
  The first ladder step (300 msg/s ≈ 30 k deliveries/s) gives the latency (T3) and CPU (T4) figures.
- **Server CPU per delivery** = Δ(utime+stime) of the server process over the measured window
  (\`/proc/<pid>/stat\`) ÷ deliveries in it.
- **Event-loop delay** of the Node servers (bare, conclave): a preload (\`node --import
  bench/lib/eld-preload.mjs\`, \`monitorEventLoopDelay\` at 10 ms resolution) that the load generator
  asks for p99/max over each measured window (SIGUSR2); the server's own code is not touched.
- **Whispers:** 100 sender→receiver pairs (NATS: one subject per receiver; bare: named connections).
- **Handshakes:** ${params.steadyRate}/s open-loop connect→authenticated→close for ${params.steadySecs} s (latency), then a cold storm of
  ${params.sessions} sessions (${params.concurrency} in flight; conclave: ${params.keys} registered keys, handle per session;
  each joins two channels) which stay idle for the memory figure (server RSS delta ÷ sessions; kernel
  slab delta from \`/proc/meminfo\` ÷ sessions, i.e. per loopback socket pair; Node servers also report
  V8 heap used after a forced full GC through the preload — the stable figure; RSS moves with GC
  timing), then every socket is
  dropped at once and all sessions reconnect (${params.concurrency} in flight); time to all re-established.
  Bare ws: upgrade + subscribe; NATS: CONNECT + SUB + PING/PONG — no signature, so they are floors.
- **History (conclave only):** ${params.histSessions} sessions each posting to its own channel with ${params.histWindow} posts in
  flight (acks are sent after COMMIT, D-5); acks/s over the window, then one reader pages \`read_since\`
  (≤ 500 rows a page) through one channel from seq 0; then the server is restarted on that data dir
  and its cold start timed.
- **CLI start (\`clistart\`, \`bench/cli-start.mjs\`):** \`node -e ''\`, \`conclave --version\` and \`conclave hook claude\`
  (UserPromptSubmit input, empty config directory: nothing new) spawned interleaved, ${params.cliRounds} rounds,
  wall time spawn → exit; the ratios are medians of per-round ratios (issue 21: each verb ≤ 2× the bare node start).
- **Cold start:** spawn → the "listening" log line, ${params.coldSpawns} spawns, median (conclave: empty data dir).

## Reproduce

\`\`\`sh
apt-get install nats-server        # optional; the harness says so and continues without it
npx tsc -b packages/cli            # builds the conclave binary and its dependencies
npm run bench -- --quick           # smoke test, < 2 min
npm run bench -- --write-md        # full run (quiet machine: ~30–40 min), regenerates this file
npm run bench -- --only fanout1 --reps 1 --duration 10
npm run bench -- --only fanout1 --targets conclave --reps 1 --profile   # CPU profile hot spots
npm run bench -- --only whisper --targets conclave --profile-only        # profile one scenario, no measured runs
node bench/handshake-stages.mjs 3000                # server CPU per handshake stage vs the bare ws upgrade
\`\`\`

${
    profileText
      ? `## CPU profile of conclave (latest \`--profile\` run)\n\n\`node --cpu-prof\` on the server; full listings in \`bench/results/prof-${stamp}/*/top.txt\`.\n\n\`\`\`\n${profileText}\n\`\`\`\n\n`
      : ""
  }${
    heapSummaries.length > 0
      ? `## Heap growth per idle session (latest \`--heap-snapshot\` run)\n\nShallow size by object kind, snapshot with the sessions held minus the snapshot before the storm.\n\n\`\`\`\n${
        heapSummaries.join("\n\n")
      }\n\`\`\`\n\n`
      : ""
  }## Not measured here

- T11 (30-minute soak with churn) is \`npm run soak\`; its figures are in RELIABILITY.md.
- Syscalls per delivery (an strace run), idle sessions beyond ~28 k (needs \`ulimit -n\` and several
  source addresses), a 1 M-row store for cold start and read_since (the history scenario uses what it
  appended).
`
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
