// Raw HTTP/1.1 on one client socket: exact bytes out, responses parsed back (Content-Length,
// chunked, bodyless), for tests that must control framing byte by byte.

import { connect } from 'node:net';
import { sleep } from './procs.js';

export interface RawResponse {
  status: number;
  /** Lower-case names; repeated headers joined with ', '. */
  headers: Record<string, string>;
  body: string;
  chunked: boolean;
}

/** Parse as many complete responses as `buf` holds; `noBody[i]` for HEAD-like answers. */
export function parseResponses(buf: string, noBody: boolean[]): { responses: RawResponse[]; rest: string } {
  const responses: RawResponse[] = [];
  for (;;) {
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) break;
    const lines = buf.slice(0, end).split('\r\n');
    const status = Number((lines[0] ?? '').split(' ')[1]);
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const c = l.indexOf(':');
      const k = l.slice(0, c).toLowerCase();
      const v = l.slice(c + 1).trim();
      headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`;
    }
    let rest = buf.slice(end + 4);
    let body = '';
    const chunked = headers['transfer-encoding'] === 'chunked';
    const bodyless = noBody[responses.length] === true || status === 204 || status === 304;
    if (bodyless) {
      // nothing
    } else if (chunked) {
      let ok = false;
      for (;;) {
        const nl = rest.indexOf('\r\n');
        if (nl < 0) break;
        const size = Number.parseInt(rest.slice(0, nl), 16);
        if (rest.length < nl + 2 + size + 2) break;
        body += rest.slice(nl + 2, nl + 2 + size);
        rest = rest.slice(nl + 2 + size + 2);
        if (size === 0) {
          ok = true;
          break;
        }
      }
      if (!ok) break;
    } else if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      if (rest.length < n) break;
      body = rest.slice(0, n);
      rest = rest.slice(n);
    }
    responses.push({ status, headers, body, chunked });
    buf = rest;
  }
  return { responses, rest: buf };
}

/**
 * Send `writes` (with a pause between them) on one connection and collect `expect` responses.
 * Resolves when they are all in, or when the server closes; `closed` says whether it did.
 */
export function exchange(
  port: number,
  writes: string[],
  expect: number,
  noBody: boolean[] = [],
  pauseMs = 50,
): Promise<{ responses: RawResponse[]; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    let buf = '';
    let closed = false;
    let responses: RawResponse[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(
        new Error(`timed out with ${responses.length}/${expect} responses; buffered ${JSON.stringify(buf)}`),
      );
    }, 10_000);
    const done = () => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ responses, closed });
    };
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      const p = parseResponses(buf, noBody);
      responses = p.responses;
      if (responses.length >= expect) setTimeout(done, 30); // catch a close that follows
    });
    sock.on('close', () => {
      closed = true;
      responses = parseResponses(buf, noBody).responses;
      done();
    });
    sock.on('error', () => {});
    void (async () => {
      for (const [i, w] of writes.entries()) {
        if (i > 0) await sleep(pauseMs);
        if (!sock.destroyed) sock.write(w, 'latin1');
      }
    })();
  });
}
