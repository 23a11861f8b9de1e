package ldapsrc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap"

	"github.com/certsync/certsync/mapping"
)

// Check is the outcome of one step of Diagnose.
type Check struct {
	// Name is the step: dns, tcp, tls, bind, base, filter, attributes,
	// tracking, crl or altSecurityIdentities (config when the
	// configuration itself is invalid).
	Name   string
	Status string // StatusOK, StatusWarn, StatusFail or StatusSkip
	// Detail is what was found. It never holds a password.
	Detail string
	// Fix is what the admin should do; empty when Status is ok.
	Fix string
}

// Check statuses.
const (
	StatusOK   = "ok"
	StatusWarn = "warn"
	StatusFail = "fail"
	StatusSkip = "skip"
)

// DoctorOptions tunes Diagnose.
type DoctorOptions struct {
	// CheckCRLs runs the crl step (policy.checkRevocation).
	CheckCRLs bool
	// IssuingCAs are the CAs whose CRLs must be found; the crl step says
	// which of them have no usable CRL. Empty: CRL objects are only counted.
	IssuingCAs []*x509.Certificate
	// CRL says where CRLs are read; the zero value is what the agent uses.
	CRL CRLOptions
	// Sample is how many users in scope the filter step names; default 5.
	Sample int
	// MaxCount is where counting users stops ("more than"); default 100000.
	MaxCount int
	// AltSecurityIdentities runs the altSecurityIdentities step: may the
	// account write the attribute on the users in scope?
	AltSecurityIdentities bool
}

const (
	defaultDoctorSample   = 5
	defaultDoctorMaxCount = 100000
	// certExpiryWarning is how close to expiry the DC's certificate is
	// reported as a warning.
	certExpiryWarning = 30 * 24 * time.Hour
	// doctorDirSyncBytes bounds the one DirSync answer the tracking step
	// asks for: proving the right is all it needs.
	doctorDirSyncBytes = 64 << 10
	oidWhoAmI          = "1.3.6.1.4.1.4203.1.11.3"
	maxNamedProblems   = 5
)

// Diagnose checks cfg against the directory step by step (dns, tcp, tls,
// bind, base, filter, attributes, tracking, crl) and says, for each, what
// it found and what to fix. It never fails as a whole: a failed step makes
// the steps that need it "skip", saying why. Each step has a deadline
// (DialTimeout for dns, tcp and tls; OpTimeout for the others), so a
// silent server costs at most those.
func Diagnose(ctx context.Context, cfg Config, opts DoctorOptions, log *zap.Logger) []Check {
	if log == nil {
		log = zap.NewNop()
	}
	if opts.Sample <= 0 {
		opts.Sample = defaultDoctorSample
	}
	if opts.MaxCount <= 0 {
		opts.MaxCount = defaultDoctorMaxCount
	}
	d := &doctor{opts: opts, log: log}
	defer d.close()
	cfg, ep, err := cfg.withDefaults()
	if err != nil {
		out := []Check{{Name: "config", Status: StatusFail, Detail: err.Error(),
			Fix: "correct the source settings named above"}}
		for _, n := range []string{"dns", "tcp", "tls", "bind", "base", "filter", "attributes", "tracking", "crl"} {
			out = append(out, Check{Name: n, Status: StatusSkip, Detail: "not run: the configuration is invalid"})
		}
		return out
	}
	d.cfg, d.ep = cfg, ep
	d.s = &Source{cfg: cfg, ep: ep, log: log, attrs: requestedAttributes(cfg), conv: newConverter(cfg)}

	type step struct {
		name    string
		needs   []string
		timeout time.Duration
		run     func(context.Context) Check
	}
	steps := []step{
		{"dns", nil, cfg.DialTimeout, d.checkDNS},
		{"tcp", []string{"dns"}, cfg.DialTimeout, d.checkTCP},
		{"tls", []string{"tcp"}, cfg.DialTimeout, d.checkTLS},
		{"bind", []string{"tls"}, cfg.OpTimeout, d.checkBind},
		{"base", []string{"bind"}, cfg.OpTimeout, d.checkBase},
		{"filter", []string{"base"}, cfg.OpTimeout, d.checkFilter},
		{"attributes", []string{"filter"}, cfg.OpTimeout, d.checkAttributes},
		{"tracking", []string{"base"}, cfg.OpTimeout, d.checkTracking},
		{"crl", []string{"bind"}, cfg.OpTimeout, d.checkCRL},
	}
	if opts.AltSecurityIdentities {
		steps = append(steps, step{AttrAltSecurityIdentities, []string{"filter"}, cfg.OpTimeout, d.checkAltSecurityIdentities})
	}
	status := map[string]string{}
	var out []Check
	for _, st := range steps {
		var c Check
		if blocker := slices.IndexFunc(st.needs, func(n string) bool {
			return status[n] != StatusOK && status[n] != StatusWarn
		}); blocker >= 0 {
			need := st.needs[blocker]
			c = Check{Status: StatusSkip, Detail: fmt.Sprintf("not run: the %s check did not pass", need)}
			if status[need] == StatusSkip {
				c.Detail = fmt.Sprintf("not run: the %s check was skipped", need)
			}
		} else {
			sctx, cancel := context.WithTimeout(ctx, st.timeout)
			c = st.run(sctx)
			cancel()
		}
		c.Name = st.name
		status[st.name] = c.Status
		log.Debug("ldapsrc: doctor check", zap.String("check", c.Name), zap.String("status", c.Status), zap.String("detail", c.Detail))
		out = append(out, c)
	}
	return out
}

