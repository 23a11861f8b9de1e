package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// doctorLines runs `certsync doctor` and returns its exit code and output
// lines by "area name".
func (w *world) doctor() (int, map[string]string, string) {
	w.t.Helper()
	code, out, errOut := w.run("doctor")
	lines := map[string]string{}
	status := regexp.MustCompile(`^(OK|WARN|FAIL|SKIP)\s+(\S+)\s+(\S+(?: \S+)?)\s{2,}`)
	var last string
	for _, l := range strings.Split(out, "\n") {
		if m := status.FindStringSubmatch(l); m != nil {
			last = m[2] + " " + strings.TrimSpace(m[3])
			lines[last] = l
		} else if last != "" && strings.Contains(l, "fix:") {
			lines[last] += "\n" + l
		}
	}
	return code, lines, out + errOut
}

func TestDoctorGoodConfiguration(t *testing.T) {
	w := newWorld(t, basicPeople(), "", withExchange(""))
	code, lines, out := w.doctor()
	t.Log(out)
	if code != 0 {
		t.Fatalf("doctor on a good configuration: exit %d\n%s", code, out)
	}
	for _, check := range []string{"directory dns", "directory tcp", "directory tls", "directory bind", "directory base", "directory filter",
		"directory tracking", "cloud token graph", "cloud graph permission", "cloud graph read", "cloud token exchange", "cloud exchange permission", "cloud exchange read"} {
		l, ok := lines[check]
		if !ok || !strings.HasPrefix(l, "OK") {
			t.Errorf("%s: %q, want OK\n%s", check, l, out)
		}
	}
	// Nothing set the trusted-CA collection yet: said, with the fix.
	if l := lines["cloud exchange trust"]; !strings.HasPrefix(l, "WARN") || !strings.Contains(l, "smimeIssuingCAs") {
		t.Errorf("exchange trusted CAs: %q, want a warning naming cloud.exchange.smimeIssuingCAs", l)
	}
	if !strings.Contains(lines["directory filter"], "5") {
		t.Errorf("the filter check does not count the 5 users in scope: %q", lines["directory filter"])
	}
}

func TestDoctorBrokenConfiguration(t *testing.T) {
	cases := []struct {
		name      string
		file      string // written with bad content
		content   string
		check     string
		wantInFix string
	}{
		{"wrong LDAP password", "ldap-pw", "not-the-password", "directory bind", "password"},
		{"wrong directory CA", "ldap-ca.pem", "", "directory tls", "source.tls.caFile"},
		{"wrong client secret", "secret", "not-the-secret", "cloud token graph", "secret"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, basicPeople(), "")
			content := []byte(tc.content)
			if tc.file == "ldap-ca.pem" {
				content = w.graph.CAPEM() // a CA, but not the directory's
			}
			if err := os.WriteFile(filepath.Join(w.dir, tc.file), content, 0o600); err != nil {
				t.Fatal(err)
			}
			code, lines, out := w.doctor()
			l := lines[tc.check]
			if code != 1 || !strings.HasPrefix(l, "FAIL") || !strings.Contains(strings.ToLower(l), strings.ToLower(tc.wantInFix)) {
				t.Fatalf("exit %d, %s: %q; want exit 1 and a FAIL whose fix mentions %q\n%s", code, tc.check, l, tc.wantInFix, out)
			}
			if strings.Contains(out, w.graph.ClientSecret()) || strings.Contains(out, w.slapd.AdminPassword) {
				t.Fatal("doctor printed a secret")
			}
		})
	}
}

// On Active Directory with revocation checking: change tracking and the
// CRL container are checked too.
func TestDoctorActiveDirectory(t *testing.T) {
	dc := domainController(t)
	w := newADWorld(t, dc, []adPerson{{"jon", 1, 0}}, "", "")
	w.sourceKeys, w.policyKeys = []string{"changeTracking: dirsync"}, []string{"checkRevocation: true"}
	w.writeConfig(dc.URL)
	code, lines, out := w.doctor()
	t.Log(out)
	if code != 0 {
		t.Fatalf("doctor against the DC: exit %d\n%s", code, out)
	}
	if l := lines["directory tracking"]; !strings.HasPrefix(l, "OK") || !strings.Contains(strings.ToLower(l), "dirsync") {
		t.Errorf("tracking: %q, want OK naming dirsync", l)
	}
	// This world's CAs publish no CRL: a warning naming what to do.
	if l := lines["directory crl"]; !strings.HasPrefix(l, "WARN") || !strings.Contains(l, "fix:") {
		t.Errorf("crl: %q, want a warning with a fix", l)
	}
}

// An endpoint override outside loopback and the cloud's own hosts is a
// configuration error (it would receive the app's tokens); listed in
// cloud.dangerouslyAllowedHosts, it loads and doctor warns, naming it.
func TestDoctorWarnsAboutListedEndpointHosts(t *testing.T) {
	w := newWorld(t, basicPeople(), "")
	w.replaceInConfig(`graphEndpoint: "`+w.graph.URL()+`"`, `graphEndpoint: "https://graph-proxy.invalid:8443"`)
	code, _, out := w.doctor()
	if code != 1 || !strings.Contains(out, "cloud.graphEndpoint: graph-proxy.invalid is neither loopback nor a host of the global cloud") {
		t.Fatalf("unlisted override: exit %d, want 1 naming the key and the host\n%s", code, out)
	}
	if code, _, errOut := w.run("sync"); code != 1 || !strings.Contains(errOut, "cloud.dangerouslyAllowedHosts") {
		t.Fatalf("sync with an unlisted override: exit %d\n%s", code, errOut)
	}
	w.replaceInConfig("caFile: graph-ca.pem", "caFile: graph-ca.pem\n  dangerouslyAllowedHosts: [graph-proxy.invalid]")
	_, lines, out := w.doctor()
	if l := lines["cloud endpoints"]; !strings.HasPrefix(l, "WARN") || !strings.Contains(l, "graph-proxy.invalid") || !strings.Contains(l, "dangerouslyAllowedHosts") {
		t.Fatalf("listed override: no warning naming the host\n%s", out)
	}
}

// Both deletion limits unlimited turn the guard off: doctor says so.
func TestDoctorWarnsWithoutDeletionLimit(t *testing.T) {
	w := newWorld(t, basicPeople(), "safety: {maxDeletes: unlimited, maxDeletePercent: unlimited}\n")
	_, lines, out := w.doctor()
	if l := lines["config safety"]; !strings.HasPrefix(l, "WARN") || !strings.Contains(l, "no deletion limit") {
		t.Fatalf("no warning about the missing deletion limit\n%s", out)
	}
}
