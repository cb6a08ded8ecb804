/** This build's version, as `GET /status` and the telemetry resource report it. @internal */
export const VERSION = "0.1.0"
