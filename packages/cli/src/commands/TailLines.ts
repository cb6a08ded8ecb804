/**
 * How `conclave tail` prints (SPEC §6.2, D-31, issue 23 item 8): bodies made safe for a terminal,
 * channel and whisper lines, optional times and details.
 *
 * @since 0.1.0
 */
import type { Frames } from "@conclave/protocol"
import { Names } from "@conclave/protocol"

const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g

/**
 * Make a body safe for a terminal (D-31): control characters (ESC, CR, BEL, C1, bidi overrides)
 * are removed; each newline becomes an indented continuation line, so a body cannot forge a
 * line that looks like another message.
 *
 * @since 0.1.0
 * @category rendering
 */
export const sanitize = (text: string): string =>
  text.replace(/\r\n?/g, "\n").replace(CONTROL, "").split("\n").join("\n    ")

const bodyOf = (payload: Frames.Payload): string =>
  payload.kind === "plain" ? payload.text : "[encrypted message: this client cannot decrypt it]"

/** One channel line: `[<channel>] <from>: <text>`. @since 0.1.0 @category rendering */
export const channelLine = (channel: string, from: Names.SessionPath, payload: Frames.Payload): string =>
  `[${sanitize(channel)}] ${sanitize(Names.renderPath(from))}: ${sanitize(bodyOf(payload))}`

/** One whisper line: `[whisper] <from>: <text>`. @since 0.1.0 @category rendering */
export const whisperLine = (from: Names.SessionPath, payload: Frames.Payload): string =>
  `[whisper] ${sanitize(Names.renderPath(from))}: ${sanitize(bodyOf(payload))}`

/**
 * How text lines look beyond SPEC §6.2's `[<channel>] <from>: <text>` (the default, unchanged):
 * a time prefix (`local` or `utc`), and `details` — the seq, the sender's origin, the message a
 * reply answers, and a mark on replayed history (issue 23, item 8).
 *
 * @since 0.1.0
 * @category rendering
 */
export interface LineStyle {
  readonly time: "none" | "local" | "utc"
  readonly details: boolean
}

/** SPEC §6.2's lines. @since 0.1.0 @category rendering */
export const plainStyle: LineStyle = { time: "none", details: false }

const pad = (n: number, width = 2) => String(n).padStart(width, "0")

/**
 * `YYYY-MM-DD HH:MM:SS` in the local time zone, or `YYYY-MM-DDTHH:MM:SSZ` in UTC.
 *
 * @since 0.1.0
 * @category rendering
 */
export const formatTime = (ms: number, zone: "local" | "utc"): string => {
  const d = new Date(ms)
  return zone === "utc"
    ? `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${
      pad(d.getUTCMinutes())
    }:${pad(d.getUTCSeconds())}Z`
    : `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${
      pad(d.getSeconds())
    }`
}

const timePrefix = (style: LineStyle, atMs: number) => style.time === "none" ? "" : `${formatTime(atMs, style.time)} `

/**
 * One channel line in `style`: with the default style exactly `channelLine`; otherwise e.g.
 * `2026-12-07 17:08:09 [ops] #12 bob/box/api (agent) ↪ #7 [history]: text`. The body stays last.
 *
 * @since 0.1.0
 * @category rendering
 */
export const styledChannelLine = (
  m: {
    readonly channel: string
    readonly from: Names.SessionPath
    readonly payload: Frames.Payload
    readonly seq: number
    readonly origin: Frames.Origin
    readonly reply_to: number | null
  },
  context: { readonly atMs: number; readonly history: boolean },
  style: LineStyle
): string => {
  if (!style.details) return timePrefix(style, context.atMs) + channelLine(m.channel, m.from, m.payload)
  const reply = m.reply_to === null ? "" : ` ↪ #${m.reply_to}`
  const mark = context.history ? " [history]" : ""
  return `${timePrefix(style, context.atMs)}[${sanitize(m.channel)}] #${m.seq} ${
    sanitize(Names.renderPath(m.from))
  } (${m.origin})${reply}${mark}: ${sanitize(bodyOf(m.payload))}`
}

/** One whisper line in `style` (`[whisper] <from> (<origin>): <text>` with details). @since 0.1.0 @category rendering */
export const styledWhisperLine = (
  from: Names.SessionPath,
  payload: Frames.Payload,
  origin: Frames.Origin,
  atMs: number,
  style: LineStyle
): string =>
  style.details
    ? `${timePrefix(style, atMs)}[whisper] ${sanitize(Names.renderPath(from))} (${origin}): ${
      sanitize(bodyOf(payload))
    }`
    : timePrefix(style, atMs) + whisperLine(from, payload)
