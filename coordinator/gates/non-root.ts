import { GateCode } from '../../protocol/index.ts';
import type { Image } from './image-reader.ts';

export type NonRootFinding = { ok: boolean; code: GateCode; reason: string };

/**
 * The app process must not run as root: config `User` set, and neither 0 nor a name that the
 * image's own /etc/passwd maps to uid 0. `passwd` is that file's last version in the layers
 * (null when the image has none).
 */
export function checkNonRoot(image: Image, passwd: string | null): NonRootFinding {
  const user = (image.config.config.User ?? '').trim();
  if (user === '') return { ok: false, code: GateCode.USER_UNSET, reason: 'image config sets no User, so the process runs as root' };
  const name = user.split(':')[0] ?? '';
  if (/^\d+$/.test(name)) {
    return Number(name) === 0
      ? { ok: false, code: GateCode.USER_IS_ROOT, reason: `User "${user}" is uid 0` }
      : { ok: true, code: GateCode.NON_ROOT_OK, reason: `runs as uid ${name}` };
  }
  const entry = (passwd ?? '').split('\n').map((l) => l.split(':')).find((f) => f[0] === name);
  const uid = entry?.[2];
  if (uid === undefined || !/^\d+$/.test(uid)) {
    return { ok: false, code: GateCode.USER_UNKNOWN, reason: `User "${name}" is not in the image's /etc/passwd, so its uid cannot be checked` };
  }
  return Number(uid) === 0
    ? { ok: false, code: GateCode.USER_IS_ROOT, reason: `User "${name}" is uid 0 in the image's /etc/passwd` }
    : { ok: true, code: GateCode.NON_ROOT_OK, reason: `runs as ${name} (uid ${uid})` };
}
