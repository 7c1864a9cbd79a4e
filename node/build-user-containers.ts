import { writeContainersConfig } from './containers-config.ts';
import { buildUser, chownTree, runAsOptions } from './host.ts';

export interface BuildUserContainers {
  /** execa options that run buildah/podman as the build user in this private containers runtime */
  opts: { env: Record<string, string>; extendEnv: false; cwd: string; uid?: number; gid?: number };
  /** stops its pause process and removes its runtime dir (the caller removes DIR) */
  close(): Promise<void>;
}

/**
 * A private containers runtime under DIR for the build user, as a worker has one, for the
 * node-level and test code that runs podman/buildah itself (as root it hands DIR to the user).
 */
export async function buildUserContainers(dir: string, insecureRegistries: readonly string[], extraEnv: Readonly<Record<string, string>> = {}): Promise<BuildUserContainers> {
  const user = await buildUser();
  const containers = await writeContainersConfig(dir, insecureRegistries, { owner: user.switchUser ? user : undefined });
  if (user.switchUser) await chownTree(dir, user.uid, user.gid);
  return {
    opts: {
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...containers.env, ...extraEnv },
      extendEnv: false,
      cwd: dir,
      ...runAsOptions(user),
    },
    close: () => containers.close(),
  };
}
