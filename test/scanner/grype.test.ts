import { describe, expect, it } from 'vitest';
import { normaliseGrype, type GrypeDocument } from '../../scanner/grype.ts';

const match = (id: string, binary: string, source: string | null, version: string, severity: string, fix: { versions: string[]; state: string }): GrypeDocument['matches'][number] => ({
  vulnerability: { id, severity, namespace: 'debian:distro:debian:12', fix },
  artifact: { name: binary, version, ...(source === null ? {} : { upstreams: [{ name: source }] }) },
});

describe('grype findings, normalised', () => {
  it('one finding per CVE and source package, sorted, with fix state and version', () => {
    const doc: GrypeDocument = {
      descriptor: { name: 'grype', version: 'v0.121.2' },
      matches: [
        match('CVE-2099-0002', 'gzip', null, '1.12-1', 'High', { versions: [], state: 'not-fixed' }),
        // glibc ships libc6 and libc-bin: the same advisory must not count twice
        match('CVE-2099-0001', 'libc6', 'glibc', '2.36-9+deb12u14', 'critical', { versions: ['2.36-9+deb12u15'], state: 'fixed' }),
        match('CVE-2099-0001', 'libc-bin', 'glibc', '2.36-9+deb12u14', 'critical', { versions: ['2.36-9+deb12u15'], state: 'fixed' }),
        match('CVE-2099-0003', 'zlib1g', 'zlib', '1:1.2.13.dfsg-1', 'Bogus', { versions: [], state: 'strange' }),
      ],
    };
    expect(normaliseGrype(doc)).toEqual([
      { id: 'CVE-2099-0001', severity: 'Critical', package: 'glibc', installed: '2.36-9+deb12u14', fixed: '2.36-9+deb12u15', fixState: 'fixed', source: 'debian:distro:debian:12' },
      { id: 'CVE-2099-0002', severity: 'High', package: 'gzip', installed: '1.12-1', fixState: 'not-fixed', source: 'debian:distro:debian:12' },
      { id: 'CVE-2099-0003', severity: 'Unknown', package: 'zlib', installed: '1:1.2.13.dfsg-1', fixState: 'unknown', source: 'debian:distro:debian:12' },
    ]);
  });

  it('no matches, no findings', () => {
    expect(normaliseGrype({ matches: [] })).toEqual([]);
  });
});
