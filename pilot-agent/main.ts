#!/usr/bin/env node
// `pilot-agent` CLI entry.

import { runPilotAgent } from './agent-cli.js';

process.exit(await runPilotAgent(process.argv.slice(2)));
