/**
 * @conclave/server — the conclave central server as Effect services and one embeddable Layer.
 *
 * @since 0.1.0
 */
export * as Admins from "./Admins.js"
export * as Broker from "./Broker.js"
export * as ConsoleAssets from "./ConsoleAssets.js"
export * as Enrollments from "./Enrollments.js"
export * as Hub from "./Hub.js"
export * as NatsBroker from "./NatsBroker.js"
export * as PgStore from "./PgStore.js"
export * as RateLimit from "./RateLimit.js"
export * as Reaper from "./Reaper.js"
export * as Requests from "./Requests.js"
export * as Retention from "./Retention.js"
export * as ServerConfig from "./ServerConfig.js"
export * as ServerLive from "./ServerLive.js"
export * as Session from "./Session.js"
export * as SqliteStore from "./SqliteStore.js"
export * as Store from "./Store.js"
export * as Telemetry from "./Telemetry.js"
export * as Transport from "./Transport.js"
