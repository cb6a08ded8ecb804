/**
 * Typed replies: one request, one expected reply type, and one error for anything else.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type { Reply, RequestWithoutId } from "./Connection.js"

/** A reply of another type than the ones the request expects. @since 0.1.0 @category errors */
export class UnexpectedReply extends Data.TaggedError("UnexpectedReply")<{
  readonly got: Reply["type"]
  readonly expected: ReadonlyArray<Reply["type"]>
}> {
  override get message() {
    return `unexpected reply \`${this.got}\` (expected \`${this.expected.join("` or `")}\`)`
  }
}

/** The reply of type `T`. @since 0.1.0 @category models */
export type ReplyOf<T extends Reply["type"]> = Extract<Reply, { readonly type: T }>

/** What sends a request (a `Connection`'s `request`, or a test double). @since 0.1.0 @category models */
export type Requester<E> = (frame: RequestWithoutId) => Effect.Effect<Reply, E>

/** Require the reply to be one of `expected`. @since 0.1.0 @category refinements */
export const expect =
  <const T extends ReadonlyArray<Reply["type"]>>(...expected: T) =>
  (reply: Reply): Effect.Effect<ReplyOf<T[number]>, UnexpectedReply> =>
    (expected as ReadonlyArray<string>).includes(reply.type)
      ? Effect.succeed(reply as ReplyOf<T[number]>)
      : Effect.fail(new UnexpectedReply({ got: reply.type, expected }))

/**
 * Send `frame` and require a reply of one of the `expected` types.
 *
 * @since 0.1.0
 * @category requests
 */
export const request = <E, const T extends ReadonlyArray<Reply["type"]>>(
  send: Requester<E>,
  frame: RequestWithoutId,
  ...expected: T
): Effect.Effect<ReplyOf<T[number]>, E | UnexpectedReply> => Effect.flatMap(send(frame), expect(...expected))
