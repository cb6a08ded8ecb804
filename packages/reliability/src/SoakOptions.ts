/**
 * The soak's command line (`npm run soak -- …`, see `soak.ts`): parsed into `SoakOptions`, or the
 * message that says what is wrong.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 @category options */
export interface SoakOptions {
  readonly durationMs: number
  readonly rate: number
  readonly subscribers: number
  readonly churnPerMin: number
  readonly warmupMs: number
  readonly serverHeapMb: number
  readonly nodes: number
  readonly report: boolean
}

/** "90s", "10m", "1h", "600" (seconds) → ms; undefined when unparseable. @since 0.1.0 @category options */
export const parseDuration = (s: string): number | undefined => {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(s.trim())
  if (m === null) return undefined
  const n = Number(m[1])
  const unit = m[2] ?? "s"
  return Math.round(n * (unit === "ms" ? 1 : unit === "s" ? 1000 : unit === "m" ? 60_000 : 3_600_000))
}

/** @since 0.1.0 @category options */
export const parseOptions = (argv: ReadonlyArray<string>): SoakOptions | string => {
  const get = (name: string) => {
    const i = argv.indexOf(name)
    return i >= 0 ? argv[i + 1] : undefined
  }
  const known = [
    "--duration",
    "--rate",
    "--subscribers",
    "--churn-per-min",
    "--warmup",
    "--server-heap-mb",
    "--nodes",
    "--report"
  ]
  const unknown = argv.filter((a) => a.startsWith("--") && !known.includes(a))
  if (unknown.length > 0) return `unknown option ${unknown[0]}`
  const durationMs = parseDuration(get("--duration") ?? "10m")
  if (durationMs === undefined || durationMs < 10_000) return "--duration must be a duration of at least 10s (e.g. 2m)"
  const num = (name: string, def: number, min: number) => {
    const raw = get(name)
    if (raw === undefined) return def
    const n = Number(raw)
    return Number.isFinite(n) && n >= min ? n : undefined
  }
  const rate = num("--rate", 200, 1)
  const subscribers = num("--subscribers", 50, 1)
  const churnPerMin = num("--churn-per-min", 60, 0)
  const serverHeapMb = num("--server-heap-mb", 192, 32)
  if (rate === undefined || subscribers === undefined || churnPerMin === undefined || serverHeapMb === undefined) {
    return "--rate, --subscribers, --churn-per-min and --server-heap-mb take non-negative numbers"
  }
  const nodes = num("--nodes", 1, 1)
  if (nodes === undefined || !Number.isInteger(nodes) || nodes > 9) return "--nodes takes a whole number from 1 to 9"
  const warmRaw = get("--warmup")
  const warmupMs = warmRaw === undefined ? Math.min(300_000, Math.floor(durationMs / 4)) : parseDuration(warmRaw)
  if (warmupMs === undefined || warmupMs >= durationMs) return "--warmup must be a duration shorter than --duration"
  return {
    durationMs,
    rate,
    subscribers,
    churnPerMin,
    warmupMs,
    serverHeapMb,
    nodes,
    report: argv.includes("--report")
  }
}
