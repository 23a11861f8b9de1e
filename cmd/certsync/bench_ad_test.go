//go:build unix

package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certsync/certsync/cloudsink/graphtest"
	"github.com/certsync/certsync/ldapsrc/ldaptest"
	"github.com/certsync/certsync/mapping/pkitest"
)

// BenchmarkADPass measures what issue 4 asks to report: the cost of a
// no-change incremental pass over 5,000 Active Directory users next to a
// full pass, through the real binary, against the package's Samba DC and
// the Graph emulator. Each sub-benchmark times one `certsync sync`:
//
//   - full-first: a full read publishing every user;
//   - full-nochange: a full read of the same directory, nothing to write;
//   - incremental-nochange: `--incremental` after an incremental pass set
//     the watermark, nothing changed on the DC at all;
//   - incremental-outside-change: the same, but a user outside the filter
//     changed, so the DC's highestCommittedUSN moved and the pass has to
//     search (the usual case on a production DC, which never sits idle);
//   - incremental-one-change: one user's certificate replaced, then
//     `--incremental`: one user read, one cloud write.
//
// Each reports LDAP operations and users read (from the JSON report),
// cloud HTTP requests and writes (from the emulator's log), and the
// process's peak RSS when GNU time is installed. Seeding the DC and the
// untimed passes that set up a sub-benchmark's starting state are outside
// the timer. Run:
//
//	go test ./cmd/certsync -run '^$' -bench ADPass -benchtime 1x
//
// The machine is shared and noisy: read the figures as ratios within one run.
func BenchmarkADPass(b *testing.B) {
	const n = 5000
	start := time.Now()
	w := newADBench(b, domainController(b), n)
	b.Logf("seeded %d AD users and their cloud twins in %s", n, time.Since(start).Round(time.Millisecond))

	b.Run("full-first", func(b *testing.B) {
		var m adBenchMetrics
		b.StopTimer()
		b.ResetTimer()
		for range b.N {
			w.unpublish(b)
			r := w.pass(b, true)
			if r.head.Mode != "full" || r.head.Summary.UsersRead != n || r.head.Summary.UsersChanged != n || r.patches != n {
				b.Fatalf("first pass: mode %s, %d read, %d changed, %d PATCH; want full, %d, %d, %d", r.head.Mode, r.head.Summary.UsersRead, r.head.Summary.UsersChanged, r.patches, n, n, n)
			}
			m.add(r)
		}
		m.report(b)
	})

	b.Run("full-nochange", func(b *testing.B) {
		var m adBenchMetrics
		b.StopTimer()
		b.ResetTimer()
		w.pass(b, false) // publish whatever an earlier sub-benchmark left undone
		for range b.N {
			r := w.pass(b, true)
			if r.head.Mode != "full" || r.head.Summary.UsersRead != n || r.head.Summary.UsersChanged != 0 || r.patches != 0 {
				b.Fatalf("no-change full pass: mode %s, %d read, %d changed, %d PATCH; want full, %d, 0, 0", r.head.Mode, r.head.Summary.UsersRead, r.head.Summary.UsersChanged, r.patches, n)
			}
			m.add(r)
		}
		m.report(b)
	})

	b.Run("incremental-nochange", func(b *testing.B) {
		var m adBenchMetrics
		b.StopTimer()
		b.ResetTimer()
		w.pass(b, false, "--incremental") // sets the watermark, full read or not
		for range b.N {
			r := w.pass(b, true, "--incremental")
			if r.head.Mode != "incremental" || r.head.Summary.UsersRead != 0 || r.requests != 0 {
				b.Fatalf("no-change incremental pass: mode %s (%q), %d users read, %d cloud requests; want incremental, 0, 0",
					r.head.Mode, r.head.FullReason, r.head.Summary.UsersRead, r.requests)
			}
			m.add(r)
		}
		m.report(b)
	})

	b.Run("incremental-outside-change", func(b *testing.B) {
		var m adBenchMetrics
		b.StopTimer()
		b.ResetTimer()
		w.pass(b, false, "--incremental")
		for range b.N {
			w.dc.SetCertificates(b, w.outside, "userCertificate", [][]byte{w.benchLeaf(b, fmt.Sprintf("outside-%d", time.Now().UnixNano()))})
			r := w.pass(b, true, "--incremental")
			if r.head.Mode != "incremental" || r.head.Summary.UsersRead != 0 || r.requests != 0 {
				b.Fatalf("incremental pass after an out-of-scope change: mode %s (%q), %d users read, %d cloud requests; want incremental, 0, 0",
					r.head.Mode, r.head.FullReason, r.head.Summary.UsersRead, r.requests)
			}
			m.add(r)
		}
		m.report(b)
	})

	b.Run("incremental-one-change", func(b *testing.B) {
		var m adBenchMetrics
		b.StopTimer()
		b.ResetTimer()
		w.pass(b, false, "--incremental")
		for range b.N {
			w.replaceCertificate(b, 0)
			r := w.pass(b, true, "--incremental")
			if r.head.Mode != "incremental" || r.head.Summary.UsersRead != 1 || r.head.Summary.UsersChanged != 1 || r.patches != 1 {
				b.Fatalf("one-change incremental pass: mode %s (%q), %d read, %d changed, %d PATCH; want incremental, 1, 1, 1",
					r.head.Mode, r.head.FullReason, r.head.Summary.UsersRead, r.head.Summary.UsersChanged, r.patches)
			}
			m.add(r)
		}
		m.report(b)
	})
}

