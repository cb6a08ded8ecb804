/**
 * Write coalescing (BENCH-AND-RELIABILITY §3.1: syscalls per delivery dominate). A socket is corked
 * at its first frame in a turn of the event loop and uncorked with every other one when the turn
 * ends (`setImmediate`), so all frames queued to it meanwhile leave in one `writev`. Plain
 * synchronous code on the hot path (STACK.md "Fan-out speed"); an uncork needs no scope, it only
 * flushes.
 *
 * A fan-out made after a COMMIT runs when the store's writer resolves the append, itself from a
 * `setImmediate` callback: an uncork scheduled from there would wait for the next turn's check
 * phase. Those fan-outs ask for `flushSoon` instead, which uncorks as soon as the code now running
 * is done (a microtask), after every post of the batch was written.
 *
 * One `Corking` per server (the hub owns it): two servers in one process share nothing.
 *
 * @internal
 */
export class Corking {
  private readonly toUncork: Array<() => void> = []
  private turnEndScheduled = false
  private soonQueued = false

  private readonly flush = () => {
    if (this.toUncork.length === 0) return
    const pending = this.toUncork.splice(0)
    for (const uncork of pending) uncork()
  }
  private readonly atTurnEnd = () => {
    this.turnEndScheduled = false
    this.flush()
  }
  private readonly soon = () => {
    this.soonQueued = false
    this.flush()
  }

  /** Uncork with `uncork` when this turn of the event loop ends (or sooner, see `flushSoon`). */
  uncorkLater(uncork: () => void): void {
    this.toUncork.push(uncork)
    if (!this.turnEndScheduled) {
      this.turnEndScheduled = true
      setImmediate(this.atTurnEnd)
    }
  }

  /** Uncork every corked socket once the code now running is done (a microtask), not at the turn's end. */
  flushSoon(): void {
    if (this.soonQueued || this.toUncork.length === 0) return
    this.soonQueued = true
    queueMicrotask(this.soon)
  }
}
