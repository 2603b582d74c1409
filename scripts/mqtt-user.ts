// npm run mqtt-user -- --username texas-1 --role agent --site texas-1
// Makes a login for the embedded broker (HCP_MQTT_USERS_FILE, control-plane/mqtt/acl.ts): prints
// the token once, for the client (an agent takes it as HCP_AGENT_MQTT_TOKEN, the feeds as
// HCP_FEEDS_MQTT_TOKEN), and the line for the users file, which keeps only its SHA-256.
import { parseArgs } from 'node:util';
import { newMqttUser } from '../control-plane/mqtt/acl.js';

const USAGE = 'usage: npm run mqtt-user -- --username NAME --role agent|feed|reader [--site ID (agents)]';
let values: { username?: string; role?: string; site?: string };
try {
  ({ values } = parseArgs({ options: { username: { type: 'string' }, role: { type: 'string' }, site: { type: 'string' } }, strict: true }));
} catch (err) {
  console.error(`${(err as Error).message}\n${USAGE}`);
  process.exit(2);
}
const role = values.role;
if (!values.username || (role !== 'agent' && role !== 'feed' && role !== 'reader') || (role === 'agent') !== Boolean(values.site)) {
  console.error(USAGE);
  process.exit(2);
}
try {
  const u = newMqttUser({ username: values.username, role, site: values.site });
  console.log(`token (give it to the client; it is not stored): ${u.token}`);
  console.log(`line for the users file's "users" array:\n${JSON.stringify(u.line)}`);
} catch (err) {
  console.error((err as Error).message);
  process.exit(2);
}
