/**
 * Logging for every verb (SPEC §3.20, DECISIONS D-33): Effect's Logger writing to **stderr only**
 * (stdout carries data and, for the bridge, MCP).
 *
 * - level: `CONCLAVE_LOG_LEVEL` (`trace|debug|info|warn|error`), else `debug` with `-v`, else `info`;
 * - format: `CONCLAVE_LOG_FORMAT=json` (case-insensitive) → one JSON object per line carrying
 *   `message`, `level`, `timestamp`, the annotations, and `fields: { message, ...annotations }`;
 *   otherwise `<timestamp> <LEVEL> <message> key=value …`, coloured only when stderr is a TTY and
 *   `NO_COLOR` is unset.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"

/** @since 0.1.0 @category models */
export type Format = "human" | "json"

/** @since 0.1.0 @category models */
export interface Settings {
  readonly level: LogLevel.LogLevel
  readonly format: Format
  readonly color: boolean
  /** Set when `CONCLAVE_LOG_LEVEL` held something unusable. */
  readonly invalidLevel: Option.Option<string>
}

const levels: Record<string, LogLevel.LogLevel> = {
  trace: LogLevel.Trace,
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warn: LogLevel.Warning,
  warning: LogLevel.Warning,
  error: LogLevel.Error,
  off: LogLevel.None
}

/**
 * Parse a level name (`trace|debug|info|warn|error`, case-insensitive).
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseLevel = (s: string): Option.Option<LogLevel.LogLevel> =>
  Option.fromNullable(levels[s.trim().toLowerCase()])

/**
 * Resolve the settings from the environment and `-v`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const settings = (options: {
  readonly verbose: boolean
  readonly env: Readonly<Record<string, string | undefined>>
  readonly stderrIsTty: boolean
}): Settings => {
  const raw = options.env["CONCLAVE_LOG_LEVEL"] ?? options.env["CONCLAVE_LOG"] ?? ""
  const parsed = raw.trim() === "" ? Option.none() : parseLevel(raw)
  const fallback = options.verbose ? LogLevel.Debug : LogLevel.Info
  const format: Format = (options.env["CONCLAVE_LOG_FORMAT"] ?? "").trim().toLowerCase() === "json" ? "json" : "human"
  const noColor = (options.env["NO_COLOR"] ?? "") !== ""
  return {
    level: Option.getOrElse(parsed, () => fallback),
    format,
    color: format === "human" && options.stderrIsTty && !noColor,
    invalidLevel: raw.trim() !== "" && Option.isNone(parsed) ? Option.some(raw) : Option.none()
  }
}

const renderMessage = (message: unknown): string => {
  const parts = Array.isArray(message) ? message : [message]
  return parts.map((part) => typeof part === "string" ? part : safeJson(part)).join(" ")
}

const safeJson = (value: unknown): string => {
  try {
    const text = JSON.stringify(value)
    return text === undefined ? String(value) : text
  } catch {
    return String(value)
  }
}

// JSON leaves these raw, and terminals and log viewers break lines at them.
const lineBreaks = /[\u0085\u2028\u2029]/g
const escapeBreak = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`

const renderValue = (value: unknown): string => {
  const text = typeof value === "string" ? value : safeJson(value)
  return /^[^\s"=\u0085\u2028\u2029]+$/.test(text) ? text : JSON.stringify(text).replace(lineBreaks, escapeBreak)
}

const colors: Record<string, string> = {
  TRACE: "\x1b[90m",
  DEBUG: "\x1b[34m",
  INFO: "\x1b[32m",
  WARN: "\x1b[33m",
  ERROR: "\x1b[31m",
  FATAL: "\x1b[35m"
}

/** What Effect's `Logger.structuredLogger` makes of a log event. @since 0.1.0 @category models */
export type Structured = typeof Logger.structuredLogger extends Logger.Logger<unknown, infer O> ? O : never

/**
 * One log line (without the trailing newline) in the given format, from a structured event.
 *
 * @since 0.1.0
 * @category rendering
 */
export const renderStructured = (format: Format, color: boolean, entry: Structured): string => {
  const message = renderMessage(entry.message)
  const annotations: Record<string, unknown> = { ...entry.annotations }
  if (entry.cause !== undefined) annotations["cause"] = entry.cause
  if (format === "json") {
    return safeJson({
      ...annotations,
      message,
      level: entry.logLevel,
      timestamp: entry.timestamp,
      // an annotation named like a top-level key (an error frame's `message`) keeps its value here
      fields: { message, ...annotations }
    })
  }
  const pairs = Object.entries(annotations).map(([key, value]) => `${key}=${renderValue(value)}`)
  const tail = pairs.length === 0 ? "" : ` ${pairs.join(" ")}`
  const level = entry.logLevel
  const shownLevel = color ? `${colors[level] ?? ""}${level.padEnd(5)}\x1b[0m` : level.padEnd(5)
  const shownTime = color ? `\x1b[2m${entry.timestamp}\x1b[0m` : entry.timestamp
  return `${shownTime} ${shownLevel} ${message}${tail}`
}

/**
 * One log line from its parts (tests and tools).
 *
 * @since 0.1.0
 * @category rendering
 */
export const renderLine = (
  format: Format,
  color: boolean,
  entry: {
    readonly level: LogLevel.LogLevel
    readonly message: unknown
    readonly date: Date
    readonly annotations: ReadonlyArray<readonly [string, unknown]>
    readonly cause?: string | undefined
  }
): string =>
  renderStructured(format, color, {
    message: entry.message,
    logLevel: entry.level.label,
    timestamp: entry.date.toISOString(),
    cause: entry.cause,
    annotations: Object.fromEntries(entry.annotations),
    spans: {},
    fiberId: ""
  })

/**
 * Effect's structured logger rendered as lines of `format`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const lines = (format: Format, color: boolean): Logger.Logger<unknown, string> =>
  Logger.map(Logger.structuredLogger, (entry) => renderStructured(format, color, entry))

/**
 * A logger that writes each line to `write` at once (tests).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeLogger = (
  format: Format,
  color: boolean,
  write: (line: string) => void
): Logger.Logger<unknown, void> => Logger.map(lines(format, color), (line) => write(line + "\n"))

const writeStderr = (text: string): void => {
  try {
    process.stderr.write(text)
  } catch {
    // stderr closed: nothing sensible left to do with a log line
  }
}

/** How long log lines gather before one write (stderr is synchronous: one syscall per line showed in profiles). */
const BATCH_WINDOW = Duration.millis(5)

/**
 * The lines of `format`, gathered by `Logger.batched` and written with one `write` per window; what
 * is left is written when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const batchedLogger = (
  format: Format,
  color: boolean,
  write: (text: string) => void = writeStderr
): Effect.Effect<Logger.Logger<unknown, void>, never, Scope.Scope> =>
  Logger.batched(lines(format, color), BATCH_WINDOW, (batch) =>
    Effect.sync(() => {
      if (batch.length > 0) write(batch.join("\n") + "\n")
    }))

/**
 * Replace the default logger (which writes to stdout) with the batched stderr logger and set the
 * minimum level. Lines still gathered are written when the layer is released.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (s: Settings, write?: (text: string) => void): Layer.Layer<never> =>
  Layer.merge(
    Logger.replaceScoped(Logger.defaultLogger, batchedLogger(s.format, s.color, write)),
    Logger.minimumLogLevel(s.level)
  )
