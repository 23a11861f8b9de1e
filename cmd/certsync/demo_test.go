//go:build !release

package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestDemo runs `certsync demo` as the README's first command does and
// checks that it shows every case it promises, on both cloud targets.
// The demo checks the mailboxes itself; demo.Run fails when they are wrong.
func TestDemo(t *testing.T) {
	var out bytes.Buffer
	cmd, _ := newRootCommand()
	cmd.SetArgs([]string{"demo"})
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("certsync demo: %v\n%s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{
		"1. Dry run", "2. Sync", "3. Second sync",
		"expired:", "no-ski:", "untrusted:", "eku:", "malformed:", "not-yet-valid:", "ca-certificate:", "over-limit:",
		"onPremisesSyncEnabled", "no cloud user with onPremisesImmutableId",
		"(not published by certsync: kept)", "(left out: the target holds at most this many values)",
		"graph.certificateUserIds:", "exchange.UserCertificate:", "exchange.UserSMimeCertificate:",
		"IsDirSynced", "no mailbox with mail trent@contoso.com",
		"Exchange Online mailboxes after the sync",
		"Graph write requests in this step: 0", "Exchange Set-Mailbox requests in this step: 0", "Demo finished",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	for _, zero := range []string{"Graph write requests in this step: 0", "Exchange Set-Mailbox requests in this step: 0"} {
		if strings.Count(s, zero) != 2 {
			t.Errorf("the dry run and the second sync must both show %q:\n%s", zero, s)
		}
	}

	// Lines a person reads to see each Exchange case; Exchange values are
	// shown as certificates (subject, serial, sha256), not base64, and an
	// Outlook blob, published whole, as "PKCS#7 [its certificates]".
	for _, c := range []struct {
		what, target, has string
		cert              bool // the line shows a certificate: it carries its sha256
	}{
		{"carol's Outlook PKCS#7 on UserSMimeCertificate", "exchange.UserSMimeCertificate:", "+ PKCS#7 [CN=carol,", true},
		{"yvonne's PKCS#7, both certificates, on UserSMimeCertificate", "exchange.UserSMimeCertificate:", "+ PKCS#7 [CN=yvonne,", true},
		{"quinn's S/MIME certificate on UserSMimeCertificate", "exchange.UserSMimeCertificate:", "+ PKCS#7 [CN=quinn,", true},
		{"grace's certificates on her mailbox", "exchange.UserCertificate:", "+ CN=grace,", true},
		{"heidi's synced mailbox skipped", "exchange.UserCertificate:", "skipped: mailbox synced from on-premises", false},
	} {
		parts := []string{c.target, c.has}
		if c.cert {
			parts = append(parts, "sha256")
		}
		if countLines(s, parts...) == 0 {
			t.Errorf("%s: no line with all of %q", c.what, parts)
		}
	}
	if n := countLines(s, "exchange.UserCertificate:", "= CN=kate,", "(not published by certsync: kept)"); n < 2 {
		t.Errorf("kate's two Entra Connect values are shown as kept %d times, want both", n)
	}
	// The dry run and the sync each list grace's 15 mailbox certificates.
	if n := countLines(s, "exchange.UserCertificate:", "+ CN=grace,"); n != 30 {
		t.Errorf("grace's mailbox additions are shown %d times, want 15 in the dry run and 15 in the sync", n)
	}
	for _, box := range []string{"grace    15 / 0", "carol     0 / 1", "yvonne    0 / 1", "kate      2 / 0", "heidi     1 / 0"} {
		if !strings.Contains(s, box) {
			t.Errorf("the mailbox listing lacks %q", box)
		}
	}
}

// countLines counts the lines of s holding every one of parts.
func countLines(s string, parts ...string) int {
	n := 0
	for line := range strings.Lines(s) {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			n++
		}
	}
	return n
}
