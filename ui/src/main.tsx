import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { setOnUnauthenticated, token } from './api.ts';
import { useRoute } from './router.ts';
import { BuildsPage } from './builds-page.tsx';
import { BuildPage } from './build-page.tsx';
import { DeadLettersPage, WorkersPage } from './fleet-pages.tsx';
import { RebuildsPage } from './rebuilds-page.tsx';
import { CALLBACK_PATH, expiresAt, finishLogin, issuerLogoutUrl, logins, signOut, startLogin, type OidcLogin } from './oidc.ts';
import './style.css';

type SignedOutBecause = null | 'refused' | 'expired';

function SignIn({ onSignedIn, because }: { onSignedIn: () => void; because: SignedOutBecause }) {
  const [value, setValue] = useState('');
  const [issuers, setIssuers] = useState<OidcLogin[]>([]);
  const [failed, setFailed] = useState<string | null>(null);
  useEffect(() => {
    logins().then(setIssuers, () => setIssuers([]));
  }, []);
  return (
    <main class="signin">
      <h1>fleet console</h1>
      {because === 'refused' && <p role="alert" class="error">The API refused that token (expired, revoked or mistyped). Sign in again.</p>}
      {because === 'expired' && <p role="alert" class="error">Your session has expired. Sign in again.</p>}
      {failed !== null && <p role="alert" class="error">{failed}</p>}
      {issuers.map((login) => (
        <p>
          <button type="button" class="oidc" onClick={() => startLogin(login).catch((e: unknown) => setFailed(String(e)))}>
            Sign in with {new URL(login.issuer).host}
          </button>
        </p>
      ))}
      <form
        onSubmit={(e) => {
          e.preventDefault();
          const t = value.trim();
          if (t === '') return;
          signOut();
          token.set(t);
          onSignedIn();
        }}
      >
        <label for="token">{issuers.length > 0 ? 'Or an API token' : 'API token'}</label>
        <input id="token" name="token" type="password" autocomplete="off" spellcheck={false} placeholder="flt_…" value={value} onInput={(e) => setValue(e.currentTarget.value)} required />
        <p class="hint">Kept in this tab only (sessionStorage) and sent as a bearer token to this coordinator's API.</p>
        <button type="submit">Sign in</button>
      </form>
    </main>
  );
}

/** Back from the issuer: trade the code for the ID token, then return to where the person was. */
function OidcCallback({ onSignedIn }: { onSignedIn: () => void }) {
  const [failed, setFailed] = useState<string | null>(null);
  useEffect(() => {
    finishLogin(location.search).then(
      (back) => {
        history.replaceState(null, '', back.startsWith('/ui/') && !back.startsWith(CALLBACK_PATH) ? back : '/ui/');
        dispatchEvent(new PopStateEvent('popstate'));
        onSignedIn();
      },
      (e: unknown) => setFailed(e instanceof Error ? e.message : String(e)),
    );
  }, []);
  if (failed === null) return <main class="signin"><p aria-live="polite">Signing in…</p></main>;
  return (
    <main class="signin">
      <p role="alert" class="error">{failed}</p>
      <p><a href="/ui/">Back to sign-in</a></p>
    </main>
  );
}

function App() {
  const route = useRoute();
  const [signedIn, setSignedIn] = useState(token.get() !== null && route.page !== 'oidc-callback');
  const [because, setBecause] = useState<SignedOutBecause>(null);
  const signedOut = (why: SignedOutBecause): void => {
    signOut();
    setBecause(why);
    setSignedIn(false);
  };
  useEffect(() => {
    setOnUnauthenticated(() => signedOut('refused'));
  }, []);
  // An ID token says when it expires: back to sign-in then, not at the next refused call.
  useEffect(() => {
    const at = signedIn ? expiresAt() : null;
    if (at === null) return;
    const timer = setTimeout(() => signedOut('expired'), Math.max(0, at - Date.now()));
    return () => clearTimeout(timer);
  }, [signedIn]);
  const onSignedIn = (): void => {
    setBecause(null);
    setSignedIn(true);
  };
  if (!signedIn && route.page === 'oidc-callback') return <OidcCallback onSignedIn={onSignedIn} />;
  if (!signedIn) return <SignIn because={because} onSignedIn={onSignedIn} />;
  const current = route.page === 'build' ? 'builds' : route.page;
  const nav = (href: string, page: string, label: string) => (
    <a href={href} aria-current={current === page ? 'page' : undefined}>
      {label}
    </a>
  );
  return (
    <>
      <a class="skip" href="#content">Skip to content</a>
      <header class="top">
        <span class="brand">fleet</span>
        <nav aria-label="Main">
          {nav('/ui/', 'builds', 'Builds')}
          {nav('/ui/workers', 'workers', 'Workers')}
          {nav('/ui/rebuilds', 'rebuilds', 'Rebuild waves')}
          {nav('/ui/dead-letters', 'dead-letters', 'Dead letters')}
        </nav>
        <button
          type="button"
          class="link"
          onClick={() => {
            // signed in at an issuer that can end its session: it does, then sends the browser back here
            const end = issuerLogoutUrl();
            signedOut(null);
            if (end !== null) location.assign(end);
          }}
        >
          Sign out
        </button>
      </header>
      <main id="content" tabIndex={-1}>
        {route.page === 'builds' && <BuildsPage />}
        {route.page === 'build' && <BuildPage key={route.id} id={route.id} />}
        {route.page === 'workers' && <WorkersPage />}
        {route.page === 'rebuilds' && <RebuildsPage />}
        {route.page === 'dead-letters' && <DeadLettersPage />}
        {(route.page === 'unknown' || route.page === 'oidc-callback') && <p>No such page. <a href="/ui/">Builds</a></p>}
      </main>
    </>
  );
}

const root = document.getElementById('app');
if (root !== null) render(<App />, root);
