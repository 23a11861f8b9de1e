package ldaptest

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
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

	"github.com/certsync/certsync/mapping/pkitest"
)

// SlapdOptions configures StartSlapd.
type SlapdOptions struct {
	// Suffix is the database suffix; default dc=example,dc=test.
	Suffix string
	// SeedLDIF is loaded offline with slapadd -q before slapd starts, the
	// fast way to load thousands of entries.
	SeedLDIF []byte
	// Access are the database's "access to" directives, in order (each
	// without the leading "access to"); none leaves slapd's default, read
	// for everyone. The rootdn is never subject to them.
	Access []string
}

// Slapd is a running OpenLDAP server, stopped when the test ends.
type Slapd struct {
	URL      string // ldap://127.0.0.1:PORT (StartTLS)
	LDAPSURL string // ldaps://127.0.0.1:PORT2
	// CAFile is the PEM of the CA that signed the server certificate (for
	// certsync's tls.caFile); CAPEM is its content, RootCAs a pool of it.
	CAFile  string
	CAPEM   []byte
	RootCAs *x509.CertPool

	BaseDN        string // the suffix
	PeopleDN      string // ou=people,<suffix>
	AdminDN       string // the rootdn
	AdminPassword string
	Dir           string // config, database and slapd.log

	access []string
	bin    string     // the slapd binary
	mu     sync.Mutex // guards proc and exited (Restart)
	proc   *exec.Cmd  // the running slapd
	exited chan error // gets proc's exit
}

const (
	defaultSuffix  = "dc=example,dc=test"
	slapdMissing   = "slapd not found: apt-get install slapd ldap-utils"
	startAttempts  = 5
	startTimeout   = 15 * time.Second
	stopTimeout    = 10 * time.Second
	probeInterval  = 20 * time.Millisecond
	slapdLogName   = "slapd.log"
	addrInUseSlapd = "Address already in use"
)

// StartSlapd starts slapd with a fresh database, TLS from a new test CA
// (server certificate for 127.0.0.1 and localhost) and the seed loaded.
// A missing slapd fails the test: a skip would hide it in CI.
func StartSlapd(t testing.TB, opts SlapdOptions) *Slapd {
	t.Helper()
	slapdBin, slapaddBin := findTool("slapd"), findTool("slapadd")
	if slapdBin == "" || slapaddBin == "" {
		t.Fatal(slapdMissing)
	}
	suffix := opts.Suffix
	if suffix == "" {
		suffix = defaultSuffix
	}
	dir := t.TempDir()
	s := &Slapd{
		BaseDN:        suffix,
		PeopleDN:      "ou=people," + suffix,
		AdminDN:       "cn=admin," + suffix,
		AdminPassword: randomHex(t, 12),
		Dir:           dir,
		CAFile:        filepath.Join(dir, "ca.pem"),
		access:        opts.Access,
	}
	if err := s.writeTLS(); err != nil {
		t.Fatalf("ldaptest: %v", err)
	}
	conf := filepath.Join(dir, "slapd.conf")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatalf("ldaptest: %v", err)
	}
	if err := os.WriteFile(conf, []byte(s.config()), 0o600); err != nil {
		t.Fatalf("ldaptest: write %s: %v", conf, err)
	}
	base, err := baseLDIF(suffix, s.PeopleDN)
	if err != nil {
		t.Fatalf("ldaptest: %v", err)
	}
	seed := filepath.Join(dir, "seed.ldif")
	if err := os.WriteFile(seed, append(base, opts.SeedLDIF...), 0o600); err != nil {
		t.Fatalf("ldaptest: write %s: %v", seed, err)
	}
	if out, err := exec.Command(slapaddBin, "-q", "-f", conf, "-l", seed).CombinedOutput(); err != nil {
		t.Fatalf("ldaptest: slapadd -q -f %s -l %s: %v\n%s", conf, seed, err, out)
	}
	for attempt := 1; ; attempt++ {
		err := s.start(t, slapdBin)
		if err == nil {
			return s
		}
		if !errors.Is(err, errPortTaken) || attempt == startAttempts {
			t.Fatalf("ldaptest: start slapd (attempt %d): %v", attempt, err)
		}
	}
}

var errPortTaken = errors.New("port taken")

// start launches slapd on two free loopback ports and waits until it
// answers a StartTLS bind. Another process may grab a port between the
// probe and slapd's bind: that returns errPortTaken, and the caller retries.
func (s *Slapd) start(t testing.TB, slapdBin string) error {
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	s.URL = fmt.Sprintf("ldap://127.0.0.1:%d", ports[0])
	s.LDAPSURL = fmt.Sprintf("ldaps://127.0.0.1:%d", ports[1])
	s.bin = slapdBin
	if err := os.WriteFile(filepath.Join(s.Dir, slapdLogName), nil, 0o600); err != nil {
		return err
	}
	if err := s.launch(); err != nil {
		return err
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("ldaptest: %v", err)
		}
	})
	return nil
}

