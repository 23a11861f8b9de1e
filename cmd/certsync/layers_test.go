package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestLayers keeps the imports one-way (DESIGN.md §1): mapping is pure,
// the three adapters know only mapping, nothing below cmd knows the
// command, and every package says what it is for in a doc.go.
func TestLayers(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", "github.com/certsync/certsync/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const mod = "github.com/certsync/certsync/"
	allowed := map[string][]string{ // package → the module's packages it may import (non-test code)
		"mapping":   {},
		"ldapsrc":   {"mapping"},
		"cloudsink": {"mapping"},
		"state":     {},
		"agent":     {"mapping", "ldapsrc", "cloudsink", "state"},
	}
	forbiddenInMapping := []string{"net", "net/http", "os", "os/exec", "io/ioutil", "time/tzdata"}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
	for dec.More() {
		var p struct {
			ImportPath string
			Dir        string
			Name       string
			Imports    []string
			GoFiles    []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		seen++
		rel := strings.TrimPrefix(p.ImportPath, mod)
		if p.Name != "main" && !strings.HasPrefix(rel, "internal_") {
			if _, err := os.Stat(filepath.Join(p.Dir, "doc.go")); err != nil {
				t.Errorf("%s has no doc.go saying what it is for", rel)
			}
		}
		rules, ruled := allowed[rel]
		if !ruled {
			continue
		}
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, mod) {
				dep := strings.TrimPrefix(imp, mod)
				ok := false
				for _, a := range rules {
					ok = ok || dep == a
				}
				if !ok {
					t.Errorf("%s imports %s: the layers are %v", rel, dep, allowed)
				}
			}
			if rel == "mapping" {
				for _, f := range forbiddenInMapping {
					if imp == f {
						t.Errorf("mapping must stay pure, but imports %s", imp)
					}
				}
			}
		}
	}
	if seen < len(allowed) {
		t.Fatalf("go list found %d packages", seen)
	}
}
