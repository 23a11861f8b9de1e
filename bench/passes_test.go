//go:build unix

package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/certsync/certsync/agent/report"
	"github.com/certsync/certsync/cloudsink/graphtest"
	"github.com/certsync/certsync/ldapsrc/ldaptest"
	"github.com/certsync/certsync/mapping/pkitest"
)

// BenchmarkPasses measures issue 12's table: a real slapd holding N users
// (CERTSYNC_BENCH_USERS, default 100,000), each with one ECDSA P-256
// certificate from a trusted issuing CA, every one of them in the Graph
// emulator; the built certsync binary, run under GNU time for its peak
// RSS, does, in order:
//
//   - dry-run: a full dry run, nothing published yet (no state file);
//   - first-sync: the first real pass, publishing every user;
//   - full-nochange: a full pass over the unchanged directory;
//   - incremental-nochange: `--incremental` after an untimed incremental
//     pass set the watermark, nothing changed.
//
// The floor is `ldapsearch` of the same filter and attributes, paged, over
// StartTLS, the best of six runs in the same process: three before the
// passes and three after, when slapd's caches are warm (one run can take
// several times another on this shared machine). Beside it, the same
// search read through go-ldap alone, a page at a time, the entries
// dropped: what the library certsync reads through costs by itself
// (certsync asks for the next page while it handles one, so a pass can
// come in under it). Run (about 6 minutes
// at 100,000 users on two cores, most of it building the directory):
//
//	go test ./bench -run '^$' -bench Passes -benchtime 1x -timeout 30m
//	CERTSYNC_BENCH_USERS=10000 go test ./bench -run '^$' -bench Passes -benchtime 1x
//
// With CERTSYNC_BENCH_PROFILES=dir, each timed pass also writes its CPU
// and heap profiles there (pass1.cpu, pass1.mem, …; read them with
// `go tool pprof`) and its standard error (pass1.stderr: run with
// GODEBUG=gctrace=1 for the heap's size at each collection); profiling
// slows the passes a little.
//
// It prints the table (wall time as a ratio to the floor, peak RSS) and
// reports each figure as a metric. The machine is
// shared: read the times as ratios within one run.
func BenchmarkPasses(b *testing.B) {
	n := 100_000
	if v := os.Getenv("CERTSYNC_BENCH_USERS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("CERTSYNC_BENCH_USERS=%q: want a positive number of users", v)
		}
	}
	if _, err := os.Stat(gnuTime); err != nil {
		b.Fatalf("%s is needed to measure peak memory: apt-get install time", gnuTime)
	}
	for range b.N {
		b.StopTimer()
		w := newWorld(b, n)
		if os.Getenv("CERTSYNC_BENCH_HOLD_BEFORE") != "" {
			w.hold(b)
		}
		before := []time.Duration{w.ldapsearch(b), w.ldapsearch(b), w.ldapsearch(b)}
		rows := []row{
			w.pass(b, "full dry run, nothing published yet", n, n, 0, "--dry-run"),
			w.pass(b, fmt.Sprintf("first sync, publishes %d", n), n, n, n),
			w.pass(b, "full pass, nothing changed", n, 0, 0),
		}
		w.pass(b, "", -1, 0, 0, "--incremental") // sets the watermark
		rows = append(rows, w.pass(b, "incremental pass, nothing changed", 0, 0, 0, "--incremental"))
		// Again once slapd has served the passes: its caches are warm
		// then, as they were for every pass but the first.
		after := []time.Duration{w.ldapsearch(b), w.ldapsearch(b), w.ldapsearch(b)}
		floor := slices.Min(slices.Concat(before, after))
		goldap := min(w.goLDAPRead(b), w.goLDAPRead(b))
		var t strings.Builder
		fi, err := os.Stat(filepath.Join(w.dir, "state", "state.db"))
		if err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(&t, "%d users, state file %.0f MiB\n", n, float64(fi.Size())/(1<<20))
		fmt.Fprintf(&t, "floor (ldapsearch, paged, StartTLS): %.2f s, the best of %s before the passes and %s after\n",
			floor.Seconds(), seconds(before), seconds(after))
		fmt.Fprintf(&t, "go-ldap reading the same search a page at a time, entries dropped: %.2f s = %.1f× the floor\n\n", goldap.Seconds(), goldap.Seconds()/floor.Seconds())
		fmt.Fprintf(&t, "| pass | wall | × floor | × go-ldap read | CPU | peak RSS | LDAP operations | cloud writes |\n|---|---|---|---|---|---|---|---|\n")
		for i, r := range rows {
			fmt.Fprintf(&t, "| %s | %.2f s | %.1f× | %.1f× | %.2f s | %.0f MiB | %d | %d |\n", r.name, r.wall.Seconds(), r.wall.Seconds()/floor.Seconds(),
				r.wall.Seconds()/goldap.Seconds(), r.cpu.Seconds(), float64(r.rssKiB)/1024, r.ldapOps, r.writes)
			b.ReportMetric(r.wall.Seconds(), fmt.Sprintf("pass%d-s", i+1))
			b.ReportMetric(r.wall.Seconds()/floor.Seconds(), fmt.Sprintf("pass%d-x-floor", i+1))
			b.ReportMetric(float64(r.rssKiB)/1024, fmt.Sprintf("pass%d-peak-MiB", i+1))
		}
		b.ReportMetric(floor.Seconds(), "floor-s")
		b.ReportMetric(goldap.Seconds(), "goldap-read-s")
		// On stdout: the testing package cuts a benchmark's long log short.
		fmt.Print("\n" + t.String() + "\n")
		if os.Getenv("CERTSYNC_BENCH_HOLD_BEFORE") == "" {
			w.hold(b)
		}
	}
}

