// Baseline: fastify with @fastify/reply-from, which forwards through an undici Pool (its default
// transport; 128 connections, pipelining 1). One catch-all route, no routing rules, no metrics:
// what a Node user would write instead of a data plane. Usage: node bench/fastify-reply-from.mjs
// LISTEN_PORT TARGET_URL.

import replyFrom from '@fastify/reply-from';
import Fastify from 'fastify';
import { exitWithParent } from './lib/child.mjs';

const [listenPort, target] = process.argv.slice(2);
const app = Fastify({ logger: false, keepAliveTimeout: 120_000, requestTimeout: 0 });
await app.register(replyFrom, { base: target, undici: { connections: 128, pipelining: 1 } });
app.all('/*', (req, reply) => reply.from(req.url));
await app.listen({ port: Number(listenPort), host: '127.0.0.1' });
process.stdout.write(`${JSON.stringify({ port: app.server.address().port })}\n`);
exitWithParent();
