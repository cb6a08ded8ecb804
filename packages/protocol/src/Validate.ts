/**
 * Semantic checks a decoded frame must pass before anything is written (D-15): names, byte lengths.
 * The server answers a failure with `malformed_frame` and keeps the session.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Either from "effect/Either"
import { isSmallOrder } from "./Auth.js"
import * as Base64Url from "./Base64Url.js"
import type { AdminOp, ClientFrame } from "./Frames.js"
import { PUBLIC_KEY_BYTES, REQUEST_ID_MAX_LENGTH } from "./Limits.js"
import { nameProblem } from "./Names.js"

/** @since 0.1.0 @category errors */
export class InvalidFrame extends Data.TaggedError("InvalidFrame")<{ readonly detail: string }> {
  override get message() {
    return this.detail
  }
}

const name = (what: string, value: string): InvalidFrame | undefined => {
  const problem = nameProblem(value)
  if (problem === undefined) return undefined
  // SPEC §2.6 fixes the texts for usernames, machine names and handles; channel names (D-15) say why.
  return new InvalidFrame({
    detail: what === "channel name" ? `invalid ${what}: \`${value}\` (${problem})` : `invalid ${what}: \`${value}\``
  })
}

const pubkey = (value: string): InvalidFrame | undefined => {
  const bytes = Base64Url.decode(value)
  if (bytes === undefined || bytes.length !== PUBLIC_KEY_BYTES) {
    return new InvalidFrame({ detail: "malformed key or signature: public key must be 32 bytes" })
  }
  return isSmallOrder(bytes)
    ? new InvalidFrame({ detail: "malformed key or signature: public key is a small-order point" })
    : undefined
}

/**
 * The first problem with an admin op's names or keys, if any. Only names that are about to be
 * created are checked: referring to an existing odd name must still work.
 *
 * @since 0.1.0
 * @category validation
 */
export const adminOpProblem = (op: AdminOp): InvalidFrame | undefined => {
  switch (op.kind) {
    case "create_channel":
      return name("channel name", op.name)
    case "rename_channel":
      return name("channel name", op.new_name)
    case "acl_add":
      return name("username", op.user)
    case "machine_add":
      return name("machine name", op.name) ?? pubkey(op.pubkey)
    default:
      return undefined
  }
}

/** @since 0.1.0 @category validation */
export const validateClientFrame = (frame: ClientFrame): Either.Either<ClientFrame, InvalidFrame> => {
  let problem: InvalidFrame | undefined
  switch (frame.type) {
    case "register":
      problem = name("username", frame.username) ?? name("machine name", frame.machine)
      break
    case "hello":
      problem = name("session handle", frame.session)
      break
    case "admin":
      problem = adminOpProblem(frame.op)
      break
    case "read_since":
      if (
        (frame.since_seq === null ? 0 : 1) + (frame.since_ms === null ? 0 : 1) + (frame.before_seq === null ? 0 : 1) !==
          1
      ) {
        problem = new InvalidFrame({
          detail: "read_since takes exactly one of `since_seq`, `since_ms` or `before_seq`"
        })
      }
      break
    case "permission_request":
    case "permission_verdict":
      if (frame.request_id.length === 0 || frame.request_id.length > REQUEST_ID_MAX_LENGTH) {
        problem = new InvalidFrame({
          detail: `\`request_id\` must be 1 to ${REQUEST_ID_MAX_LENGTH} characters`
        })
      } else if (frame.type === "permission_request" && frame.tool_name.length === 0) {
        problem = new InvalidFrame({ detail: "`tool_name` must not be empty" })
      }
      break
    default:
      break
  }
  return problem === undefined ? Either.right(frame) : Either.left(problem)
}
