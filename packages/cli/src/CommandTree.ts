/**
 * The shape of the command tree as the skill's command reference sees it.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 @category models */
export interface CommandNode {
  /** Words after `conclave` (empty for the root). */
  readonly path: ReadonlyArray<string>
  /** The long help, plain text (usage line first). */
  readonly help: () => string
  readonly children: ReadonlyArray<CommandNode>
}

/**
 * Depth-first, definition order: a `### \`conclave <path>\`` heading and the long help in a fenced block.
 *
 * @since 0.1.0
 * @category rendering
 */
export const renderReference = (root: CommandNode): string => {
  const out: Array<string> = []
  const visit = (n: CommandNode) => {
    out.push(`### \`${["conclave", ...n.path].join(" ")}\``, "", "```text", n.help(), "```", "")
    for (const child of n.children) visit(child)
  }
  visit(root)
  return out.join("\n")
}
