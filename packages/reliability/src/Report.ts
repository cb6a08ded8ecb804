/**
 * Writes one suite's figures into RELIABILITY.md at the repository root, between
 * `<!-- BEGIN <id> -->` and `<!-- END <id> -->` markers (added at the end when missing). Does
 * nothing unless `Profile.reportEnabled`, so the default test run never dirties the tree.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import * as Profile from "./Profile.js"

/** RELIABILITY.md at the repository root (works from `src/` and `dist/`). @since 0.1.0 @category paths */
export const reportFile: string = Path.resolve(
  Path.dirname(fileURLToPath(import.meta.url)),
  "..",
  "..",
  "..",
  "RELIABILITY.md"
)

/**
 * One computed comparison behind a row's "met" column: a measured value against its target.
 *
 * @since 0.1.0
 * @category models
 */
export interface Check {
  readonly label: string
  readonly value: number
  readonly op: "≤" | "≥" | "="
  readonly target: number
  readonly unit: string
}

/** `value ≤ target`. @since 0.1.0 @category checks */
export const atMost = (label: string, value: number, target: number, unit = ""): Check => ({
  label,
  value,
  op: "≤",
  target,
  unit
})

/** `value ≥ target`. @since 0.1.0 @category checks */
export const atLeast = (label: string, value: number, target: number, unit = ""): Check => ({
  label,
  value,
  op: "≥",
  target,
  unit
})

/** `value = target`. @since 0.1.0 @category checks */
export const equals = (label: string, value: number, target: number, unit = ""): Check => ({
  label,
  value,
  op: "=",
  target,
  unit
})

/** A yes/no fact, counted as 1 (holds) or 0. @since 0.1.0 @category checks */
export const holds = (label: string, fact: boolean): Check => equals(label, fact ? 1 : 0, 1)

/** @since 0.1.0 @category checks */
export const passes = (c: Check): boolean =>
  c.op === "≤" ? c.value <= c.target : c.op === "≥" ? c.value >= c.target : c.value === c.target

/** One row of a section's table: its "met" column is computed from `checks`, never typed. @since 0.1.0 @category models */
export interface Row {
  readonly test: string
  /** "N tried, 0 crashes, 0 acknowledged messages lost" style figure, built from measured values. */
  readonly figure: string
  readonly target: string
  readonly checks: ReadonlyArray<Check>
  /** Set when the row was not measured in this run, with the reason. */
  readonly skipped?: string
}

/** Whether every check of the row passes (a skipped row is not met). @since 0.1.0 @category checks */
export const met = (row: Row): boolean => row.skipped === undefined && row.checks.every(passes)

const renderCheck = (c: Check): string =>
  c.op === "=" && c.target === 1 && (c.value === 0 || c.value === 1) && c.unit === ""
    ? `${c.label}: ${c.value === 1 ? "holds" : "does not hold"}`
    : `${c.label} ${c.value}${c.unit} (target ${c.op} ${c.target}${c.unit})`

/** The "met" cell: yes, skipped with its reason, or no with every missed check and its figure. @since 0.1.0 @category rendering */
export const metCell = (row: Row): string => {
  if (row.skipped !== undefined) return `skipped: ${row.skipped}`
  const failing = row.checks.filter((c) => !passes(c))
  return failing.length === 0 ? "yes" : `**no**: ${failing.map(renderCheck).join("; ")}`
}

/** Render a section (pure, for tests). @since 0.1.0 @category rendering */
export const render = (
  id: string,
  title: string,
  rows: ReadonlyArray<Row>,
  notes: ReadonlyArray<string>,
  label: string = Profile.label,
  atMs: number = 0
): string => {
  const lines = [
    `<!-- BEGIN ${id} -->`,
    `### ${title}`,
    "",
    `Run: ${label}, seed ${Profile.seed}, node ${process.version}, ${new Date(atMs).toISOString().slice(0, 16)}Z.`,
    "",
    "| test | result | target | met |",
    "|---|---|---|---|",
    ...rows.map((r) => `| ${r.test} | ${r.figure} | ${r.target} | ${metCell(r)} |`),
    ...(notes.length > 0 ? ["", ...notes.map((n) => `* ${n}`)] : []),
    `<!-- END ${id} -->`
  ]
  return lines.join("\n")
}

/** Replace the section between the markers in `text` (or append it). @since 0.1.0 @category rendering */
export const splice = (text: string, id: string, section: string): string => {
  const begin = `<!-- BEGIN ${id} -->`
  const end = `<!-- END ${id} -->`
  const a = text.indexOf(begin)
  const b = text.indexOf(end)
  if (a >= 0 && b > a) return text.slice(0, a) + section + text.slice(b + end.length)
  return `${text.replace(/\s*$/, "")}\n\n${section}\n`
}

const liveClock = Clock.make()

/**
 * The wall-clock time, even under a TestClock: a
 * report says when it was made.
 *
 * @since 0.1.0
 * @category writing
 */
export const wallClockMillis: Effect.Effect<number> = Effect.withClock(Clock.currentTimeMillis, liveClock)

/**
 * Record a suite's section when reporting is enabled.
 *
 * @since 0.1.0
 * @category writing
 */
export const record = (
  id: string,
  title: string,
  rows: ReadonlyArray<Row>,
  notes: ReadonlyArray<string> = [],
  options: { readonly force?: boolean; readonly label?: string } = {}
): Effect.Effect<void> =>
  Effect.flatMap(wallClockMillis, (now) =>
    Effect.sync(() => {
      if (!Profile.reportEnabled && options.force !== true) return
      withLock(() => {
        const current = Fs.existsSync(reportFile) ? Fs.readFileSync(reportFile, "utf8") : "# RELIABILITY\n"
        const next = splice(current, id, render(id, title, rows, notes, options.label, now))
        const tmp = `${reportFile}.${process.pid}.tmp`
        Fs.writeFileSync(tmp, next)
        Fs.renameSync(tmp, reportFile)
      })
    }))

// Suites run in parallel workers: serialise the read-modify-write with an exclusive lock file.
const withLock = (body: () => void) => {
  const lock = `${reportFile}.lock`
  const pause = new Int32Array(new SharedArrayBuffer(4))
  for (let i = 0; i < 200; i++) {
    try {
      Fs.closeSync(Fs.openSync(lock, "wx"))
      try {
        return body()
      } finally {
        Fs.rmSync(lock, { force: true })
      }
    } catch (e) {
      if ((e as { readonly code?: string }).code !== "EEXIST") throw e
      Atomics.wait(pause, 0, 0, 50)
    }
  }
  Fs.rmSync(lock, { force: true })
  body()
}
