import { useEffect, useState } from 'preact/hooks';

/** The console's pages; the coordinator serves index.html for exactly these paths (coordinator/ui-assets.ts). */
export type Route = { page: 'builds' } | { page: 'build'; id: string } | { page: 'workers' } | { page: 'dead-letters' } | { page: 'rebuilds' } | { page: 'oidc-callback' } | { page: 'unknown' };

export function parseRoute(path: string): Route {
  if (path === '/ui/' || path === '/ui') return { page: 'builds' };
  if (path === '/ui/workers') return { page: 'workers' };
  if (path === '/ui/dead-letters') return { page: 'dead-letters' };
  if (path === '/ui/rebuilds') return { page: 'rebuilds' };
  if (path === '/ui/oidc-callback') return { page: 'oidc-callback' };
  const build = /^\/ui\/builds\/([^/]+)$/.exec(path);
  if (build?.[1] !== undefined) return { page: 'build', id: decodeURIComponent(build[1]) };
  return { page: 'unknown' };
}

export const buildHref = (id: string): string => `/ui/builds/${encodeURIComponent(id)}`;

/** The rebuild waves page, filtered to one base when given. */
export const rebuildsHref = (base?: string): string => `/ui/rebuilds${base === undefined ? '' : `?${new URLSearchParams({ base }).toString()}`}`;

export function navigate(href: string): void {
  history.pushState(null, '', href);
  dispatchEvent(new PopStateEvent('popstate'));
}

/** The current route; in-app links (same origin, under /ui/) change it without a reload. */
export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.pathname));
  useEffect(() => {
    const onPop = (): void => setRoute(parseRoute(location.pathname));
    const onClick = (e: MouseEvent): void => {
      if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
      const a = e.target instanceof Element ? e.target.closest('a') : null;
      if (a === null || a.origin !== location.origin || !a.pathname.startsWith('/ui/') || a.hasAttribute('download')) return;
      if (a.pathname === location.pathname && a.hash !== '') return;
      e.preventDefault();
      navigate(a.pathname + a.search + a.hash);
    };
    addEventListener('popstate', onPop);
    document.addEventListener('click', onClick);
    return () => {
      removeEventListener('popstate', onPop);
      document.removeEventListener('click', onClick);
    };
  }, []);
  return route;
}
