package main

import (
	"errors"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestRelease guards what ships. No build links the testing package, the
// ldaptest harness (slapd, Samba) or test libraries: the default build
// carries the demo, and the demo runs on ldapmem and the emulators, which
// link no test code. The release build (-tags release) links none of the
// demo's parts either and has no demo command, while the default build
// does have the demo (so the guard cannot pass for want of a demo).
func TestRelease(t *testing.T) {
	root := moduleRoot(t)
	const mod = "github.com/certsync/certsync/"
	// Packages (and the packages below them) no build may link.
	neverPkgs := []string{mod + "ldapsrc/ldaptest", "testing", "github.com/stretchr/testify", "github.com/jimlambrt/gldap", "github.com/hashicorp/go-hclog",
		// The Debian packager (go run ./packaging) is no part of certsync.
		"github.com/goreleaser/nfpm"}
	// The demo and what it runs on: in the default build only.
	demoPkgs := []string{mod + "agent/demo", mod + "ldapsrc/ldapmem", mod + "cloudsink/graphtest", mod + "cloudsink/exotest", mod + "mapping/pkitest"}
	// Modules the release binary must not record.
	forbiddenMods := []string{"github.com/stretchr/testify", "github.com/jimlambrt/gldap", "github.com/hashicorp/go-hclog", "github.com/goreleaser/nfpm/v2"}
	// msgraph-sdk-go's root package imports the request builders of every
	// Graph API (some 70 MB of binary); certsync links only /users.
	const graphRoot = "github.com/microsoftgraph/msgraph-sdk-go"

	t.Run("deps", func(t *testing.T) {
		release := listDeps(t, root, "-tags", "release")
		def := listDeps(t, root)
		for _, build := range []struct {
			name      string
			deps      []string
			forbidden []string
		}{
			{"release", release, append(slices.Clone(neverPkgs), demoPkgs...)},
			{"default", def, neverPkgs},
		} {
			for _, dep := range build.deps {
				for _, f := range build.forbidden {
					if underPath(dep, f) {
						t.Errorf("the %s build links %s", build.name, dep)
					}
				}
			}
			if !slices.Contains(build.deps, mod+"agent") {
				t.Errorf("the %s build's dependencies lack %s: is go list listing the right package?\n%s", build.name, mod+"agent", strings.Join(build.deps, "\n"))
			}
		}
		if slices.Contains(release, graphRoot) {
			t.Errorf("the release build links %s and with it every Graph API's request builders", graphRoot)
		}
		for _, want := range demoPkgs {
			if !slices.Contains(def, want) {
				t.Errorf("the default build does not link %s: the demo is gone from it, or this guard checks the wrong names", want)
			}
		}
	})

	t.Run("binary", func(t *testing.T) {
		bin := filepath.Join(t.TempDir(), "certsync")
		build := exec.Command("go", "build", "-tags", "release", "-o", bin, "./cmd/certsync")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build -tags release: %v\n%s", err, out)
		}
		out, err := exec.Command("go", "version", "-m", bin).Output()
		if err != nil {
			t.Fatalf("go version -m: %v", err)
		}
		deps := 0
		for line := range strings.Lines(string(out)) {
			fields := strings.Fields(line)
			if len(fields) < 2 || (fields[0] != "dep" && fields[0] != "=>") {
				continue
			}
			deps++
			for _, f := range forbiddenMods {
				if underPath(fields[1], f) {
					t.Errorf("the release binary records module %s %s", fields[1], strings.Join(fields[2:], " "))
				}
			}
		}
		if deps == 0 || !strings.Contains(string(out), "github.com/spf13/cobra") {
			t.Errorf("go version -m lists no modules (or not cobra): is the build info read right?\n%s", out)
		}
		// The Graph sink names the SDK's version in its telemetry header
		// from this list (cloudsink.graphSDKVersion).
		if !strings.Contains(string(out), "\tgithub.com/microsoftgraph/msgraph-sdk-go\tv") {
			t.Errorf("the release binary does not record msgraph-sdk-go's version, which the Graph sink's telemetry header reads")
		}

		out, err = exec.Command(bin, "demo").CombinedOutput()
		var exit *exec.ExitError
		switch {
		case err == nil:
			t.Errorf("the release binary ran `certsync demo`:\n%s", out)
		case !errors.As(err, &exit):
			t.Errorf("running the release binary: %v", err)
		}
		if want := `unknown command "demo" for "certsync"`; !strings.Contains(string(out), want) {
			t.Errorf("the release binary's `certsync demo` says %q, want %q", out, want)
		}
		out, err = exec.Command(bin, "version").CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "certsync ") {
			t.Errorf("the release binary's `certsync version`: %v\n%s", err, out)
		}
	})
}

// moduleRoot is the directory of the module under test.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		t.Fatal("go list -m found no module directory")
	}
	return dir
}

// listDeps lists the packages ./cmd/certsync links, built with flags.
func listDeps(t *testing.T, root string, flags ...string) []string {
	t.Helper()
	args := append(append([]string{"list", "-deps"}, flags...), "./cmd/certsync")
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			stderr = exit.Stderr
		}
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return strings.Fields(string(out))
}

// underPath reports whether the package or module path p is base or below it.
func underPath(p, base string) bool {
	return p == base || strings.HasPrefix(p, base+"/")
}
