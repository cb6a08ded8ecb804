/**
 * `conclave send` (SPEC §6.2, D-6): join, post, require the ack.
 *
 * @since 0.1.0
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Ctx from "../Context.js"
import * as Flags from "../Flags.js"
import * as Output from "../Output.js"
import * as Remote from "../Remote.js"

/** `conclave send`. @since 0.1.0 @category commands */
export const send = Command.make(
  "send",
  {
    server: Flags.server,
    channel: Flags.channel,
    replyTo: Options.text("reply-to").pipe(
      Options.withPseudoName("SEQ"),
      Options.withSchema(Flags.ReplyToText),
      Options.optional,
      Options.withDescription("Reply to the message with this seq (shown by `tail --json`).")
    ),
    text: Args.text({ name: "TEXT" }).pipe(
      Args.atLeast(1),
      Args.withDescription("The message (several words are joined with spaces).")
    ),
    json: Flags.json
  },
  (args) =>
    Effect.gen(function*() {
      const replyTo = Option.getOrNull(args.replyTo)
      const url = yield* Ctx.parseUrl(args.server)
      const text = args.text.join(" ")
      const ack = yield* Remote.withSession(url, (conn) =>
        Effect.gen(function*() {
          yield* Remote.call(conn, { type: "join", channel: args.channel, token: null }, "joined", "join rejected")
          return yield* Remote.call(
            conn,
            { type: "channel_msg", channel: args.channel, payload: { kind: "plain", text }, reply_to: replyTo },
            "ack",
            "send rejected"
          )
        }))
      yield* args.json
        ? Output.json({ sent_to: args.channel, seq: ack.seq })
        : Output.success(`sent to ${args.channel}`)
    })
).pipe(
  Command.withDescription(
    "Post one message to a channel as a human (you must be allowed to join it: public, unlisted, or a member)."
  )
)
