package mapping

import (
	"os/exec"
	"strings"
	"testing"
)

// smallstep/pkcs7 recurses without a depth limit and runs quadratic on
// crafted BER, so no directory value may reach it: only the test PKI
// (mapping/pkitest, which builds bags and never parses outside bytes)
// imports it, and the release binary does not link it at all.
func TestPKCS7LibraryNeverParsesDirectoryValues(t *testing.T) {
	const lib = "github.com/smallstep/pkcs7"
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "github.com/certsync/certsync/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, " ")
		for _, imp := range strings.Fields(imports) {
			if imp == lib && pkg != "github.com/certsync/certsync/mapping/pkitest" {
				t.Errorf("%s imports %s", pkg, lib)
			}
		}
	}
	deps, err := exec.Command("go", "list", "-deps", "-tags", "release", "github.com/certsync/certsync/cmd/certsync").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	if strings.Contains(string(deps), lib) {
		t.Errorf("the release binary links %s", lib)
	}
}
