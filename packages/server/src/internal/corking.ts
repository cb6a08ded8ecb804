/**
 * Write coalescing (BENCH-AND-RELIABILITY §3.1: syscalls per delivery dominate). A socket is corked
 * at its first frame in a turn of the event loop and uncorked with every other one when the turn
 * ends (`setImmediate`), so all frames queued to it meanwhile leave in one `writev`. Plain
 * synchronous code on the hot path (STACK.md "Fan-out speed"); an uncork needs no scope, it only
 * flushes.
 *
 * A fan-out made after a COMMIT runs in the store's writer, itself resumed from a `setImmediate`
 * callback: an uncork scheduled from there would wait for the next turn's check phase. The writer's
 * fan-outs ask for `flushSoon` instead, which uncorks as soon as the current batch's plain code is
 * done (a microtask), after every post of the batch was written.
 *
 * @internal
 */

const toUncork: Array<() => void> = []
let turnEndScheduled = false
let soonQueued = false

const flush = () => {
  if (toUncork.length === 0) return
  const pending = toUncork.splice(0)
  for (const uncork of pending) uncork()
}

const atTurnEnd = () => {
  turnEndScheduled = false
  flush()
}

const soon = () => {
  soonQueued = false
  flush()
}

/** Uncork with `uncork` when this turn of the event loop ends (or sooner, see `flushSoon`). */
export const uncorkLater = (uncork: () => void): void => {
  toUncork.push(uncork)
  if (!turnEndScheduled) {
    turnEndScheduled = true
    setImmediate(atTurnEnd)
  }
}

/** Uncork every corked socket once the code now running is done (a microtask), not at the turn's end. */
export const flushSoon = (): void => {
  if (soonQueued || toUncork.length === 0) return
  soonQueued = true
  queueMicrotask(soon)
}
