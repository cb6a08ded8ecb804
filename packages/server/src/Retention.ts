/**
 * The history retention sweep (SPEC §3.17.3): at startup and then hourly, delete channel messages
 * older than the retention window (7 days), and console enrollment codes long expired (D-51).
 * Failures are logged at warn and retried next time.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import { ServerConfig } from "./ServerConfig.js"
import { Store } from "./Store.js"

/** One sweep; returns how many messages were deleted (0 on failure, which is logged). @since 0.1.0 @category retention */
export const sweepOnce: Effect.Effect<number, never, Store | ServerConfig> = Effect.gen(function*() {
  const store = yield* Store
  const { retention } = yield* ServerConfig
  const now = yield* Clock.currentTimeMillis
  yield* store.purgeEnrollCodes(now).pipe(
    Effect.catchAll((e) =>
      Effect.logWarning("enrollment code sweep failed").pipe(Effect.annotateLogs({ error: e.message }))
    )
  )
  const removed = yield* store.purgeOlderThan(now - Duration.toMillis(retention))
  if (removed > 0) yield* Effect.logDebug("history retention sweep").pipe(Effect.annotateLogs({ removed }))
  return removed
}).pipe(
  Effect.catchAll((e) =>
    Effect.logWarning("history retention sweep failed").pipe(
      Effect.annotateLogs({ error: e.message }),
      Effect.as(0)
    )
  )
)

/** @since 0.1.0 @category layers */
export const RetentionLive: Layer.Layer<never, never, Store | ServerConfig> = Layer.scopedDiscard(
  Effect.gen(function*() {
    const { retentionSweepInterval } = yield* ServerConfig
    const context = yield* Effect.context<Store | ServerConfig>()
    yield* sweepOnce.pipe(
      Effect.provide(context),
      Effect.repeat(Schedule.spaced(retentionSweepInterval)),
      Effect.interruptible,
      Effect.forkScoped
    )
  })
)
