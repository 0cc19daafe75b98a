// The `pilot-agent` command line.

export async function runPilotAgent(argv: string[]): Promise<number> {
  process.stderr.write(`pilot-agent: ${argv[0] ?? ''}: not available yet\n`);
  return 1;
}
