import type { Frames } from "@conclave/protocol"
import { assert } from "@effect/vitest"

/** A wire error with every kind's fields optional, so expectations can be plain literals. */
export interface LooseError {
  readonly kind: string
  readonly message?: string
  readonly retry_after_ms?: number
  readonly limit?: number
  readonly ours?: number
  readonly theirs?: number
}

export const errorOf = (frame: Frames.ServerFrame): LooseError => {
  if (frame.type !== "error") assert.fail(`expected an error frame, got ${JSON.stringify(frame)}`)
  return frame.error
}

export const expectType = <T extends Frames.ServerFrameType>(
  frame: Frames.ServerFrame,
  type: T
): Frames.ServerFrameOf<T> => {
  if (frame.type !== type) assert.fail(`expected ${type}, got ${JSON.stringify(frame)}`)
  return frame as Frames.ServerFrameOf<T>
}

export const op = (o: Record<string, unknown>) => ({ type: "admin", op: o })

/** The frame without its request id. */
export const noId = (frame: Frames.ServerFrame): Record<string, unknown> => {
  const { id: _id, ...rest } = frame as Frames.ServerFrame & { readonly id?: string }
  return rest
}
