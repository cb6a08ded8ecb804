/**
 * Checks on server frames that throw with the frame shown, for tests that read replies as plain
 * values. No test runner is imported, so the soak can use them too.
 *
 * @since 0.1.0
 */
import type { Frames } from "@conclave/protocol"

/** A wire error with every kind's fields optional, so expectations can be plain literals. @since 0.1.0 @category models */
export interface LooseError {
  readonly kind: string
  readonly message?: string
  readonly retry_after_ms?: number
  readonly limit?: number
  readonly ours?: number
  readonly theirs?: number
}

const shown = (frame: Frames.ServerFrame) => JSON.stringify(frame).slice(0, 500)

/** The frame as `type`, or throw. @since 0.1.0 @category assertions */
export const expectType = <T extends Frames.ServerFrameType>(
  frame: Frames.ServerFrame,
  type: T
): Frames.ServerFrameOf<T> => {
  if (frame.type !== type) throw new Error(`expected ${type}, got ${shown(frame)}`)
  return frame as Frames.ServerFrameOf<T>
}

/** The error an `error` frame carries, or throw. @since 0.1.0 @category assertions */
export const errorOf = (frame: Frames.ServerFrame): LooseError => expectType(frame, "error").error

/** The frame without its request id. @since 0.1.0 @category frames */
export const noId = (frame: Frames.ServerFrame): Record<string, unknown> => {
  const { id: _id, ...rest } = frame as Frames.ServerFrame & { readonly id?: string }
  return rest
}