// doctor is the state the steps hand on to each other.
type doctor struct {
	cfg  Config
	ep   endpoint
	opts DoctorOptions
	log  *zap.Logger
	s    *Source

	raw     net.Conn
	tlsConn *tls.Conn
	conn    *ldap.Conn // bound; also s.conn
	dse     rootDSE
	dseErr  error
	users   int      // users in scope, as far as counted
	sample  []string // DNs of the first users in scope
	account string   // who the bind is, for messages
}

func (d *doctor) close() {
	switch {
	case d.conn != nil:
		_ = d.s.Close()
	case d.tlsConn != nil:
		_ = d.tlsConn.Close()
	case d.raw != nil:
		_ = d.raw.Close()
	}
}

func ok(detail string) Check { return Check{Status: StatusOK, Detail: detail} }
func warn(detail, fix string) Check {
	return Check{Status: StatusWarn, Detail: detail, Fix: fix}
}
func fail(detail, fix string) Check {
	return Check{Status: StatusFail, Detail: detail, Fix: fix}
}

func (d *doctor) checkDNS(ctx context.Context) Check {
	host := d.ep.host
	if ip := net.ParseIP(host); ip != nil {
		return ok(fmt.Sprintf("%s is an IP address: nothing to resolve", host))
	}
	addrs, err := net.DefaultResolver.LookupHost(ctx, host)
	if err != nil {
		var dnsErr *net.DNSError
		switch {
		case errors.As(err, &dnsErr) && dnsErr.IsTimeout, errors.Is(err, context.DeadlineExceeded):
			return fail(fmt.Sprintf("resolving %s: no answer within %s: %v", host, d.cfg.DialTimeout, err),
				"check this host's DNS servers (/etc/resolv.conf); they must answer for the AD domain")
		default:
			return fail(fmt.Sprintf("cannot resolve %s: %v", host, err),
				fmt.Sprintf("cannot resolve %s: fix DNS or use the DC's FQDN in source.url", host))
		}
	}
	return ok(fmt.Sprintf("%s resolves to %s", host, strings.Join(addrs, ", ")))
}

