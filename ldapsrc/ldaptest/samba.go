package ldaptest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// SambaOptions configures StartSamba.
type SambaOptions struct {
	HostName string // the DC's host name; default "dc1"
	Realm    string // the Kerberos realm and DNS domain; default "SAMBA.TEST"
}

// Samba is a running Samba Active Directory domain controller, provisioned
// into a temporary directory and run inside a network namespace of its own
// (its LDAP ports are fixed at 389 and 636), with its LDAP, LDAPS and
// Kerberos (TCP) ports forwarded to free loopback ports of the host.
//
// Provisioning takes several seconds: a package's tests should share one
// DC, started in TestMain with LaunchSamba (or in one parent test whose
// subtests use it), rather than call StartSamba in every test.
type Samba struct {
	URL      string // ldap://127.0.0.1:<port> (StartTLS)
	LDAPSURL string // ldaps://127.0.0.1:<port>
	KDCAddr  string // 127.0.0.1:<port>, the KDC over TCP

	// CAPEM is the PEM of the CA that signed the DC's server certificate,
	// RootCAs a pool of it, CAFile a file holding it.
	CAPEM   []byte
	RootCAs *x509.CertPool
	CAFile  string

	ServerName    string // dc1.samba.test: the FQDN, in the certificate's SANs with localhost and 127.0.0.1
	Realm         string // SAMBA.TEST
	BaseDN        string // DC=samba,DC=test
	ConfigDN      string // CN=Configuration,DC=samba,DC=test
	PeopleDN      string // OU=People,DC=samba,DC=test, where AddUser puts users
	AdminUser     string // Administrator@SAMBA.TEST, a UPN simple-bind name
	AdminPassword string
	// Krb5Conf is a krb5.conf whose realm's KDC is KDCAddr, TCP only.
	Krb5Conf string
	Dir      string // provisioned DC, PKI, logs and exported keytabs
	// Netns is the network namespace the DC runs in.
	Netns string

	smbConf string
	logPath string

	cmd       *exec.Cmd
	exited    chan struct{} // closed when samba exits
	exitErr   error         // set before exited is closed
	forwards  []*forwarder
	stopOnce  sync.Once
	stopErr   error
	peopleMu  sync.Mutex
	peopleSet bool // OU=People exists; guarded by peopleMu
}

const (
	defaultSambaHost    = "dc1"
	defaultSambaRealm   = "SAMBA.TEST"
	sambaStartTimeout   = 90 * time.Second
	sambaStopTimeout    = 10 * time.Second
	sambaProbeInterval  = 100 * time.Millisecond
	sambaLogTailBytes   = 4000
	sambaMissingPackage = "apt-get install samba samba-ad-dc samba-ad-provision samba-dsdb-modules winbind krb5-user iproute2"
)

// StartSamba provisions and starts a DC for t and stops it, deleting its
// namespace, when t ends. Anything missing or a DC that does not come up
// fails the test with the DC's log tail: never a skip.
func StartSamba(t testing.TB, opts SambaOptions) *Samba {
	t.Helper()
	s, err := LaunchSamba(t.TempDir(), opts)
	if err != nil {
		t.Fatalf("ldaptest: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("ldaptest: %v", err)
		}
	})
	return s
}