// launch runs slapd on s.URL and s.LDAPSURL and waits until it answers.
func (s *Slapd) launch() error {
	conf := filepath.Join(s.Dir, "slapd.conf")
	logPath := filepath.Join(s.Dir, slapdLogName)
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	// -d 0 keeps slapd in the foreground, so it is our child and its
	// messages go to stderr.
	cmd := exec.Command(s.bin, "-f", conf, "-h", s.URL+"/ "+s.LDAPSURL+"/", "-d", "0")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", s.bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case err := <-exited:
			out, _ := os.ReadFile(logPath)
			if bytes.Contains(out, []byte(addrInUseSlapd)) {
				return fmt.Errorf("%w: %s", errPortTaken, out)
			}
			return fmt.Errorf("slapd exited (%v) before answering; %s:\n%s", err, logPath, out)
		case <-time.After(probeInterval):
		}
		probeErr := s.probe()
		if probeErr == nil {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			out, _ := os.ReadFile(logPath)
			return fmt.Errorf("slapd did not answer on %s within %s (%v); %s:\n%s", s.URL, startTimeout, probeErr, logPath, out)
		}
	}
	s.mu.Lock()
	s.proc, s.exited = cmd, exited
	s.mu.Unlock()
	return nil
}

// stop ends slapd with SIGTERM (SIGKILL after stopTimeout).
func (s *Slapd) stop() error {
	s.mu.Lock()
	cmd, exited := s.proc, s.exited
	s.proc = nil
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		return nil
	case <-time.After(stopTimeout):
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("slapd did not stop within %s after SIGTERM; killed", stopTimeout)
	}
}

// Restart stops slapd and starts it again on the same ports and database,
// as an admin restarting the service would: open connections are cut.
func (s *Slapd) Restart() error {
	if err := s.stop(); err != nil {
		return err
	}
	var err error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		if err = s.launch(); !errors.Is(err, errPortTaken) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("restart slapd: %w", err)
	}
	return nil
}

// probe binds as admin over StartTLS: it proves the server is up, is ours
// (our CA, our password) and serves our database.
func (s *Slapd) probe() error {
	conn, err := s.dialAdmin()
	if err != nil {
		return err
	}
	return conn.Close()
}

func (s *Slapd) dialAdmin() (*ldap.Conn, error) {
	return dialBound(s.URL, &tls.Config{RootCAs: s.RootCAs, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12},
		2*time.Second, 10*time.Second, s.AdminDN, s.AdminPassword)
}

// Admin returns a connection bound as the rootdn over StartTLS, closed
// when the test ends.
func (s *Slapd) Admin(t testing.TB) *ldap.Conn {
	t.Helper()
	return adminConn(t, "admin", s.dialAdmin)
}

// dialBound connects to url with TLS (StartTLS for ldap://, at once for
// ldaps://), verifying the server with tlsCfg, and binds as user.
func dialBound(url string, tlsCfg *tls.Config, dialTimeout, opTimeout time.Duration, user, password string) (*ldap.Conn, error) {
	startTLS := strings.HasPrefix(strings.ToLower(url), "ldap://")
	opts := []ldap.DialOpt{ldap.DialWithDialer(&net.Dialer{Timeout: dialTimeout})}
	if !startTLS {
		opts = append(opts, ldap.DialWithTLSConfig(tlsCfg))
	}
	conn, err := ldap.DialURL(url, opts...)
	if err != nil {
		return nil, err
	}
	conn.SetTimeout(opTimeout)
	if startTLS {
		if err := conn.StartTLS(tlsCfg); err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("StartTLS with %s: %w", url, err)
		}
	}
	if err := conn.Bind(user, password); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("bind as %s to %s: %w", user, url, err)
	}
	return conn, nil
}

