/**
 * Lingering session runs. A session holds no fiber while idle, but starting a fiber for every frame
 * of a busy session costs more than the frame (a whisper every 20 ms is a fiber every 20 ms). So a
 * run that has handled everything waits a little for the next frame on the fiber it has: the link
 * resumes it (no new fiber) when a frame arrives, and one sweeper per server releases the runs that
 * have waited for `LINGER` — their sessions are idle and give their fibers up.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { Link } from "../Link.js"

/** How long a run that has nothing to do keeps its fiber. */
export const LINGER: Duration.Duration = Duration.millis(100)

export interface Lingering {
  /** The run of `link`'s session starts waiting now (or again). */
  readonly waiting: (link: Link) => void
  /** It stopped waiting (a frame came, or the session ended). */
  readonly done: (link: Link) => void
}

/** The registry and its sweeper fiber, owned by the scope. */
export const make: Effect.Effect<Lingering, never, Scope.Scope> = Effect.gen(function*() {
  const clock = yield* Effect.clock
  const lingerMs = Duration.toMillis(LINGER)
  // Insertion order is waiting order: a run that waits again moves to the end.
  const since = new Map<Link, number>()
  yield* Effect.sleep(LINGER).pipe(
    Effect.zipRight(Effect.sync(() => {
      const cutoff = clock.unsafeCurrentTimeMillis() - lingerMs
      for (const [link, at] of since) {
        if (at > cutoff) break
        since.delete(link)
        link.release()
      }
    })),
    Effect.forever,
    // interruptible even when built inside an uninterruptible region (e.g. a layer's acquire)
    Effect.interruptible,
    Effect.forkScoped
  )
  return {
    waiting: (link) => {
      since.delete(link)
      since.set(link, clock.unsafeCurrentTimeMillis())
    },
    done: (link) => {
      since.delete(link)
    }
  }
})
