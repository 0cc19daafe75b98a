#!/usr/bin/env node
// `courier` CLI: validate, explain, kube-inject, proxy-config.

import { runCourier } from './courier-cli.js';

process.exitCode = await runCourier(process.argv.slice(2));
