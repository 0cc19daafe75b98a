// Baseline: http-proxy-3, the maintained TypeScript rewrite of http-proxy (same passes, socket
// leak fixes), with a keep-alive agent. Usage: node bench/http-proxy-3.mjs LISTEN_PORT TARGET_URL.

import { createProxyServer } from 'http-proxy-3';
import { serveHttpProxy } from './lib/child.mjs';

await serveHttpProxy(createProxyServer);
