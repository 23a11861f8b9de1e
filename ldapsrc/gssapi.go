package ldapsrc

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/go-ldap/ldap/v3"
	"github.com/go-ldap/ldap/v3/gssapi"
	"github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/credentials"
	"github.com/jcmturner/gokrb5/v8/keytab"
)

// Kerberos failures callers (certsync doctor) can tell apart with
// errors.Is; the error text names the object and says what to fix.
var (
	ErrKeytab               = errors.New("keytab unusable")
	ErrCredentialCache      = errors.New("credential cache unusable")
	ErrKrb5Conf             = errors.New("krb5.conf unusable")
	ErrKDCUnreachable       = errors.New("KDC unreachable")
	ErrClockSkew            = errors.New("clock skew too great")
	ErrPrincipalUnknown     = errors.New("principal unknown to the KDC")
	ErrSPNUnknown           = errors.New("service principal unknown to the KDC")
	ErrKerberosKeysMismatch = errors.New("keys do not match the account")
	ErrAccountUnusable      = errors.New("account disabled, locked or expired")
)

// gssapiClient is what GSSAPIBindRequest drives, plus Close.
type gssapiClient interface {
	ldap.GSSAPIClient
	Close() error
}

// bindGSSAPI binds with Kerberos. The ticket-granting and service tickets
// are fetched before the bind, so their failures (KDC, clock, names) are
// told apart from the directory's own answer.
func (s *Source) bindGSSAPI(ctx context.Context, conn *ldap.Conn, peer *x509.Certificate) (string, error) {
	b := s.cfg.Bind
	var (
		c   gssapiClient
		who string
		err error
	)
	if b.Keytab != "" {
		c, who, err = s.keytabClient(ctx)
	} else {
		c, who, err = s.logonClient(ctx, peer)
	}
	if err != nil {
		return who, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	if err := conn.GSSAPIBindRequest(c, &ldap.GSSAPIBindRequest{ServicePrincipalName: b.SPN}); err != nil {
		err = ctxOr(ctx, err)
		if ldap.IsErrorWithCode(err, ldap.LDAPResultStrongAuthRequired) {
			return who, fmt.Errorf("ldapsrc: gssapi bind as %s to %s (spn %s): the server wants a SASL security layer even over TLS (Samba: ldap server require strong auth = allow_sasl_over_tls): %w",
				who, s.cfg.URL, b.SPN, err)
		}
		return who, fmt.Errorf("ldapsrc: gssapi bind as %s to %s (spn %s): %w", who, s.cfg.URL, b.SPN, explainKerberos(err, b.SPN, who, b.Keytab))
	}
	return who, nil
}

// keytabClient logs in with the keys of bind.username from bind.keytab.
func (s *Source) keytabClient(ctx context.Context) (gssapiClient, string, error) {
	b := s.cfg.Bind
	conf, err := loadKrb5Conf(b.Krb5Conf)
	if err != nil {
		return nil, b.Username, err
	}
	realm := b.Realm
	if realm == "" {
		realm = conf.LibDefaults.DefaultRealm
	}
	if realm == "" {
		return nil, b.Username, fmt.Errorf("ldapsrc: gssapi: no realm for principal %s: write it as %s@REALM, set bind.realm, or set default_realm in %s: %w",
			b.Username, b.Username, b.Krb5Conf, ErrKrb5Conf)
	}
	who := b.Username + "@" + realm
	if _, err := os.Stat(b.Keytab); err != nil {
		return nil, who, fmt.Errorf("ldapsrc: gssapi: keytab file %s for %s: %w (%w)", b.Keytab, who, ErrKeytab, err)
	}
	kt, err := keytab.Load(b.Keytab)
	if err != nil {
		return nil, who, fmt.Errorf("ldapsrc: gssapi: keytab file %s is not a readable keytab: %w (%w)", b.Keytab, ErrKeytab, err)
	}
	if err := keytabHolds(kt, b.Username, realm); err != nil {
		return nil, who, fmt.Errorf("ldapsrc: gssapi: keytab file %s: %w: %w", b.Keytab, err, ErrKeytab)
	}
	// AD answers AS requests without FAST; gokrb5 otherwise insists on it.
	cl := client.NewWithKeytab(b.Username, realm, kt, conf, client.DisablePAFXFAST(true))
	if err := s.getTickets(ctx, cl, conf, realm, who); err != nil {
		return nil, who, err
	}
	return &gssapi.Client{Client: cl}, who, nil
}

// ccacheClient uses the tickets kinit (or k5start, sssd) left in the
// credential cache. It is built afresh for every connection, so a cache
// renewed outside certsync is picked up.
func (s *Source) ccacheClient(ctx context.Context) (gssapiClient, string, error) {
	b := s.cfg.Bind
	conf, err := loadKrb5Conf(b.Krb5Conf)
	if err != nil {
		return nil, b.Username, err
	}
	if _, err := os.Stat(b.CCache); err != nil {
		return nil, b.Username, fmt.Errorf("ldapsrc: gssapi: credential cache %s (no bind.keytab given): run kinit, or set bind.keytab: %w (%w)",
			b.CCache, ErrCredentialCache, err)
	}
	cc, err := credentials.LoadCCache(b.CCache)
	if err != nil {
		return nil, b.Username, fmt.Errorf("ldapsrc: gssapi: credential cache %s is not a readable cache: %w (%w)", b.CCache, ErrCredentialCache, err)
	}
	name := cc.DefaultPrincipal.PrincipalName.PrincipalNameString()
	realm := cc.DefaultPrincipal.Realm
	who := name + "@" + realm
	if b.Username != "" && (b.Username != name || (b.Realm != "" && b.Realm != realm)) {
		return nil, who, fmt.Errorf("ldapsrc: gssapi: credential cache %s holds tickets of %s, not of bind.username %s: %w",
			b.CCache, who, b.Username, ErrCredentialCache)
	}
	cl, err := client.NewFromCCache(cc, conf, client.DisablePAFXFAST(true))
	if err != nil {
		return nil, who, fmt.Errorf("ldapsrc: gssapi: credential cache %s: no ticket-granting ticket of %s in it (run kinit): %w (%w)",
			b.CCache, who, ErrCredentialCache, err)
	}
	if err := s.getTickets(ctx, cl, conf, realm, who); err != nil {
		return nil, who, err
	}
	return &gssapi.Client{Client: cl}, who, nil
}

// getTickets logs in (a no-op for a valid cache) and asks for the service
// ticket of bind.spn, which GSSAPIBind then finds in the client's cache.
// gokrb5 takes no context: the exchange runs aside, bounded by its own
// per-KDC timeouts, so that a cancelled ctx returns at once. On failure
// the client is destroyed here, once the exchange is over, never while
// it still runs.
func (s *Source) getTickets(ctx context.Context, cl *client.Client, conf *config.Config, realm, who string) error {
	spn := s.cfg.Bind.SPN
	done := make(chan error, 1)
	go func() {
		if err := cl.Login(); err != nil {
			done <- fmt.Errorf("ldapsrc: gssapi: log in as %s at the KDC of %s (%s): %w",
				who, realm, kdcList(conf, realm, s.cfg.Bind.Krb5Conf), explainKerberos(err, spn, who, s.cfg.Bind.Keytab))
			return
		}
		if _, _, err := cl.GetServiceTicket(spn); err != nil {
			done <- fmt.Errorf("ldapsrc: gssapi: service ticket for %s as %s (KDC %s): %w",
				spn, who, kdcList(conf, realm, s.cfg.Bind.Krb5Conf), explainKerberos(err, spn, who, s.cfg.Bind.Keytab))
			return
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			cl.Destroy()
		}
		return err
	case <-ctx.Done():
		go func() {
			<-done
			cl.Destroy()
		}()
		return fmt.Errorf("ldapsrc: gssapi: log in as %s: %w", who, ctx.Err())
	}
}

func loadKrb5Conf(path string) (*config.Config, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("ldapsrc: gssapi: Kerberos configuration %s (bind.krb5Conf, KRB5_CONFIG): %w (%w)", path, ErrKrb5Conf, err)
	}
	conf, err := config.Load(path)
	if err != nil {
		return nil, fmt.Errorf("ldapsrc: gssapi: Kerberos configuration %s: %w (%w)", path, ErrKrb5Conf, err)
	}
	return conf, nil
}

