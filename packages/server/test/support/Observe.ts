/**
 * Watching what the code under test does: its log lines, and conditions it reaches in its own time.
 */
import { Effect, HashMap, Logger, Schedule, TestServices } from "effect"

export interface Line {
  readonly level: string
  readonly message: string
  readonly annotations: Record<string, unknown>
}

/** A logger that keeps every line it is given, with its level and annotations. */
export const capturing = () => {
  const lines: Array<Line> = []
  const capture = Logger.make(({ annotations, logLevel, message }) => {
    const text = Array.isArray(message) ? message.map(String).join(" ") : String(message)
    lines.push({
      level: logLevel.label,
      message: text,
      annotations: Object.fromEntries(HashMap.toEntries(annotations))
    })
  })
  return { capture, lines }
}

/**
 * Wait until `check()` holds, polling every 10 ms for at most 5 s, then die naming `what`. Polls on
 * the real clock, also in tests that run on the TestClock.
 */
export const eventually = (check: () => boolean, what: string): Effect.Effect<void> =>
  Effect.suspend(() => (check() ? Effect.void : Effect.fail(what))).pipe(
    Effect.retry(Schedule.intersect(Schedule.spaced("10 millis"), Schedule.recurs(500))),
    Effect.orDieWith((w) => new Error(`timed out waiting for ${w}`)),
    TestServices.provideLive
  )