// world is the benchmark's directory, cloud, binary and configuration.
type world struct {
	users         int
	dir, bin, cfg string
	slapd         *ldaptest.Slapd
	graph         *graphtest.Server
	profiled      int // passes profiled so far (CERTSYNC_BENCH_PROFILES)
}

const (
	filter   = "(&(objectClass=inetOrgPerson)(mail=*))"
	pageSize = 1000
	gnuTime  = "/usr/bin/time"
	// rssMarker starts GNU time's line on stderr, among certsync's own log.
	rssMarker = "certsync-maxrss="
)

func newWorld(b *testing.B, n int) *world {
	b.Helper()
	start := time.Now()
	w := &world{users: n, dir: b.TempDir()}
	w.bin = filepath.Join(w.dir, "certsync")
	if out, err := exec.Command("go", "build", "-o", w.bin, "../cmd/certsync").CombinedOutput(); err != nil {
		b.Fatalf("building certsync: %v\n%s", err, out)
	}
	root, err := pkitest.NewRootCA("Bench Root CA")
	if err != nil {
		b.Fatal(err)
	}
	issuing, err := root.NewIntermediate("Bench Issuing CA")
	if err != nil {
		b.Fatal(err)
	}
	ldif, cloud := people(b, issuing, n)
	built := time.Now()
	w.slapd = ldaptest.StartSlapd(b, ldaptest.SlapdOptions{SeedLDIF: ldif})
	loaded := time.Now()
	if w.graph, err = graphtest.Start(graphtest.Options{Users: cloud, ClientSecret: "bench-client-secret"}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = w.graph.Close() })
	files := map[string][]byte{
		"issuing.pem":  pkitest.CertPEM(root.Cert, issuing.Cert),
		"ldap-ca.pem":  w.slapd.CAPEM,
		"ldap-pw":      []byte(w.slapd.AdminPassword),
		"graph-ca.pem": w.graph.CAPEM(),
		"secret":       []byte(w.graph.ClientSecret()),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(w.dir, name), data, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	cfg := fmt.Sprintf(`source:
  url: %s
  baseDN: "%s"
  filter: "%s"
  anchorAttribute: entryUUID
  pageSize: %d
  bind: {method: simple, username: "%s", passwordFile: ldap-pw}
  tls: {caFile: ldap-ca.pem}
cloud:
  tenantID: "%s"
  clientID: "%s"
  credential: {method: secret, secretFile: secret}
  graphEndpoint: "%s"
  authorityHost: "%s/"
  caFile: graph-ca.pem
  match: {sourceAttribute: mail, cloudProperty: mail}
policy:
  issuingCAFile: issuing.pem
safety: {maxDeletes: unlimited, maxDeletePercent: unlimited}
state: {path: state/state.db}
log: {level: warn, format: json}
`, w.slapd.URL, w.slapd.BaseDN, filter, pageSize, w.slapd.AdminDN, w.graph.TenantID(), w.graph.ClientID(), w.graph.URL(), w.graph.URL())
	w.cfg = filepath.Join(w.dir, "agent.yaml")
	if err := os.WriteFile(w.cfg, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d users: certificates and LDIF %s, slapadd and start %s, emulator %s",
		n, built.Sub(start).Round(time.Millisecond), loaded.Sub(built).Round(time.Millisecond), time.Since(loaded).Round(time.Millisecond))
	return w
}

