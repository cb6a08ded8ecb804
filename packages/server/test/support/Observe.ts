/**
 * Watching what the code under test does: its log lines (bounded waits: `@conclave/testkit`'s `eventually`).
 */
import { HashMap, Logger } from "effect"

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