func (d *doctor) checkTCP(ctx context.Context) Check {
	raw, err := (&net.Dialer{}).DialContext(ctx, "tcp", d.ep.addr)
	if err != nil {
		ports := "use port 636 with ldaps:// or 389 with ldap:// (StartTLS)"
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			return fail(fmt.Sprintf("connect to %s: connection refused: nothing listens there", d.ep.addr),
				"check the port in source.url: "+ports+"; check that the DC's LDAP service runs and that no firewall rejects the connection")
		case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
			return fail(fmt.Sprintf("connect to %s: no answer within %s (packets dropped)", d.ep.addr, d.cfg.DialTimeout),
				"a firewall between this host and the DC drops the connection: open the port, and "+ports)
		default:
			return fail(fmt.Sprintf("connect to %s: %v", d.ep.addr, err),
				"check routing and firewalls between this host and the DC; "+ports)
		}
	}
	d.raw = raw
	return ok(fmt.Sprintf("connected to %s (%s)", d.ep.addr, raw.RemoteAddr()))
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (d *doctor) checkTLS(ctx context.Context) Check {
	how := "LDAPS"
	if !d.ep.implicitTLS {
		how = "StartTLS"
		if err := startTLS(ctx, d.raw); err != nil {
			var lerr *ldap.Error
			if errors.As(err, &lerr) {
				return fail(fmt.Sprintf("%s refused StartTLS: %v", d.ep.addr, err),
					"use ldaps:// (port 636) in source.url, or give the DC a certificate so it offers StartTLS")
			}
			detail := fmt.Sprintf("StartTLS with %s: %v", d.ep.addr, err)
			if isTimeout(err) || errors.Is(err, context.DeadlineExceeded) {
				detail = fmt.Sprintf("StartTLS with %s: no answer within %s (%v)", d.ep.addr, d.cfg.DialTimeout, err)
			}
			return fail(detail, "the port may expect TLS at once (LDAPS): use ldaps:// in source.url for it, or port 389 with ldap://")
		}
	}
	c := tls.Client(d.raw, d.s.tlsConfig())
	if err := c.HandshakeContext(ctx); err != nil {
		return tlsFailure(err, d.cfg.TLS.ServerName, d.ep.implicitTLS, d.cfg.DialTimeout)
	}
	d.tlsConn = c
	st := c.ConnectionState()
	if len(st.PeerCertificates) == 0 {
		return fail(how+": the server sent no certificate", "give the DC a server certificate")
	}
	leaf := st.PeerCertificates[0]
	detail := fmt.Sprintf("%s, %s; server certificate %s, issued by %s, valid until %s; names %s",
		how, tls.VersionName(st.Version), leaf.Subject, leaf.Issuer, leaf.NotAfter.UTC().Format(time.DateOnly), certNames(leaf))
	if d.cfg.TLS.InsecureSkipVerify {
		return warn(detail+"; certificate NOT verified",
			"set source.tls.caFile to the CA that issued the DC's certificate and turn certificate verification back on")
	}
	if left := time.Until(leaf.NotAfter); left < certExpiryWarning {
		return warn(detail, fmt.Sprintf("the DC's certificate expires in %d days: have it renewed", int(left.Hours()/24)))
	}
	return ok(detail)
}

// tlsFailure explains a failed handshake.
func tlsFailure(err error, serverName string, implicit bool, timeout time.Duration) Check {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		record   tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &unknown):
		issuer := "an unknown CA"
		if unknown.Cert != nil {
			issuer = unknown.Cert.Issuer.String()
		}
		return fail(fmt.Sprintf("the DC's certificate is issued by %s, which the configured CAs do not include: %v", issuer, err),
			fmt.Sprintf("set source.tls.caFile to the CA that issued the DC's certificate (%s)", issuer))
	case errors.As(err, &hostname):
		names := "none"
		if hostname.Certificate != nil {
			names = certNames(hostname.Certificate)
		}
		return fail(fmt.Sprintf("the DC's certificate is not valid for %q: it names %s", serverName, names),
			fmt.Sprintf("set source.tls.serverName to one of %s (or use one of them as the host of source.url)", names))
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return fail(fmt.Sprintf("the DC's certificate is expired or not yet valid: %v", err),
			"have the DC's certificate renewed, and check this host's clock")
	case errors.As(err, &record) && implicit:
		return fail(fmt.Sprintf("the server did not answer with TLS: %v", err),
			"the port speaks plain LDAP: use ldap:// (StartTLS) in source.url, or port 636 with ldaps://")
	case implicit && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)):
		// slapd and AD close a plain LDAP port on a TLS ClientHello.
		return fail(fmt.Sprintf("the server closed the connection during the TLS handshake: %v", err),
			"if the port speaks plain LDAP, use ldap:// (StartTLS) in source.url, or port 636 with ldaps://")
	case isTimeout(err) || errors.Is(err, context.DeadlineExceeded):
		return fail(fmt.Sprintf("TLS handshake: no answer within %s (%v)", timeout, err),
			"check that the port in source.url speaks LDAP over TLS (636 for ldaps://, 389 for ldap:// with StartTLS)")
	}
	return fail(fmt.Sprintf("TLS handshake (server name %q): %v", serverName, err),
		"check the DC's certificate and that the port in source.url speaks LDAP over TLS")
}

