// The console's shell: sign-in with an API key, the nav (only the pages the key's role may see),
// the live stream's status, and the page of the current path.
import { useEffect, useState } from 'preact/hooks';
import { api, can, messageOf, setUnauthorizedHandler, storeKey, storedKey, type Me } from './api.js';
import { connectLive, disconnectLive, useLiveStatus } from './live.js';
import { PAGES } from './pages/index.js';
import { Link, match, navigate, usePath } from './router.js';

function SignIn(props: { onSignedIn: (me: Me) => void; message: string | null }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<string | null>(props.message);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    const k = key.trim();
    if (!/^hcp_[A-Za-z0-9_-]{20,200}$/.test(k)) {
      setError('That is not an HCP API key: a key looks like hcp_ followed by at least 20 letters, digits, _ or -.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const me = await api<Me>('/api/v1/whoami', { key: k });
      if (me.role === 'agent' || me.role === 'feed') throw new Error(`this is a ${me.role} credential, not a person's key; sign in with an admin, operator, customer or viewer key`);
      storeKey(k);
      props.onSignedIn(me);
    } catch (err) {
      const m = messageOf(err);
      setError((err as { status?: number }).status === 401 ? `The key was refused: it is unknown, revoked or expired (${m.replace(/^Sign-in needed: /, '')}).` : m);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="signin">
      <h1>HCP console</h1>
      <form onSubmit={submit}>
        <label for="key">API key</label>
        <input id="key" data-testid="key" type="password" autocomplete="off" placeholder="hcp_…" value={key} onInput={(e) => setKey((e.target as HTMLInputElement).value)} />
        <button type="submit" data-testid="signin" disabled={busy}>{busy ? 'Checking…' : 'Sign in'}</button>
        {error && <p class="error" role="alert" data-testid="signin-error">{error}</p>}
      </form>
      <p class="hint">npm start keeps the admin key in data/admin.key. The key stays in this tab only (sessionStorage).</p>
    </main>
  );
}

function LiveBadge() {
  const s = useLiveStatus();
  const text = s === 'live' ? 'live' : s === 'reconnecting' ? 'reconnecting…' : s === 'connecting' ? 'connecting…' : 'offline';
  return <span class={`live live-${s}`} data-testid="live-status">{text}</span>;
}

export function App() {
  const [me, setMe] = useState<Me | null>(null);
  const [checking, setChecking] = useState(!!storedKey());
  const [signinMessage, setSigninMessage] = useState<string | null>(null);
  const path = usePath();

  const signOut = (message: string | null) => {
    storeKey(null);
    disconnectLive();
    setMe(null);
    setSigninMessage(message);
  };
  useEffect(() => {
    setUnauthorizedHandler((m) => signOut(`Signed out: the key stopped working (${m}).`));
    const k = storedKey();
    if (!k) return;
    api<Me>('/api/v1/whoami')
      .then(setMe, (err) => signOut(`The stored key was refused: ${messageOf(err)}`))
      .finally(() => setChecking(false));
  }, []);
  useEffect(() => {
    if (me) connectLive();
  }, [me]);

  if (checking) return <main class="signin"><p>Checking the key…</p></main>;
  if (!me) return <SignIn message={signinMessage} onSignedIn={(m) => { setSigninMessage(null); setMe(m); }} />;

  const allowed = PAGES.filter((p) => can(me, p.perm));
  const hit = PAGES.map((p) => ({ spec: p, params: match(p.path, path) })).find((x) => x.params !== null);
  const page = hit && can(me, hit.spec.perm) ? { C: hit.spec.component, params: hit.params! } : null;
  // a key that may not see the fleet (a customer) goes to the first page it may see
  if (!page && path === '/' && allowed[0] && allowed[0].path !== '/') queueMicrotask(() => navigate(allowed[0]!.path));
  return (
    <div class="shell">
      <header>
        <strong class="brand">HCP</strong>
        <nav>
          {allowed.filter((p) => p.nav).map((p) => (
            <Link href={p.path} class={match(p.path, path) ? 'active' : ''} testId={`nav-${p.nav!.toLowerCase().replace(/\W+/g, '-')}`}>{p.nav}</Link>
          ))}
        </nav>
        <LiveBadge />
        <span class="who" data-testid="whoami">{me.name} ({me.role}{me.customer_id ? `, ${me.customer_id}` : ''})</span>
        <button class="link" data-testid="signout" onClick={() => signOut(null)}>Sign out</button>
      </header>
      <main>
        {page ? <page.C me={me} params={page.params} /> : hit ? <p class="error" role="alert">Your role ({me.role}) may not see this page.</p> : <p class="error">No page at {path}.</p>}
      </main>
    </div>
  );
}
