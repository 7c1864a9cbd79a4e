import type { BuilderKind } from '../../protocol/index.ts';

/**
 * Where a builder really differs on a corpus Dockerfile, listed here and nowhere else (docs/builders.md
 * has the same list for people). The corpus run marks a cell "documented" when every aspect in
 * which that builder differs is covered by an entry for it; an entry that no longer happens is
 * reported as stale, so this list cannot outlive the difference.
 */
export interface DocumentedDifference {
  corpus: string;
  builder: BuilderKind;
  /**
   * Which aspects differ: `outcome`, `code`, `exitCode`, `tree`, `missing`, or `config.<Field>`; an aspect
   * matches an entry when it equals one of these or starts with it followed by a dot.
   */
  aspects: readonly string[];
  /**
   * `builder`: the builder itself behaves differently (upstream); `taxonomy-gap`: the builder fails
   * as it should but the fleet maps its error to another code (worker/builders/failure-taxonomy.ts);
   * `fleet`: the way the worker runs the builder causes it.
   */
  kind: 'builder' | 'taxonomy-gap' | 'fleet';
  what: string;
  /** the upstream issue; for a taxonomy gap or a fleet cause, or where no upstream issue was found, the fleet issue (`issue N`) */
  upstream: string;
}

const BUILDAH_OCI = 'buildah writes OCI image configs (no --format docker), and the OCI config has no field for it: dropped with a warning';