// LaunchSamba is StartSamba for TestMain, where there is no testing.TB:
// the DC lives in dir (which the caller removes) until Stop.
func LaunchSamba(dir string, opts SambaOptions) (*Samba, error) {
	for _, tool := range []string{"samba", "samba-tool", "ip"} {
		if findTool(tool) == "" {
			return nil, fmt.Errorf("%s not found: %s", tool, sambaMissingPackage)
		}
	}
	host := opts.HostName
	if host == "" {
		host = defaultSambaHost
	}
	realm := strings.ToUpper(opts.Realm)
	if realm == "" {
		realm = defaultSambaRealm
	}
	domain := strings.ToLower(realm)
	var dcs []string
	for _, label := range strings.Split(domain, ".") {
		dcs = append(dcs, "DC="+label)
	}
	suffix, err := randomSuffix(6)
	if err != nil {
		return nil, err
	}
	s := &Samba{
		ServerName: strings.ToLower(host) + "." + domain,
		Realm:      realm,
		BaseDN:     strings.Join(dcs, ","),
		AdminUser:  "Administrator@" + realm,
		// AD's complexity rules want three character classes.
		AdminPassword: "Aa1!" + suffix + suffix,
		Dir:           dir,
		CAFile:        filepath.Join(dir, "pki", "ca.pem"),
		Krb5Conf:      filepath.Join(dir, "krb5.conf"),
		Netns:         fmt.Sprintf("certsync-dc-%d-%s", os.Getpid(), suffix),
		smbConf:       filepath.Join(dir, "dc", "etc", "smb.conf"),
		logPath:       filepath.Join(dir, "dc", "samba.out"),
		exited:        make(chan struct{}),
	}
	s.ConfigDN = "CN=Configuration," + s.BaseDN
	s.PeopleDN = "OU=People," + s.BaseDN
	if err := s.provision(host); err != nil {
		return nil, err
	}
	if err := addNetns(s.Netns); err != nil {
		return nil, err
	}
	if err := s.start(); err != nil {
		stopErr := s.Stop()
		return nil, errors.Join(err, stopErr)
	}
	return s, nil
}

// provision writes the PKI and runs samba-tool domain provision with the
// fast options: mdb backend, no fsync, only the ldap, cldap and kdc
// services.
func (s *Samba) provision(host string) error {
	pki := filepath.Dir(s.CAFile)
	dc := filepath.Dir(filepath.Dir(s.smbConf))
	for _, d := range []string{pki, filepath.Join(dc, "run"), filepath.Join(dc, "log"), filepath.Join(s.Dir, "keytabs")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	if err := s.writePKI(pki); err != nil {
		return err
	}
	netbios := strings.ToUpper(strings.SplitN(s.Realm, ".", 2)[0])
	run := filepath.Join(dc, "run")
	args := []string{"domain", "provision",
		"--targetdir=" + dc, "--realm=" + s.Realm, "--domain=" + netbios, "--server-role=dc",
		"--dns-backend=NONE", "--backend-store=mdb", "--adminpass=" + s.AdminPassword, "--host-name=" + host,
		"--option=interfaces=lo", "--option=bind interfaces only=yes",
		"--option=server services=ldap cldap kdc",
		"--option=ldb:nosync=true",
		// GSSAPI binds over TLS carry no SASL sign/seal layer.
		"--option=ldap server require strong auth=allow_sasl_over_tls",
		"--option=tls enabled=yes",
		"--option=tls keyfile=" + filepath.Join(pki, "server.key"),
		"--option=tls certfile=" + filepath.Join(pki, "server.pem"),
		"--option=tls cafile=" + s.CAFile,
		"--option=pid directory=" + run,
		"--option=ncalrpc dir=" + filepath.Join(run, "ncalrpc"),
		"--option=winbindd socket directory=" + filepath.Join(run, "winbindd"),
		"--option=ntp signd socket directory=" + filepath.Join(run, "ntp_signd"),
		"--option=log file=" + filepath.Join(dc, "log", "log.%m"),
	}
	if out, err := exec.Command(findTool("samba-tool"), args...).CombinedOutput(); err != nil {
		return fmt.Errorf("samba-tool domain provision into %s: %v\n%s", dc, err, tail(out))
	}
	// Adds ldap/<fqdn> and the other DC service names GSSAPI binds ask for.
	if spn := findTool("samba_spnupdate"); spn != "" {
		if out, err := exec.Command(spn, "-s", s.smbConf).CombinedOutput(); err != nil {
			return fmt.Errorf("samba_spnupdate -s %s: %v\n%s", s.smbConf, err, tail(out))
		}
	}
	return nil
}

// writePKI makes a CA and the DC's server certificate with pkitest.
func (s *Samba) writePKI(dir string) (err error) {
	s.CAPEM, s.RootCAs, err = writeServerPKI("ldaptest Samba CA", s.CAFile, dir, s.ServerName, "localhost", "127.0.0.1", "::1")
	return err
}

// start runs samba in the namespace, opens the forwarders, writes
// krb5.conf and waits until an LDAPS bind as Administrator works.
func (s *Samba) start() error {
	if err := os.WriteFile(s.logPath, nil, 0o600); err != nil {
		return err
	}
	if err := s.launch(); err != nil {
		return err
	}

	for _, port := range []struct {
		inner string
		url   *string
	}{{"389", &s.URL}, {"636", &s.LDAPSURL}, {"88", &s.KDCAddr}} {
		f, err := newForwarder(s.Netns, net.JoinHostPort("127.0.0.1", port.inner))
		if err != nil {
			return err
		}
		s.forwards = append(s.forwards, f)
		switch port.inner {
		case "389":
			*port.url = "ldap://" + f.addr()
		case "636":
			*port.url = "ldaps://" + f.addr()
		default:
			*port.url = f.addr()
		}
	}
	krb5 := fmt.Sprintf(`[libdefaults]
	default_realm = %[1]s
	dns_lookup_kdc = false
	dns_lookup_realm = false
	rdns = false
	udp_preference_limit = 1
[realms]
	%[1]s = {
		kdc = %[2]s
		admin_server = %[2]s
	}
[domain_realm]
	.%[3]s = %[1]s
	%[3]s = %[1]s
`, s.Realm, s.KDCAddr, strings.ToLower(s.Realm))
	if err := os.WriteFile(s.Krb5Conf, []byte(krb5), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", s.Krb5Conf, err)
	}
	return s.waitReady()
}

// launch starts the samba process in the namespace.
func (s *Samba) launch() error {
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := netnsCommand(s.Netns, findTool("samba"), "-s", s.smbConf, "-i", "-M", "single", "--no-process-group")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start samba: %w", err)
	}
	exited := make(chan struct{})
	s.cmd, s.exited = cmd, exited
	go func() {
		s.exitErr = cmd.Wait()
		close(exited)
	}()
	return nil
}

