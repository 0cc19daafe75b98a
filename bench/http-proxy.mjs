// Baseline: node http-proxy@1.18.1 (unmaintained since 2020, still the most installed) with a
// keep-alive agent. Usage: node bench/http-proxy.mjs LISTEN_PORT TARGET_URL.

import httpProxy from 'http-proxy';
import { serveHttpProxy } from './lib/child.mjs';

await serveHttpProxy(httpProxy.createProxyServer);
