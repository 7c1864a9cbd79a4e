import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../../protocol/index.ts';
import { workerNetworkRefusal, remoteAdds } from '../../../worker/builders/remote-sources.ts';

const lines = (dockerfile: string): number[] => remoteAdds(dockerfile).map((i) => i.line);

describe('remote ADD sources (what buildah would fetch from the worker network)', () => {
  it.each([
    ['a URL', 'ADD http://127.0.0.1:4222/ /x'],
    ['a URL after flags', 'ADD --checksum=sha256:0000 --chmod=755 https://example.com/tool /usr/local/bin/tool'],
    ['an upper-case scheme', 'add HTTP://169.254.169.254/latest/meta-data/ /x'],
    ['a git remote over https', 'ADD https://github.com/org/repo.git#main /src'],
    ['an scp-style git remote', 'ADD git@github.com:org/repo.git /src'],
    ['one URL among local sources', 'ADD a.txt http://10.0.0.1/b.txt /dst/'],
    ['the JSON form', 'ADD ["http://127.0.0.1:9000/bucket/key", "/x"]'],
    ['a quoted URL', 'ADD "http://127.0.0.1/x" /x'],
    ['a variable (it may expand to a URL)', 'ADD ${SRC} /x'],
    ['a bare variable', 'ADD $SRC /x'],
  ])('flags %s', (_what, instruction) => {
    expect(lines(`FROM r/x:1\n${instruction}\n`)).toEqual([2]);
  });

  it('names the line an ADD continued over several lines starts on', () => {
    expect(lines('FROM r/x:1\nRUN true\nADD \\\n  http://127.0.0.1/x \\\n  /x\n')).toEqual([3]);
  });

  it.each([
    ['a local file', 'ADD app.tar.gz /srv/'],
    ['local files after flags', 'ADD --chown=1000:1000 a b /dst/'],
    ['a heredoc', 'ADD <<EOF /etc/motd\nhttp://not-a-source\nEOF'],
    ['COPY of a URL (no builder fetches it)', 'COPY http://127.0.0.1/x /x'],
    ['a URL in a RUN step (its own sandbox)', 'RUN wget http://example.com/x'],
    ['a comment', '# ADD http://127.0.0.1/x /x'],
  ])('leaves %s', (_what, instruction) => {
    expect(lines(`FROM r/x:1\n${instruction}\n`)).toEqual([]);
  });
});

describe('the refusal a buildah build gets', () => {
  it("names the Dockerfile's line, without reading the bases' triggers", async () => {
    let read = 0;
    const refusal = await workerNetworkRefusal('FROM r/x:1\nADD http://127.0.0.1/x /x\n', () => Promise.resolve(void read++).then(() => []));
    expect(refusal?.code).toBe(ErrorCode.E_DOCKERFILE_INVALID);
    expect(refusal?.message).toContain('at Dockerfile line 2 (ADD http://127.0.0.1/x /x)');
    expect(read).toBe(0);
  });

  it("names a base's ONBUILD trigger, which runs as a line of the Dockerfile", async () => {
    const refusal = await workerNetworkRefusal('FROM r/x:1\nRUN true\n', () => Promise.resolve(['RUN echo hi', 'ADD https://169.254.169.254/latest/ /m']));
    expect(refusal?.message).toContain("in a base image's ONBUILD trigger (ADD https://169.254.169.254/latest/ /m)");
    expect(refusal?.details?.step).toBe('ADD https://169.254.169.254/latest/ /m');
  });

  it('lets a build with local sources only through', async () => {
    expect(await workerNetworkRefusal('FROM r/x:1\nADD a.tgz /srv/\n', () => Promise.resolve(['COPY . /app']))).toBeNull();
  });

  it("names a base's ONBUILD RUN flag that leaves the sandbox (the Dockerfile's own are the job runner's)", async () => {
    const refusal = await workerNetworkRefusal('FROM r/x:1\n', () => Promise.resolve(['RUN --network=host true']));
    expect(refusal?.message).toContain("in a base image's ONBUILD trigger (RUN --network=host true): --network=host");
  });
});
