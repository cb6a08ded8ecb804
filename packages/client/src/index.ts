/**
 * @conclave/client — what every conclave client needs: identity, local config and a connection.
 *
 * @since 0.1.0
 */
export * as AdminOps from "./AdminOps.js"
export * as Backoff from "./Backoff.js"
export * as ConfigDir from "./ConfigDir.js"
export * as Connection from "./Connection.js"
export * as Durations from "./Durations.js"
export * as History from "./History.js"
export * as Identity from "./Identity.js"
export * as LocalConfig from "./LocalConfig.js"
export * as Permission from "./Permission.js"
export * as Reconnect from "./Reconnect.js"
export * as Replies from "./Replies.js"
export * as ToolArgs from "./ToolArgs.js"
export * as Url from "./Url.js"