// certNames lists the names a certificate is valid for.
func certNames(c *x509.Certificate) string {
	names := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return "none (no subjectAltName)"
	}
	return strings.Join(names, ", ")
}

func (d *doctor) checkBind(ctx context.Context) Check {
	conn, who, err := d.s.bound(ctx, d.tlsConn)
	d.account = who
	if err != nil {
		d.tlsConn = nil // closed by bound
		return bindFailure(err, d.cfg.Bind)
	}
	d.conn = conn
	d.s.conn = conn
	detail := fmt.Sprintf("%s bind as %s", d.cfg.Bind.Method, who)
	// WhoAmI takes no context; the connection's own timeout bounds it.
	if res, err := conn.WhoAmI(nil); err == nil && res.AuthzID != "" {
		detail += "; the server knows it as " + res.AuthzID
	}
	d.dse, d.dseErr = d.s.readRootDSE(ctx, conn, &Stats{})
	return ok(detail)
}

// adBindData finds the "data 52e" of an Active Directory bind error
// ("80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext
// error, data 52e, v4563"); Samba writes the same. "" when absent.
func adBindData(msg string) string {
	_, rest, found := strings.Cut(msg, ", data ")
	if !found {
		return ""
	}
	code, _, _ := strings.Cut(rest, ",")
	return strings.ToLower(strings.TrimSpace(code))
}

// adBindReason decodes the data code (a Windows error number).
func adBindReason(code string) (reason, fix string, known bool) {
	switch code {
	case "525":
		return "the account does not exist", "check source.bind.username (a UPN like svc@example.com, or the account's DN)", true
	case "52e":
		return "wrong password (or unknown account)", "check the bind password and source.bind.username", true
	case "530":
		return "the account may not log on at this time", "lift the account's logon hours restriction", true
	case "531":
		return "the account may not log on from this workstation", "lift the account's logon workstations restriction", true
	case "532":
		return "the account's password has expired", "set a new password for the account (and make it not expire for a service account)", true
	case "533":
		return "the account is disabled", "enable the account", true
	case "701":
		return "the account has expired", "extend the account's expiry date", true
	case "773":
		return "the account must change its password", "set a new password for the account", true
	case "775":
		return "the account is locked out", "unlock the account, and find what locked it (an old password in use elsewhere)", true
	}
	return "", "", false
}

// bindFailure explains a failed bind.
func bindFailure(err error, b Bind) Check {
	detail := err.Error()
	if b.Method == bindGSSAPI {
		for _, k := range []struct {
			err error
			fix string
		}{
			{ErrKeytab, "check source.bind.keytab and source.bind.username (export a keytab for the account)"},
			{ErrCredentialCache, "renew the credential cache (kinit, k5start) or configure source.bind.keytab"},
			{ErrKrb5Conf, "check the Kerberos configuration (source.bind.krb5Conf, KRB5_CONFIG, /etc/krb5.conf)"},
			{ErrKDCUnreachable, "make the KDC reachable (port 88) and check the kdc entries of krb5.conf"},
			{ErrClockSkew, "synchronise this host's clock with the domain (NTP)"},
			{ErrPrincipalUnknown, "check source.bind.username and source.bind.realm"},
			{ErrSPNUnknown, "set source.bind.spn to ldap/<the DC's FQDN>, or use the FQDN in source.url"},
			{ErrKerberosKeysMismatch, "export a new keytab: the account's password changed since"},
			{ErrAccountUnusable, "enable or unlock the account, or renew its password"},
		} {
			if errors.Is(err, k.err) {
				return fail(detail, k.fix)
			}
		}
	}
	switch {
	case ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials):
		code := adBindData(detail)
		if reason, fix, known := adBindReason(code); known {
			return fail(fmt.Sprintf("invalid credentials: %s (AD data %s): %s", reason, code, detail), fix)
		}
		return fail("invalid credentials: "+detail, "check source.bind.username and the bind password")
	case ldap.IsErrorWithCode(err, ldap.LDAPResultStrongAuthRequired):
		return fail("the server requires stronger authentication: "+detail,
			"the DC refuses this bind (LDAP signing or channel binding policy): use source.bind.method gssapi, or ldaps://")
	case ldap.IsErrorWithCode(err, ldap.LDAPResultInappropriateAuthentication):
		return fail("inappropriate authentication: "+detail, "give a password for a simple bind, or use source.bind.method gssapi")
	case ldap.IsErrorWithCode(err, ldap.LDAPResultUnwillingToPerform):
		return fail("the server is unwilling to accept this bind: "+detail, "check the account and the server's bind policy")
	}
	if b.Method == bindGSSAPI {
		return fail(detail, "check the Kerberos settings of source.bind (keytab, principal, SPN, krb5.conf)")
	}
	return fail(detail, "check source.bind and that the server answers LDAP binds")
}

