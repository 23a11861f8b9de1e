package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/certsync/certsync/agent/report"
	"github.com/certsync/certsync/mapping/pkitest"
)

// hostileCN is a certificate subject written to break out of HTML.
const hostileCN = `<img src=x onerror="document.title='pwned'">"><script>document.title='pwned'</script>`

// cutoverWorld is basicPeople with two hostile subjects: one accepted
// (carol), one rejected from an untrusted CA (dave).
func cutoverWorld(t *testing.T) *world {
	t.Helper()
	w := newWorld(t, basicPeople(), "")
	hostile, _, err := w.issuing.Issue(pkitest.LeafOptions{CommonName: hostileCN, Email: "carol@example.test", NotBefore: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	untrusted, _, err := w.foreign.Issue(pkitest.LeafOptions{CommonName: "=HYPERLINK(\"http://evil.test\")", Email: "dave@example.test", NotBefore: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	w.modify("carol", func(r *ldap.ModifyRequest) { r.Add("userCertificate;binary", []string{string(hostile.Raw)}) })
	w.modify("dave", func(r *ldap.ModifyRequest) { r.Add("userCertificate;binary", []string{string(untrusted.Raw)}) })
	return w
}

// TestCutoverReportHTML writes `sync --dry-run --output html` through the
// binary and opens it in a real headless Chromium: the page's script runs
// (the count of shown users and the filters), the hostile subject stays
// text, nothing is fetched, and a screenshot is kept for people to look at
// (CERTSYNC_SCREENSHOT_DIR, else the test's temporary directory).
func TestCutoverReportHTML(t *testing.T) {
	browser := chromium(t)
	w := cutoverWorld(t)
	code, out, errOut := w.run("sync", "--dry-run", "--output", "html")
	if code != 0 {
		t.Fatalf("sync --dry-run --output html: exit %d\n%s", code, errOut)
	}
	if strings.Contains(out, hostileCN) || strings.Contains(out, "<img src=x") {
		t.Fatal("the hostile subject reached the page unescaped")
	}
	for _, remote := range []string{`src="http`, `href="http`, `src="//`, `href="//`, "@import", "url(http"} {
		if strings.Contains(out, remote) {
			t.Errorf("the page refers to the network (%s): it must be self-contained", remote)
		}
	}
	page := filepath.Join(w.dir, "cutover.html")
	if err := os.WriteFile(page, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}

	dom := browser.dumpDOM(t, page, "")
	if dir := os.Getenv("CERTSYNC_SCREENSHOT_DIR"); dir != "" {
		_ = os.WriteFile(filepath.Join(dir, "cutover.dom.html"), []byte(dom), 0o600)
	}
	checks := []struct{ what, pattern string }{
		{"the title, set by the page and not by the hostile subject", `<title>certsync plan, full, `},
		{"the dry-run banner", `Dry run: nothing was written`},
		{"the guard within its limits", `id="guard" data-tripped="false"`},
		{"the summary's users read", `data-key="usersRead">5<`},
		{"the summary's values to add", `data-key="valuesAdded">5<`},
		{"the directory", `<tr data-source="default"><td>default</td><td>full`},
		{"the script's count: every reported user shown", `id="shown">\(5 of 5 shown\)<`},
		{"carol's hostile subject as text", regexp.QuoteMeta(`CN=\&lt;img src=x onerror=`)},
		{"dave's rejected certificate", `<b>untrusted</b>`},
		{"the formula-looking subject, as text", regexp.QuoteMeta(`CN==HYPERLINK`)},
		{"erin not in the cloud", `<span class="tag unmatched">unmatched</span>`},
		{"bob's expired certificate", `<b>expired</b>`},
		{"a binding to add", `<td class="op op-add">\+</td><td class="mono">X509:&lt;SKI&gt;`},
		{"carol's hand-added value kept", `X509:&lt;PN&gt;carol@example.test</td><td class="muted">not published by certsync: kept`},
	}
	for _, c := range checks {
		if !regexp.MustCompile(c.pattern).MatchString(dom) {
			t.Errorf("the rendered page lacks %s (/%s/)", c.what, c.pattern)
		}
	}
	if strings.Contains(dom, "<title>pwned") || regexp.MustCompile(`<(img|script)[^>]*(onerror|pwned)`).MatchString(dom) {
		t.Error("the hostile subject became markup in the browser")
	}

	// The filters: only users with rejected certificates (bob, dave), then
	// a search for erin.
	dom = browser.dumpDOM(t, page, "?kind=rejected")
	if !strings.Contains(dom, `id="shown">(2 of 5 shown)<`) {
		t.Errorf("kind=rejected: want 2 of 5 shown; the page says %q", shownText(dom))
	}
	for _, name := range []string{"alice", "carol", "erin"} {
		if !regexp.MustCompile(`<section class="user hidden"[^>]*>\s*<h3>` + name + `@`).MatchString(dom) {
			t.Errorf("kind=rejected: %s is not hidden", name)
		}
	}
	dom = browser.dumpDOM(t, page, "?q=erin")
	if !strings.Contains(dom, `id="shown">(1 of 5 shown)<`) {
		t.Errorf("q=erin: want 1 of 5 shown; the page says %q", shownText(dom))
	}

	shot := filepath.Join(w.dir, "cutover.png")
	if dir := os.Getenv("CERTSYNC_SCREENSHOT_DIR"); dir != "" {
		shot = filepath.Join(dir, "cutover.png")
	}
	browser.screenshot(t, page, shot)
	t.Logf("screenshot: %s", shot)
}

// TestCutoverReportCSV: `sync --dry-run --output csv`, one row per
// certificate, read back with encoding/csv.
func TestCutoverReportCSV(t *testing.T) {
	w := cutoverWorld(t)
	code, out, errOut := w.run("sync", "--dry-run", "--output", "csv")
	if code != 0 {
		t.Fatalf("sync --dry-run --output csv: exit %d\n%s", code, errOut)
	}
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("not CSV: %v\n%s", err, out)
	}
	if strings.Join(rows[0], ",") != strings.Join(report.CSVHeader, ",") {
		t.Fatalf("header %v, want %v", rows[0], report.CSVHeader)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	type key struct{ user, verdict, code string }
	got := map[key]int{}
	for _, r := range rows[1:] {
		got[key{strings.TrimSuffix(r[col["user"]], "@example.test"), r[col["verdict"]], r[col["code"]]}]++
		if strings.HasPrefix(r[col["subject"]], "=") {
			t.Errorf("a subject a spreadsheet would run as a formula: %q", r[col["subject"]])
		}
	}
	// Who is reported (with changes, problems or rejections) and their
	// certificates: alice 1, bob 2 + 1 expired, carol 1 + the hostile one,
	// dave the untrusted one, erin 1 (not in the cloud).
	want := map[key]int{
		{"alice", "accepted", ""}: 1, {"bob", "accepted", ""}: 2, {"bob", "rejected", "expired"}: 1,
		{"carol", "accepted", ""}: 2, {"dave", "rejected", "untrusted"}: 1, {"erin", "accepted", ""}: 1,
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("rows for %+v: %d, want %d", k, got[k], n)
		}
	}
	if len(rows)-1 != 8 {
		t.Errorf("%d rows, want 8 (one per certificate)\n%s", len(rows)-1, out)
	}
}

// headless is Debian's Chromium, run headless.
type headless struct{ bin string }

// chromium finds Chromium; without it the test fails and says how to
// install it (.ci/test installs it).
func chromium(t *testing.T) headless {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return headless{p}
		}
	}
	t.Fatal("no headless browser: the HTML report is tested in Chromium; install it with `apt-get install chromium` (.ci/test does)")
	return headless{}
}

func (h headless) run(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--user-data-dir=" + t.TempDir(), "--virtual-time-budget=2000"}
	cmd := exec.CommandContext(ctx, h.bin, append(base, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", h.bin, strings.Join(args, " "), err, errb.String())
	}
	return out.String()
}

// dumpDOM loads the page (with query) and returns the DOM after its
// scripts ran.
func (h headless) dumpDOM(t *testing.T, page, query string) string {
	t.Helper()
	u := url.URL{Scheme: "file", Path: page, RawQuery: strings.TrimPrefix(query, "?")}
	dom := h.run(t, "--dump-dom", u.String())
	if !strings.Contains(dom, "</html>") {
		t.Fatalf("chromium dumped no page for %s:\n%s", u.String(), dom)
	}
	return dom
}

func (h headless) screenshot(t *testing.T, page, png string) {
	t.Helper()
	h.run(t, "--hide-scrollbars", "--window-size=1280,2200", "--screenshot="+png, "file://"+page)
	fi, err := os.Stat(png)
	if err != nil || fi.Size() < 10_000 {
		t.Fatalf("chromium's screenshot %s: %v (size %v): nothing was drawn", png, err, fi)
	}
}

func shownText(dom string) string {
	if m := regexp.MustCompile(`id="shown">([^<]*)<`).FindStringSubmatch(dom); m != nil {
		return m[1]
	}
	return "(no count)"
}
