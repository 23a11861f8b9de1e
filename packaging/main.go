// Command packaging builds certsync's Debian package with nfpm (as a
// library): the release binary (-tags release, static, stripped), the
// systemd unit, the example configuration as /etc/certsync/agent.yaml (a
// conffile), the state directory /var/lib/certsync (0700), and the
// maintainer scripts that make the certsync system user.
//
//	go run ./packaging [-o certsync_VERSION_ARCH.deb] [-version 1.2.3] [-arch amd64]
//
// Only this program links nfpm; the certsync binary does not (TestRelease).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"
)

// options say what to build.
type options struct {
	out     string // the .deb to write; "" = certsync_VERSION_ARCH.deb
	version string // the Debian version, starting with a digit
	arch    string // Go architecture (amd64, arm64); nfpm names it for Debian
	root    string // the module's directory; "" = found with go env GOMOD
}

func main() {
	var o options
	flag.StringVar(&o.out, "o", "", "the .deb to write (default certsync_VERSION_ARCH.deb)")
	flag.StringVar(&o.version, "version", "0.1.0~dev", "the package's version (also what `certsync version` prints)")
	flag.StringVar(&o.arch, "arch", runtime.GOARCH, "the Go architecture to build for")
	flag.Parse()
	out, err := build(context.Background(), o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "packaging:", err)
		os.Exit(1)
	}
	fmt.Println(out)
}

// build builds the release binary and the package; it returns the
// package's path.
func build(ctx context.Context, o options) (string, error) {
	if o.version == "" || o.version[0] < '0' || o.version[0] > '9' {
		return "", fmt.Errorf("version %q: a Debian version starts with a digit", o.version)
	}
	if o.root == "" {
		out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
		gomod := strings.TrimSpace(string(out))
		if err != nil || gomod == "" || gomod == os.DevNull {
			return "", fmt.Errorf("finding the certsync module (go env GOMOD): run this inside it: %v", err)
		}
		o.root = filepath.Dir(gomod)
	}
	if o.out == "" {
		o.out = fmt.Sprintf("certsync_%s_%s.deb", o.version, o.arch)
	}
	tmp, err := os.MkdirTemp("", "certsync-deb-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "certsync")
	if err := buildRelease(ctx, o, bin); err != nil {
		return "", err
	}
	if err := writeDeb(debInfo(o, bin), o.out); err != nil {
		return "", err
	}
	return o.out, nil
}

// releaseFlags are the release build's: no cgo (a static binary that runs
// on any glibc), no demo or test harnesses, no local paths, no symbol
// table, and the package's version for `certsync version`.
func releaseFlags(version string) []string {
	return []string{"-tags", "release", "-trimpath", "-ldflags", "-s -w -X main.version=" + version}
}

// buildRelease builds the binary that ships into out.
func buildRelease(ctx context.Context, o options, out string) error {
	args := append([]string{"build"}, releaseFlags(o.version)...)
	cmd := exec.CommandContext(ctx, "go", append(args, "-o", out, "./cmd/certsync")...)
	cmd.Dir = o.root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+o.arch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build -tags release ./cmd/certsync: %v\n%s", err, b)
	}
	return nil
}

// debInfo is the package: what it holds and where, with modes.
func debInfo(o options, binary string) *nfpm.Info {
	pkg := filepath.Join(o.root, "packaging")
	file := func(src, dst string, mode os.FileMode) *files.Content {
		return &files.Content{Source: src, Destination: dst, FileInfo: &files.ContentFileInfo{Mode: mode}}
	}
	config := file(filepath.Join(o.root, "agent.yaml.example"), "/etc/certsync/agent.yaml", 0o640)
	config.Type = files.TypeConfigNoReplace
	return &nfpm.Info{
		Name:          "certsync",
		Arch:          o.arch,
		Platform:      "linux",
		Version:       o.version,
		VersionSchema: "none", // Debian's own syntax (1.2.3~rc1), not semver
		Section:       "admin",
		Priority:      "optional",
		Maintainer:    "certsync maintainers <certsync@example.invalid>",
		Description: "publish directory certificates to Microsoft Entra ID and Exchange Online\n" +
			"certsync reads userCertificate and userSMIMECertificate from Active\n" +
			"Directory or LDAP, validates each certificate and publishes the good ones\n" +
			"to Entra ID (certificateUserIds), Exchange Online mailboxes and AD\n" +
			"altSecurityIdentities.",
		Homepage: "https://github.com/certsync/certsync",
		License:  "Proprietary",
		Overridables: nfpm.Overridables{
			Depends: []string{"passwd"}, // useradd, groupadd in postinst
			Contents: files.Contents{
				file(binary, "/usr/bin/certsync", 0o755),
				file(filepath.Join(pkg, "certsync.service"), "/usr/lib/systemd/system/certsync.service", 0o644),
				config,
				file(filepath.Join(o.root, "agent.yaml.example"), "/usr/share/doc/certsync/agent.yaml.example", 0o644),
				file(filepath.Join(o.root, "README.md"), "/usr/share/doc/certsync/README.md", 0o644),
				{Destination: "/var/lib/certsync", Type: files.TypeDir, FileInfo: &files.ContentFileInfo{Mode: 0o700}},
			},
			Scripts: nfpm.Scripts{
				PostInstall: filepath.Join(pkg, "postinst.sh"),
				PreRemove:   filepath.Join(pkg, "prerm.sh"),
				PostRemove:  filepath.Join(pkg, "postrm.sh"),
			},
		},
	}
}

// writeDeb has nfpm write info as a Debian package to out.
func writeDeb(info *nfpm.Info, out string) error {
	info = nfpm.WithDefaults(info)
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return fmt.Errorf("the package's contents: %w", err)
	}
	pkg, err := nfpm.Get("deb")
	if err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := pkg.Package(info, f); err != nil {
		return errors.Join(fmt.Errorf("writing %s: %w", out, err), f.Close(), os.Remove(out))
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	return nil
}