func (d *doctor) checkBase(ctx context.Context) Check {
	base := d.cfg.BaseDN
	req := ldap.NewSearchRequest(base, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, defaultFilter, []string{"1.1"}, nil)
	entries, _, err := d.s.search(ctx, d.conn, req)
	ncs := "unknown"
	if d.dseErr == nil && len(d.dse.namingContexts) > 0 {
		ncs = strings.Join(d.dse.namingContexts, "; ")
	}
	var lerr *ldap.Error
	switch {
	case ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject):
		nearest := ""
		if errors.As(err, &lerr) && lerr.MatchedDN != "" {
			nearest = " (the nearest existing entry is " + lerr.MatchedDN + ")"
		}
		return fail(fmt.Sprintf("%s does not exist on %s%s", base, d.cfg.URL, nearest),
			"noSuchObject: check source.baseDN (this server holds "+ncs+")")
	case ldap.IsErrorWithCode(err, ldap.LDAPResultReferral):
		return fail(fmt.Sprintf("%s is not held by %s: the server refers elsewhere", base, d.cfg.URL),
			"check source.baseDN: it must be in a partition of this DC ("+ncs+")")
	case err != nil:
		return fail(fmt.Sprintf("read %s: %v", base, err), "check source.baseDN and the account's read rights on it")
	case len(entries) == 0:
		return fail(fmt.Sprintf("%s is not visible to %s", base, d.account),
			"grant the account read access to source.baseDN, or check source.baseDN")
	}
	return ok(base + " exists")
}

// counted is what one counting search saw.
type counted struct {
	n        int
	noAnchor int
	more     bool // stopped at MaxCount
	partial  bool // stopped by the deadline
	names    []string
	dns      []string
}

func (c counted) String() string {
	switch {
	case c.more:
		return fmt.Sprintf("more than %d", c.n)
	case c.partial:
		return fmt.Sprintf("at least %d (counting stopped at the deadline)", c.n)
	}
	return fmt.Sprint(c.n)
}

// count runs a paged subtree search of filter under BaseDN, fitted to the
// server as user reads are, and counts up to MaxCount entries, naming the
// first sample of them.
func (d *doctor) count(ctx context.Context, filter string, attrs []string, sample int) (counted, error) {
	var c counted
	q := d.s.userQuery(d.dse)
	paging := ldap.NewControlPaging(uint32(q.pageSize))
	req := ldap.NewSearchRequest(q.base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, filter, attrs,
		append([]ldap.Control{paging}, q.controls...))
	var cookie []byte
	for {
		entries, controls, err := d.s.search(ctx, d.conn, req)
		if err != nil {
			if ctx.Err() != nil && c.n > 0 {
				d.s.abandon(ctx, d.conn, req, paging, cookie)
				c.partial = true
				return c, nil
			}
			return c, err
		}
		for _, e := range entries {
			c.n++
			if _, err := d.s.conv.user(e); err != nil {
				c.noAnchor++
			}
			if len(c.names) < sample {
				c.names = append(c.names, entryName(e))
				c.dns = append(c.dns, e.DN)
			}
		}
		cookie = nil
		if p, isPaging := ldap.FindControl(controls, ldap.ControlTypePaging).(*ldap.ControlPaging); isPaging {
			cookie = p.Cookie
		}
		if len(cookie) == 0 {
			return c, nil
		}
		if c.n >= d.opts.MaxCount {
			d.s.abandon(ctx, d.conn, req, paging, cookie)
			c.more = true
			return c, nil
		}
		paging.SetCookie(cookie)
	}
}

