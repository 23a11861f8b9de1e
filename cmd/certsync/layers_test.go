package main

import (
	"encoding/json"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestLayers keeps the imports one-way (DESIGN.md §1): mapping is pure,
// the three adapters know only mapping, nothing below cmd knows the
// command, the test harnesses stay out of the agent's code paths (only the
// demo and _test.go files import them), and every package says what it is
// for in a doc.go.
func TestLayers(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", "github.com/certsync/certsync/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const mod = "github.com/certsync/certsync/"
	// package → the module's packages it may import (non-test code): "p" is
	// p itself, "p/..." is p and every package below it. A package not in
	// the map is held only to the rules after it.
	allowed := map[string][]string{
		"mapping":   {},
		"ldapsrc":   {"mapping"},
		"cloudsink": {"mapping"},
		"state":     {},
		"agent":     {"mapping", "ldapsrc", "cloudsink", "state"},
		// The configuration composes the sections their owners define.
		"agent/config": {"agent", "ldapsrc", "cloudsink", "mapping"},
		// Reports show plans; they print objectGUIDs as ldapsrc does.
		"agent/report": {"agent", "ldapsrc", "mapping"},
		// The doctor asks each side what would stop a pass.
		"agent/doctor": {"agent", "agent/config", "agent/report", "ldapsrc", "cloudsink"},
		// Metrics count what the agent reports about its passes.
		"agent/metrics": {"agent"},
		// The service manager protocol knows nothing of certsync.
		"agent/sdnotify": {},
		// The Windows service protocol likewise.
		"agent/winsvc": {},
		// The demo's in-memory directory knows nothing of certsync.
		"ldapsrc/ldapmem": {},
		// The demo builds its world from the harnesses and runs the agent;
		// it never knows the command (cmd/... is refused below).
		"agent/demo": {"..."},
		// main wires everything; agent/demo only from demo.go (demoFile).
		"cmd/certsync": {"agent/...", "mapping", "ldapsrc", "cloudsink", "state", "cmd/certsync/..."},
	}
	// The test harnesses: only the demo and other harnesses may import them
	// outside _test.go files, so the agent's code paths never link them.
	harnesses := []string{"ldapsrc/ldaptest", "ldapsrc/ldapmem", "cloudsink/graphtest", "cloudsink/exotest", "cloudsink/faulttest", "mapping/pkitest"}
	const demoPkg, mainPkg, demoFile = "agent/demo", "cmd/certsync", "demo.go"
	forbiddenInMapping := []string{"net", "net/http", "os", "os/exec", "io/ioutil", "time/tzdata"}

	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := map[string]bool{}
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
		rel := strings.TrimPrefix(p.ImportPath, mod)
		seen[rel] = true
		if p.Name != "main" && !strings.HasPrefix(rel, "internal_") {
			if _, err := os.Stat(filepath.Join(p.Dir, "doc.go")); err != nil {
				t.Errorf("%s has no doc.go saying what it is for", rel)
			}
		}
		rules, ruled := allowed[rel]
		for _, imp := range p.Imports {
			if rel == "mapping" && slices.Contains(forbiddenInMapping, imp) {
				t.Errorf("mapping must stay pure, but imports %s", imp)
			}
			if !strings.HasPrefix(imp, mod) {
				continue
			}
			dep := strings.TrimPrefix(imp, mod)
			if ruled && !slices.ContainsFunc(rules, func(pat string) bool { return matchPackage(pat, dep) }) {
				t.Errorf("%s imports %s: the layers are %v", rel, dep, allowed)
			}
			if matchPackage("cmd/...", dep) && !matchPackage("cmd/...", rel) {
				t.Errorf("%s imports %s: nothing below cmd may know the command", rel, dep)
			}
			if slices.Contains(harnesses, dep) && rel != demoPkg && !slices.Contains(harnesses, rel) {
				t.Errorf("%s imports the test harness %s: only %s and _test.go files may (they must stay out of the shipped binary)", rel, dep, demoPkg)
			}
			if matchPackage(demoPkg+"/...", dep) && rel != mainPkg && !matchPackage(demoPkg+"/...", rel) {
				t.Errorf("%s imports %s: only the demo command (cmd/certsync/%s) may", rel, dep, demoFile)
			}
		}
		if rel == mainPkg {
			checkDemoImportedOnlyBy(t, p.Dir, p.GoFiles, mod+demoPkg, demoFile)
		}
	}
	for rel := range allowed {
		if !seen[rel] {
			t.Errorf("go list did not list %s, which the layers rule: %d packages listed", rel, len(seen))
		}
	}
}

// matchPackage reports whether the package path rel matches pat: "..." is
// any package, "p/..." is p and the packages below it, anything else is
// that one package.
func matchPackage(pat, rel string) bool {
	if pat == "..." {
		return true
	}
	if base, ok := strings.CutSuffix(pat, "/..."); ok {
		return rel == base || strings.HasPrefix(rel, base+"/")
	}
	return rel == pat
}

// checkDemoImportedOnlyBy fails when a file of files (in dir) other than
// only imports demoPath or a package below it: the rest of main must build
// without the demo, as the release build does.
func checkDemoImportedOnlyBy(t *testing.T, dir string, files []string, demoPath, only string) {
	t.Helper()
	fset := token.NewFileSet()
	for _, name := range files {
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ImportsOnly)
		if err != nil {
			t.Errorf("parsing %s: %v", name, err)
			continue
		}
		for _, spec := range f.Imports {
			path, err := strconv.Unquote(spec.Path.Value)
			if err != nil {
				t.Errorf("%s: import %s: %v", name, spec.Path.Value, err)
				continue
			}
			if (path == demoPath || strings.HasPrefix(path, demoPath+"/")) && name != only {
				t.Errorf("cmd/certsync/%s imports %s: only %s may (it is left out of the release build)", name, path, only)
			}
		}
	}
}
