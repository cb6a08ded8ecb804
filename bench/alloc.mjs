#!/usr/bin/env node
// Bytes allocated per handshake by the server, by function (V8's sampling heap profiler, counting
// objects already collected too): a figure that does not move with the machine's load, unlike CPU
// time. The client runs in the same process; its share is the same on both sides.
//
//   node bench/alloc.mjs <sha> [--n 2000] [--top 30]
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as inspector from "node:inspector/promises"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import WebSocket from "ws"

const ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const args = process.argv.slice(2)
const sha = args[0]
const opt = (name, d) => {
  const i = args.indexOf(name)
  return i >= 0 ? Number(args[i + 1]) : d
}
const N = opt("--n", 2000), TOP = opt("--top", 30)
const base = fs.readdirSync(path.join(ROOT, "bench/.ab")).find((d) => d.startsWith(sha))
if (!base) throw new Error(`no bench/.ab/${sha}* (run bench/run.mjs --ab ${sha} first)`)

const load = async (root) => {
  const server = await import(path.join(root, "packages/server/dist/index.js"))
  const { Effect, Layer, Context, Logger, LogLevel, Scope } = await import(
    path.join(ROOT, "node_modules/effect/dist/esm/index.js")
  )
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "micro-"))
  const layer = server.ServerLive.ServerLive.pipe(
    Layer.provide(
      server.ServerConfig.layer({
        host: "127.0.0.1",
        port: 0,
        ratePerSecond: 0,
        maxPendingPerIp: 0,
        registerLimitPerMinute: 0
      })
    ),
    Layer.provide(server.SqliteStore.layer({ filename: path.join(dir, "db.sqlite") }))
  )
  const scope = await Effect.runPromise(Scope.make())
  const ctx = await Effect.runPromise(
    Layer.buildWithScope(layer, scope).pipe(
      Logger.withMinimumLogLevel(LogLevel.Info),
      Effect.withTracerEnabled(false),
      Effect.provide(Logger.replace(Logger.defaultLogger, Logger.make(() => {})))
    )
  )
  const url = Context.get(ctx, server.ServerLive.ServerAddress).url
  return { url }
}

const b64u = (b) => Buffer.from(b).toString("base64url")
const keys = Array.from({ length: 2 }, () => crypto.generateKeyPairSync("ed25519"))
const pub = (k) => k.publicKey.export({ format: "jwk" }).x
const open = (url, key, handle, register) =>
  new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    const host = new URL(url).host
    ws.on("error", reject)
    ws.on("open", () =>
      ws.send(JSON.stringify({ type: "hello", protocol_version: 1, session: handle, host, client: "bridge" })))
    ws.on("message", function onMsg(data) {
      const f = JSON.parse(String(data))
      if (f.type === "challenge") {
        if (register) {
          ws.send(JSON.stringify({ type: "register", username: register, machine: "m", pubkey: pub(key) }))
        }
        const sig = crypto.sign(null, Buffer.from(`conclave-auth-v1\n${host}\n${handle}\n${f.nonce}`), key.privateKey)
        ws.send(JSON.stringify({ type: "auth", pubkey: pub(key), signature: b64u(sig) }))
      } else if (f.type === "server_info") {
        ws.off("message", onMsg)
        resolve(ws)
      } else if (f.type === "error") {
        reject(new Error(JSON.stringify(f)))
      }
    })
  })
const closed = (ws) =>
  new Promise((r) => {
    ws.on("close", r)
    ws.close()
  })

const session = new inspector.Session()
session.connect()
const label = (n) =>
  `${n.callFrame.functionName || "(anonymous)"} ${
    n.callFrame.url.replace(/^.*?\/(packages|node_modules)\//, "$1/").replace(/bench\/\.ab\/[0-9a-f]+\//, "")
  }:${n.callFrame.lineNumber + 1}`
const sample = async (url) => {
  for (let i = 0; i < 300; i++) await closed(await open(url, keys[0], `w${i % 50}`))
  await session.post("HeapProfiler.startSampling", {
    samplingInterval: 256,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true
  })
  for (let i = 0; i < N; i++) await closed(await open(url, keys[0], `h${i % 50}`))
  const { profile } = await session.post("HeapProfiler.stopSampling")
  const bySite = new Map()
  let total = 0
  const walk = (n) => {
    total += n.selfSize
    if (n.selfSize > 0) bySite.set(label(n), (bySite.get(label(n)) ?? 0) + n.selfSize)
    for (const c of n.children) walk(c)
  }
  walk(profile.head)
  return { total: total / N, bySite }
}
const A = await load(path.join(ROOT, "bench/.ab", base))
const B = await load(ROOT)
await closed(await open(A.url, keys[0], "reg0", "alice"))
await closed(await open(B.url, keys[0], "reg0", "alice"))
const a = await sample(A.url)
const b = await sample(B.url)
console.log(
  `bytes allocated per handshake (client+server): base ${a.total.toFixed(0)}  head ${b.total.toFixed(0)}  head/base ${
    (b.total / a.total).toFixed(2)
  }`
)
const sites = new Set([...a.bySite.keys(), ...b.bySite.keys()])
const rows = [...sites].map((s) => [s, (a.bySite.get(s) ?? 0) / N, (b.bySite.get(s) ?? 0) / N])
rows.sort((x, y) => Math.max(y[1], y[2]) - Math.max(x[1], x[2]))
console.log("   base    head  site")
for (const [s, x, y] of rows.slice(0, TOP)) console.log(`${x.toFixed(0).padStart(7)} ${y.toFixed(0).padStart(7)}  ${s}`)
process.exit(0)