// entryName is how a user is shown: mail, else UPN, else DN.
func entryName(e *ldap.Entry) string {
	for _, want := range []string{"mail", "userPrincipalName"} {
		for _, a := range e.Attributes {
			if strings.EqualFold(baseName(a.Name), want) && len(a.Values) > 0 && a.Values[0] != "" {
				return a.Values[0]
			}
		}
	}
	return e.DN
}

func (d *doctor) checkFilter(ctx context.Context) Check {
	c, err := d.count(ctx, d.cfg.Filter, []string{d.cfg.AnchorAttribute, "mail", "userPrincipalName"}, d.opts.Sample)
	if err != nil {
		return fail(fmt.Sprintf("search %s under %s: %v", d.cfg.Filter, d.cfg.BaseDN, err),
			"check source.filter (RFC 4515 syntax, attribute names the server knows)")
	}
	d.users, d.sample = c.n, c.dns
	if c.n == 0 {
		return warn(fmt.Sprintf("no entry under %s matches %s", d.cfg.BaseDN, d.cfg.Filter),
			"check source.filter and source.baseDN: certsync would manage nobody")
	}
	detail := fmt.Sprintf("%s users under %s match %s; first: %s", c, d.cfg.BaseDN, d.cfg.Filter, strings.Join(c.names, ", "))
	if c.noAnchor > 0 {
		return warn(fmt.Sprintf("%s; %d of them have no usable %s and would be skipped", detail, c.noAnchor, d.cfg.AnchorAttribute),
			"check source.anchorAttribute (objectGUID for Active Directory, entryUUID for OpenLDAP) or narrow source.filter")
	}
	return ok(detail)
}

func (d *doctor) checkAttributes(ctx context.Context) Check {
	var notes []string
	known, err := d.schemaAttributes(ctx)
	if err != nil {
		notes = append(notes, fmt.Sprintf("schema not checked (%v)", err))
	} else {
		var unknown []string
		for _, a := range append([]string{d.cfg.AnchorAttribute}, d.cfg.CertificateAttributes...) {
			if !known[strings.ToLower(a)] {
				unknown = append(unknown, a)
			}
		}
		if len(unknown) > 0 {
			return fail(fmt.Sprintf("the server's schema has no attribute %s", strings.Join(unknown, ", ")),
				"check source / mapping attribute names (anchorAttribute, the certificate attributes of the mapping)")
		}
	}
	if d.users == 0 {
		return Check{Status: StatusSkip, Detail: strings.Join(append(notes, "no users in scope to look at"), "; ")}
	}
	var counts []string
	var empty []string
	for _, a := range d.cfg.CertificateAttributes {
		c, err := d.count(ctx, fmt.Sprintf("(&%s(%s=*))", d.cfg.Filter, a), []string{"1.1"}, 0)
		if err != nil {
			return fail(fmt.Sprintf("count users with %s: %v", a, err), "check the account's read rights on "+a)
		}
		counts = append(counts, fmt.Sprintf("%s: %s", a, c))
		if c.n == 0 {
			empty = append(empty, a)
		}
	}
	detail := strings.Join(append(counts, notes...), "; ")
	if len(empty) == len(d.cfg.CertificateAttributes) {
		return warn("no user in scope has a certificate: "+detail,
			fmt.Sprintf("the account %s may lack read rights on %s (Active Directory hides attributes an account may not read): grant them; or nobody has certificates yet",
				d.account, strings.Join(empty, " and ")))
	}
	return ok(detail)
}

