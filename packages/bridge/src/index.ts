/**
 * @conclave/bridge — the MCP stdio peer that links Claude Code sessions to conclave servers.
 *
 * @since 0.1.0
 */
export * as Bridge from "./Bridge.js"
export * as Dispatcher from "./Dispatcher.js"
export * as HookServer from "./HookServer.js"
export * as HookWire from "./HookWire.js"
export * as Injection from "./Injection.js"
export * as Link from "./Link.js"
export * as LoopGuard from "./LoopGuard.js"
export * as Mcp from "./Mcp.js"
export * as Ports from "./Ports.js"
export * as ToolError from "./ToolError.js"
export * as Tools from "./Tools.js"
