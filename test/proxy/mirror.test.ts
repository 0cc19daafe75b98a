import t from 'tap';
import { shadowAuthority } from '../../dist/proxy/mirror.js';

t.test("Envoy's shadow host: the suffix goes before a port, never inside an IPv6 literal", async (t) => {
  t.equal(shadowAuthority('reviews'), 'reviews-shadow');
  t.equal(
    shadowAuthority('reviews.default.svc.cluster.local:9080'),
    'reviews.default.svc.cluster.local-shadow:9080',
  );
  t.equal(shadowAuthority('[::1]'), '[::1]-shadow');
  t.equal(shadowAuthority('[::1]:8080'), '[::1]-shadow:8080');
  t.equal(shadowAuthority('10.0.0.1:80'), '10.0.0.1-shadow:80');
  t.equal(shadowAuthority('a.com', ''), 'a.com', 'the suffix can be turned off');
});
