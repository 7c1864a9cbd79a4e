/**
 * A Debian 12 advisory in the vunnel flat-file shape grype-fixture-db (and trivy-fixture-db)
 * read: `pkg` is a Debian source package, `fixedIn` its first fixed version ('' = not fixed).
 */
export const advisory = (id: string, severity: string, pkg: string, fixedIn: string) => ({
  identifier: `debian:12/${id.toLowerCase()}`,
  item: {
    Vulnerability: {
      Name: id,
      NamespaceName: 'debian:12',
      Severity: severity,
      Link: `https://security-tracker.debian.org/tracker/${id}`,
      Description: 'fixture advisory',
      Metadata: {},
      FixedIn: [{ Name: pkg, NamespaceName: 'debian:12', VersionFormat: 'dpkg', Version: fixedIn }],
    },
  },
});
