// A TLS ClientHello reader for choosing a filter chain before any handshake (Envoy's
// tls_inspector): the SNI host name and the ALPN list, from the bytes a client sends first. It
// never throws and never reads past what it was given: every length is checked against the bytes
// that are there, and the whole hello is bounded (64 KiB, as Envoy). A hello split over several
// TLS records is reassembled. RFC 8446 §4.1.2 (ClientHello), RFC 6066 §3 (server_name), RFC 7301
// (ALPN); TLS 1.0 to 1.3 hellos share this layout.

/** The most a ClientHello may take (records included) before the connection is refused. */
export const MAX_CLIENT_HELLO = 64 * 1024;

const RECORD_HEADER = 5;
const CONTENT_HANDSHAKE = 0x16;
const HANDSHAKE_CLIENT_HELLO = 1;
/** TLSPlaintext.length must not exceed 2^14 (RFC 8446 §5.1). */
const MAX_RECORD = 16_384;
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;

export interface ClientHello {
  /** The SNI host name, lowercase; undefined when the client sent none. */
  readonly serverName: string | undefined;
  /** ALPN protocol names the client offers, in its order (empty when it sent none). */
  readonly alpn: readonly string[];
  /** Bytes of the records that carried the hello (the rest of the buffer is what came after it). */
  readonly length: number;
}

export type HelloResult =
  /** The bytes so far are the start of a valid hello: read more. */
  | { readonly kind: 'incomplete' }
  /** Not a TLS handshake record at all. */
  | { readonly kind: 'not_tls' }
  /** A TLS record, but not a well-formed ClientHello (or larger than MAX_CLIENT_HELLO). */
  | { readonly kind: 'invalid'; readonly reason: string }
  | ({ readonly kind: 'hello' } & ClientHello);

const INCOMPLETE: HelloResult = Object.freeze({ kind: 'incomplete' });
const NOT_TLS: HelloResult = Object.freeze({ kind: 'not_tls' });
const invalid = (reason: string): HelloResult => ({ kind: 'invalid', reason });

/** Parse the ClientHello at the start of `buf`. */
export function parseClientHello(buf: Uint8Array): HelloResult {
  if (buf.length === 0) return INCOMPLETE;
  if (buf[0] !== CONTENT_HANDSHAKE) return NOT_TLS;
  if (buf.length >= 2 && buf[1] !== 3) return NOT_TLS; // record version major: 3 (SSL 3.0 .. TLS 1.3)
  // Reassemble the handshake bytes carried by the leading handshake records.
  const parts: Uint8Array[] = [];
  let have = 0;
  let need = -1; // handshake message length (with its 4-byte header), once known
  let pos = 0;
  while (need < 0 || have < need) {
    if (pos + RECORD_HEADER > buf.length) return pos >= MAX_CLIENT_HELLO ? invalid('too large') : INCOMPLETE;
    if (buf[pos] !== CONTENT_HANDSHAKE) return invalid('hello interleaved with another record type');
    if (buf[pos + 1] !== 3) return invalid('bad record version');
    const len = ((buf[pos + 3] as number) << 8) | (buf[pos + 4] as number);
    if (len === 0 || len > MAX_RECORD) return invalid('bad record length');
    const end = pos + RECORD_HEADER + len;
    if (end > MAX_CLIENT_HELLO) return invalid('too large');
    if (end > buf.length) {
      // Not all of this record yet: enough of it to reject a wrong handshake type early.
      const partial = buf.subarray(pos + RECORD_HEADER);
      if (have === 0 && partial.length > 0 && partial[0] !== HANDSHAKE_CLIENT_HELLO)
        return invalid('not a ClientHello');
      return INCOMPLETE;
    }
    parts.push(buf.subarray(pos + RECORD_HEADER, end));
    have += len;
    pos = end;
    if (need < 0 && have >= 4) {
      const hs = parts.length === 1 ? (parts[0] as Uint8Array) : concat(parts, have);
      if (hs[0] !== HANDSHAKE_CLIENT_HELLO) return invalid('not a ClientHello');
      need = 4 + (((hs[1] as number) << 16) | ((hs[2] as number) << 8) | (hs[3] as number));
      if (need > MAX_CLIENT_HELLO) return invalid('too large');
    }
  }
  // The last record may carry more handshake messages after the hello (never from a client
  // before the server answers, but harmless): only the hello's own bytes are read.
  const hs = parts.length === 1 ? (parts[0] as Uint8Array) : concat(parts, have);
  const body = readHelloBody(hs.subarray(4, need));
  if (typeof body === 'string') return invalid(body);
  return { kind: 'hello', serverName: body.serverName, alpn: body.alpn, length: pos };
}

