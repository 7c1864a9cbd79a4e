import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tar from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerIgnore } from '../../client/dockerignore.ts';
import { packContext } from '../../client/context-pack.ts';
import { ErrorCode, isFleetError } from '../../protocol/index.ts';

/** moby/patternmatcher's own table (patternmatcher_test.go, TestMatches), one pattern each. */
const PATTERNMATCHER: [string, string, boolean][] = [
  ["**", "file", true],
  ["**", "file/", true],
  ["**/", "file", true],
  ["**/", "file/", true],
  ["**", "/", true],
  ["**/", "/", true],
  ["**", "dir/file", true],
  ["**/", "dir/file", true],
  ["**", "dir/file/", true],
  ["**/", "dir/file/", true],
  ["**/**", "dir/file", true],
  ["**/**", "dir/file/", true],
  ["dir/**", "dir/file", true],
  ["dir/**", "dir/file/", true],
  ["dir/**", "dir/dir2/file", true],
  ["dir/**", "dir/dir2/file/", true],
  ["**/dir", "dir", true],
  ["**/dir", "dir/file", true],
  ["**/dir2/*", "dir/dir2/file", true],
  ["**/dir2/*", "dir/dir2/file/", true],
  ["**/dir2/**", "dir/dir2/dir3/file", true],
  ["**/dir2/**", "dir/dir2/dir3/file/", true],
  ["**file", "file", true],
  ["**file", "dir/file", true],
  ["**/file", "dir/file", true],
  ["**file", "dir/dir/file", true],
  ["**/file", "dir/dir/file", true],
  ["**/file*", "dir/dir/file", true],
  ["**/file*", "dir/dir/file.txt", true],
  ["**/file*txt", "dir/dir/file.txt", true],
  ["**/file*.txt", "dir/dir/file.txt", true],
  ["**/file*.txt*", "dir/dir/file.txt", true],
  ["**/**/*.txt", "dir/dir/file.txt", true],
  ["**/**/*.txt2", "dir/dir/file.txt", false],
  ["**/*.txt", "file.txt", true],
  ["**/**/*.txt", "file.txt", true],
  ["a**/*.txt", "a/file.txt", true],
  ["a**/*.txt", "a/dir/file.txt", true],
  ["a**/*.txt", "a/dir/dir/file.txt", true],
  ["a/*.txt", "a/dir/file.txt", false],
  ["a/*.txt", "a/file.txt", true],
  ["a/*.txt**", "a/file.txt", true],
  ["a[b-d]e", "ae", false],
  ["a[b-d]e", "ace", true],
  ["a[b-d]e", "aae", false],
  ["a[^b-d]e", "aze", true],
  [".*", ".foo", true],
  [".*", "foo", false],
  ["abc.def", "abcdef", false],
  ["abc.def", "abc.def", true],
  ["abc.def", "abcZdef", false],
  ["abc?def", "abcZdef", true],
  ["abc?def", "abcdef", false],
  ["a\\\\", "a\\", true],
  ["**/foo/bar", "foo/bar", true],
  ["**/foo/bar", "dir/foo/bar", true],
  ["**/foo/bar", "dir/dir2/foo/bar", true],
  ["abc/**", "abc", false],
  ["abc/**", "abc/def", true],
  ["abc/**", "abc/def/ghi", true],
  ["**/.foo", ".foo", true],
  ["**/.foo", "bar.foo", false],
  ["a(b)c/def", "a(b)c/def", true],
  ["a(b)c/def", "a(b)c/xyz", false],
  ["a.|)$(}+{bc", "a.|)$(}+{bc", true],
  ["dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", true],
  ["dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", true],
  ["a\\*b", "a*b", true],
];