// schemaAttributes reads the names of every attribute type of the
// server's subschema (lower-cased), which the rootDSE read at bind names.
// One operation.
func (d *doctor) schemaAttributes(ctx context.Context) (map[string]bool, error) {
	if d.dseErr != nil {
		return nil, d.dseErr
	}
	sub := d.dse.subschemaSubentry
	if sub == "" {
		return nil, fmt.Errorf("ldapsrc: the rootDSE of %s names no subschemaSubentry", d.cfg.URL)
	}
	req := ldap.NewSearchRequest(sub, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=subschema)",
		[]string{"attributeTypes"}, nil)
	entries, _, err := d.s.search(ctx, d.conn, req)
	if err != nil {
		return nil, fmt.Errorf("ldapsrc: read attributeTypes of %s from %s: %w", sub, d.cfg.URL, err)
	}
	known := map[string]bool{}
	for _, e := range entries {
		for _, def := range e.GetAttributeValues("attributeTypes") {
			for _, n := range schemaNames(def) {
				known[strings.ToLower(n)] = true
			}
		}
	}
	if len(known) == 0 {
		return nil, fmt.Errorf("ldapsrc: %s on %s lists no attribute types", sub, d.cfg.URL)
	}
	return known, nil
}

// schemaNames returns the NAMEs of one attributeTypes value (RFC 4512):
// "( 2.5.4.3 NAME ( 'cn' 'commonName' ) ... )" or "... NAME 'cn' ...".
func schemaNames(def string) []string {
	_, rest, found := strings.Cut(def, " NAME ")
	if !found {
		return nil
	}
	rest = strings.TrimLeft(rest, " ")
	list := rest
	if strings.HasPrefix(rest, "(") {
		var closed bool
		if list, _, closed = strings.Cut(rest[1:], ")"); !closed {
			return nil
		}
	} else if fields := strings.Fields(rest); len(fields) > 0 {
		list = fields[0] // a single qdescr
	}
	var names []string
	for _, f := range strings.Fields(list) {
		if n := strings.TrimPrefix(strings.TrimSuffix(f, "'"), "'"); len(n) == len(f)-2 && n != "" && !strings.Contains(n, "'") {
			names = append(names, n)
		}
	}
	return names
}

func (d *doctor) checkTracking(ctx context.Context) Check {
	if d.cfg.ChangeTracking == TrackFull {
		return ok("changeTracking full: every pass reads every user")
	}
	if d.dseErr != nil {
		return fail(d.dseErr.Error(), "the account must be able to read the rootDSE")
	}
	mode, err := d.s.resolveMode(d.dse)
	if err != nil {
		return fail(err.Error(), "set source.changeTracking to auto, or to modifyTimestamp or full for a server that is not Active Directory")
	}
	what := mode
	if d.cfg.ChangeTracking == TrackAuto {
		what = "auto resolves to " + mode
	}
	var st Stats
	switch mode {
	case TrackUSN, TrackDirSync:
		inv, err := d.s.readInvocationID(ctx, d.conn, d.dse, &st)
		if err != nil {
			return fail(err.Error(), "grant the account read access to the configuration partition (the DC's NTDS Settings object), or set source.changeTracking: full")
		}
		what += fmt.Sprintf(": DC %s, highestCommittedUSN %d, invocationId %s", d.dse.dnsHostName, d.dse.highestCommittedUSN, inv)
		if mode == TrackUSN {
			return ok(what)
		}
		nc := namingContextOf(d.cfg.BaseDN, d.dse)
		ctl := ldap.NewRequestControlDirSync(0, doctorDirSyncBytes, nil)
		req := ldap.NewSearchRequest(nc, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, d.cfg.Filter,
			[]string{attrObjectGUID}, []ldap.Control{ctl})
		_, controls, err := d.s.search(ctx, d.conn, req)
		if ldap.IsErrorWithCode(err, ldap.LDAPResultInsufficientAccessRights) || ldap.IsErrorWithCode(err, ldap.LDAPResultUnwillingToPerform) {
			return fail(fmt.Sprintf("DirSync on %s refused for %s: %v", nc, d.account, err),
				fmt.Sprintf("insufficient rights: grant %s the %s right on %s, or set source.changeTracking: usn", d.account, replicationRight, nc))
		}
		if err != nil {
			return fail(fmt.Sprintf("DirSync on %s: %v", nc, err), "set source.changeTracking: usn")
		}
		if resp, isDirSync := ldap.FindControl(controls, ldap.ControlTypeDirSync).(*ldap.ControlDirSync); !isDirSync || len(resp.Cookie) == 0 {
			return fail(fmt.Sprintf("DirSync on %s: the answer carries no DirSync cookie", nc), "set source.changeTracking: usn")
		}
		return ok(what + "; DirSync on " + nc + " works")
	case TrackTimestamp:
		dn := d.cfg.BaseDN
		if len(d.sample) > 0 {
			dn = d.sample[0]
		}
		req := ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, defaultFilter,
			[]string{attrModifyTimestamp}, nil)
		entries, _, err := d.s.search(ctx, d.conn, req)
		if err != nil {
			return fail(fmt.Sprintf("read %s of %s: %v", attrModifyTimestamp, dn, err), "set source.changeTracking: full")
		}
		if len(entries) != 1 || entries[0].GetAttributeValue(attrModifyTimestamp) == "" {
			return fail(fmt.Sprintf("%s of %s is not returned to %s", attrModifyTimestamp, dn, d.account),
				"grant the account read access to modifyTimestamp, or set source.changeTracking: full")
		}
		return ok(fmt.Sprintf("%s: %s of %s is %s", what, attrModifyTimestamp, dn, entries[0].GetAttributeValue(attrModifyTimestamp)))
	}
	return fail("change tracking mode "+mode+" not handled", "set source.changeTracking: auto")
}

