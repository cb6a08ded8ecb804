// In-process A/B helpers for the micro-benchmarks (micro.mjs, alloc.mjs, idle-heap.mjs): a server built
// from a given tree (this one, or an earlier commit's worktree under bench/.ab/), and a minimal raw
// client that registers or authenticates a session, optionally joining channels.
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import WebSocket from "ws"

export const ROOT = path.dirname(path.dirname(path.dirname(fileURLToPath(import.meta.url))))

/** The worktree of an earlier commit's build, made by `run.mjs --ab <sha>`. */
export const abRoot = (sha) => {
  const found = fs.existsSync(path.join(ROOT, "bench/.ab"))
    ? fs.readdirSync(path.join(ROOT, "bench/.ab")).find((d) => d.startsWith(sha))
    : undefined
  if (!found) throw new Error(`no bench/.ab/${sha}* (run bench/run.mjs --ab ${sha} first)`)
  return path.join(ROOT, "bench/.ab", found)
}

/** The server of the tree at `root` on port 0 over a SQLite file, logs off; `close()` drains it. */
export const loadServer = async (root) => {
  const server = await import(path.join(root, "packages/server/dist/index.js"))
  const { Context, Effect, Exit, Layer, Logger, LogLevel, Scope } = await import(
    path.join(ROOT, "node_modules/effect/dist/esm/index.js")
  )
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bench-inproc-"))
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
  return {
    url: Context.get(ctx, server.ServerLive.ServerAddress).url,
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

export const newKey = () => crypto.generateKeyPairSync("ed25519")
const pub = (k) => k.publicKey.export({ format: "jwk" }).x
let joinIds = 0

/**
 * A session: `register` names the user to register the key as (else plain auth); each channel of
 * `joins` is joined before it resolves.
 */
export const openSession = (url, key, handle, register, joins = []) =>
  new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    const host = new URL(url).host
    let waiting = 0
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
        ws.send(JSON.stringify({ type: "auth", pubkey: pub(key), signature: Buffer.from(sig).toString("base64url") }))
      } else if (f.type === "server_info") {
        waiting = joins.length
        for (const channel of joins) {
          ws.send(JSON.stringify({ type: "join", id: `j${++joinIds}`, channel, token: null }))
        }
        if (waiting === 0) {
          ws.off("message", onMsg)
          resolve(ws)
        }
      } else if (f.type === "joined" && --waiting === 0) {
        ws.off("message", onMsg)
        resolve(ws)
      } else if (f.type === "error") {
        reject(new Error(JSON.stringify(f)))
      }
    })
  })

/** Close and wait for the close. */
export const closeSession = (ws) =>
  new Promise((r) => {
    ws.on("close", r)
    ws.close()
  })
