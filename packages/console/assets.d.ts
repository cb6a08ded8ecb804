/** The built console: `index.html` and `assets/` (absolute path, trailing separator). */
export declare const consoleDir: string
