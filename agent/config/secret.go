package config

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/certsync/certsync/mapping"
)

// Secret holds a password or client secret. It prints as [redacted] so it
// cannot leak through a log line or an error message by accident.
type Secret struct{ v string }

// NewSecret wraps a value.
func NewSecret(v string) Secret { return Secret{v: v} }

// Reveal returns the secret; call it only where the secret is handed to the
// library that needs it.
func (s Secret) Reveal() string { return s.v }

func (Secret) String() string   { return "[redacted]" }
func (Secret) GoString() string { return "[redacted]" }

// ReadSecret reads a secret from a file (trailing newline trimmed) or an
// environment variable; key names the config key for errors.
func ReadSecret(key, file, env string) (Secret, error) {
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return Secret{}, fmt.Errorf("%sFile: %w", key, err)
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return Secret{}, fmt.Errorf("%sFile: %s is empty", key, file)
		}
		return NewSecret(v), nil
	case env != "":
		v, ok := os.LookupEnv(env)
		if !ok || v == "" {
			return Secret{}, fmt.Errorf("%sEnv: environment variable %s is not set", key, env)
		}
		return NewSecret(v), nil
	}
	return Secret{}, fmt.Errorf("%sFile: required", key)
}

// LDAPPassword reads the bind password of source i.
func (c *Config) LDAPPassword(i int) (Secret, error) {
	b := c.Sources[i].Bind
	return ReadSecret(c.sourceKey(i)+".bind.password", c.Path(b.PasswordFile), b.PasswordEnv)
}

// sourceKey names source i's section as the file has it.
func (c *Config) sourceKey(i int) string {
	if c.single {
		return "source"
	}
	return fmt.Sprintf("sources[%d]", i)
}

// ClientSecret reads cloud.credential's secret.
func (c *Config) ClientSecret() (Secret, error) {
	cr := c.Cloud.Credential
	return ReadSecret("cloud.credential.secret", c.Path(cr.SecretFile), cr.SecretEnv)
}

// ReadCertPool reads a PEM bundle; key names the config key for errors.
func (c *Config) ReadCertPool(key, path string) (*x509.CertPool, error) {
	certs, err := c.ReadCerts(key, path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, cert := range certs {
		pool.AddCert(cert)
	}
	return pool, nil
}

// ReadCerts reads every certificate of a PEM bundle; a file with none is
// an error.
func (c *Config) ReadCerts(key, path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(c.Path(path))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	var out []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: certificate %d: %w", key, path, len(out)+1, err)
		}
		out = append(out, cert)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: %s holds no PEM certificate", key, path)
	}
	return out, nil
}

// ExtKeyUsageList converts policy.extendedKeyUsages (already validated).
func (c *Config) ExtKeyUsageList() []x509.ExtKeyUsage {
	var out []x509.ExtKeyUsage
	for _, n := range c.Policy.ExtendedKeyUsages {
		if u, err := mapping.ParseExtKeyUsage(n); err == nil {
			out = append(out, u)
		}
	}
	return out
}

// privateFile refuses a secret file (a password, client secret, private
// key or keytab) that every user of the machine may read or write: the
// secret is then no longer certsync's alone. key names it in the error.
// A file that cannot be stat'ed is left to the check that reads it.
func privateFile(key, path string) error {
	if path == "" || runtime.GOOS == "windows" {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil
	}
	if perm := fi.Mode().Perm(); perm&0o007 != 0 {
		return keyErr(key, fmt.Sprintf("%s is open to every user of the machine (mode %04o); a secret must not be: chmod o-rwx %s", path, perm, path))
	}
	return nil
}

// validateSecretFiles checks every secret file the configuration names.
func (c *Config) validateSecretFiles() error {
	for i, s := range c.Sources {
		key := c.sourceKey(i)
		for _, f := range []struct{ key, path string }{
			{key + ".bind.passwordFile", s.Bind.PasswordFile}, {key + ".bind.keytabFile", s.Bind.KeytabFile},
		} {
			if err := privateFile(f.key, c.Path(f.path)); err != nil {
				return err
			}
		}
	}
	cr := c.Cloud.Credential
	for _, f := range []struct{ key, path string }{
		{"cloud.credential.secretFile", cr.SecretFile}, {"cloud.credential.certificateFile", cr.CertificateFile},
	} {
		if err := privateFile(f.key, c.Path(f.path)); err != nil {
			return err
		}
	}
	return nil
}
