/**
 * `conclave tail` (SPEC §6.2, D-4, D-31, GAPS #42): a persistent watch loop with seq watermarks,
 * reconnect with backoff (reset after a stable link), gap-free resume through `read_since`,
 * control characters stripped from bodies.
 *
 * @since 0.1.0
 */
import { Backoff, Connection, History, type Identity, Reconnect } from "@conclave/client"
import { Errors, type Frames, Limits, Names } from "@conclave/protocol"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { CliError } from "../CliError.js"
import * as Ctx from "../Context.js"
import * as Flags from "../Flags.js"
import * as Output from "../Output.js"
import * as TailBefore from "./TailBefore.js"
import { type LineStyle, styledChannelLine, styledWhisperLine } from "./TailLines.js"

/** The link went away; reconnect. */
class LinkLost extends Data.TaggedError("LinkLost")<{ readonly reason: string }> {}

export {
  channelLine,
  formatTime,
  type LineStyle,
  plainStyle,
  sanitize,
  styledChannelLine,
  styledWhisperLine,
  whisperLine
} from "./TailLines.js"

interface Message {
  readonly channel: string
  readonly from: Names.SessionPath
  readonly payload: Frames.Payload
  readonly seq: number
  readonly origin: Frames.Origin
  readonly reply_to: number | null
  readonly ts_ms: number | null
}

/**
 * The wait before the next reconnect and the attempt counter after it: 1 s doubling to 30 s, reset
 * once a link has stayed up for the stability window (30 s).
 *
 * @since 0.1.0
 * @category tail
 */
export const reconnectDelay = (attempt: number, upForMs: Option.Option<number>) =>
  Reconnect.nextDelay(Backoff.tail, attempt, upForMs)

interface TailOptions {
  readonly url: string
  readonly channel: string
  readonly handle: string
  readonly sinceMs: Option.Option<number>
  readonly json: boolean
  readonly style: LineStyle
  readonly identity: Identity.Identity
}

/** Slack on the time watermark used before the first seq is known (SPEC §8 `tail` resume slack). */
const RESUME_SLACK_MS = 5_000

const isAuthRejection = (e: Connection.ConnectError): boolean => e._tag === "AuthRejected"

/**
 * The watch loop. Fails with `CliError` on anything fatal; otherwise runs until interrupted.
 *
 * @since 0.1.0
 * @category tail
 */
