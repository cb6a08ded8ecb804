/**
 * One-shot server sessions (SPEC §6.1): connect as `<user>/<machine>/cli-<pid>` with
 * `client: "cli"`, send requests, print, disconnect. Bounds: 10 s connect, 15 s per reply.
 *
 * @since 0.1.0
 */
import { Connection, type Identity, Replies } from "@conclave/client"
import { type Frames, Names } from "@conclave/protocol"
import * as Effect from "effect/Effect"
import { CliError } from "./CliError.js"
import * as Ctx from "./Context.js"
import type { GlobalOptions } from "./GlobalOptions.js"

/** @since 0.1.0 @category models */
export interface SessionOptions {
  readonly handle?: string
  readonly identity?: Identity.Identity
  readonly register?: { readonly username: string; readonly machine: string }
}

const toCli = (prefix: string | undefined) => (e: { readonly message: string }) =>
  new CliError({ message: prefix === undefined ? e.message : `${prefix}: ${e.message}`, cause: e })

/**
 * Open a session to `url` (already normalized), run `use`, and close the socket.
 *
 * @since 0.1.0
 * @category sessions
 */
export const withSession = <A, E, R>(
  url: string,
  use: (conn: Connection.Connection) => Effect.Effect<A, E, R>,
  options: SessionOptions = {}
): Effect.Effect<A, E | CliError, R | GlobalOptions> =>
  Effect.scoped(
    Effect.gen(function*() {
      const identity = options.identity ?? (yield* Ctx.loadIdentity)
      const conn = yield* Connection.connect({
        url,
        handle: options.handle ?? Ctx.cliHandle(),
        client: "cli",
        identity,
        ...(options.register === undefined ? {} : { register: options.register })
      }).pipe(Effect.mapError((e) => {
        const fix = Connection.fixFor(e)
        return new CliError({ message: fix === undefined ? e.message : `${e.message}: ${fix}`, cause: e })
      }))
      yield* Effect.logDebug("connected").pipe(Effect.annotateLogs({ url, path: Names.renderPath(conn.path) }))
      return yield* use(conn)
    })
  )

/**
 * Send one request and require a reply of type `expected`. `prefix` (e.g. "join rejected") is
 * put before the rendered error of a refusal.
 *
 * @since 0.1.0
 * @category sessions
 */
export const call = <T extends Connection.Reply["type"]>(
  conn: Connection.Connection,
  frame: Connection.RequestWithoutId,
  expected: T,
  prefix?: string
): Effect.Effect<Replies.ReplyOf<T>, CliError> =>
  Replies.request((f) => conn.request(f).pipe(Effect.mapError(toCli(prefix))), frame, expected).pipe(
    Effect.catchTag("UnexpectedReply", (e) => Effect.fail(new CliError({ message: e.message })))
  )

/** Run an admin op (SPEC §2.4). @since 0.1.0 @category sessions */
export const admin = <T extends Connection.Reply["type"]>(
  conn: Connection.Connection,
  op: Frames.AdminOp,
  expected: T
) => call(conn, { type: "admin", op }, expected)