// keytabHolds says which principals the keytab does hold when name@realm
// is not among them: names in a keytab are case-sensitive, and a keytab
// made for another account is a common mistake.
func keytabHolds(kt *keytab.Keytab, name, realm string) error {
	held := map[string]bool{}
	for _, e := range kt.Entries {
		p := strings.Join(e.Principal.Components, "/")
		if p == name && e.Principal.Realm == realm {
			return nil
		}
		held[p+"@"+e.Principal.Realm] = true
	}
	list := make([]string, 0, len(held))
	for p := range held {
		list = append(list, p)
	}
	sort.Strings(list)
	if len(list) == 0 {
		return fmt.Errorf("no keys at all (looking for %s@%s)", name, realm)
	}
	return fmt.Errorf("no keys for %s@%s (it holds %s; names are case-sensitive)", name, realm, strings.Join(list, ", "))
}

func kdcList(conf *config.Config, realm, file string) string {
	for _, r := range conf.Realms {
		if strings.EqualFold(r.Realm, realm) && len(r.KDC) > 0 {
			return strings.Join(r.KDC, ", ")
		}
	}
	if conf.LibDefaults.DNSLookupKDC {
		return "found through DNS SRV records"
	}
	return "none listed for " + realm + " in " + file
}

// explainKerberos adds what went wrong in words, with a sentinel, to an
// error of gokrb5 (which reports KDC errors as text only).
func explainKerberos(err error, spn, who, keytabFile string) error {
	msg := err.Error()
	has := func(subs ...string) bool {
		for _, s := range subs {
			if strings.Contains(msg, s) {
				return true
			}
		}
		return false
	}
	keys := "the password"
	if keytabFile != "" {
		keys = "the keys in keytab " + keytabFile
	}
	switch {
	case has("KRB_AP_ERR_SKEW"):
		return fmt.Errorf("%w: this machine's clock and the KDC's differ by more than Kerberos allows (5 minutes): fix time synchronisation (%w)", ErrClockSkew, err)
	case has("KDC_ERR_S_PRINCIPAL_UNKNOWN"):
		return fmt.Errorf("%w: the KDC knows no service principal %s: set bind.spn to the DC's ldap/<fully qualified host name> (setspn -Q %s) (%w)", ErrSPNUnknown, spn, spn, err)
	case has("KDC_ERR_C_PRINCIPAL_UNKNOWN"):
		return fmt.Errorf("%w: the KDC knows no principal %s: check bind.username and bind.realm (%w)", ErrPrincipalUnknown, who, err)
	case has("KDC_ERR_PREAUTH_FAILED", "KRB_AP_ERR_BAD_INTEGRITY", "Decrypting_Error"):
		return fmt.Errorf("%w: %s do not match the account %s (password changed since the keytab was made?) (%w)", ErrKerberosKeysMismatch, keys, who, err)
	case has("KDC_ERR_CLIENT_REVOKED", "KDC_ERR_KEY_EXPIRED"):
		return fmt.Errorf("%w: the KDC refuses account %s (disabled, locked out or password expired) (%w)", ErrAccountUnusable, who, err)
	case has("failed to communicate with KDC", "error sending to a KDC", "communication error with KDC", "Networking_Error", "no KDC"):
		return fmt.Errorf("%w: no KDC answered (check the kdc entries of krb5.conf and TCP/UDP port 88) (%w)", ErrKDCUnreachable, err)
	case has("no user credentials available", "no valid existing session"):
		return fmt.Errorf("%w: the tickets of %s have expired: renew them (kinit, k5start) or use a keytab (%w)", ErrCredentialCache, who, err)
	}
	return err
}
