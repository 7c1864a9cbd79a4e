import { GateCode, secretInAssignment } from '../../protocol/index.ts';
import type { Image } from './image-reader.ts';
import { secretInHistory } from './secret-patterns.ts';

export interface SecretFinding {
  code: GateCode;
  reason: string;
}

/** Secrets in the image config: ENV, labels and build history. Reasons never carry values. */
export function secretsInConfig(image: Image): SecretFinding[] {
  const found: SecretFinding[] = [];
  for (const entry of image.config.config.Env ?? []) {
    const eq = entry.indexOf('=');
    const name = eq < 0 ? entry : entry.slice(0, eq);
    const why = secretInAssignment(name, eq < 0 ? '' : entry.slice(eq + 1));
    if (why !== null) found.push({ code: GateCode.SECRET_IN_ENV, reason: `ENV ${name} ${why}` });
  }
  for (const [name, value] of Object.entries(image.config.config.Labels ?? {})) {
    const why = secretInAssignment(name, value);
    if (why !== null) found.push({ code: GateCode.SECRET_IN_LABEL, reason: `label ${name} ${why}` });
  }
  image.config.history.forEach((h, i) => {
    const why = h.created_by === undefined ? null : secretInHistory(h.created_by);
    if (why !== null) found.push({ code: GateCode.SECRET_IN_HISTORY, reason: `history entry ${i + 1}: ${why}` });
  });
  return found;
}

/** A secret file (what secretInFile said of it) with the layer it was added in (1-based, as people count layers). */
export function secretInLayer(why: string, layer: number): SecretFinding {
  return { code: GateCode.SECRET_IN_FILE, reason: `${why} (layer ${layer + 1})` };
}
