/**
 * A small TCP fault-injection proxy for tests (BENCH-AND-RELIABILITY §6.2): clients dial the
 * proxy, the proxy dials the target, and the current mode decides what happens to the bytes.
 * The mode is switchable at runtime and applies to live and future connections.
 *
 * * `pass` — forward both ways.
 * * `delay` — forward each chunk after `ms`, order kept.
 * * `blackhole` — swallow everything both ways and never close (no FIN, no RST): a dead network.
 * * `rst` — reset every connection (TCP RST both ways); new connections are reset at once.
 * * `halfClose` — send FIN to the server side (client→server write side closed), keep the rest.
 * * `throttle` — forward at most `bytesPerSecond` per direction.
 *
 * Plain Node sockets inside a scoped Effect: the per-chunk path is callback code by necessity.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Net from "node:net"

/** @since 0.1.0 @category models */
export type Mode =
  | { readonly _tag: "pass" }
  | { readonly _tag: "delay"; readonly ms: number }
  | { readonly _tag: "blackhole" }
  | { readonly _tag: "rst" }
  | { readonly _tag: "halfClose" }
  | { readonly _tag: "throttle"; readonly bytesPerSecond: number }

/** @since 0.1.0 @category constructors */
export const Modes = {
  pass: { _tag: "pass" } as Mode,
  blackhole: { _tag: "blackhole" } as Mode,
  rst: { _tag: "rst" } as Mode,
  halfClose: { _tag: "halfClose" } as Mode,
  delay: (ms: number): Mode => ({ _tag: "delay", ms }),
  throttle: (bytesPerSecond: number): Mode => ({ _tag: "throttle", bytesPerSecond })
} as const

/** One proxied connection. @since 0.1.0 @category models */
export interface Pair {
  readonly id: number
  readonly client: Net.Socket
  readonly upstream: Net.Socket
  /** Mode override for this connection only (undefined = follow the proxy's mode). */
  mode: Mode | undefined
  /** Reset this connection now. */
  readonly reset: () => void
}

/** @since 0.1.0 @category models */
export interface FaultProxy {
  readonly port: number
  /** `ws://127.0.0.1:<port>` */
  readonly url: string
  readonly mode: () => Mode
  /** Switch every connection (live and future) that has no override. */
  readonly setMode: (mode: Mode) => void
  /** Live connections, oldest first. */
  readonly pairs: () => ReadonlyArray<Pair>
  /** Switch one connection. */
  readonly setPairMode: (pair: Pair, mode: Mode) => void
  /** Connections accepted so far. */
  readonly accepted: () => number
}

const destroyHard = (socket: Net.Socket) => {
  if (socket.destroyed) return
  try {
    socket.resetAndDestroy()
  } catch {
    socket.destroy()
  }
}

interface Direction {
  readonly from: Net.Socket
  readonly to: Net.Socket
  queue: Array<Buffer>
  busy: boolean
}

