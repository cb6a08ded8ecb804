/**
 * `conclave tail --before SEQ` (issue 18): scroll-back from a terminal. One page of the channel's
 * retained history below message #SEQ — the newest of them, oldest first, capped as every page is
 * (500 messages, 1 MiB) — printed the way `tail` prints history; then the verb exits. While older
 * messages remain, a note names the `--before` that reads the page before it.
 *
 * @since 0.1.0
 */
import type { Identity } from "@conclave/client"
import { Names } from "@conclave/protocol"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Flags from "../Flags.js"
import * as Output from "../Output.js"
import * as Remote from "../Remote.js"
import { type LineStyle, styledChannelLine } from "./TailLines.js"

/** `--before` ↔ `before_seq`: a message seq, 1 or more. @since 0.1.0 @category schemas */
export const BeforeText = Flags.integerText("--before", { min: 1, max: Number.MAX_SAFE_INTEGER })

/** @since 0.1.0 @category options */
export const flag = Options.text("before").pipe(
  Options.withPseudoName("SEQ"),
  Options.withSchema(BeforeText),
  Options.optional,
  Options.withDescription(
    "Scroll back: print the messages just before #SEQ (one page, oldest first; --details shows seqs) and exit."
  )
)

/** @since 0.1.0 @category models */
export interface BeforeOptions {
  readonly url: string
  readonly channel: string
  readonly handle: string
  readonly beforeSeq: number
  readonly json: boolean
  readonly style: LineStyle
  readonly identity: Identity.Identity
}

/**
 * Join, read the page below `beforeSeq`, print it, and say how to go on.
 *
 * @since 0.1.0
 * @category tail
 */
export const run = (options: BeforeOptions) =>
  Remote.withSession(
    options.url,
    (conn) =>
      Effect.gen(function*() {
        const joined = yield* Remote.call(
          conn,
          { type: "join", channel: options.channel, token: null },
          "joined",
          "join rejected"
        )
        const channel = joined.channel
        const page = yield* Remote.call(
          conn,
          { type: "read_since", channel, since_seq: null, since_ms: null, before_seq: options.beforeSeq },
          "history",
          "history read rejected"
        )
        for (const m of page.messages) {
          yield* options.json
            ? Output.json({
              type: "message",
              channel,
              from: Names.renderPath(m.from),
              text: m.payload.kind === "plain" ? m.payload.text : null,
              seq: m.seq,
              origin: m.origin,
              reply_to: m.reply_to,
              ts_ms: m.ts_ms,
              history: true
            })
            : Output.line(styledChannelLine({ ...m, channel }, { atMs: m.ts_ms, history: true }, options.style))
        }
        const first = page.messages[0]
        if (page.more && first !== undefined) {
          if (options.json) yield* Output.json({ type: "more", channel, before_seq: first.seq })
          yield* Output.note(`older messages remain: conclave tail --channel ${channel} --before ${first.seq}`)
        } else if (page.messages.length === 0) {
          yield* Output.note(`#${channel}: no retained messages before #${options.beforeSeq}`)
        }
      }),
    { handle: options.handle, identity: options.identity }
  )
