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

	"github.com/anchore/grype/grype/db"
	"github.com/anchore/grype/grype/db/provider"
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
	flag.Parse()
	if *in == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: grype-fixture-db -in ADVISORIES_DIR -out DB_DIR")
		os.Exit(2)
	}
	if err := run(*in, *out, *providerName); err != nil {
		fmt.Fprintln(os.Stderr, "grype-fixture-db:", err)
		os.Exit(1)
	}
}

func run(in, out, providerName string) error {
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
	now := time.Now().UTC()
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