/**
 * Listen on 127.0.0.1 (port 0) and forward to `target`. Closing the scope closes every connection.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (target: { readonly host: string; readonly port: number }) =>
  Effect.flatMap(FiberSet.makeRuntime<never, void, never>(), (runFork) => {
    // Delayed and throttled chunks wait on Effect's clock, in fibers the proxy's scope owns (a pending
    // delay is interrupted when the proxy closes).
    const after = (ms: number, f: () => void) => {
      runFork(Effect.zipRight(Effect.sleep(Duration.millis(ms)), Effect.sync(f)))
    }
    return make_(target, after)
  })

const make_ = (
  target: { readonly host: string; readonly port: number },
  after: (ms: number, f: () => void) => void
) =>
  Effect.acquireRelease(
    Effect.async<{ readonly server: Net.Server; readonly proxy: FaultProxy }, Error>((resume) => {
      let current: Mode = Modes.pass
      let nextId = 0
      let accepted = 0
      const live = new Map<number, Pair>()
      const modeOf = (pair: Pair) => pair.mode ?? current

      const apply = (pair: Pair) => {
        const mode = modeOf(pair)
        if (mode._tag === "rst") pair.reset()
        else if (mode._tag === "halfClose") {
          if (!pair.upstream.destroyed && pair.upstream.writable) pair.upstream.end()
        }
      }

      const pump = (pair: Pair, dir: Direction) => {
        if (dir.busy) return
        const chunk = dir.queue.shift()
        if (chunk === undefined) return
        const mode = modeOf(pair)
        const write = () => {
          if (!dir.to.destroyed && dir.to.writable) dir.to.write(chunk)
        }
        if (mode._tag === "delay") {
          dir.busy = true
          after(mode.ms, () => {
            dir.busy = false
            write()
            pump(pair, dir)
          })
        } else if (mode._tag === "throttle") {
          const rate = Math.max(1, mode.bytesPerSecond)
          const slice = Math.max(1, Math.floor(rate / 10))
          if (chunk.length > slice) dir.queue.unshift(chunk.subarray(slice))
          const piece = chunk.subarray(0, slice)
          dir.busy = true
          if (!dir.to.destroyed && dir.to.writable) dir.to.write(piece)
          after(Math.ceil((piece.length / rate) * 1000), () => {
            dir.busy = false
            pump(pair, dir)
          })
        } else {
          write()
          pump(pair, dir)
        }
      }

      const onChunk = (pair: Pair, dir: Direction, chunk: Buffer, towardServer: boolean) => {
        const mode = modeOf(pair)
        switch (mode._tag) {
          case "blackhole":
          case "rst":
            return
          case "halfClose":
            if (towardServer) return
            break
          default:
            break
        }
        dir.queue.push(chunk)
        pump(pair, dir)
      }

      const server = Net.createServer({ allowHalfOpen: true }, (client) => {
        accepted++
        const id = nextId++
        const upstream = Net.connect({ host: target.host, port: target.port, allowHalfOpen: true })
        const pair: Pair = {
          id,
          client,
          upstream,
          mode: undefined,
          reset: () => {
            destroyHard(client)
            destroyHard(upstream)
          }
        }
        live.set(id, pair)
        const up: Direction = { from: client, to: upstream, queue: [], busy: false }
        const down: Direction = { from: upstream, to: client, queue: [], busy: false }
        client.setNoDelay(true)
        upstream.setNoDelay(true)
        client.on("data", (chunk: Buffer) => onChunk(pair, up, chunk, true))
        upstream.on("data", (chunk: Buffer) => onChunk(pair, down, chunk, false))
        const ended = (to: Net.Socket) => () => {
          const mode = modeOf(pair)
          if (mode._tag === "blackhole") return
          if (!to.destroyed && to.writable) to.end()
        }
        client.on("end", ended(upstream))
        upstream.on("end", ended(client))
        const gone = () => {
          live.delete(id)
          const mode = modeOf(pair)
          if (mode._tag === "blackhole") return
          if (mode._tag === "rst") {
            destroyHard(client)
            destroyHard(upstream)
          } else {
            client.destroy()
            upstream.destroy()
          }
        }
        client.on("error", () => {})
        upstream.on("error", () => {})
        client.on("close", gone)
        upstream.on("close", gone)
        apply(pair)
      })
      server.on("error", (e) => resume(Effect.fail(e)))
      server.listen(0, "127.0.0.1", () => {
        const port = (server.address() as Net.AddressInfo).port
        const proxy: FaultProxy = {
          port,
          url: `ws://127.0.0.1:${port}`,
          mode: () => current,
          setMode: (mode) => {
            current = mode
            for (const pair of [...live.values()]) if (pair.mode === undefined) apply(pair)
          },
          pairs: () => [...live.values()],
          setPairMode: (pair, mode) => {
            pair.mode = mode
            apply(pair)
          },
          accepted: () => accepted
        }
        resume(Effect.succeed({ server, proxy }))
      })
    }),
    ({ proxy, server }) =>
      Effect.async<void>((resume) => {
        for (const pair of proxy.pairs()) {
          pair.client.destroy()
          pair.upstream.destroy()
        }
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map(({ proxy }) => proxy))