// Restart stops the samba process (SIGTERM) and starts it again in the
// same namespace, behind the same forwarders, as restarting the service
// would: open connections are cut, URL and LDAPSURL stay. It returns when
// the DC answers again.
func (s *Samba) Restart() error {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(sambaStopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	if err := s.launch(); err != nil {
		return err
	}
	return s.waitReady()
}

// waitReady waits until an LDAPS bind as Administrator works.
func (s *Samba) waitReady() error {
	deadline := time.Now().Add(sambaStartTimeout)
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("samba exited (%v) before answering; %s:\n%s", s.exitErr, s.logPath, s.LogTail())
		case <-time.After(sambaProbeInterval):
		}
		conn, probeErr := s.dialAdmin()
		if probeErr == nil {
			return conn.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("samba did not answer on %s within %s (%v); %s:\n%s",
				s.LDAPSURL, sambaStartTimeout, probeErr, s.logPath, s.LogTail())
		}
	}
}

// Stop kills samba, closes the forwarders and deletes the namespace. It
// may be called more than once.
func (s *Samba) Stop() error {
	s.stopOnce.Do(func() {
		var errs []error
		if s.cmd != nil {
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.exited:
			case <-time.After(sambaStopTimeout):
				_ = s.cmd.Process.Kill()
				<-s.exited
			}
		}
		for _, f := range s.forwards {
			f.close()
		}
		if err := delNetns(s.Netns); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		}
		s.stopErr = errors.Join(errs...)
	})
	return s.stopErr
}