describe('.dockerignore as Docker reads it', () => {
  it.each(PATTERNMATCHER)('%s against %s: %s (moby/patternmatcher)', (pattern, path, ignored) => {
    expect(DockerIgnore.parse(pattern).ignores(path)).toBe(ignored);
  });

  it.each([
    [['**', '!util/docker/web'], 'util/docker/web/foo', false],
    [['**', '!util/docker/web', 'util/docker/web/foo'], 'util/docker/web/foo', true],
    [['**', '!dist/*.whl'], 'dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl', false],
  ])('%j against %s: %s (the last matching pattern decides)', (patterns, path, ignored) => {
    expect(DockerIgnore.parse(patterns.join('\n')).ignores(path)).toBe(ignored);
  });

  it("matches from the context's root, not at any depth as a .gitignore does", () => {
    const rules = DockerIgnore.parse('*.log\nnode_modules\n');
    expect(rules.ignores('a.log')).toBe(true);
    expect(rules.ignores('sub/a.log')).toBe(false);
    expect(rules.ignores('node_modules/x/index.js')).toBe(true);
    expect(rules.ignores('pkg/node_modules/x/index.js')).toBe(false);
  });

  it('brings back a directory and all it holds that * excluded (the allow-list style)', () => {
    const rules = DockerIgnore.parse('# only what the image needs\n*\n!src\n!package.json\n');
    expect(rules.ignores('src/index.js')).toBe(false);
    expect(rules.ignores('src/lib/deep.js')).toBe(false);
    expect(rules.ignores('package.json')).toBe(false);
    expect(rules.ignores('README.md')).toBe(true);
    expect(rules.ignores('test/a.js')).toBe(true);
  });

  it('reads the file as Docker does: BOM, comments, blanks, leading slashes, ./ and trailing slashes', () => {
    const rules = DockerIgnore.parse('\uFEFF# comment\n\n  /secret/  \n./build\n !keep/ \n');
    expect(rules.ignores('secret/key.pem')).toBe(true);
    expect(rules.ignores('build/out.js')).toBe(true);
    expect(rules.ignores('keep')).toBe(false);
    // a # after leading spaces is a pattern, as in Docker
    expect(DockerIgnore.parse(' #x').ignores('#x')).toBe(true);
  });

  it('refuses a pattern that is not one, naming the file and line', () => {
    for (const text of ['ok\n!', 'ok\n[']) {
      const e = (() => {
        try {
          DockerIgnore.parse(text, 'app/Dockerfile.dockerignore');
          return null;
        } catch (err) {
          return err;
        }
      })();
      expect(isFleetError(e, ErrorCode.E_INVALID_REQUEST)).toBe(true);
      expect((e as Error).message).toContain('app/Dockerfile.dockerignore line 2');
    }
  });
});

describe('packContext with a .dockerignore', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-dockerignore-'));
    for (const [path, text] of Object.entries({ 'src/index.js': 'i', 'src/lib/deep.js': 'd', 'package.json': '{}', 'README.md': 'r', 'docs/a.md': 'a', 'sub/a.log': 'l', 'a.log': 'l', Dockerfile: 'FROM x', 'docker/Dockerfile.prod': 'FROM y', 'docker/Dockerfile.prod.dockerignore': '*\n!src/index.js\n' })) {
      await mkdir(join(dir, path, '..'), { recursive: true });
      await writeFile(join(dir, path), text);
    }
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function packed(dockerfile: string, ignore: string | null): Promise<string[]> {
    if (ignore === null) await rm(join(dir, '.dockerignore'), { force: true });
    else await writeFile(join(dir, '.dockerignore'), ignore);
    const out = join(dir, '..', `${dir.split('/').pop() ?? 'x'}.tgz`);
    await packContext(dir, dockerfile, out);
    const entries: string[] = [];
    await tar.t({ file: out, onReadEntry: (e) => void entries.push(e.path.replace(/\/$/, '')) });
    await rm(out, { force: true });
    return entries.sort();
  }

  it('sends what Docker would send: the allow-list style keeps src/ and all under it', async () => {
    expect(await packed('Dockerfile', '*\n!src\n!package.json\n')).toEqual(['.dockerignore', 'Dockerfile', 'package.json', 'src', 'src/index.js', 'src/lib', 'src/lib/deep.js']);
  });

  it("keeps a log below the root that *.log does not match, and sends everything with no ignore file", async () => {
    expect(await packed('Dockerfile', '*.log\n')).toContain('sub/a.log');
    expect(await packed('Dockerfile', '*.log\n')).not.toContain('a.log');
    expect(await packed('Dockerfile', null)).toContain('a.log');
  });

  it("uses the Dockerfile's own <Dockerfile>.dockerignore over the root one, and the Dockerfile travels from an excluded directory", async () => {
    expect(await packed('docker/Dockerfile.prod', 'src\n')).toEqual(['.dockerignore', 'docker', 'docker/Dockerfile.prod', 'docker/Dockerfile.prod.dockerignore', 'src', 'src/index.js']);
  });
});
