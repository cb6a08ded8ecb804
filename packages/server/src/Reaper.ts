/**
 * The idle reaper (SPEC §3.4): every 15 s (first tick at startup) it force-drops sessions whose last
 * inbound frame is at least 60 s old, with reason `idle timeout`. Runs on `Clock`, so `TestClock`
 * drives it.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import { Hub } from "./Hub.js"
import { ServerConfig } from "./ServerConfig.js"

/** One reaper pass; returns how many sessions were killed. @since 0.1.0 @category reaping */
export const reapOnce: Effect.Effect<number, never, Hub | ServerConfig> = Effect.gen(function*() {
  const hub = yield* Hub
  const { idleTimeout } = yield* ServerConfig
  const now = yield* Clock.currentTimeMillis
  const count = yield* hub.reapIdle(now - Duration.toMillis(idleTimeout))
  if (count > 0) yield* Effect.logDebug("reaped idle sessions").pipe(Effect.annotateLogs({ count }))
  return count
})

/** @since 0.1.0 @category layers */
export const ReaperLive: Layer.Layer<never, never, Hub | ServerConfig> = Layer.scopedDiscard(
  Effect.gen(function*() {
    const { reaperInterval } = yield* ServerConfig
    const context = yield* Effect.context<Hub | ServerConfig>()
    yield* reapOnce.pipe(
      Effect.provide(context),
      Effect.repeat(Schedule.spaced(reaperInterval)),
      Effect.interruptible,
      Effect.forkScoped
    )
  })
)
