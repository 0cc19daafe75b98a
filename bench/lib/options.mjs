// Command-line options of bench/run.mjs.

export const HELP = `usage: npm run bench -- [options]
  --duration S          seconds per measured throughput run (default 4; wrk takes whole seconds)
  --rounds N            interleaved rounds (default 5)
  --warmup S            warm-up seconds per target, discarded (default 3)
  --connections N       connections per load run (default 64)
  --driver D            throughput load generator: auto (wrk when installed), wrk, autocannon
  --cpu-quota Q         CPU quota per proxy in the throughput rounds, in cores: auto (default; sized
                        from the warm-up so the load side keeps 2x headroom), a number (0.25), or off
  --headroom H          direct must reach H x the fastest target, or the ratios are withheld (1.5)
  --rate R              offered load of the fixed-rate run: latency and CPU per request (2000 req/s)
  --latency-duration S  seconds per target in the fixed-rate run (default 5; 0 skips it)
  --targets LIST        comma-separated subset of courier,http-proxy,http-proxy-3,fastify,nginx,bare
                        (direct is always measured; courier always runs)
  --rows LIST           comma-separated subset of http,https,handshakes,tcp (default: all):
                          http        the plaintext rows above (every target, direct, the fixed rate)
                          https       HTTPS keep-alive req/s: courier vs nginx terminating TLS, and
                                      courier's own plaintext in the same rounds
                          handshakes  new TLS handshakes/s, one request per connection, no resumption
                          tcp         TCP proxy MB/s: courier Gateway TCP server vs nginx stream
                        the TLS and TCP rows need wrk, openssl and (for nginx) nginx's stream module
  --no-tls              the plaintext rows only (--rows http)
  --tls-rounds N        interleaved rounds of the https, handshakes and tcp rows (default 3)
  --tcp-mib N           MiB streamed through each target in the first tcp warm-up (default 512);
                        the second streams what that rate moves in --warmup seconds, each round
                        what its target moves in --duration seconds under the quota
  --scaling             also run courier --concurrency 1 vs 2
  --calibrate           also run the ~40-line bare forwarder (node:http + undici), a calibration point
  --no-nginx            skip nginx even when installed
  --profile             run courier under node --cpu-prof; profiles land in bench/results/profiles/
  --quick               1 s warm-up, 1 round of 3 s, 3 s fixed-rate runs, 1 TLS round (about 2 minutes)`;

export const ALL_TARGETS = ['courier', 'http-proxy', 'http-proxy-3', 'fastify', 'nginx', 'bare'];
export const ALL_ROWS = ['http', 'https', 'handshakes', 'tcp'];
/** The rows bench/lib/tls-rows.mjs runs. */
export const TLS_ROWS = ['https', 'handshakes', 'tcp'];

export function parseArgs(argv) {
  const o = {
    duration: 4,
    rounds: 5,
    warmup: 3,
    connections: 64,
    driver: 'auto',
    cpuQuota: 'auto',
    headroom: 1.5,
    rate: 2000,
    latencyDuration: 5,
    targets: ALL_TARGETS.filter((t) => t !== 'bare'),
    scaling: false,
    calibrate: false,
    nginx: true,
    profile: false,
    rows: [...ALL_ROWS],
    tlsRounds: 3,
    tcpMib: 512,
  };
  const num = (name, v) => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n < 0) throw new Error(`--${name}: expected a number`);
    return n;
  };
  const oneOf = (name, v, allowed) => {
    if (!allowed.includes(v)) throw new Error(`--${name}: expected one of ${allowed.join(', ')}`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split('=', 2);
    const value = () => inline ?? argv[++i];
    const name = flag.slice(2);
    switch (flag) {
      case '--duration':
      case '--warmup':
      case '--rate':
      case '--headroom':
        o[name] = num(name, value());
        break;
      case '--latency-duration':
        o.latencyDuration = num(name, value());
        break;
      case '--rounds':
      case '--connections':
        o[name] = Math.max(1, Math.round(num(name, value())));
        break;
      case '--tls-rounds':
        o.tlsRounds = Math.max(1, Math.round(num(name, value())));
        break;
      case '--tcp-mib':
        o.tcpMib = Math.max(1, Math.round(num(name, value())));
        break;
      case '--rows':
        o.rows = value()
          .split(',')
          .map((r) => oneOf(name, r.trim(), ALL_ROWS));
        break;
      case '--no-tls':
        o.rows = ['http'];
        break;
      case '--driver':
        o.driver = oneOf(name, value(), ['auto', 'wrk', 'autocannon']);
        break;
      case '--cpu-quota': {
        const v = value();
        o.cpuQuota = v === 'auto' || v === 'off' ? v : num(name, v);
        if (o.cpuQuota === 0) o.cpuQuota = 'off';
        break;
      }
      case '--targets':
        o.targets = value()
          .split(',')
          .map((t) => oneOf(name, t.trim(), ALL_TARGETS));
        break;
      case '--scaling':
      case '--calibrate':
      case '--profile':
        o[name] = true;
        break;
      case '--no-nginx':
        o.nginx = false;
        break;
      case '--quick':
        Object.assign(o, { warmup: 1, duration: 3, rounds: 1, latencyDuration: 3, tlsRounds: 1 });
        break;
      case '--help':
      case '-h':
        console.log(HELP);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown option ${argv[i]}\n${HELP}`);
    }
  }
  if (!o.targets.includes('courier')) o.targets.unshift('courier');
  if (o.calibrate && !o.targets.includes('bare')) o.targets.push('bare');
  if (!o.nginx) o.targets = o.targets.filter((t) => t !== 'nginx');
  return o;
}
