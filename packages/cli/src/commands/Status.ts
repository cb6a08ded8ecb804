/**
 * `conclave status` (SPEC §6.2, GAPS #43): every registration probed with a server-wide `who`,
 * then the local permission table.
 *
 * @since 0.1.0
 */
import * as Command from "@effect/cli/Command"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { chain, CliError } from "../CliError.js"
import * as Ctx from "../Context.js"
import * as Flags from "../Flags.js"
import * as Output from "../Output.js"
import * as Remote from "../Remote.js"
import { permJson, permLines } from "./Perm.js"

const isRefusal = (e: unknown): boolean =>
  e instanceof CliError && typeof e.cause === "object" && e.cause !== null && "_tag" in e.cause &&
  e.cause._tag === "AuthRejected"

/** `conclave status`. @since 0.1.0 @category commands */
export const status = Command.make("status", { json: Flags.json }, (args) =>
  Effect.gen(function*() {
    const config = yield* Ctx.loadConfig
    if (config.servers.length === 0) {
      if (args.json) return yield* Output.json({ servers: [], permissions: permJson(config) })
      return yield* Output.line(
        "no servers registered; run `conclave register --server <url> --username <you>` to get started"
      )
    }
    const identity = yield* Ctx.loadIdentity
    const probes = yield* Effect.forEach(
      config.servers,
      (reg) =>
        Remote.withSession(reg.url, (conn) =>
          Remote.call(conn, { type: "who", channel: null }, "presence").pipe(
            Effect.map((p) => p.sessions.length)
          ), { identity }).pipe(Effect.either, Effect.map((result) => ({ reg, result }))),
      { concurrency: "unbounded" }
    )
    const unreachable = probes.filter((p) => Either.isLeft(p.result)).length
    if (args.json) {
      yield* Output.json({
        servers: probes.map(({ reg, result }) => ({
          url: reg.url,
          username: reg.username,
          machine: reg.machine,
          reachable: Either.isRight(result),
          // the probe's own session is not counted (G-43)
          sessions_online: Either.isRight(result) ? Math.max(0, result.right - 1) : null,
          error: Either.isLeft(result) ? chain(result.left) : null
        })),
        permissions: permJson(config)
      })
    } else {
      for (const { reg, result } of probes) {
        const state = Either.match(result, {
          // A server that answered but refused this key is reachable: say what is wrong with the link.
          onLeft: (e) => `${isRefusal(e) ? "not registered" : "unreachable"}: ${chain(e)}`,
          // The probe's own session is not counted (G-43).
          onRight: (n) => `reachable (${Math.max(0, n - 1)} session(s) online besides this probe)`
        })
        yield* Output.line(`${reg.url}\t${reg.username}/${reg.machine}\t${state}`)
      }
      yield* Output.line("")
      for (const l of permLines(config)) yield* Output.line(l)
    }
    if (unreachable > 0) return yield* new CliError({ message: `${unreachable} server(s) unreachable` })
  })).pipe(
    Command.withDescription(
      "Probe every registered server (reachable, sessions online) and show the local permission policy; exits 1 if any server is unreachable."
    )
  )
