package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// inCI: CI must run every check; elsewhere a missing tool skips one.
func inCI() bool { return os.Getenv("CI") != "" }

// needTool returns the path of tool, or skips the test (fails it in CI).
func needTool(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if inCI() {
			t.Fatalf("%s is needed in CI: %v", tool, err)
		}
		t.Skipf("%s not found (%v): skipped outside CI", tool, err)
	}
	return p
}

// TestDebianPackage builds the package as `go run ./packaging` does and
// reads it back with the standard library (ar, then the control and data
// tarballs): the release binary, the unit, the conffile, the state
// directory and the scripts that make the certsync user. dpkg-deb, when
// present (always in CI), must accept it too.
func TestDebianPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the release binary")
	}
	const version = "1.2.3~test1"
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	deb := filepath.Join(t.TempDir(), "certsync.deb")
	if _, err := build(context.Background(), options{out: deb, version: version, arch: runtime.GOARCH, root: root}); err != nil {
		t.Fatal(err)
	}
	members := readAr(t, deb)
	if got := string(members["debian-binary"]); got != "2.0\n" {
		t.Errorf("debian-binary = %q", got)
	}
	control := readTarGz(t, members["control.tar.gz"])
	data := readTarGz(t, members["data.tar.gz"])

	t.Run("control", func(t *testing.T) {
		fields := map[string]string{}
		sc := bufio.NewScanner(bytes.NewReader(control["./control"].body))
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ": "); ok {
				fields[k] = v
			}
		}
		arch := runtime.GOARCH
		for k, want := range map[string]string{"Package": "certsync", "Version": version, "Architecture": arch, "Depends": "passwd"} {
			if fields[k] != want {
				t.Errorf("control %s = %q, want %q\n%s", k, fields[k], want, control["./control"].body)
			}
		}
		if got := strings.TrimSpace(string(control["./conffiles"].body)); got != "/etc/certsync/agent.yaml" {
			t.Errorf("conffiles = %q, want the configuration only", got)
		}
		post, ok := control["./postinst"]
		if !ok || post.hdr.Mode&0o111 == 0 {
			t.Fatalf("postinst missing or not executable: %+v", post.hdr)
		}
		for _, want := range []string{"useradd --system", "install -d -o certsync -g certsync -m 0700 /var/lib/certsync", "chmod 0640 /etc/certsync/agent.yaml"} {
			if !bytes.Contains(post.body, []byte(want)) {
				t.Errorf("postinst lacks %q", want)
			}
		}
		for _, s := range []string{"./prerm", "./postrm"} {
			if _, ok := control[s]; !ok {
				t.Errorf("no %s", s)
			}
		}
	})

	t.Run("files", func(t *testing.T) {
		same := func(path, src string, mode int64) {
			t.Helper()
			f, ok := data[path]
			if !ok {
				t.Errorf("the package has no %s", path)
				return
			}
			want, err := os.ReadFile(filepath.Join(root, src))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(f.body, want) {
				t.Errorf("%s differs from %s", path, src)
			}
			if f.hdr.Mode&0o7777 != mode || f.hdr.Uid != 0 || f.hdr.Gid != 0 {
				t.Errorf("%s: mode %o owner %d:%d, want %o root:root", path, f.hdr.Mode&0o7777, f.hdr.Uid, f.hdr.Gid, mode)
			}
		}
		same("./usr/lib/systemd/system/certsync.service", "packaging/certsync.service", 0o644)
		same("./etc/certsync/agent.yaml", "agent.yaml.example", 0o640)
		same("./usr/share/doc/certsync/agent.yaml.example", "agent.yaml.example", 0o644)
		if d, ok := data["./var/lib/certsync/"]; !ok || d.hdr.Typeflag != tar.TypeDir || d.hdr.Mode&0o7777 != 0o700 {
			t.Errorf("/var/lib/certsync: %+v, want a directory with mode 0700", d.hdr)
		}
	})

	t.Run("binary", func(t *testing.T) {
		f, ok := data["./usr/bin/certsync"]
		if !ok || f.hdr.Mode&0o7777 != 0o755 {
			t.Fatalf("/usr/bin/certsync missing or not 0755: %+v", f.hdr)
		}
		bi, err := buildinfo.Read(bytes.NewReader(f.body))
		if err != nil {
			t.Fatalf("/usr/bin/certsync is no Go binary: %v", err)
		}
		settings := map[string]string{}
		for _, s := range bi.Settings {
			settings[s.Key] = s.Value
		}
		for k, want := range map[string]string{"-tags": "release", "CGO_ENABLED": "0", "-trimpath": "true"} {
			if settings[k] != want {
				t.Errorf("built with %s=%q, want %q", k, settings[k], want)
			}
		}
		// -trimpath keeps -ldflags out of the build information: -s shows
		// as a missing symbol table, -X main.version in `certsync version`.
		exe, err := elf.NewFile(bytes.NewReader(f.body))
		if err != nil {
			t.Fatalf("/usr/bin/certsync is no ELF file: %v", err)
		}
		if exe.Section(".symtab") != nil {
			t.Error("/usr/bin/certsync has a symbol table: not built with -ldflags=-s")
		}
		for _, m := range bi.Deps {
			if strings.HasPrefix(m.Path, "github.com/goreleaser/") {
				t.Errorf("certsync links %s: the packager leaked into the binary", m.Path)
			}
		}
		// The Graph SDK's root package alone adds some 70 MB (every Graph
		// API's request builders); certsync links its users builder only.
		if len(f.body) > 80<<20 {
			t.Errorf("/usr/bin/certsync is %d MB: more than the 80 MB a release build should be", len(f.body)>>20)
		}
		bin := filepath.Join(t.TempDir(), "certsync")
		if err := os.WriteFile(bin, f.body, 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "version").Output()
		if err != nil || !strings.HasPrefix(string(out), "certsync "+version+" ") {
			t.Errorf("certsync version from the package: %v %q, want it to start with %q", err, out, "certsync "+version)
		}
	})

	t.Run("dpkg-deb", func(t *testing.T) {
		dpkgDeb := needTool(t, "dpkg-deb")
		info, err := exec.Command(dpkgDeb, "--info", deb).CombinedOutput()
		if err != nil || !strings.Contains(string(info), "Package: certsync") {
			t.Errorf("dpkg-deb --info: %v\n%s", err, info)
		}
		list, err := exec.Command(dpkgDeb, "--contents", deb).CombinedOutput()
		if err != nil {
			t.Fatalf("dpkg-deb --contents: %v\n%s", err, list)
		}
		for _, want := range []string{"-rwxr-xr-x root/root", "./usr/bin/certsync", "drwx------ root/root", "./var/lib/certsync/"} {
			if !strings.Contains(string(list), want) {
				t.Errorf("dpkg-deb --contents lacks %q:\n%s", want, list)
			}
		}
	})
}

