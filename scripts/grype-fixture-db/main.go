// grype-fixture-db builds a grype vulnerability DB (schema v6) from a directory of advisories,
// so tests scan real images against findings they choose. grype refuses a DB older than 120 h,
// which is why tests build one per run instead of checking one in.
//
// Usage: grype-fixture-db -in ADVISORIES_DIR -out DB_DIR
//
// ADVISORIES_DIR holds *.json files, each one vunnel "os" record (or an array of them):
//
//	{"identifier":"debian:12/cve-2099-0001","item":{"Vulnerability":{"Name":"CVE-2099-0001",
//	 "NamespaceName":"debian:12","Severity":"Critical","FixedIn":[{"Name":"zlib",
//	 "NamespaceName":"debian:12","VersionFormat":"dpkg","Version":"1:1.2.13.dfsg-1+deb12u1"}]}}}
//
// DB_DIR receives vulnerability.db (and its import metadata), ready for `grype db import`.
//
// -archive also packages it as a mirror serves it (what `grype db update` downloads): DB_DIR gets
// vulnerability-db_v6…tar.gz and latest.json (the listing, naming the archive by its path
// relative to the listing, with its sha256). Serve DB_DIR as <base>/v6/ and point
// GRYPE_DB_UPDATE_URL at <base>. -built RFC3339 sets the DB's build time (default now): a DB
// built in the past is how tests check that a stale one is refused.
package main

import (
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/anchore/grype/grype/db"
	"github.com/anchore/grype/grype/db/provider"
	v6 "github.com/anchore/grype/grype/db/v6"
	_ "github.com/glebarez/go-sqlite" // the pure-Go SQLite driver grype itself uses (driver "sqlite")
	"github.com/spf13/afero"
)

// The vunnel schema the OS processor accepts (major version 1).
const osSchema = "https://raw.githubusercontent.com/anchore/vunnel/main/schema/vulnerability/os/schema-1.0.2.json"

type record struct {
	Schema     string          `json:"schema,omitempty"`
	Identifier string          `json:"identifier"`
	Item       json.RawMessage `json:"item"`
}

func main() {
	in := flag.String("in", "", "directory of advisory JSON files")
	out := flag.String("out", "", "directory to write vulnerability.db into")
	providerName := flag.String("provider", "debian", "vunnel provider the advisories are attributed to")
	archive := flag.Bool("archive", false, "also write a tar.gz archive and latest.json listing as a grype DB mirror serves them")
	built := flag.String("built", "", "the DB's build time, RFC3339 (default now)")
	flag.Parse()
	if *in == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: grype-fixture-db -in ADVISORIES_DIR -out DB_DIR")
		os.Exit(2)
	}
	now := time.Now().UTC()
	if *built != "" {
		t, err := time.Parse(time.RFC3339, *built)
		if err != nil {
			fmt.Fprintln(os.Stderr, "grype-fixture-db: -built:", err)
			os.Exit(2)
		}
		now = t.UTC()
	}
	if err := run(*in, *out, *providerName, now); err != nil {
		fmt.Fprintln(os.Stderr, "grype-fixture-db:", err)
		os.Exit(1)
	}
	if *built != "" {
		if err := backdate(*out, now); err != nil {
			fmt.Fprintln(os.Stderr, "grype-fixture-db: -built:", err)
			os.Exit(1)
		}
	}
	if *archive {
		// grype's own packaging (what its publishing pipeline runs): the listing format and the
		// archive layout are then exactly what `grype db update` expects, by construction.
		if err := db.Package(*out, "", "tar.gz", nil); err != nil {
			fmt.Fprintln(os.Stderr, "grype-fixture-db: packaging:", err)
			os.Exit(1)
		}
	}
}

func run(in, out, providerName string, now time.Time) error {
	records, err := readRecords(in)
	if err != nil {
		return err
	}
	if len(records) == 0 {
		return fmt.Errorf("no advisories in %s", in)
	}
	work, err := os.MkdirTemp("", "grype-fixture-db-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	// A vunnel workspace: <provider>/results/*.json, a checksums listing and metadata.json.
	root := filepath.Join(work, providerName)
	if err := os.MkdirAll(filepath.Join(root, "results"), 0o755); err != nil {
		return err
	}
	var listing strings.Builder
	for i, r := range records {
		if r.Schema == "" {
			r.Schema = osSchema
		}
		by, err := json.Marshal(r)
		if err != nil {
			return err
		}
		rel := filepath.Join("results", fmt.Sprintf("%05d.json", i))
		path := filepath.Join(root, rel)
		if err := os.WriteFile(path, by, 0o644); err != nil {
			return err
		}
		f, err := provider.NewFile(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(&listing, "%s  %s\n", f.Digest, rel)
	}
	if err := os.WriteFile(filepath.Join(root, "checksums"), []byte(listing.String()), 0o644); err != nil {
		return err
	}
	listingFile, err := provider.NewFile(filepath.Join(root, "checksums"))
	if err != nil {
		return err
	}
	state := map[string]any{
		"provider":             providerName,
		"version":              1,
		"distribution_version": 1,
		"processor":            "vunnel@fixture",
		"schema":               map[string]string{"version": "1.0.0", "url": "https://raw.githubusercontent.com/anchore/vunnel/main/schema/provider-workspace-state/schema-1.0.0.json"},
		"urls":                 []string{},
		"timestamp":            now.Format(time.RFC3339Nano),
		"listing":              map[string]string{"path": "checksums", "digest": listingFile.Digest, "algorithm": "xxh64"},
		"store":                "flat-file",
		"stale":                false,
	}
	by, err := json.Marshal(state)
	if err != nil {
		return err
	}
	meta := filepath.Join(root, "metadata.json")
	if err := os.WriteFile(meta, by, 0o644); err != nil {
		return err
	}
	sd, err := provider.ReadState(meta)
	if err != nil {
		return fmt.Errorf("reading the workspace state: %w", err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	return db.Build(db.BuildConfig{
		SchemaVersion: 6,
		Directory:     out,
		States:        provider.States{*sd},
		Timestamp:     now,
		Hydrate:       true,
	})
}

// readRecords reads every *.json file of dir (sorted, so the DB does not depend on readdir order).
func readRecords(dir string) ([]record, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var out []record
	for _, p := range paths {
		by, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		trimmed := strings.TrimSpace(string(by))
		if strings.HasPrefix(trimmed, "[") {
			var rs []record
			if err := json.Unmarshal(by, &rs); err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			out = append(out, rs...)
			continue
		}
		var r record
		if err := json.Unmarshal(by, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// backdate sets the DB's build time, which grype's writer always stamps as "now", and rewrites its
// import metadata (the digest `grype db import` and the mirror archive carry) to match.
func backdate(dir string, built time.Time) error {
	path := filepath.Join(dir, v6.VulnerabilityDBFileName)
	conn, err := sql.Open("sqlite", path)
	if err != nil {
		return err
	}
	// the column's text form as grype's gorm adapter writes it
	_, err = conn.Exec("UPDATE db_metadata SET build_timestamp = ?", built.UTC().Format("2006-01-02 15:04:05-07:00"))
	if cerr := conn.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	_, err = v6.WriteImportMetadata(afero.NewOsFs(), dir, "grype db build")
	return err
}
