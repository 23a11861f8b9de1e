package state

import (
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// state sits at the bottom of certsync: of its own packages it may import
// mapping only, and it never speaks to the network.
func TestImports(t *testing.T) {
	forbidden := []string{
		"github.com/certsync/certsync/ldapsrc",
		"github.com/certsync/certsync/cloudsink",
		"github.com/certsync/certsync/agent",
		"github.com/certsync/certsync/cmd",
		"github.com/go-ldap/",
		"github.com/microsoftgraph/",
		"github.com/Azure/",
		"net/http",
	}
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	files := 0
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		files++
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			for _, bad := range forbidden {
				if strings.HasPrefix(path, bad) {
					t.Errorf("%s imports %s", name, path)
				}
			}
		}
	}
	if files < 3 {
		t.Fatalf("found only %d source files; is the test running in the package directory?", files)
	}
}
