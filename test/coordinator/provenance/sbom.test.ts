import { describe, expect, it } from 'vitest';
import { cycloneDx, parseDpkgStatus } from '../../../coordinator/provenance/sbom.ts';

const STATUS = `Package: dpkg
Status: install ok installed
Architecture: amd64
Version: 1.21.22
Description: Debian package management system
 a continuation line: not a field

Package: old-thing
Status: deinstall ok config-files
Architecture: amd64
Version: 0.1

Package: libc6
Status: install ok installed
Architecture: amd64
Source: glibc (2.36-9)
Version: 2.36-9+deb12u4
`;

describe('SBOM from the dpkg database', () => {
  it('lists installed packages only, with their source package', () => {
    expect(parseDpkgStatus(STATUS)).toEqual([
      { name: 'dpkg', version: '1.21.22', architecture: 'amd64' },
      { name: 'libc6', version: '2.36-9+deb12u4', architecture: 'amd64', source: 'glibc' },
    ]);
  });

  it('writes CycloneDX 1.5 with package URLs and the image as the described component', () => {
    const bom = cycloneDx({ name: 'r/app', digest: `sha256:${'a'.repeat(64)}` }, parseDpkgStatus(STATUS), { name: 't', version: '1' }, '2026-11-29T00:00:00.000Z') as {
      components: { purl: string }[];
      metadata: { component: { type: string } };
    };
    expect(bom).toMatchObject({ bomFormat: 'CycloneDX', specVersion: '1.5', metadata: { component: { type: 'container', name: 'r/app' } } });
    expect(bom.components.map((c) => c.purl)).toEqual(['pkg:deb/debian/dpkg@1.21.22?arch=amd64', 'pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&upstream=glibc']);
  });
});