func (d *doctor) checkCRL(ctx context.Context) Check {
	if !d.opts.CheckCRLs {
		return Check{Status: StatusSkip, Detail: "not asked: revocation checking is off"}
	}
	if d.opts.CRL.Base == "" && d.dseErr == nil && !d.dse.ad {
		return fail(fmt.Sprintf("%s is not Active Directory: it has no configuration partition for CAs to publish CRLs in", d.cfg.URL),
			"turn revocation checking off, or read CRLs from a directory where the CAs publish them")
	}
	entries, err := d.s.CRLs(ctx, d.opts.CRL)
	if errors.Is(err, ErrNoCRLContainer) {
		return fail(err.Error(), "no CA has published CRLs to this directory: publish them (certutil -dspublish) or turn revocation checking off")
	}
	if err != nil {
		return fail(err.Error(), "the account must be able to read the CDP container of the configuration partition")
	}
	var values, withValues int
	for _, e := range entries {
		n := len(e.Base) + len(e.Delta)
		values += n
		if n > 0 {
			withValues++
		}
	}
	detail := fmt.Sprintf("%d CRL objects (%d with CRLs, %d values)", len(entries), withValues, values)
	if len(d.opts.IssuingCAs) == 0 {
		if values == 0 {
			return warn(detail, "no CA has published a CRL: publish CRLs to the directory (certutil -dspublish)")
		}
		return ok(detail)
	}
	_, problems := mapping.NewRevocationSet(MappingCRLs(entries), d.opts.IssuingCAs, time.Now())
	var missing, notes []string
	lacking := map[string]bool{}
	for _, p := range problems {
		if p.Unavailable {
			missing = append(missing, p.String())
			lacking[p.CA] = true
		} else if len(notes) < maxNamedProblems {
			notes = append(notes, p.String())
		}
	}
	var good []string
	for _, ca := range d.opts.IssuingCAs {
		if ca != nil && !lacking[ca.Subject.String()] {
			good = append(good, ca.Subject.String())
		}
	}
	if len(good) > 0 {
		detail += "; usable CRLs for " + strings.Join(good, ", ")
	}
	if len(notes) > 0 {
		detail += "; other CRL values not used: " + strings.Join(notes, "; ")
	}
	if len(missing) > 0 {
		return warn(detail+"; no usable CRL: "+strings.Join(missing, "; "),
			"publish a current CRL of each CA named to the directory (certutil -dspublish), or check the CA's CRL publication schedule")
	}
	return ok(detail)
}