// TestSystemdUnit has systemd check the unit offline: `systemd-analyze
// verify` (which prints, but does not fail on, keys it cannot parse: any
// output is a failure) and the hardening the README promises, scored by
// `systemd-analyze security --offline`.
func TestSystemdUnit(t *testing.T) {
	analyze := needTool(t, "systemd-analyze")
	unit, err := os.ReadFile("certsync.service")
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string][]string{}
	for line := range strings.Lines(string(unit)) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(line, "#") {
			keys[k] = append(keys[k], v)
		}
	}
	for k, want := range map[string]string{
		"Type": "notify", "WatchdogSec": "2min", "User": "certsync", "StateDirectory": "certsync", "StateDirectoryMode": "0700",
		"ProtectSystem": "strict", "ProtectHome": "true", "NoNewPrivileges": "true", "PrivateTmp": "true", "CapabilityBoundingSet": "",
		"ExecStart": "/usr/bin/certsync run --config /etc/certsync/agent.yaml",
	} {
		if len(keys[k]) != 1 || keys[k][0] != want {
			t.Errorf("%s = %q, want %q", k, keys[k], want)
		}
	}

	// verify wants ExecStart's program to exist: point it at this test's
	// own executable in a copy.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(t.TempDir(), "certsync.service")
	if err := os.WriteFile(copyPath, bytes.ReplaceAll(unit, []byte("/usr/bin/certsync"), []byte(self)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", copyPath).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command(analyze, "security", "--offline=true", "--no-pager", copyPath).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security --offline: %v\n%s", err, out)
	}
	score, err := exposure(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("systemd-analyze security: exposure %.1f", score)
	// systemd calls up to 1.9 "OK", 2.0-4.9 "MEDIUM".
	if score >= 2 {
		t.Errorf("exposure %.1f, want under 2 (systemd's OK):\n%s", score, out)
	}
}

// exposure reads the overall score from systemd-analyze security's last
// line: "→ Overall exposure level for certsync.service: 1.6 OK 🙂".
func exposure(out []byte) (float64, error) {
	_, rest, ok := bytes.Cut(out, []byte("Overall exposure level for "))
	if !ok {
		return 0, fmt.Errorf("no exposure level in:\n%s", out)
	}
	_, rest, _ = bytes.Cut(rest, []byte(": "))
	f := strings.Fields(string(rest))
	if len(f) == 0 {
		return 0, fmt.Errorf("no exposure level in:\n%s", out)
	}
	return strconv.ParseFloat(f[0], 64)
}

// readAr returns the members of a Debian package's ar archive by name.
func readAr(t *testing.T, path string) map[string][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const magic, hdrLen = "!<arch>\n", 60
	if !bytes.HasPrefix(b, []byte(magic)) {
		t.Fatalf("%s is no ar archive", path)
	}
	out := map[string][]byte{}
	for rest := b[len(magic):]; len(rest) > 0; {
		if len(rest) < hdrLen || string(rest[58:60]) != "`\n" {
			t.Fatalf("%s: a damaged ar header", path)
		}
		name := strings.TrimSuffix(strings.TrimSpace(string(rest[:16])), "/")
		size, err := strconv.Atoi(strings.TrimSpace(string(rest[48:58])))
		if err != nil || size > len(rest)-hdrLen {
			t.Fatalf("%s: member %s has a bad size %q", path, name, rest[48:58])
		}
		out[name] = rest[hdrLen : hdrLen+size]
		rest = rest[min(hdrLen+size+size%2, len(rest)):] // members start on even offsets
	}
	return out
}

type tarFile struct {
	hdr  *tar.Header
	body []byte
}

// readTarGz returns a gzip'd tarball's entries by name.
func readTarGz(t *testing.T, b []byte) map[string]tarFile {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("gzip: %v", err)
	}
	tr := tar.NewReader(zr)
	out := map[string]tarFile{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("tar: %v", err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = tarFile{h, body}
	}
}