export const run = (options: TailOptions) =>
  Effect.gen(function*() {
    const out = yield* Output.Output
    // One fiber owns these: the link loop (the keepalive fiber touches none of them).
    let channel = options.channel
    let watermark: Option.Option<number> = Option.none() // highest seq printed
    let sinceMs = options.sinceMs // used until a seq is known
    // while a message too large to read is looked for by seq: rows older than this were not asked for
    let olderThan: Option.Option<number> = Option.none()
    let established = false // a join succeeded at least once
    let reached = false // the server answered a handshake (or said it was going away) at least once

    const print = (text: string) => out.line(text)
    const emitMessage = (m: Message, history: boolean) =>
      Effect.gen(function*() {
        if (Option.isSome(watermark) && m.seq <= watermark.value) return
        watermark = Option.some(m.seq)
        yield* options.json
          ? print(JSON.stringify({
            type: "message",
            channel: m.channel,
            from: Names.renderPath(m.from),
            text: m.payload.kind === "plain" ? m.payload.text : null,
            seq: m.seq,
            origin: m.origin,
            reply_to: m.reply_to,
            ts_ms: m.ts_ms,
            history
          }))
          : print(styledChannelLine(m, { atMs: m.ts_ms ?? (yield* Clock.currentTimeMillis), history }, options.style))
      })

    const catchUp = (conn: Connection.Connection) =>
      Effect.suspend(() => {
        const from = Option.isSome(watermark)
          ? History.afterSeq(watermark.value)
          : Option.isSome(sinceMs)
          ? History.sinceMs(sinceMs.value)
          : undefined
        if (from === undefined) return Effect.void
        return History.pages((frame) => conn.request(frame), channel, from, { closeCode: conn.closeCode }).pipe(
          Stream.runForEach((page) =>
            Effect.forEach(
              page.messages,
              (row) =>
                Option.isSome(olderThan) && row.ts_ms < olderThan.value
                  ? Effect.void
                  : emitMessage({ ...row, channel: page.channel }, true),
              { discard: true }
            )
          ),
          // read to the end: nothing is looked for any more
          Effect.tap(() => Effect.sync(() => void (olderThan = Option.none()))),
          Effect.catchTag("UnexpectedReply", () => Effect.void),
          // A page over this client's frame limit closed the link with 1009: asking again would fail
          // the same way, forever (issue 22). Skip past the message it starts with, say so, reconnect.
          Effect.catchTag("PageTooLarge", (tooLarge) => {
            const skip = History.pastTooLarge(tooLarge.from)
            if (skip._tag === "Message") {
              watermark = Option.some(Math.max(skip.seq, Option.getOrElse(watermark, () => 0)))
            } else {
              watermark = Option.some(0)
              olderThan = Option.some(skip.olderThanMs)
            }
            return out.note(History.skippedText(channel, skip)).pipe(
              Effect.zipRight(Effect.fail(new LinkLost({ reason: "a history page was too large" })))
            )
          })
        )
      })

    const linkErrors = <A, R>(effect: Effect.Effect<A, Connection.RequestError | CliError | LinkLost, R>) =>
      effect.pipe(
        Effect.catchTags({
          Rejected: (e) => Effect.fail(new CliError({ message: Errors.render(e.error), cause: e })),
          ResponseTimeout: (e) => Effect.fail(new LinkLost({ reason: e.message })),
          ConnectionLost: (e) => Effect.fail(new LinkLost({ reason: e.message }))
        })
      )

    const session = (up: Effect.Effect<void>) =>
      Effect.scoped(
        Effect.gen(function*() {
          const conn = yield* Connection.connect({
            url: options.url,
            handle: options.handle,
            client: "cli",
            identity: options.identity
          }).pipe(
            Effect.mapError((e) => {
              // A server that is shutting down or restarting is worth waiting for, even on the first dial.
              if (Connection.isServerGoingAway(e)) reached = true
              return reached && !isAuthRejection(e)
                ? new LinkLost({ reason: e.message })
                : new CliError({
                  message: Connection.fixFor(e) === undefined ? e.message : `${e.message}: ${Connection.fixFor(e)}`,
                  cause: e
                })
            })
          )
          reached = true
          const joined = yield* conn.request({ type: "join", channel, token: null }).pipe(
            Effect.catchTag(
              "Rejected",
              (e) => Effect.fail(new CliError({ message: `join rejected: ${Errors.render(e.error)}`, cause: e }))
            ),
            Effect.catchTags({
              ResponseTimeout: (e) => Effect.fail(new LinkLost({ reason: e.message })),
              ConnectionLost: (e) => Effect.fail(new LinkLost({ reason: e.message }))
            })
          )
          if (joined.type === "joined") channel = joined.channel
          const upSince = yield* Clock.currentTimeMillis
          yield* up
          if (!established) {
            established = true
            // Seed a time watermark so that a reconnect before the first message replays the gap (G-42).
            if (Option.isNone(sinceMs)) sinceMs = Option.some(upSince - RESUME_SLACK_MS)
            yield* options.json
              ? print(JSON.stringify({ type: "tailing", channel, path: Names.renderPath(conn.path) }))
              : print(`tailing #${channel} as ${Names.renderPath(conn.path)} — Ctrl-C to stop`)
            if (Option.isSome(options.sinceMs)) yield* linkErrors(catchUp(conn))
          } else {
            yield* out.note(`reconnected; resuming #${channel}`)
            yield* linkErrors(catchUp(conn))
          }

          yield* Reconnect.keepalive(conn.send({ type: "ping" }))

          const handle = (frame: Frames.ServerFrame): Effect.Effect<void, CliError | LinkLost> => {
            switch (frame.type) {
              case "channel_msg":
                return frame.channel === channel ? emitMessage({ ...frame, ts_ms: null }, false) : Effect.void
              case "whisper":
                return options.json
                  ? print(JSON.stringify({
                    type: "whisper",
                    from: Names.renderPath(frame.from),
                    text: frame.payload.kind === "plain" ? frame.payload.text : null,
                    origin: frame.origin
                  }))
                  : Effect.flatMap(
                    Clock.currentTimeMillis,
                    (now) => print(styledWhisperLine(frame.from, frame.payload, frame.origin, now, options.style))
                  )
              case "error":
                return Effect.fail(
                  new CliError({ message: `server terminated the stream: ${Errors.render(frame.error)}` })
                )
              case "unsubscribed":
                if (frame.channel !== channel) return Effect.void
                if (frame.reason === "renamed" && frame.new_name !== null) {
                  const renamed = frame.new_name
                  return out.note(`#${channel} was renamed to #${renamed}; following it`).pipe(
                    Effect.tap(() => Effect.sync(() => void (channel = renamed)))
                  )
                }
                return Effect.fail(new CliError({ message: `removed from #${channel} (${frame.reason})` }))
              case "shutdown":
                return Effect.fail(new LinkLost({ reason: Connection.shuttingDownText(frame.reason) }))
              default:
                return Effect.void
            }
          }
          yield* Stream.runForEach(conn.unsolicited, handle)
          return yield* new LinkLost({ reason: "connection closed" })
        })
      ).pipe(Effect.catchTag("LinkLost", (lost) => Effect.succeed(lost)))

    return yield* Reconnect.forever({
      backoff: Backoff.tail,
      session,
      onRetry: (lost, delay) =>
        out.note(`connection lost — reconnecting in ${Math.round(delay / 100) / 10}s (${lost.reason})`)
    })
  })

