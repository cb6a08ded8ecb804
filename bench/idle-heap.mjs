#!/usr/bin/env node
// In-process A/B of the heap an idle authenticated session holds (after GC), this tree against an
// earlier commit's build (bench/.ab/<sha>, made by `run.mjs --ab`): N sessions each join two channels
// and stay idle; heap growth ÷ N. Heap counts are the same under load, unlike timings.
//
//   node --expose-gc bench/idle-heap.mjs <sha> [--n 1000] [--snapshot DIR]
// With --snapshot, heap snapshots before and after (per side) go to DIR, for bench/heap-top.mjs.
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { writeHeapSnapshot } from "node:v8"
import WebSocket from "ws"

const ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const args = process.argv.slice(2)
const sha = args[0]
const snapDir = args.includes("--snapshot") ? args[args.indexOf("--snapshot") + 1] : undefined
const N = args.includes("--n") ? Number(args[args.indexOf("--n") + 1]) : 1000
const base = fs.readdirSync(path.join(ROOT, "bench/.ab")).find((d) => d.startsWith(sha))
if (!base) throw new Error(`no bench/.ab/${sha}* (run bench/run.mjs --ab ${sha} first)`)
if (typeof globalThis.gc !== "function") throw new Error("run with node --expose-gc")

const { Effect, Layer, Context, Logger, LogLevel, Scope, Exit } = await import(
  path.join(ROOT, "node_modules/effect/dist/esm/index.js")
)
const start = async (root) => {
  const server = await import(path.join(root, "packages/server/dist/index.js"))
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "idle-heap-"))
  const layer = server.ServerLive.ServerLive.pipe(
    Layer.provide(server.ServerConfig.layer({
      host: "127.0.0.1",
      port: 0,
      ratePerSecond: 0,
      maxPendingPerIp: 0,
      registerLimitPerMinute: 0
    })),
    Layer.provide(server.SqliteStore.layer({ filename: path.join(dir, "db.sqlite") }))
  )
  const scope = await Effect.runPromise(Scope.make())
  const ctx = await Effect.runPromise(
    Layer.buildWithScope(layer, scope).pipe(
      Logger.withMinimumLogLevel(LogLevel.Info),
      Effect.provide(Logger.replace(Logger.defaultLogger, Logger.make(() => {})))
    )
  )
  return {
    url: Context.get(ctx, server.ServerLive.ServerAddress).url,
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

const key = crypto.generateKeyPairSync("ed25519")
const pub = key.publicKey.export({ format: "jwk" }).x
let ids = 0
const open = (url, handle, register, joins) =>
  new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    const host = new URL(url).host
    ws.on("error", reject)
    ws.on("open", () =>
      ws.send(JSON.stringify({ type: "hello", protocol_version: 1, session: handle, host, client: "bridge" })))
    let waiting = 0
    ws.on("message", function onMsg(data) {
      const f = JSON.parse(String(data))
      if (f.type === "challenge") {
        if (register) {
          ws.send(JSON.stringify({ type: "register", username: "alice", machine: "m", pubkey: pub }))
        }
        const sig = crypto.sign(null, Buffer.from(`conclave-auth-v1\n${host}\n${handle}\n${f.nonce}`), key.privateKey)
        ws.send(JSON.stringify({ type: "auth", pubkey: pub, signature: Buffer.from(sig).toString("base64url") }))
      } else if (f.type === "server_info") {
        waiting = joins.length
        if (waiting === 0) {
          ws.off("message", onMsg)
          resolve(ws)
        }
        for (const channel of joins) {
          ws.send(JSON.stringify({ type: "join", id: `j${++ids}`, channel, token: null }))
        }
      } else if (f.type === "ack" || f.type === "joined") {
        if (--waiting === 0) {
          ws.off("message", onMsg)
          resolve(ws)
        }
      } else if (f.type === "error") {
        reject(new Error(JSON.stringify(f)))
      }
    })
  })
const heap = () => {
  for (let i = 0; i < 4; i++) globalThis.gc()
  return process.memoryUsage().heapUsed
}

const measure = async (root, side) => {
  const server = await start(root)
  const admin = await open(server.url, "admin", true, [])
  for (const c of ["a", "b"]) {
    await new Promise((r) => {
      admin.once("message", r)
      admin.send(
        JSON.stringify({ type: "admin", id: `c${c}`, op: { kind: "create_channel", name: c, visibility: "public" } })
      )
    })
  }
  // warm up the paths, then measure
  const warm = []
  for (let i = 0; i < 200; i++) warm.push(await open(server.url, `w${i}`, false, ["a", "b"]))
  const before = heap()
  if (snapDir !== undefined) writeHeapSnapshot(path.join(snapDir, `${side}-before.heapsnapshot`))
  const held = []
  for (let i = 0; i < N; i++) held.push(await open(server.url, `s${i}`, false, ["a", "b"]))
  const after = heap()
  if (snapDir !== undefined) writeHeapSnapshot(path.join(snapDir, `${side}.heapsnapshot`))
  for (const ws of [...held, ...warm, admin]) ws.terminate()
  await server.close()
  return (after - before) / N
}
const b = await measure(path.join(ROOT, "bench/.ab", base), "base")
const h = await measure(ROOT, "head")
console.log(
  `heap bytes per idle session (2 joins): base ${b.toFixed(0)}  head ${h.toFixed(0)}  head/base ${(h / b).toFixed(2)}`
)
process.exit(0)
