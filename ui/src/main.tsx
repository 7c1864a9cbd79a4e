import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { setOnUnauthenticated, token } from './api.ts';
import { useRoute } from './router.ts';
import { BuildsPage } from './builds-page.tsx';
import { BuildPage } from './build-page.tsx';
import { DeadLettersPage, WorkersPage } from './fleet-pages.tsx';
import { RebuildsPage } from './rebuilds-page.tsx';
import './style.css';

function SignIn({ onSignedIn, expired }: { onSignedIn: () => void; expired: boolean }) {
  const [value, setValue] = useState('');
  return (
    <main class="signin">
      <h1>fleet console</h1>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          const t = value.trim();
          if (t === '') return;
          token.set(t);
          onSignedIn();
        }}
      >
        {expired && <p role="alert" class="error">The API refused that token (expired, revoked or mistyped). Paste a valid one.</p>}
        <label for="token">API token</label>
        <input id="token" name="token" type="password" autocomplete="off" spellcheck={false} placeholder="flt_…" value={value} onInput={(e) => setValue(e.currentTarget.value)} required />
        <p class="hint">Kept in this tab only (sessionStorage) and sent as a bearer token to this coordinator's API.</p>
        <button type="submit">Sign in</button>
      </form>
    </main>
  );
}

function App() {
  const route = useRoute();
  const [signedIn, setSignedIn] = useState(token.get() !== null);
  const [expired, setExpired] = useState(false);
  useEffect(() => {
    setOnUnauthenticated(() => {
      token.clear();
      setExpired(true);
      setSignedIn(false);
    });
  }, []);
  if (!signedIn) return <SignIn expired={expired} onSignedIn={() => { setExpired(false); setSignedIn(true); }} />;
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
        <button type="button" class="link" onClick={() => { token.clear(); setSignedIn(false); }}>
          Sign out
        </button>
      </header>
      <main id="content" tabIndex={-1}>
        {route.page === 'builds' && <BuildsPage />}
        {route.page === 'build' && <BuildPage key={route.id} id={route.id} />}
        {route.page === 'workers' && <WorkersPage />}
        {route.page === 'rebuilds' && <RebuildsPage />}
        {route.page === 'dead-letters' && <DeadLettersPage />}
        {route.page === 'unknown' && <p>No such page. <a href="/ui/">Builds</a></p>}
      </main>
    </>
  );
}

const root = document.getElementById('app');
if (root !== null) render(<App />, root);