export const DOCUMENTED_DIFFERENCES: readonly DocumentedDifference[] = [
  // buildah 1.43.2 (built from its module; Debian's 1.28 also failed on glob escapes and heredocs, fixed there)
  { corpus: 'healthcheck', builder: 'buildah', aspects: ['config.Healthcheck'], kind: 'builder', what: `HEALTHCHECK: ${BUILDAH_OCI}`, upstream: 'https://github.com/podman-container-tools/buildah/issues/2388' },
  { corpus: 'healthcheck-shell-none', builder: 'buildah', aspects: ['config.Healthcheck'], kind: 'builder', what: `HEALTHCHECK NONE: ${BUILDAH_OCI}`, upstream: 'https://github.com/podman-container-tools/buildah/issues/2388' },
  { corpus: 'healthcheck-start-interval', builder: 'buildah', aspects: ['config.Healthcheck'], kind: 'builder', what: `HEALTHCHECK --start-interval: ${BUILDAH_OCI}`, upstream: 'https://github.com/podman-container-tools/buildah/issues/2388' },
  { corpus: 'onbuild', builder: 'buildah', aspects: ['config.OnBuild'], kind: 'builder', what: `ONBUILD: ${BUILDAH_OCI}`, upstream: 'https://github.com/podman-container-tools/buildah/issues/2388' },
  { corpus: 'shell', builder: 'buildah', aspects: ['config.Shell', 'config.Cmd'], kind: 'builder', what: `SHELL: ${BUILDAH_OCI}; so a later shell-form CMD is wrapped in /bin/sh -c instead of the SHELL`, upstream: 'https://github.com/podman-container-tools/buildah/issues/2741' },
  { corpus: 'copy-empty-glob-alone', builder: 'buildah', aspects: ['outcome'], kind: 'builder', what: 'a COPY whose only source is a glob matching nothing fails; BuildKit and kaniko copy nothing and go on', upstream: 'https://github.com/podman-container-tools/buildah/issues/5742' },
  { corpus: 'workdir-create', builder: 'buildah', aspects: ['tree'], kind: 'builder', what: 'a WORKDIR that no later RUN or COPY uses is not created in the image (Docker: "created even if it is not used")', upstream: 'https://github.com/podman-container-tools/buildah/issues/2475' },
  { corpus: 'workdir-with-user', builder: 'buildah', aspects: ['tree', 'missing'], kind: 'builder', what: 'a WORKDIR that no later RUN or COPY uses is not created in the image', upstream: 'https://github.com/podman-container-tools/buildah/issues/2475' },
  { corpus: 'env-forms', builder: 'buildah', aspects: ['config.Env'], kind: 'builder', what: 'ENV PATH=…:$PATH moves PATH to the end of Env (BuildKit and kaniko replace it in place); same variables and values, other order. No upstream issue found', upstream: 'issue 15' },
  { corpus: 'copy-multi-no-slash', builder: 'buildah', aspects: ['outcome'], kind: 'builder', what: 'COPY a.txt b.txt /not-a-dir (no trailing slash) is accepted and makes /not-a-dir a directory; the Dockerfile reference requires the slash', upstream: 'https://github.com/moby/buildkit/issues/1853' },

  { corpus: 'copy-chmod-symbolic', builder: 'buildah', aspects: ['outcome'], kind: 'builder', what: 'COPY --chmod takes octal modes only (u+x,go-w fails with exit 125): the worker refuses a symbolic mode with E_DOCKERFILE_INVALID naming the line', upstream: 'https://github.com/podman-container-tools/buildah/issues/6938' },
  { corpus: 'copy-from-chown', builder: 'buildah', aspects: ['tree'], kind: 'builder', what: 'COPY --chmod=0750 of a directory leaves the destination directory itself 0755 (its contents get 0750); BuildKit, since the fix of the closest upstream issue, and kaniko give it the mode too', upstream: 'https://github.com/moby/buildkit/issues/4945' },
  { corpus: 'copy-exclude', builder: 'buildah', aspects: ['outcome'], kind: 'builder', what: 'COPY --exclude=*.log app/ matches the pattern from the context root, not from the source, so app/drop.log is copied: the worker refuses such a pattern with E_DOCKERFILE_INVALID and asks for **/*.log, which both builders match alike', upstream: 'https://github.com/podman-container-tools/buildah/issues/6726' },
  { corpus: 'expose-forms', builder: 'buildah', aspects: ['outcome'], kind: 'builder', what: 'EXPOSE 8000-8002 is written as one "8000-8002/tcp" key, which Docker 29 refuses to pull: the worker refuses a range with E_DOCKERFILE_INVALID (list the ports)', upstream: 'https://github.com/moby/moby/issues/52553' },

  // BuildKit v0.26
  { corpus: 'copy-chmod', builder: 'buildkit', aspects: ['tree'], kind: 'builder', what: 'COPY --chmod=0640 into a new directory gives the created directory mode 0640 too (buildah and kaniko: 0755)', upstream: 'https://github.com/moby/buildkit/issues/5943' },
  { corpus: 'copy-multi-no-slash', builder: 'buildkit', aspects: ['outcome'], kind: 'builder', what: 'COPY a.txt b.txt /not-a-dir is accepted and each source overwrites /not-a-dir in turn, leaving one file', upstream: 'https://github.com/moby/buildkit/issues/1853' },

  // kaniko (chainguard fork v1.25.5)
  { corpus: 'heredoc-run', builder: 'kaniko', aspects: ['tree', 'missing'], kind: 'builder', what: 'RUN <<EOF is accepted and the build pushes, but the heredoc body never runs: /heredoc.txt is not in the image', upstream: 'https://github.com/GoogleContainerTools/kaniko/issues/3351' },
  { corpus: 'heredoc-copy', builder: 'kaniko', aspects: ['outcome'], kind: 'builder', what: 'COPY <<EOF is not supported ("resolved envs is empty")', upstream: 'https://github.com/GoogleContainerTools/kaniko/issues/1713' },
  { corpus: 'copy-symlink-file', builder: 'kaniko', aspects: ['tree'], kind: 'builder', what: 'COPY of a symlink (a single source) copies the link itself; BuildKit and buildah copy the file it points to', upstream: 'https://github.com/GoogleContainerTools/kaniko/issues/1382' },
  { corpus: 'user-uid-gid', builder: 'kaniko', aspects: ['tree'], kind: 'builder', what: 'USER 1234:4321 runs RUN with the group of 1234, not 4321 (a file it creates is owned 1234:1234)', upstream: 'https://github.com/osscontainertools/kaniko/issues/839' },
  { corpus: 'workdir-with-user', builder: 'kaniko', aspects: ['tree'], kind: 'builder', what: 'WORKDIR under USER 1000 chowns only the last directory it creates; the parents it creates stay root-owned (BuildKit: all 1000)', upstream: 'https://github.com/osscontainertools/kaniko/issues/864' },
  { corpus: 'env-in-instructions', builder: 'kaniko', aspects: ['outcome'], kind: 'builder', what: 'USER ${UID:-1000} fails: "unsupported modifier in substitution" (kaniko\'s own resolution of USER; closest upstream issue)', upstream: 'https://github.com/GoogleContainerTools/kaniko/issues/1246' },
  { corpus: 'multi-stage-by-index', builder: 'kaniko', aspects: ['outcome'], kind: 'builder', what: 'COPY --from=0 with --skip-unused-stages (which the fleet passes so --target builds like the others): "could not parse reference: 0"', upstream: 'https://github.com/GoogleContainerTools/kaniko/issues/1818' },
  { corpus: 'run-mount-bind-from-stage', builder: 'kaniko', aspects: ['outcome'], kind: 'builder', what: 'kaniko ignores RUN --mount; the fleet\'s executor binds the build context (copied in for the step), not a stage or an image: such a bind is refused with E_DOCKERFILE_INVALID naming the line', upstream: 'https://github.com/GoogleContainerTools/kaniko/issues/1568' },
  { corpus: 'run-mount-cache', builder: 'kaniko', aspects: ['tree'], kind: 'fleet', what: 'kaniko ignores RUN --mount=type=cache, so the worker mounts the cache directory (per tenant and id) at its target for the whole kaniko run: it stays out of the image as on BuildKit and buildah, but later steps see its files too', upstream: 'https://github.com/GoogleContainerTools/kaniko/issues/969' },
  { corpus: 'add-tar-xz', builder: 'kaniko', aspects: ['outcome'], kind: 'builder', what: 'ADD of a local .tar.xz is not recognised as a tar: "unpacking local tar: path does not lead to local tar archive"', upstream: 'https://github.com/GoogleContainerTools/kaniko/issues/1107' },
  { corpus: 'copy-chmod-symbolic', builder: 'kaniko', aspects: ['outcome'], kind: 'builder', what: 'COPY --chmod takes octal modes only ("strconv.ParseUint: parsing "u+x,go-w""): the worker refuses a symbolic mode with E_DOCKERFILE_INVALID naming the line', upstream: 'https://github.com/osscontainertools/kaniko/issues/798' },
  { corpus: 'copy-exclude', builder: 'kaniko', aspects: ['outcome'], kind: 'builder', what: 'COPY --exclude is ignored (the excluded files are copied): the worker refuses it with E_DOCKERFILE_INVALID. No upstream issue found', upstream: 'issue 15' },
  { corpus: 'copy-exclude-globstar', builder: 'kaniko', aspects: ['outcome'], kind: 'builder', what: 'COPY --exclude: refused on kaniko, as above', upstream: 'issue 15' },
  { corpus: 'copy-exclude-root', builder: 'kaniko', aspects: ['outcome'], kind: 'builder', what: 'COPY --exclude: refused on kaniko, as above', upstream: 'issue 15' },
  { corpus: 'copy-parents', builder: 'kaniko', aspects: ['outcome'], kind: 'builder', what: 'COPY --parents is ignored (the tree is flattened, one f.txt over the other): the worker refuses it with E_DOCKERFILE_INVALID', upstream: 'https://github.com/GoogleContainerTools/kaniko/issues/3165' },
  { corpus: 'copy-link', builder: 'kaniko', aspects: ['tree'], kind: 'builder', what: 'COPY --link is a plain COPY: a parent directory an earlier COPY made keeps its owner, where --link layers give it the linked COPY\'s --chown (closest upstream issue)', upstream: 'https://github.com/GoogleContainerTools/kaniko/issues/2193' },
  { corpus: 'expose-forms', builder: 'kaniko', aspects: ['outcome'], kind: 'builder', what: 'EXPOSE 8000-8002 is written as one "8000-8002/tcp" key, which Docker 29 refuses to pull: refused, as on buildah', upstream: 'https://github.com/moby/moby/issues/52553' },
  { corpus: 'run-mount-tmpfs', builder: 'kaniko', aspects: ['tree'], kind: 'fleet', what: 'kaniko ignores RUN --mount=type=tmpfs, so the worker mounts a tmpfs at the target for the whole kaniko run: out of the image as elsewhere, but later steps see its files too', upstream: 'https://github.com/GoogleContainerTools/kaniko/issues/1568' },
  { corpus: 'volume-then-run', builder: 'kaniko', aspects: ['tree'], kind: 'builder', what: 'after VOLUME /data nothing under /data is in the image, not even a file made before the VOLUME line (BuildKit and buildah keep both; closest upstream change)', upstream: 'https://github.com/GoogleContainerTools/kaniko/pull/334' },
  { corpus: 'healthcheck-start-interval', builder: 'kaniko', aspects: ['config.Healthcheck'], kind: 'builder', what: 'HEALTHCHECK --start-interval is accepted and left out of the image config (the other options are kept). No upstream issue found', upstream: 'issue 15' },
  { corpus: 'add-tar-gz', builder: 'kaniko', aspects: ['tree'], kind: 'builder', what: 'ADD of a local tar: a symlink in it is extracted owned by root, not by the uid/gid the archive records (files keep theirs). No upstream issue found', upstream: 'issue 15' },
];

export function documentedFor(corpus: string, builder: BuilderKind, aspect: string): DocumentedDifference | undefined {
  return DOCUMENTED_DIFFERENCES.find((d) => d.corpus === corpus && d.builder === builder && d.aspects.some((a) => aspect === a || aspect.startsWith(`${a}.`)));
}
