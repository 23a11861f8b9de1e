package report

import (
	"bytes"
	"encoding/csv"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/certsync/certsync/agent"
	"github.com/certsync/certsync/mapping"
)

// hostilePlan is a plan whose directory and certificate text is written
// to break out of HTML and into spreadsheet formulas.
func hostilePlan() *agent.Plan {
	const evil = `</td><script>alert(1)</script><img src=x onerror=alert(2)>"'`
	return (&agent.Plan{Mode: agent.ModeFull, Started: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC),
		Sources: []agent.SourceReport{{Name: "ad" + evil, Mode: agent.ModeFull, UsersRead: 2}, {Name: "ldap", Err: errors.New("refused" + evil)}},
		Guard:   agent.Guard{Tripped: true, Reason: "3 users" + evil},
	}).SetUsers(
		&agent.UserPlan{Anchor: "a1", Source: "ad", Name: "mallory" + evil, DN: "cn=" + evil, Problem: "conflict" + evil,
			Accepted: []agent.CertInfo{{Subject: "CN=" + evil, Serial: "01", SHA256: "ab", NotAfter: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), Attributes: []string{"userCertificate"}}},
			Rejected: []mapping.Rejection{{Attribute: "userCertificate", Subject: "=cmd|' /C calc'!A0", Code: "untrusted", Reason: "@SUM(1)" + evil}},
			Targets:  []*agent.TargetPlan{{Target: "graph.certificateUserIds", Change: mapping.TargetChange{Add: []string{"X509:<SKI>" + evil}, Unowned: []string{"+hand"}}}}},
		&agent.UserPlan{Anchor: "a2", Source: "ldap", Name: "departed", Departed: true},
	)
}

func TestWriteHTMLEscapes(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteHTML(&buf, hostilePlan(), true, errors.New("pass failed"+`<script>x</script>`)); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, raw := range []string{"<script>alert(1)", "<img src=x", "<script>x</script>", "</td><script>"} {
		if strings.Contains(out, raw) {
			t.Errorf("the page holds %q unescaped", raw)
		}
	}
	for _, want := range []string{
		"&lt;script&gt;alert(1)&lt;/script&gt;", // text, shown as written
		`id="guard" data-tripped="true"`,
		"NOT READ",
		`<h1>certsync: cutover plan (dry run)</h1>`,
		`<span class="tag departed">departed</span>`,
		`<span class="tag problem">problem</span>`,
		`<option value="rejected">`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if n := strings.Count(out, "<script>"); n != 1 {
		t.Errorf("%d <script> elements, want the page's own one", n)
	}
}

func TestWriteCSV(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteCSV(&buf, hostilePlan()); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	tests := []struct {
		row                                  int
		user, verdict, code, status, targets string
	}{
		{1, "mallory", "accepted", "", "failed", "graph.certificateUserIds: planned +1 -0"},
		{2, "mallory", "rejected", "untrusted", "failed", "graph.certificateUserIds: planned +1 -0"},
		{3, "departed", "none", "", "departed", ""},
	}
	if len(rows) != 1+len(tests) {
		t.Fatalf("%d rows, want %d:\n%v", len(rows), 1+len(tests), rows)
	}
	for _, tt := range tests {
		r := rows[tt.row]
		if !strings.HasPrefix(r[col["user"]], tt.user) || r[col["verdict"]] != tt.verdict || r[col["code"]] != tt.code ||
			r[col["userStatus"]] != tt.status || r[col["targets"]] != tt.targets {
			t.Errorf("row %d: %v", tt.row, r)
		}
	}
	for _, cell := range []struct{ name, value string }{
		{"subject", rows[2][col["subject"]]}, {"reason", rows[2][col["reason"]]},
	} {
		if strings.ContainsAny(cell.value[:1], "=+-@") {
			t.Errorf("%s %q starts like a formula", cell.name, cell.value)
		}
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		flag    string
		more    []string
		want    string
		wantErr string
	}{
		{"json", nil, "json", ""},
		{"table", []string{"html"}, "table", ""},
		{"html", []string{"html", "csv"}, "html", ""},
		{"csv", []string{"html", "csv"}, "csv", ""},
		{"html", nil, "", `--output "html": use table, json`},
		{"xml", []string{"html", "csv"}, "", `--output "xml": use table, json, html, csv`},
		{"", nil, "json", ""}, // not a terminal
	}
	for _, tt := range tests {
		got, err := Format(tt.flag, &bytes.Buffer{}, tt.more...)
		switch {
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("Format(%q, %v): error %v, want %q", tt.flag, tt.more, err, tt.wantErr)
		case tt.wantErr == "" && (err != nil || got != tt.want):
			t.Errorf("Format(%q, %v) = %q, %v; want %q", tt.flag, tt.more, got, err, tt.want)
		}
	}
}
