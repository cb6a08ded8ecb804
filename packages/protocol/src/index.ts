/**
 * @conclave/protocol — the wire contract of conclave.
 *
 * @since 0.1.0
 */
export * as Auth from "./Auth.js"
export * as Base64Url from "./Base64Url.js"
export * as Codec from "./Codec.js"
export * as Errors from "./Errors.js"
export * as Frames from "./Frames.js"
export * as JsonDepth from "./JsonDepth.js"
export * as JsonSchema from "./JsonSchema.js"
export * as Limits from "./Limits.js"
export * as Names from "./Names.js"
export * as Skeleton from "./Skeleton.js"
export * as Validate from "./Validate.js"
