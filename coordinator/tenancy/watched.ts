import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Logger } from '../../adapters/logger.ts';
import { Tenancy } from './tenants.ts';

const NO_TENANTS = new Tenancy({ tenants: [] });
/** editors save in bursts (truncate, write, rename): read once things settle */
const SETTLE_MS = 200;

/**
 * The tenancy in force, reloaded when its file changes, without a restart. A file that no longer
 * parses is refused and the last good tenancy stays in force (logged), so a typo never opens or
 * closes the platform by accident.
 */
export async function watchedTenancy(path: string | undefined, log: Logger): Promise<{ current: () => Tenancy; close: () => void }> {
  if (path === undefined) return { current: () => NO_TENANTS, close: () => undefined };
  let tenancy = await Tenancy.load(path);
  let timer: NodeJS.Timeout | null = null;
  const reload = (): void => {
    timer = null;
    Tenancy.load(path).then(
      (next) => {
        tenancy = next;
        log.info({ path, tenants: next.config.tenants.length }, 'tenancy reloaded');
      },
      (e: unknown) => log.error({ err: e, path }, 'tenancy file refused; the previous tenancy stays in force'),
    );
  };
  // Watching the directory survives editors that replace the file by renaming over it.
  const watcher: FSWatcher = watch(dirname(path), (_event, name) => {
    if (name !== null && name !== basename(path)) return;
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(reload, SETTLE_MS);
  });
  watcher.on('error', (e) => log.warn({ err: e, path }, 'cannot watch the tenancy file; changes need a restart'));
  return {
    current: () => tenancy,
    close: () => {
      if (timer !== null) clearTimeout(timer);
      watcher.close();
    },
  };
}