// adBench is the benchmark's users on the shared DC, their cloud twins and
// a configuration as an admin would write it for Active Directory.
type adBench struct {
	*world
	dc  *ldaptest.Samba
	dns []string // DNs, in seeding order
	// outside is a user in no benchmark's filter, changed to move the
	// DC's USN without changing anything in scope.
	outside string
}

// newADBench seeds n users, each with mail and one certificate from the
// world's issuing CA, in a department of their own, and their cloud twins
// matched by onPremisesImmutableId = base64(objectGUID). It is
// newADWorld's set-up for a testing.TB and thousands of users.
func newADBench(b *testing.B, dc *ldaptest.Samba, n int) *adBench {
	b.Helper()
	dept := fmt.Sprintf("bench-%d", time.Now().UnixNano()) // -count=N seeds its own users
	w := &adBench{world: &world{t: b, dir: b.TempDir(), cloudIDs: map[string]string{}}, dc: dc}
	root, err := pkitest.NewRootCA("AD Bench Root CA")
	if err != nil {
		b.Fatal(err)
	}
	if w.issuing, err = root.NewIntermediate("AD Bench Issuing CA"); err != nil {
		b.Fatal(err)
	}
	users := make([]ldaptest.SambaUser, n)
	for i := range users {
		name := fmt.Sprintf("%s-%04d", dept, i)
		users[i] = ldaptest.SambaUser{Name: name, Mail: name + "@samba.test",
			UserCertificates: [][]byte{w.benchLeaf(b, name)},
			Attributes:       map[string][]string{"department": {dept}}}
	}
	added := dc.AddUsers(b, users)
	w.outside, _ = dc.AddUser(b, ldaptest.SambaUser{Name: dept + "-out", Attributes: map[string][]string{"department": {dept + "-outside"}}})
	cloud := make([]graphtest.User, n)
	w.dns = make([]string, n)
	for i, a := range added {
		w.dns[i] = a.DN
		cloud[i] = graphtest.User{UserPrincipalName: users[i].Mail, Mail: users[i].Mail,
			OnPremisesImmutableID: base64.StdEncoding.EncodeToString(a.GUID)}
	}
	if w.graph, err = graphtest.Start(graphtest.Options{Users: cloud, ClientSecret: "bench-client-secret"}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = w.graph.Close() })
	files := map[string][]byte{
		"issuing.pem":  pkitest.CertPEM(root.Cert, w.issuing.Cert),
		"ldap-ca.pem":  dc.CAPEM,
		"ldap-pw":      []byte(dc.AdminPassword),
		"graph-ca.pem": w.graph.CAPEM(),
		"secret":       []byte(w.graph.ClientSecret()),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(w.dir, name), data, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	// Pages of 1000, AD's cap, as an admin of a directory this size sets.
	cfg := fmt.Sprintf(`source:
  url: %s
  baseDN: "%s"
  filter: "(&(objectCategory=person)(objectClass=user)(department=%s))"
  pageSize: 1000
  bind: {method: simple, username: "%s", passwordFile: ldap-pw}
  tls: {caFile: ldap-ca.pem, serverName: %s}
cloud:
  tenantID: "%s"
  clientID: "%s"
  credential: {method: secret, secretFile: secret}
  graphEndpoint: "%s"
  authorityHost: "%s/"
  caFile: graph-ca.pem
policy:
  issuingCAFile: issuing.pem
state: {path: state/state.db}
log: {level: warn, format: json}
`, dc.URL, dc.BaseDN, dept, dc.AdminUser, dc.ServerName, w.graph.TenantID(), w.graph.ClientID(), w.graph.URL(), w.graph.URL())
	w.cfg = filepath.Join(w.dir, "agent.yaml")
	if err := os.WriteFile(w.cfg, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	return w
}

// benchLeaf issues a valid certificate for name. world.leaf would report
// failures to the world's TB, which is not the running sub-benchmark's.
func (w *adBench) benchLeaf(b *testing.B, name string) []byte {
	b.Helper()
	c, _, err := w.issuing.Issue(pkitest.LeafOptions{CommonName: name, Email: name + "@samba.test", NotBefore: time.Now().Add(-time.Hour)})
	if err != nil {
		b.Fatal(err)
	}
	return c.Raw
}

// unpublish returns the world to before the first pass: no state file, no
// certificateUserIds in the cloud.
func (w *adBench) unpublish(b *testing.B) {
	b.Helper()
	if err := os.RemoveAll(filepath.Join(w.dir, "state")); err != nil {
		b.Fatal(err)
	}
	for _, u := range w.graph.Users() {
		if len(u.CertificateUserIDs) > 0 {
			u.CertificateUserIDs = nil
			w.graph.AddUser(u)
		}
	}
}

// replaceCertificate gives the i-th user a fresh certificate in place of
// the one it has.
func (w *adBench) replaceCertificate(b *testing.B, i int) {
	b.Helper()
	w.dc.SetCertificates(b, w.dns[i], "userCertificate", [][]byte{w.benchLeaf(b, fmt.Sprintf("replaced-%d", time.Now().UnixNano()))})
}

// adPass is one `certsync sync` run: its report's head and what it cost.
type adPass struct {
	head     jsonHead
	wall     time.Duration
	rssKiB   int // 0 without GNU time
	requests int // every entry of the emulator's log: HTTP requests and $batch items
	http     int // HTTP requests ($batch envelopes count once)
	patches  int // PATCH operations, top level or in a $batch
}

// pass runs `certsync sync --output json` with args, under GNU time when
// it is installed, and with the benchmark's timer running around the
// process only when timed.
func (w *adBench) pass(b *testing.B, timed bool, args ...string) adPass {
	b.Helper()
	w.graph.ResetRequests()
	argv := append([]string{certsyncBin, "sync", "--config", w.cfg, "--output", "json"}, args...)
	measureRSS := false
	if _, err := os.Stat(gnuTime); err == nil {
		argv = append([]string{gnuTime, "-f", "certsync-maxrss=%M"}, argv...)
		measureRSS = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if timed {
		b.StartTimer()
	}
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if timed {
		b.StopTimer()
	}
	if err != nil {
		b.Fatalf("certsync sync %v: %v\nstderr:\n%s", args, err, errb.String())
	}
	r := adPass{wall: wall}
	if err := json.Unmarshal(out.Bytes(), &r.head); err != nil {
		b.Fatalf("certsync sync %v: not JSON (%v)\nstderr:\n%s", args, err, errb.String())
	}
	if r.head.Error != "" {
		b.Fatalf("certsync sync %v: the report says %s", args, r.head.Error)
	}
	if measureRSS {
		for _, line := range strings.Split(errb.String(), "\n") {
			if v, ok := strings.CutPrefix(line, "certsync-maxrss="); ok {
				r.rssKiB, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
		if r.rssKiB == 0 {
			b.Fatalf("no peak RSS from %s:\n%s", gnuTime, errb.String())
		}
	}
	for _, req := range w.graph.Requests() {
		r.requests++
		if !req.InBatch {
			r.http++
		}
		if req.Method == "PATCH" {
			r.patches++
		}
	}
	return r
}

// adBenchMetrics sums the timed passes of one sub-benchmark.
type adBenchMetrics struct {
	passes                                  int
	wall                                    time.Duration
	ldapOps, usersRead, http, items, writes int
	peakKiB                                 int
}

func (m *adBenchMetrics) add(r adPass) {
	m.passes++
	m.wall += r.wall
	m.ldapOps += r.head.Summary.LDAPOperations
	m.usersRead += r.head.Summary.UsersRead
	m.http += r.http
	m.items += r.requests
	m.writes += r.patches
	m.peakKiB = max(m.peakKiB, r.rssKiB)
}

func (m *adBenchMetrics) report(b *testing.B) {
	if m.passes == 0 {
		return
	}
	per := func(v int) float64 { return float64(v) / float64(m.passes) }
	b.ReportMetric(m.wall.Seconds()/float64(m.passes), "wall-s/op")
	b.ReportMetric(per(m.ldapOps), "ldap-ops/op")
	b.ReportMetric(per(m.usersRead), "users-read/op")
	b.ReportMetric(per(m.http), "cloud-requests/op")
	b.ReportMetric(per(m.items), "cloud-ops/op")
	b.ReportMetric(per(m.writes), "cloud-writes/op")
	if m.peakKiB > 0 {
		b.ReportMetric(float64(m.peakKiB)/1024, "peak-MiB")
	}
}
