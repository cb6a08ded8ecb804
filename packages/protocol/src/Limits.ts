/**
 * Every limit and constant of the protocol (SPEC §8, DECISIONS D-9, D-10).
 *
 * @since 0.1.0
 */

/** @since 0.1.0 @category constants */
export const PROTOCOL_VERSION = 1

/** Hard ceiling on one WebSocket message (SPEC §2.1); the server default is lower (D-9). @since 0.1.0 @category constants */
export const MAX_FRAME_BYTES_CEILING = 16 * 1024 * 1024

/** Default frame cap enforced by the server's WebSocket layer before buffering (D-9). @since 0.1.0 @category constants */
export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024

/** Default cap on a message body, in UTF-8 bytes (D-9). @since 0.1.0 @category constants */
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024

/** @since 0.1.0 @category constants */
export const NONCE_BYTES = 32
/** @since 0.1.0 @category constants */
export const SEED_BYTES = 32
/** @since 0.1.0 @category constants */
export const PUBLIC_KEY_BYTES = 32
/** @since 0.1.0 @category constants */
export const SIGNATURE_BYTES = 64
/** Invite tokens and instance ids are 24 random bytes, base64url (32 characters). @since 0.1.0 @category constants */
export const TOKEN_BYTES = 24

/** @since 0.1.0 @category constants */
export const HANDSHAKE_TIMEOUT_MS = 10_000
/** Server→client frames queued per session before the consumer is dropped. @since 0.1.0 @category constants */
export const OUTBOX_CAPACITY = 1024
/** Undecoded client frames read ahead per session before the socket is paused (D-11). @since 0.1.0 @category constants */
export const INBOX_CAPACITY = 64
/** @since 0.1.0 @category constants */
export const IDLE_TIMEOUT_MS = 60_000
/** @since 0.1.0 @category constants */
export const REAPER_INTERVAL_MS = 15_000
/** @since 0.1.0 @category constants */
export const HISTORY_RETENTION_MS = 7 * 24 * 60 * 60 * 1000
/** @since 0.1.0 @category constants */
export const RETENTION_SWEEP_INTERVAL_MS = 60 * 60 * 1000
/** @since 0.1.0 @category constants */
export const HISTORY_PAGE_CAP = 500

/** Token bucket over channel_msg + whisper per session (D-10). @since 0.1.0 @category constants */
export const DEFAULT_RATE_PER_SECOND = 2
/** @since 0.1.0 @category constants */
export const DEFAULT_RATE_BURST = 20
/** Connections still in the handshake per remote address (D-10). @since 0.1.0 @category constants */
export const DEFAULT_MAX_PENDING_PER_IP = 32
/** Register attempts per remote address per minute (D-10). @since 0.1.0 @category constants */
export const DEFAULT_REGISTER_LIMIT_PER_MINUTE = 30

/** @since 0.1.0 @category constants */
export const DEFAULT_BIND = "0.0.0.0:4390"
/** @since 0.1.0 @category constants */
export const DEFAULT_PORT = 4390
/** @since 0.1.0 @category constants */
export const INSTANCE_ID_HEADER = "x-conclave-server-id"

/** @since 0.1.0 @category constants */
export const KEEPALIVE_INTERVAL_MS = 20_000
/** @since 0.1.0 @category constants */
export const RECONNECT_BACKOFF_BASE_MS = 200
/** @since 0.1.0 @category constants */
export const RECONNECT_BACKOFF_CAP_MS = 30_000
/** @since 0.1.0 @category constants */
export const STABILITY_WINDOW_MS = 30_000
/** @since 0.1.0 @category constants */
export const RAPID_DROP_THRESHOLD = 3
/** Dial + upgrade + handshake bound for bridge links and the CLI (D-26, SPEC §6.1). @since 0.1.0 @category constants */
export const CONNECT_TIMEOUT_MS = 10_000
/** @since 0.1.0 @category constants */
export const RESPONSE_TIMEOUT_MS = 15_000
/** A tool call waits at most this long for a link that is down (D-26). @since 0.1.0 @category constants */
export const LINK_WAIT_MS = 10_000
/** @since 0.1.0 @category constants */
export const TAIL_BACKOFF_BASE_MS = 1_000
/** @since 0.1.0 @category constants */
export const TAIL_BACKOFF_CAP_MS = 30_000
/** Missed messages injected per channel after a reconnect (D-22). @since 0.1.0 @category constants */
export const RECONNECT_CATCHUP_CAP = 100
/** Consecutive agent-origin messages before the loop guard trips (D-12). @since 0.1.0 @category constants */
export const DEFAULT_LOOP_LIMIT = 20
/** @since 0.1.0 @category constants */
export const INBOX_RING_CAPACITY = 200
/** @since 0.1.0 @category constants */
export const DEFAULT_MCP_PROTOCOL_VERSION = "2025-06-18"
/** @since 0.1.0 @category constants */
export const NAME_MAX_LENGTH = 64
/** @since 0.1.0 @category constants */
export const REQUEST_ID_MAX_LENGTH = 64
/** @since 0.1.0 @category constants */
export const U32_MAX = 4_294_967_295
/** The JavaScript Date range, in milliseconds either side of the epoch. @since 0.1.0 @category constants */
export const MAX_DATE_MS = 8.64e15
/** Deepest JSON nesting a frame may have; deeper is `malformed_frame`, refused before parsing. @since 0.1.0 @category limits */
export const MAX_JSON_DEPTH = 32
/** Largest frame accepted before the handshake completes (its frames are tiny). @since 0.1.0 @category limits */
export const PREAUTH_MAX_FRAME_BYTES = 8 * 1024
/** Most bytes of history one `history` page carries (more rows: `more: true`). @since 0.1.0 @category limits */
export const HISTORY_PAGE_MAX_BYTES = 1024 * 1024
/** Bytes written to a session and not yet taken by the kernel before it is dropped as a slow consumer. @since 0.1.0 @category limits */
export const OUTBOX_MAX_BYTES = 8 * 1024 * 1024
/** How long a console enrollment code stays redeemable (D-51: 10 minutes). @since 0.1.0 */
export const ENROLL_CODE_TTL_MS = 10 * 60 * 1000
/** Random bytes in a console enrollment code (its text is 32 base64url characters). @since 0.1.0 */
export const ENROLL_CODE_BYTES = 24