// people issues n users' certificates on every core and returns their
// LDIF and their cloud twins.
func people(b *testing.B, issuing *pkitest.CA, n int) ([]byte, []graphtest.User) {
	b.Helper()
	entries := make([][]byte, n)
	cloud := make([]graphtest.User, n)
	workers := runtime.GOMAXPROCS(0)
	// Entries changed a day ago, as in a directory in use: an incremental
	// read re-reads the last two minutes' changes (ldapsrc's overlap).
	ts := time.Now().Add(-24 * time.Hour).UTC().Format("20060102150405Z")
	// Each entry gets a random (version 4) entryUUID: slapadd would number
	// them in the order added, so the anchors would sort as they are read
	// and every state write would land at the end of its bucket. Active
	// Directory's objectGUIDs are random, and so are the pages a pass's
	// writes land on there.
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for k := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := k; i < n; i += workers {
				uid := fmt.Sprintf("u%06d", i)
				mail := uid + "@example.test"
				c, _, err := issuing.Issue(pkitest.LeafOptions{CommonName: uid, Email: mail})
				if err != nil {
					errs[k] = err
					return
				}
				attrs := map[string][]string{"createTimestamp": {ts}, "modifyTimestamp": {ts}, "entryUUID": {randomUUID()}}
				entries[i] = ldaptest.PersonLDIF("ou=people,dc=example,dc=test",
					ldaptest.Person{UID: uid, Mail: mail, UserCertificates: [][]byte{c.Raw}, Attributes: attrs})
				cloud[i] = graphtest.User{UserPrincipalName: mail, Mail: mail}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	return bytes.Join(entries, []byte("\n")), cloud
}

// randomUUID returns a random (version 4) UUID in its text form.
func randomUUID() string {
	u := make([]byte, 16)
	_, _ = rand.Read(u) // crypto/rand.Read never fails
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:])
}

// row is one timed pass.
type row struct {
	name            string
	wall, cpu       time.Duration // cpu: user + system
	rssKiB          int
	ldapOps, writes int
}