// adminConn is Admin of either server: dial's connection, closed when the
// test ends; what names it in the failure.
func adminConn(t testing.TB, what string, dial func() (*ldap.Conn, error)) *ldap.Conn {
	t.Helper()
	conn, err := dial()
	if err != nil {
		t.Fatalf("ldaptest: %s connection: %v", what, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// writeTLS makes the CA and server certificate and writes them as PEM.
func (s *Slapd) writeTLS() (err error) {
	s.CAPEM, s.RootCAs, err = writeServerPKI("ldaptest slapd CA", s.CAFile, s.Dir, "127.0.0.1", "localhost")
	return err
}

// writeServerPKI makes a CA and a server certificate for hosts, writes
// the CA to caFile and server.pem / server.key (mode 0600: samba refuses
// a key others can read) to dir, and returns the CA as PEM and as a pool.
func writeServerPKI(caName, caFile, dir string, hosts ...string) ([]byte, *x509.CertPool, error) {
	ca, err := pkitest.NewRootCA(caName)
	if err != nil {
		return nil, nil, err
	}
	srv, err := ca.ServerTLS(hosts...)
	if err != nil {
		return nil, nil, err
	}
	signer, ok := srv.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("server key %T is not a crypto.Signer", srv.PrivateKey)
	}
	keyPEM, err := pkitest.KeyPEM(signer)
	if err != nil {
		return nil, nil, err
	}
	caPEM := pkitest.CertPEM(ca.Cert)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	files := map[string][]byte{
		caFile:                           caPEM,
		filepath.Join(dir, "server.pem"): pkitest.CertPEM(srv.Leaf),
		filepath.Join(dir, "server.key"): keyPEM,
	}
	for name, data := range files {
		if err := os.WriteFile(name, data, 0o600); err != nil {
			return nil, nil, fmt.Errorf("write %s: %w", name, err)
		}
	}
	return caPEM, roots, nil
}

// config renders slapd.conf. Paths are those of Debian's slapd package;
// other layouts are probed so a developer machine works too.
func (s *Slapd) config() string {
	schemaDir := firstExisting("/etc/ldap/schema", "/etc/openldap/schema", "/usr/local/etc/openldap/schema")
	var b strings.Builder
	for _, sc := range []string{"core", "cosine", "nis", "inetorgperson"} {
		fmt.Fprintf(&b, "include %s/%s.schema\n", schemaDir, sc)
	}
	fmt.Fprintf(&b, "pidfile %s\nargsfile %s\n", filepath.Join(s.Dir, "slapd.pid"), filepath.Join(s.Dir, "slapd.args"))
	// Debian builds back_mdb as a module; other builds may link it in.
	if modDir := firstExisting("/usr/lib/ldap", "/usr/lib64/openldap", "/usr/lib/openldap", "/usr/local/libexec/openldap"); modDir != "" {
		if _, err := os.Stat(filepath.Join(modDir, "back_mdb.la")); err == nil {
			fmt.Fprintf(&b, "modulepath %s\nmoduleload back_mdb\n", modDir)
		}
		// syncprov serves RFC 4533 sync (refreshAndPersist), which certsync
		// listens to for change notification.
		if _, err := os.Stat(filepath.Join(modDir, "syncprov.la")); err == nil {
			fmt.Fprintf(&b, "moduleload syncprov\n")
		}
	}
	fmt.Fprintf(&b, "sizelimit unlimited\n")
	fmt.Fprintf(&b, "TLSCACertificateFile %s\n", s.CAFile)
	fmt.Fprintf(&b, "TLSCertificateFile %s\n", filepath.Join(s.Dir, "server.pem"))
	fmt.Fprintf(&b, "TLSCertificateKeyFile %s\n", filepath.Join(s.Dir, "server.key"))
	fmt.Fprintf(&b, "database mdb\n")
	fmt.Fprintf(&b, "suffix %q\nrootdn %q\nrootpw %s\n", s.BaseDN, s.AdminDN, s.AdminPassword)
	fmt.Fprintf(&b, "directory %s\nmaxsize 1073741824\n", filepath.Join(s.Dir, "data"))
	fmt.Fprintf(&b, "index objectClass eq\nindex uid,mail eq\nindex entryUUID,entryCSN eq\n")
	for _, a := range s.access {
		fmt.Fprintf(&b, "access to %s\n", a)
	}
	fmt.Fprintf(&b, "overlay syncprov\nsyncprov-checkpoint 100 10\n")
	return b.String()
}

// baseLDIF makes the suffix entry and the people OU.
func baseLDIF(suffix, peopleDN string) ([]byte, error) {
	dn, err := ldap.ParseDN(suffix)
	if err != nil || len(dn.RDNs) == 0 || len(dn.RDNs[0].Attributes) == 0 {
		return nil, fmt.Errorf("suffix %q: not a DN (%v)", suffix, err)
	}
	first := dn.RDNs[0].Attributes[0]
	var b strings.Builder
	fmt.Fprintf(&b, "dn: %s\n", suffix)
	switch strings.ToLower(first.Type) {
	case "dc":
		fmt.Fprintf(&b, "objectClass: dcObject\nobjectClass: organization\no: %s\ndc: %s\n", first.Value, first.Value)
	case "o":
		fmt.Fprintf(&b, "objectClass: organization\no: %s\n", first.Value)
	case "ou":
		fmt.Fprintf(&b, "objectClass: organizationalUnit\nou: %s\n", first.Value)
	default:
		return nil, fmt.Errorf("suffix %q: first RDN must be dc=, o= or ou=", suffix)
	}
	fmt.Fprintf(&b, "\ndn: %s\nobjectClass: organizationalUnit\nou: people\n\n", peopleDN)
	return []byte(b.String()), nil
}

// findTool looks in PATH, then in the sbin directories a non-root PATH
// often lacks.
func findTool(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/libexec"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	return ""
}

func firstExisting(paths ...string) string {
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// freePorts asks the kernel for n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("ldaptest: random: %v", err)
	}
	return hex.EncodeToString(b)
}