/** `conclave tail`. @since 0.1.0 @category commands */
export const tail = Command.make(
  "tail",
  {
    server: Flags.server,
    channel: Flags.channel,
    as: Options.text("as").pipe(
      Options.withPseudoName("HANDLE"),
      Options.optional,
      Options.withDescription("Session handle (default: cli-<pid>).")
    ),
    since: Options.text("since").pipe(
      Options.withPseudoName("DURATION"),
      Options.withSchema(Flags.DurationText),
      Options.optional,
      Options.withDescription("First replay the history of this window, e.g. 10m, 1h, 7d.")
    ),
    before: TailBefore.flag,
    json: Options.boolean("json").pipe(Options.withDescription("One JSON object per line.")),
    timestamps: Options.boolean("timestamps").pipe(
      Options.withDescription(
        "Start each line with its time, local (YYYY-MM-DD HH:MM:SS; history: when it was posted)."
      )
    ),
    utc: Options.boolean("utc").pipe(
      Options.withDescription("Times in UTC (YYYY-MM-DDTHH:MM:SSZ); implies --timestamps.")
    ),
    details: Options.boolean("details").pipe(
      Options.withDescription(
        "Show each message's #seq, the sender's origin (agent or human), `↪ #N` on a reply to #N, and [history] on replayed lines."
      )
    )
  },
  (args) =>
    Effect.gen(function*() {
      if (args.json && (args.timestamps || args.utc || args.details)) {
        const flag = args.timestamps ? "--timestamps" : args.utc ? "--utc" : "--details"
        return yield* new CliError({
          message:
            `\`${flag}\` shapes text lines; with \`--json\` each object already has ts_ms, origin, reply_to and history: drop one of them`
        })
      }
      if (Option.isSome(args.before) && Option.isSome(args.since)) {
        return yield* new CliError({
          message:
            "`--before` reads one page of history back and exits; `--since` replays a window and keeps watching: drop one of them"
        })
      }
      const style: LineStyle = {
        time: args.utc ? "utc" : args.timestamps ? "local" : "none",
        details: args.details
      }
      const sinceSecs = args.since
      const url = yield* Ctx.parseUrl(args.server)
      const handle = Option.getOrElse(args.as, Ctx.cliHandle)
      const problem = Names.nameProblem(handle)
      if (problem !== undefined) {
        return yield* new CliError({ message: `invalid session handle: \`${handle}\` (${problem})` })
      }
      const identity = yield* Ctx.loadIdentity
      if (Option.isSome(args.before)) {
        return yield* TailBefore.run({
          url,
          channel: args.channel,
          handle,
          beforeSeq: args.before.value,
          json: args.json,
          style,
          identity
        })
      }
      const now = yield* Clock.currentTimeMillis
      yield* run({
        url,
        channel: args.channel,
        handle,
        sinceMs: Option.map(sinceSecs, (s) => Math.max(-Limits.MAX_DATE_MS, now - s * 1000)),
        json: args.json,
        style,
        identity
      })
    })
).pipe(
  Command.withDescription(
    "Watch a channel live (and whispers to this session) until Ctrl-C; reconnects with backoff and resumes without gaps. " +
      "With --before SEQ, print the page of history before #SEQ instead and exit."
  )
)
