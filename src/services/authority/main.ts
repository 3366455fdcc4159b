/** The authority process: the CA service over mutual TLS, seeded from the PKI directory on first start. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pemDecode } from '../../core/crypto/keys.ts';
import { federationConfig, loadSecrets } from '../common/config.ts';
import { announce, onShutdown, startParty } from '../common/party.ts';
import { hashSecret } from '../common/secrets.ts';
import { mtlsServerOptions } from '../common/tls.ts';
import { authorityMigrations, buildAuthority, type AuthorityTables } from './app.ts';

const c = federationConfig();
const rt = await startParty<AuthorityTables>(c, 'authority', authorityMigrations);
const rootKey = await crypto.subtle.importKey(
  'pkcs8',
  pemDecode(
    readFileSync(join(c.pkiDir, 'ca.key.pem'), 'utf8'),
    'PRIVATE KEY',
  ) as Uint8Array<ArrayBuffer>,
  { name: 'ECDSA', namedCurve: 'P-256' },
  false,
  ['sign'],
);
const { app, authority } = await buildAuthority({
  database: rt.database,
  root: { cert: rt.pki.root, privateKey: rootKey },
  audit: rt.audit,
  adminTokenHash: await hashSecret(loadSecrets(c).adminToken),
  logLevel: c.logLevel,
  https: mtlsServerOptions({ cert: rt.keys.certPem, key: rt.keys.keyPem, pki: rt.pki }),
});
await authority.seed({
  ...rt.pki,
  crlPem: readFileSync(join(c.pkiDir, 'crl', 'ca.crl.pem'), 'utf8'),
});
await app.listen({ host: c.host, port: c.ports.authority });
announce('authority', { authority: c.ports.authority });
onShutdown(async () => {
  await app.close();
  await rt.database.close();
});
