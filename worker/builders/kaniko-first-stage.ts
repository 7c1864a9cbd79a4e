import { instructions } from '../official-bases.ts';

/** One stage as kaniko's stage selection sees it. */
interface Stage {
  /** the FROM image as written (a pinned reference, a stage name or `scratch`) */
  base: string;
  /** lower-cased, '' when unnamed */
  name: string;
  /** each COPY's `--from` value ('' for a COPY from the context, as kaniko counts it) */
  copyFroms: string[];
}

/**
 * The stages kaniko builds, in its order (undefined when the target is missing). kaniko with
 * `--skip-unused-stages` keeps the target stage and the named stages it reaches through
 * `FROM <stage>` and `COPY --from`, in file order; this follows its `skipUnusedStages`
 * (pkg/dockerfile/dockerfile.go, v1.25) step by step, quirks included.
 */
function keptStages(dockerfile: string, target: string | undefined): { kept: Stage[]; names: Set<string> } | undefined {
  const stages: Stage[] = [];
  for (const { text } of instructions(dockerfile)) {
    const [keyword = '', ...rest] = text.split(/\s+/);
    if (/^FROM$/i.test(keyword)) {
      const operands = rest.filter((w) => !w.startsWith('--'));
      stages.push({ base: operands[0] ?? '', name: operands[1]?.toLowerCase() === 'as' ? (operands[2] ?? '').toLowerCase() : '', copyFroms: [] });
    } else if (/^COPY$/i.test(keyword)) {
      stages.at(-1)?.copyFroms.push(/(?:^|\s)--from=(\S+)/.exec(rest.join(' '))?.[1] ?? '');
    }
  }
  const last = target === undefined ? stages.length - 1 : stages.findIndex((s) => s.name === target.toLowerCase());
  const final = stages[last];
  if (final === undefined) return undefined;
  const deps = new Set<string>();
  for (let i = last; i >= 0; i--) {
    const stage = stages[i];
    if (stage === undefined || !((stage.name !== '' && deps.has(stage.name)) || stage.name === final.base || i === last)) continue;
    for (const from of stage.copyFroms) deps.add(/^\d+$/.test(from) ? (stages[Number(from)]?.name ?? '') : from);
    if (i !== last) deps.add(stage.base);
  }
  const kept = target === undefined && deps.size === 0
    ? stages
    : [...stages.slice(0, last).filter((s) => s.name !== '' && (deps.has(s.name) || s.name === final.base)), final];
  return { kept, names: new Set(stages.map((s) => s.name).filter((n) => n !== '')) };
}

/** The stage's base when it is an image (not `scratch`, not another stage). */
function imageBase(stage: Stage | undefined, names: Set<string>): string | null {
  if (stage === undefined || stage.base.toLowerCase() === 'scratch' || names.has(stage.base.toLowerCase())) return null;
  return stage.base;
}

/**
 * The base image of the stage kaniko builds first (its stage index 0), or null when that is
 * `scratch` or another stage. A prediction only: the worker confirms it from kaniko's own
 * "Building stage …" line before it trusts a build that skipped unpacking that base
 * (KanikoOutput.firstStage).
 */
export function kanikoFirstStageBase(dockerfile: string, target: string | undefined): string | null {
  const stages = keptStages(dockerfile, target);
  return stages === undefined ? null : imageBase(stages.kept[0], stages.names);
}

/**
 * The base image of the final stage when kaniko builds other stages before it, or null (one
 * stage only, or a final stage on `scratch` or on another stage): the base a second container
 * can hold unpacked for kaniko's `--final-stage-only` run. Confirmed the same way.
 */
export function kanikoFinalStageBase(dockerfile: string, target: string | undefined): string | null {
  const stages = keptStages(dockerfile, target);
  return stages === undefined || stages.kept.length < 2 ? null : imageBase(stages.kept.at(-1), stages.names);
}