// LogTail is the end of samba's output and log files, for failure messages.
func (s *Samba) LogTail() string {
	var b strings.Builder
	for _, p := range []string{s.logPath, filepath.Join(filepath.Dir(s.logPath), "log", "log.samba")} {
		if out, err := os.ReadFile(p); err == nil && len(out) > 0 {
			fmt.Fprintf(&b, "--- %s\n%s\n", p, tail(out))
		}
	}
	return b.String()
}

func (s *Samba) tlsConfig() *tls.Config {
	return &tls.Config{RootCAs: s.RootCAs, ServerName: s.ServerName, MinVersion: tls.VersionTLS12}
}

func (s *Samba) dialAdmin() (*ldap.Conn, error) {
	return dialBound(s.LDAPSURL, s.tlsConfig(), 5*time.Second, 60*time.Second, s.AdminUser, s.AdminPassword)
}

// Admin returns a connection bound as Administrator over LDAPS (the
// certificate verified), closed when the test ends.
func (s *Samba) Admin(t testing.TB) *ldap.Conn {
	t.Helper()
	return adminConn(t, "samba admin", s.dialAdmin)
}

// ExportKeytab writes the keys of principal (e.g. Administrator@SAMBA.TEST
// or a user's sAMAccountName) to a new keytab file and returns its path.
func (s *Samba) ExportKeytab(t testing.TB, principal string) string {
	t.Helper()
	name := strings.Map(func(r rune) rune {
		if r == '/' || r == '@' || r == '\\' || r == ' ' {
			return '_'
		}
		return r
	}, principal)
	path := filepath.Join(s.Dir, "keytabs", name+".keytab")
	_ = os.Remove(path) // exportkeytab appends to an existing file
	out, err := exec.Command(findTool("samba-tool"), "domain", "exportkeytab", path,
		"--principal="+principal, "-s", s.smbConf).CombinedOutput()
	if err != nil {
		t.Fatalf("ldaptest: samba-tool domain exportkeytab --principal=%s: %v\n%s", principal, err, out)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Fatalf("ldaptest: exportkeytab --principal=%s wrote no keytab at %s (%v)\n%s", principal, path, err, out)
	}
	return path
}

// forwarder accepts on a free loopback port of the host and connects each
// connection to target inside the namespace.
type forwarder struct {
	ln     net.Listener
	ns     string
	target string
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func newForwarder(ns, target string) (*forwarder, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the %s forwarder: %w", target, err)
	}
	f := &forwarder{ln: ln, ns: ns, target: target, conns: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go f.serve()
	return f, nil
}

func (f *forwarder) addr() string { return f.ln.Addr().String() }

func (f *forwarder) serve() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.wg.Add(1)
		go f.pipe(c)
	}
}

func (f *forwarder) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *forwarder) untrack(c net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.conns, c)
}

func (f *forwarder) pipe(c net.Conn) {
	defer f.wg.Done()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	inner, err := dialInNetns(ctx, f.ns, f.target)
	cancel()
	if err != nil {
		return // the client sees the connection close, as with a dead server
	}
	defer inner.Close()
	if !f.track(c) || !f.track(inner) {
		return
	}
	defer f.untrack(c)
	defer f.untrack(inner)
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(inner, c)
		closeWrite(inner)
		done <- struct{}{}
	}()
	_, _ = io.Copy(c, inner)
	closeWrite(c)
	<-done
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
		return
	}
	_ = c.Close()
}

func (f *forwarder) close() {
	_ = f.ln.Close()
	f.mu.Lock()
	f.closed = true
	for c := range f.conns {
		_ = c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// tail keeps the end of a long output.
func tail(out []byte) []byte {
	out = bytes.TrimSpace(out)
	if len(out) > sambaLogTailBytes {
		out = append([]byte("..."), out[len(out)-sambaLogTailBytes:]...)
	}
	return out
}

func randomSuffix(n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b), nil
}
