/**
 * The bridge's side of `conclave hook claude` (D-52): a Unix socket, private to the user, on which
 * the hook takes this session's unsurfaced inbox items (see `HookWire.ts` for the wire). Owned by
 * the bridge's scope: closing it closes the listener and removes the socket file.
 *
 * @since 0.1.0
 */
import * as Directory from "@conclave/client/Directory"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import * as HookWire from "./HookWire.js"
import type { Inbox } from "./Inbox.js"

/** The socket could not be set up (the bridge goes on without the hook). @since 0.1.0 @category errors */
export class HookSocketError extends Data.TaggedError("HookSocketError")<{
  readonly path: string
  readonly cause: unknown
}> {}

/** A request line longer than this closes the connection. */
const MAX_REQUEST_BYTES = 4_096

/** Remove socket files left by bridges that are no longer running. */
const sweep = (dir: string) =>
  Effect.sync(() => {
    for (const name of Fs.readdirSync(dir)) {
      const parsed = HookWire.parseSocketName(name)
      if (parsed !== undefined && !HookWire.isAlive(parsed.bridgePid)) Fs.rmSync(Path.join(dir, name), { force: true })
    }
  })

const answer = (socket: Net.Socket, inbox: Inbox, run: (e: Effect.Effect<void>) => Promise<void>) => {
  let buffered = ""
  socket.setEncoding("utf8")
  socket.on("error", () => socket.destroy())
  socket.on("data", (chunk: string) => {
    buffered += chunk
    const end = buffered.indexOf("\n")
    if (end === -1) {
      if (buffered.length > MAX_REQUEST_BYTES) socket.destroy()
      return
    }
    socket.removeAllListeners("data")
    const request = HookWire.decodeRequest(buffered.slice(0, end))
    if (typeof request === "string") {
      void run(Effect.logDebug("hook request refused").pipe(Effect.annotateLogs({ reason: request })))
      socket.destroy()
      return
    }
    void run(
      inbox.take(request.max_chars, HookWire.ITEM_SEPARATOR).pipe(
        Effect.tap((items) =>
          items.length === 0 ? Effect.void : Effect.logDebug("hook took inbox items").pipe(
            Effect.annotateLogs({ items: items.length })
          )
        ),
        Effect.flatMap((items) => Effect.sync(() => socket.end(HookWire.encodeReply(items))))
      )
    )
  })
}

/**
 * Listen for the hook on `<socketDir>/<client pid>-<bridge pid>.sock` until the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const serve = (options: {
  readonly configDir: string
  readonly inbox: Inbox
  readonly clientPid: number
}): Effect.Effect<string, HookSocketError, Scope.Scope> =>
  Effect.gen(function*() {
    const dir = HookWire.socketDir(options.configDir)
    const path = Path.join(dir, HookWire.socketName(options.clientPid, process.pid))
    const fail = (cause: unknown) => new HookSocketError({ path, cause })
    yield* Effect.try({
      try: () => {
        Directory.makeSync(dir)
        Fs.chmodSync(dir, 0o700)
        Fs.rmSync(path, { force: true })
      },
      catch: fail
    })
    yield* sweep(dir).pipe(Effect.catchAllDefect(() => Effect.void))
    const run = yield* FiberSet.makeRuntimePromise<never>()
    yield* Effect.acquireRelease(
      Effect.async<Net.Server, HookSocketError>((resume) => {
        const server = Net.createServer((socket) => answer(socket, options.inbox, run))
        server.once("error", (e) => resume(Effect.fail(fail(e))))
        server.listen(path, () => {
          server.removeAllListeners("error")
          server.on("error", () => undefined)
          resume(Effect.succeed(server))
        })
      }),
      (server) =>
        Effect.async<void>((resume) => {
          server.close(() => resume(Effect.void))
        }).pipe(
          Effect.timeout(500),
          Effect.ignore,
          Effect.zipRight(Effect.sync(() => Fs.rmSync(path, { force: true })))
        )
    )
    yield* Effect.logDebug("hook socket listening").pipe(Effect.annotateLogs({ path }))
    return path
  })
