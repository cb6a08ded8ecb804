/**
 * How big a run is: the default (CI) run is a small seeded slice of every category; full counts
 * only when `CONCLAVE_RELIABILITY=full`. Figures are written to RELIABILITY.md in full mode or when
 * `CONCLAVE_RELIABILITY_REPORT=1`.
 *
 * @since 0.1.0
 */

/** Whether this run uses the full counts of BENCH-AND-RELIABILITY §6.3. @since 0.1.0 @category profile */
export const full: boolean = process.env.CONCLAVE_RELIABILITY === "full"

/** Whether suites rewrite their section of RELIABILITY.md. @since 0.1.0 @category profile */
export const reportEnabled: boolean = full || process.env.CONCLAVE_RELIABILITY_REPORT === "1"

/** The base seed of every generator (override with `CONCLAVE_RELIABILITY_SEED`). @since 0.1.0 @category profile */
export const seed: number = Number.parseInt(process.env.CONCLAVE_RELIABILITY_SEED ?? "20261124", 10) >>> 0

/** `fast` in the default run, `fullCount` with `CONCLAVE_RELIABILITY=full`. @since 0.1.0 @category profile */
export const count = (fast: number, fullCount: number): number => (full ? fullCount : fast)

/** The run's label for reports. @since 0.1.0 @category profile */
export const label: string = full ? "full" : "default (CI slice)"
