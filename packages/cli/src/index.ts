/**
 * The `conclave` CLI: the command tree, the skill renderer, logging.
 *
 * @since 0.1.0
 */
export * as Cli from "./Cli.js"
export * as CliError from "./CliError.js"
export * as CommandTree from "./CommandTree.js"
export * as GlobalOptions from "./GlobalOptions.js"
export * as Logging from "./Logging.js"
export * as Output from "./Output.js"
