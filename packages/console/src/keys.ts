/**
 * The console's identity (D-51): one non-extractable Ed25519 key made by WebCrypto and kept in
 * IndexedDB (a `CryptoKey` is stored as itself; its private half never leaves the browser), plus the
 * session handle this tab uses.
 */

const DB_NAME = "conclave-console"
const STORE = "keys"
const KEY_ID = "identity"

export interface Identity {
  readonly privateKey: CryptoKey
  /** The raw 32-byte public key as base64url (the wire form). */
  readonly pubkey: string
}

export const base64url = (bytes: Uint8Array): string => {
  let binary = ""
  for (let i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]!)
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "")
}

const open = (): Promise<IDBDatabase> =>
  new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1)
    request.onupgradeneeded = () => request.result.createObjectStore(STORE)
    request.onsuccess = () => resolve(request.result)
    request.onerror = () => reject(request.error ?? new Error("IndexedDB is not available"))
  })

const run = <A>(mode: IDBTransactionMode, body: (store: IDBObjectStore) => IDBRequest<A>): Promise<A> =>
  open().then((db) =>
    new Promise<A>((resolve, reject) => {
      const tx = db.transaction(STORE, mode)
      const request = body(tx.objectStore(STORE))
      tx.oncomplete = () => {
        db.close()
        resolve(request.result)
      }
      tx.onerror = () => {
        db.close()
        reject(tx.error ?? new Error("IndexedDB transaction failed"))
      }
    })
  )

interface Stored {
  readonly privateKey: CryptoKey
  readonly pubkey: string
}

const isStored = (value: unknown): value is Stored =>
  typeof value === "object" && value !== null && "privateKey" in value && "pubkey" in value &&
  value.privateKey instanceof CryptoKey && typeof value.pubkey === "string"

/** The enrolled key, if this browser has one. */
export const load = async (): Promise<Identity | undefined> => {
  const value: unknown = await run("readonly", (store) => store.get(KEY_ID))
  return isStored(value) ? value : undefined
}

/** A fresh key pair: the private key is not extractable. Not stored until `save`. */
export const generate = async (): Promise<Identity> => {
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]) as CryptoKeyPair
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey))
  return { privateKey: pair.privateKey, pubkey: base64url(raw) }
}

export const save = (identity: Identity): Promise<unknown> =>
  run("readwrite", (store) => store.put({ privateKey: identity.privateKey, pubkey: identity.pubkey }, KEY_ID))

/** Sign-out: forget the key. */
export const forget = (): Promise<unknown> => run("readwrite", (store) => store.delete(KEY_ID))

export const sign = async (identity: Identity, message: Uint8Array<ArrayBuffer>): Promise<string> =>
  base64url(new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, identity.privateKey, message)))

/** This tab's session handle: `console-` and 6 random hex digits, kept for the tab's life. */
export const handle = (): string => {
  const existing = sessionStorage.getItem("conclave.handle")
  if (existing !== null && /^console-[0-9a-f]{6}$/.test(existing)) return existing
  const bytes = crypto.getRandomValues(new Uint8Array(3))
  const fresh = `console-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`
  sessionStorage.setItem("conclave.handle", fresh)
  return fresh
}
