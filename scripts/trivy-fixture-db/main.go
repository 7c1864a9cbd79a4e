// trivy-fixture-db builds a Trivy vulnerability DB (schema 2: trivy.db + metadata.json) from a
// directory of advisories, so tests scan real images with the real trivy binary against findings
// they choose. Trivy's own DB comes from ghcr.io (an OCI artifact), which a fleet may not reach;
// trivy-db's library writes the same bbolt layout its builder publishes.
//
// Usage: trivy-fixture-db -in ADVISORIES_DIR -out CACHE_DIR/db [-updated RFC3339]
//
// ADVISORIES_DIR holds *.json files, each one advisory or an array of them:
//
//	{"id":"CVE-2099-0001","os":"debian","release":"12","package":"zlib",
//	 "fixedVersion":"1:1.2.13.dfsg-1+deb12u1","severity":"CRITICAL"}
//
// (package: the Debian source package; an empty fixedVersion means not fixed). Run trivy with
// --cache-dir CACHE_DIR --skip-db-update. -updated sets metadata.json's UpdatedAt (default now):
// trivy itself does not refuse an old DB, the fleet's adapter does, and tests backdate one to see it.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/aquasecurity/trivy-db/pkg/db"
	"github.com/aquasecurity/trivy-db/pkg/metadata"
	"github.com/aquasecurity/trivy-db/pkg/types"
	"github.com/aquasecurity/trivy-db/pkg/vulnsrc/bucket"
	"github.com/aquasecurity/trivy-db/pkg/vulnsrc/vulnerability"
	bolt "go.etcd.io/bbolt"
)

type advisory struct {
	ID           string `json:"id"`
	OS           string `json:"os"`
	Release      string `json:"release"`
	Package      string `json:"package"`
	FixedVersion string `json:"fixedVersion"`
	Severity     string `json:"severity"`
}

func main() {
	in := flag.String("in", "", "directory of advisory JSON files")
	out := flag.String("out", "", "directory to write trivy.db and metadata.json into (trivy's CACHE_DIR/db)")
	updated := flag.String("updated", "", "the DB's UpdatedAt, RFC3339 (default now)")
	flag.Parse()
	if *in == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: trivy-fixture-db -in ADVISORIES_DIR -out CACHE_DIR/db [-updated RFC3339]")
		os.Exit(2)
	}
	at := time.Now().UTC()
	if *updated != "" {
		t, err := time.Parse(time.RFC3339, *updated)
		if err != nil {
			fmt.Fprintln(os.Stderr, "trivy-fixture-db: -updated:", err)
			os.Exit(2)
		}
		at = t.UTC()
	}
	if err := run(*in, *out, at); err != nil {
		fmt.Fprintln(os.Stderr, "trivy-fixture-db:", err)
		os.Exit(1)
	}
}

func run(in, out string, at time.Time) error {
	advisories, err := readAdvisories(in)
	if err != nil {
		return err
	}
	if len(advisories) == 0 {
		return fmt.Errorf("no advisories in %s", in)
	}
	if err := os.RemoveAll(db.Path(out)); err != nil {
		return err
	}
	if err := db.Init(out); err != nil {
		return err
	}
	defer db.Close()
	dbc := db.Config{}
	err = dbc.BatchUpdate(func(tx *bolt.Tx) error {
		for _, a := range advisories {
			if a.OS != "debian" {
				return fmt.Errorf("%s: only debian advisories are supported, not %q", a.ID, a.OS)
			}
			platform := bucket.NewDebian(a.Release).Name()
			// as trivy-db's debian source stores them: the advisory per platform and source package,
			// the vulnerability with the vendor's severity, the platform's data source
			if err := dbc.PutAdvisoryDetail(tx, a.ID, a.Package, []string{platform}, types.Advisory{FixedVersion: a.FixedVersion}); err != nil {
				return err
			}
			if err := dbc.SaveAdvisoryDetails(tx, a.ID); err != nil {
				return err
			}
			sev, err := types.NewSeverity(strings.ToUpper(a.Severity))
			if err != nil {
				return fmt.Errorf("%s: %w", a.ID, err)
			}
			vuln := types.Vulnerability{
				Title:          "fixture advisory",
				Severity:       sev.String(),
				VendorSeverity: types.VendorSeverity{vulnerability.Debian: sev},
			}
			if err := dbc.PutVulnerability(tx, a.ID, vuln); err != nil {
				return err
			}
			if err := dbc.PutDataSource(tx, platform, types.DataSource{ID: vulnerability.Debian, Name: "Debian Security Tracker", URL: "https://salsa.debian.org/security-tracker-team/security-tracker"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := dbc.DeleteAdvisoryDetailBucket(); err != nil {
		return err
	}
	return metadata.NewClient(out).Update(metadata.Metadata{
		Version:      db.SchemaVersion,
		NextUpdate:   at.Add(24 * time.Hour),
		UpdatedAt:    at,
		DownloadedAt: at,
	})
}

// readAdvisories reads every *.json file of dir (sorted, so the DB does not depend on readdir order).
func readAdvisories(dir string) ([]advisory, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var out []advisory
	for _, p := range paths {
		by, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		if strings.HasPrefix(strings.TrimSpace(string(by)), "[") {
			var as []advisory
			if err := json.Unmarshal(by, &as); err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			out = append(out, as...)
			continue
		}
		var a advisory
		if err := json.Unmarshal(by, &a); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		out = append(out, a)
	}
	return out, nil
}
