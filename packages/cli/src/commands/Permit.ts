/**
 * `conclave permit PATH REQUEST_ID allow|deny [--server URL]`: answer a permission request that a
 * session of your own user relayed (SPEC §4.5.3 remote approvers), as the console's Allow / Deny do.
 *
 * @since 0.1.0
 */
import { Limits, Names } from "@conclave/protocol"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import { CliError } from "../CliError.js"
import * as Flags from "../Flags.js"
import * as Output from "../Output.js"
import * as Remote from "../Remote.js"
import { resolveServer } from "./Console.js"

const fail = (message: string) => Effect.fail(new CliError({ message }))

/** `conclave permit`. @since 0.1.0 @category commands */
export const permit = Command.make(
  "permit",
  {
    server: Flags.server.pipe(Options.optional),
    path: Args.text({ name: "PATH" }).pipe(Args.withDescription("The asking session, user/machine/session.")),
    requestId: Args.text({ name: "REQUEST_ID" }).pipe(Args.withDescription("The request's id (in its notice).")),
    decision: Args.text({ name: "DECISION" }).pipe(Args.withDescription("allow or deny.")),
    json: Flags.json
  },
  (args) =>
    Effect.gen(function*() {
      const target = Names.parsePath(args.path)
      if (target === undefined) {
        return yield* fail(`invalid session path \`${args.path}\`: expected user/machine/session`)
      }
      if (args.requestId.length === 0 || args.requestId.length > Limits.REQUEST_ID_MAX_LENGTH) {
        return yield* fail(`invalid request id: 1 to ${Limits.REQUEST_ID_MAX_LENGTH} characters`)
      }
      const behavior = args.decision === "allow" || args.decision === "deny" ? args.decision : undefined
      if (behavior === undefined) {
        return yield* fail(`invalid decision \`${args.decision}\`: expected allow or deny`)
      }
      const url = yield* resolveServer(args.server)
      yield* Remote.withSession(url, (conn) =>
        Remote.call(
          conn,
          { type: "permission_verdict", target, request_id: args.requestId, behavior },
          "ack",
          "permission verdict refused"
        ))
      yield* args.json
        ? Output.json({ target: args.path, request_id: args.requestId, behavior })
        : Output.success(`${behavior} sent to ${args.path} for request ${args.requestId}`)
    })
).pipe(
  Command.withDescription(
    "Answer a permission request relayed by a session of your own user (allow or deny), as the web console does."
  )
)