// pass runs `certsync sync --output json` with args under GNU time and
// checks its report: users read (-1: any) and changed, and the cloud
// writes it made.
func (w *world) pass(b *testing.B, name string, read, changed, writes int, args ...string) row {
	b.Helper()
	before := w.graph.Writes()
	out, err := os.Create(filepath.Join(w.dir, "report.json"))
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	argv := append([]string{gnuTime, "-f", rssMarker + "%M %U %S", w.bin, "sync", "--config", w.cfg, "--output", "json"}, args...)
	profile := ""
	if dir := os.Getenv("CERTSYNC_BENCH_PROFILES"); dir != "" && name != "" {
		w.profiled++
		profile = filepath.Join(dir, fmt.Sprintf("pass%d", w.profiled))
		argv = append(argv, "--cpuprofile", profile+".cpu", "--memprofile", profile+".mem")
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = out, &errb
	start := time.Now()
	err = cmd.Run()
	r := row{name: name, wall: time.Since(start)}
	if profile != "" {
		// Its log too: with GODEBUG=gctrace=1 it shows the heap over the pass.
		if err := os.WriteFile(profile+".stderr", errb.Bytes(), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	if err != nil {
		b.Fatalf("certsync sync %v: %v\nstderr:\n%s", args, err, errb.String())
	}
	if _, err := out.Seek(0, 0); err != nil {
		b.Fatal(err)
	}
	var head report.Head
	if err := json.NewDecoder(out).Decode(&head); err != nil {
		b.Fatalf("certsync sync %v: report not JSON: %v\nstderr:\n%s", args, err, errb.String())
	}
	s := head.Summary
	r.ldapOps, r.writes = s.LDAPOperations, w.graph.Writes()-before
	if head.Error != "" || (read >= 0 && s.UsersRead != read) || s.UsersChanged != changed || r.writes != writes {
		b.Fatalf("certsync sync %v: error %q, %d read, %d changed, %d cloud writes; want %d read, %d changed, %d writes",
			args, head.Error, s.UsersRead, s.UsersChanged, r.writes, read, changed, writes)
	}
	for _, line := range strings.Split(errb.String(), "\n") {
		if v, ok := strings.CutPrefix(line, rssMarker); ok {
			var user, sys float64
			if _, err := fmt.Sscanf(v, "%d %f %f", &r.rssKiB, &user, &sys); err != nil {
				b.Fatalf("%s's line %q: %v", gnuTime, line, err)
			}
			r.cpu = time.Duration((user + sys) * float64(time.Second))
		}
	}
	if r.rssKiB == 0 {
		b.Fatalf("no peak RSS from %s:\n%s", gnuTime, errb.String())
	}
	b.Logf("%s: %.2f s, %d MiB", strings.Join(args, " "), r.wall.Seconds(), r.rssKiB/1024)
	return r
}

// ldapsearch times the raw read no pass can beat: the same filter and
// attributes certsync asks for, paged as certsync pages, over StartTLS,
// the output discarded.
func (w *world) ldapsearch(b *testing.B) time.Duration {
	b.Helper()
	cmd := exec.Command("ldapsearch", "-LLL", "-x", "-ZZ", "-H", w.slapd.URL, "-D", w.slapd.AdminDN, "-w", w.slapd.AdminPassword,
		"-b", w.slapd.BaseDN, "-E", fmt.Sprintf("pr=%d/noprompt", pageSize), filter,
		"entryUUID", "mail", "userPrincipalName", "sAMAccountName", "uid", "userCertificate;binary", "userSMIMECertificate")
	cmd.Env = append(os.Environ(), "LDAPTLS_CACERT="+w.slapd.CAFile)
	var errb bytes.Buffer
	entries := &dnCounter{}
	cmd.Stdout, cmd.Stderr = entries, &errb
	start := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("ldapsearch: %v\n%s", err, errb.String())
	}
	took := time.Since(start)
	if entries.n != w.users {
		b.Fatalf("ldapsearch returned %d entries, want %d", entries.n, w.users)
	}
	return took
}

// goLDAPRead times what go-ldap alone needs for the floor's search,
// paged alike, over StartTLS, each page read whole as certsync reads it
// and the entries dropped: go-ldap's own cost (its single reader
// goroutine decodes every BER packet), with no page asked for ahead.
func (w *world) goLDAPRead(b *testing.B) time.Duration {
	b.Helper()
	start := time.Now()
	conn, err := ldap.DialURL(w.slapd.URL)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	host, _, _ := strings.Cut(strings.TrimPrefix(w.slapd.URL, "ldap://"), ":")
	if err := conn.StartTLS(&tls.Config{RootCAs: w.slapd.RootCAs, ServerName: host}); err != nil {
		b.Fatal(err)
	}
	if err := conn.Bind(w.slapd.AdminDN, w.slapd.AdminPassword); err != nil {
		b.Fatal(err)
	}
	paging := ldap.NewControlPaging(pageSize)
	req := ldap.NewSearchRequest(w.slapd.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, filter,
		[]string{"entryUUID", "mail", "userPrincipalName", "sAMAccountName", "uid", "userCertificate;binary", "userSMIMECertificate"},
		[]ldap.Control{paging})
	entries := 0
	for {
		var page []*ldap.Entry
		var cookie []byte
		resp := conn.SearchAsync(context.Background(), req, 64)
		for resp.Next() {
			if e := resp.Entry(); e != nil {
				page = append(page, e)
			}
			if c, ok := ldap.FindControl(resp.Controls(), ldap.ControlTypePaging).(*ldap.ControlPaging); ok {
				cookie = c.Cookie
			}
		}
		if err := resp.Err(); err != nil {
			b.Fatalf("go-ldap read, page after %d entries: %v", entries, err)
		}
		entries += len(page)
		if len(cookie) == 0 {
			break
		}
		paging.SetCookie(cookie)
	}
	took := time.Since(start)
	if entries != w.users {
		b.Fatalf("go-ldap read %d entries, want %d", entries, w.users)
	}
	return took
}

func seconds(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = fmt.Sprintf("%.2f", d.Seconds())
	}
	return strings.Join(s, ", ") + " s"
}

// dnCounter counts the entries of LDIF written to it (lines starting
// "dn: "), keeping nothing.
type dnCounter struct {
	n   int
	col int // position in the current line; -1 once it cannot start "dn: "
}

func (c *dnCounter) Write(p []byte) (int, error) {
	const prefix = "dn: "
	for _, ch := range p {
		switch {
		case ch == '\n':
			c.col = 0
		case c.col >= 0 && c.col < len(prefix) && ch == prefix[c.col]:
			c.col++
			if c.col == len(prefix) {
				c.n++
				c.col = -1
			}
		default:
			c.col = -1
		}
	}
	return len(p), nil
}

// hold keeps the world up after the passes when CERTSYNC_BENCH_HOLD names
// a file (before them, nothing published yet, when
// CERTSYNC_BENCH_HOLD_BEFORE is set too): it writes there the command of
// a pass and waits until the file is removed, for experiments on the same
// directory (a profile, GOGC).
func (w *world) hold(b *testing.B) {
	path := os.Getenv("CERTSYNC_BENCH_HOLD")
	if path == "" {
		return
	}
	script := fmt.Sprintf("# remove this file to end the benchmark\n%s sync --config %s --output json >/dev/null\n# floor:\nLDAPTLS_CACERT=%s ldapsearch -LLL -x -ZZ -H %s -D '%s' -w '%s' -b '%s' -E pr=%d/noprompt '%s' entryUUID mail userPrincipalName sAMAccountName uid 'userCertificate;binary' userSMIMECertificate >/dev/null\n",
		w.bin, w.cfg, w.slapd.CAFile, w.slapd.URL, w.slapd.AdminDN, w.slapd.AdminPassword, w.slapd.BaseDN, pageSize, filter)
	if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
		b.Fatal(err)
	}
	for {
		if _, err := os.Stat(path); err != nil {
			return
		}
		time.Sleep(time.Second)
	}
}