function concat(parts: readonly Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A bounds-checked cursor over one ClientHello body. */
class Reader {
  pos = 0;
  constructor(private readonly b: Uint8Array) {}
  get left(): number {
    return this.b.length - this.pos;
  }
  u8(): number {
    if (this.left < 1) return -1;
    return this.b[this.pos++] as number;
  }
  u16(): number {
    if (this.left < 2) return -1;
    const v = ((this.b[this.pos] as number) << 8) | (this.b[this.pos + 1] as number);
    this.pos += 2;
    return v;
  }
  /** The next `n` bytes, or undefined when fewer are left. */
  take(n: number): Uint8Array | undefined {
    if (n < 0 || this.left < n) return undefined;
    const out = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
}

/** The hello body (after the 4-byte handshake header); a string is why it is malformed. */
function readHelloBody(body: Uint8Array): { serverName: string | undefined; alpn: string[] } | string {
  const r = new Reader(body);
  if (r.take(2 + 32) === undefined) return 'truncated version/random'; // legacy_version, random
  const sid = r.u8();
  if (sid < 0 || sid > 32 || r.take(sid) === undefined) return 'bad session id';
  const suites = r.u16();
  if (suites < 2 || suites % 2 !== 0 || r.take(suites) === undefined) return 'bad cipher suites';
  const comp = r.u8();
  if (comp < 1 || r.take(comp) === undefined) return 'bad compression methods';
  const out: { serverName: string | undefined; alpn: string[] } = { serverName: undefined, alpn: [] };
  if (r.left === 0) return out; // no extensions (TLS 1.0-style hello)
  const extLen = r.u16();
  const exts = extLen < 0 ? undefined : r.take(extLen);
  if (exts === undefined || r.left !== 0) return 'bad extensions length';
  const e = new Reader(exts);
  const seen = new Set<number>();
  while (e.left > 0) {
    const type = e.u16();
    const len = e.u16();
    const data = len < 0 ? undefined : e.take(len);
    if (type < 0 || data === undefined) return 'truncated extension';
    if (seen.has(type)) return 'duplicate extension'; // RFC 8446 §4.2
    seen.add(type);
    if (type === EXT_SERVER_NAME) {
      const sni = readServerName(data);
      if (typeof sni !== 'object') return sni;
      out.serverName = sni.name;
    } else if (type === EXT_ALPN) {
      const alpn = readAlpn(data);
      if (typeof alpn === 'string') return alpn;
      out.alpn = alpn;
    }
  }
  return out;
}

/** server_name extension data: a list of (type, name); the host_name entry is the SNI. */
function readServerName(data: Uint8Array): { name: string | undefined } | string {
  if (data.length === 0) return { name: undefined }; // the server's empty echo; not sent by clients
  const r = new Reader(data);
  const listLen = r.u16();
  const list = listLen < 0 ? undefined : r.take(listLen);
  if (list === undefined || listLen === 0 || r.left !== 0) return 'bad server_name list';
  const l = new Reader(list);
  let name: string | undefined;
  while (l.left > 0) {
    const type = l.u8();
    const len = l.u16();
    const bytes = len < 0 ? undefined : l.take(len);
    if (type < 0 || bytes === undefined || len === 0) return 'bad server_name entry';
    if (type !== 0 || name !== undefined) continue; // only the first host_name counts
    name = hostName(bytes);
    if (name === undefined) return 'bad host_name';
  }
  return { name };
}

/** A host_name: printable ASCII without spaces, at most 255 bytes; lowercased (DNS names match case-insensitively). */
function hostName(bytes: Uint8Array): string | undefined {
  if (bytes.length > 255) return undefined;
  let s = '';
  for (const c of bytes) {
    if (c <= 0x20 || c >= 0x7f) return undefined;
    s += String.fromCharCode(c >= 0x41 && c <= 0x5a ? c + 32 : c);
  }
  return s;
}

/** ALPN extension data: a non-empty list of non-empty protocol names. */
function readAlpn(data: Uint8Array): string[] | string {
  const r = new Reader(data);
  const listLen = r.u16();
  const list = listLen < 0 ? undefined : r.take(listLen);
  if (list === undefined || listLen === 0 || r.left !== 0) return 'bad ALPN list';
  const l = new Reader(list);
  const out: string[] = [];
  while (l.left > 0) {
    const len = l.u8();
    const name = len < 1 ? undefined : l.take(len);
    if (name === undefined) return 'bad ALPN name';
    out.push(Buffer.from(name).toString('latin1'));
  }
  return out;
}
