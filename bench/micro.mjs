#!/usr/bin/env node
// In-process A/B micro-benchmark of the server's per-request CPU (handshakes, whispers), for a noisy
// machine: the same client drives a server built from this tree and one from an earlier commit's
// worktree (bench/.ab/<sha>, made by `run.mjs --ab`), alternating, and the process CPU per operation
// is compared. The client's share is the same on both sides, so the difference is the server's.
//
//   node bench/micro.mjs <sha> [--rounds 5] [--n 2000]
import * as crypto from "node:crypto"
import * as fs from "node:fs"
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
const ROUNDS = opt("--rounds", 5), N = opt("--n", 2000)
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

const measure = async (url, first) => {
  if (first) {
    await closed(await open(url, keys[0], "reg0", "alice"))
    await closed(await open(url, keys[1], "reg1", "bob"))
  }
  let t = process.cpuUsage()
  const handshakes = args.includes("--whispers-only") ? 0 : N
  for (let i = 0; i < handshakes; i++) await closed(await open(url, keys[0], `h${i % 50}`))
  let d = process.cpuUsage(t)
  const hs = (d.user + d.system) / N
  if (args.includes("--handshakes-only")) return { hs, wh: 0 }
  const a = await open(url, keys[0], "wa"), b = await open(url, keys[1], "wb")
  const target = { user: "bob", machine: "m", session: "wb" }
  const acks = () =>
    new Promise((r) => {
      let n = 0
      const on = () => {
        if (++n === N) {
          a.off("message", on)
          r()
        }
      }
      a.on("message", on)
    })
  t = process.cpuUsage()
  const done = acks()
  for (let i = 0; i < N; i++) {
    a.send(JSON.stringify({ type: "whisper", id: `w${i}`, target, payload: { kind: "plain", text: "x".repeat(100) } }))
  }
  await done
  d = process.cpuUsage(t)
  await closed(a)
  await closed(b)
  return { hs, wh: (d.user + d.system) / N }
}

// --side base|head: run one side only (to profile it)
const side = args.includes("--side") ? args[args.indexOf("--side") + 1] : null
const A = side === "head" ? null : await load(path.join(ROOT, "bench/.ab", base))
const B = side === "base" ? null : await load(ROOT)
const rows = { base: [], head: [] }
for (let r = 0; r < ROUNDS; r++) {
  if (A !== null) rows.base.push(await measure(A.url, r === 0))
  if (B !== null) rows.head.push(await measure(B.url, r === 0))
}
if (A === null) rows.base = rows.head
if (B === null) rows.head = rows.base
const med = (xs) => xs.slice().sort((x, y) => x - y)[Math.floor(xs.length / 2)]
for (const k of ["hs", "wh"]) {
  const b = med(rows.base.map((x) => x[k])), h = med(rows.head.map((x) => x[k]))
  console.log(
    `${k === "hs" ? "handshake" : "whisper  "} µs CPU/op (client+server): base ${b.toFixed(1)}  head ${
      h.toFixed(1)
    }  head/base ${(h / b).toFixed(2)}`
  )
}
console.log(`loadavg ${os.loadavg().map((x) => x.toFixed(2)).join(" ")}`)
process.exit(0)
