package ldapsrc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap"
)

// Source reads users from one directory server over one connection.
//
// FindUser calls may run concurrently with each other; Users calls must not
// overlap on one Source, because servers keep one paged search per
// connection. fn passed to Users must not call back into the Source.
type Source struct {
	cfg   Config // defaults applied, validated
	ep    endpoint
	log   *zap.Logger // non-nil
	attrs []string    // attributes requested for users: plain names, no duplicates
	conv  converter

	mu     sync.Mutex
	conn   *ldap.Conn // guarded by mu; redialled when the server dropped it
	closed bool       // guarded by mu
}

// Open connects to the directory (TLS at once for ldaps://, StartTLS for
// ldap://, the server certificate verified unless InsecureSkipVerify),
// binds, and returns a Source ready to read.
func Open(ctx context.Context, cfg Config, log *zap.Logger) (*Source, error) {
	if log == nil {
		log = zap.NewNop()
	}
	cfg, ep, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Source{
		cfg:   cfg,
		ep:    ep,
		log:   log,
		attrs: requestedAttributes(cfg),
		conv:  newConverter(cfg),
	}
	if cfg.TLS.InsecureSkipVerify {
		log.Warn("ldapsrc: TLS certificate verification is OFF: anyone on the path can read the bind password and forge users",
			zap.String("url", cfg.URL))
	}
	conn, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	s.conn = conn
	return s, nil
}

// Close closes the connection; the Source cannot be used afterwards.
func (s *Source) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.conn == nil {
		return nil
	}
	conn := s.conn
	s.conn = nil
	if err := conn.Close(); err != nil {
		return fmt.Errorf("ldapsrc: close connection to %s: %w", s.cfg.URL, err)
	}
	return nil
}

// connection returns the open connection, dialling again when the server
// dropped the previous one (Active Directory closes idle connections after
// 15 minutes), so a long-running agent does not fail every pass after one
// network hiccup.
func (s *Source) connection(ctx context.Context) (*ldap.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("ldapsrc: %s: source is closed", s.cfg.URL)
	}
	if s.conn != nil && !s.conn.IsClosing() {
		return s.conn, nil
	}
	s.log.Info("ldapsrc: connection lost, reconnecting", zap.String("url", s.cfg.URL))
	conn, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	s.conn = conn
	return conn, nil
}

// connect dials, sets up TLS and binds.
func (s *Source) connect(ctx context.Context) (*ldap.Conn, error) {
	dialCtx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	raw, err := (&net.Dialer{}).DialContext(dialCtx, "tcp", s.ep.addr)
	if err != nil {
		return nil, fmt.Errorf("ldapsrc: connect to %s: %w", s.cfg.URL, err)
	}
	tlsConn, err := s.secure(dialCtx, raw)
	if err != nil {
		_ = raw.Close()
		return nil, err
	}
	conn, who, err := s.bound(ctx, tlsConn)
	if err != nil {
		return nil, err
	}
	s.log.Info("ldapsrc: connected",
		zap.String("url", s.cfg.URL),
		zap.String("bindMethod", s.cfg.Bind.Method),
		zap.String("bindUser", who),
		zap.String("tls", tls.VersionName(tlsConn.ConnectionState().Version)))
	return conn, nil
}

// bound runs go-ldap on tlsConn and binds; who is the account, for
// messages, even when the bind fails, which closes the connection.
func (s *Source) bound(ctx context.Context, tlsConn *tls.Conn) (conn *ldap.Conn, who string, err error) {
	conn = ldap.NewConn(tlsConn, true)
	conn.Start()
	conn.SetTimeout(s.cfg.OpTimeout)
	if who, err = s.bind(ctx, conn, tlsConn.ConnectionState()); err != nil {
		_ = conn.Close()
		return nil, who, err
	}
	return conn, who, nil
}

// secure makes raw a verified TLS connection: StartTLS first for ldap://.
// StartTLS is done here, before go-ldap owns the connection, so that the
// handshake honours ctx and its errors keep their types (go-ldap's own
// StartTLS flattens them to text).
func (s *Source) secure(ctx context.Context, raw net.Conn) (*tls.Conn, error) {
	if !s.ep.implicitTLS {
		if err := startTLS(ctx, raw); err != nil {
			return nil, fmt.Errorf("ldapsrc: StartTLS with %s: %w", s.cfg.URL, err)
		}
	}
	conn := tls.Client(raw, s.tlsConfig())
	if err := conn.HandshakeContext(ctx); err != nil {
		var verr *tls.CertificateVerificationError
		if errors.As(err, &verr) {
			return nil, fmt.Errorf("ldapsrc: TLS with %s: server certificate verification failed for name %q (is the CA that issued it in tls.caFile?): %w",
				s.cfg.URL, s.cfg.TLS.ServerName, err)
		}
		return nil, fmt.Errorf("ldapsrc: TLS handshake with %s (server name %q): %w", s.cfg.URL, s.cfg.TLS.ServerName, err)
	}
	return conn, nil
}

// tlsConfig is the client side of every TLS connection to the directory.
func (s *Source) tlsConfig() *tls.Config {
	return &tls.Config{
		RootCAs:            s.cfg.TLS.RootCAs,
		ServerName:         s.cfg.TLS.ServerName,
		InsecureSkipVerify: s.cfg.TLS.InsecureSkipVerify, // a loudly named config key, warned about at Open
		MinVersion:         tls.VersionTLS12,
	}
}

// startTLSOID is the StartTLS extended operation (RFC 4511 section 4.14).
const startTLSOID = "1.3.6.1.4.1.1466.20037"

// startTLS sends the StartTLS extended request on a fresh connection and
// waits for its success; the caller then runs the TLS handshake.
func startTLS(ctx context.Context, raw net.Conn) error {
	if dl, ok := ctx.Deadline(); ok {
		if err := raw.SetDeadline(dl); err != nil {
			return err
		}
		defer func() { _ = raw.SetDeadline(time.Time{}) }()
	}
	stop := context.AfterFunc(ctx, func() { _ = raw.Close() })
	defer stop()

	req := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAP Request")
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 1, "MessageID"))
	ext := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationExtendedRequest, nil, "Start TLS")
	ext.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, startTLSOID, "TLS Extended Command"))
	req.AppendChild(ext)
	if _, err := raw.Write(req.Bytes()); err != nil {
		return ctxOr(ctx, err)
	}
	// ReadPacket reads exactly one message, so the TLS handshake that
	// follows finds the connection at the right byte.
	resp, err := ber.ReadPacket(raw)
	if err != nil {
		return ctxOr(ctx, fmt.Errorf("read response: %w", err))
	}
	if len(resp.Children) < 2 || resp.Children[1].Tag != ldap.ApplicationExtendedResponse {
		return fmt.Errorf("unexpected response to the StartTLS request")
	}
	return ldap.GetLDAPError(resp)
}

// ctxOr prefers the context's error: a connection closed because ctx ended
// fails with a confusing network error otherwise.
func ctxOr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return err
}

// bind authenticates and says as whom, for the log. go-ldap's binds take
// no context, so the connection is closed when ctx ends to get them back.
func (s *Source) bind(ctx context.Context, conn *ldap.Conn, st tls.ConnectionState) (string, error) {
	if s.cfg.Bind.Method == bindGSSAPI {
		var peer *x509.Certificate
		if len(st.PeerCertificates) > 0 {
			peer = st.PeerCertificates[0]
		}
		return s.bindGSSAPI(ctx, conn, peer)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	if err := conn.Bind(s.cfg.Bind.Username, s.cfg.Bind.Password); err != nil {
		return s.cfg.Bind.Username, fmt.Errorf("ldapsrc: bind as %s to %s: %w", s.cfg.Bind.Username, s.cfg.URL, ctxOr(ctx, err))
	}
	return s.cfg.Bind.Username, nil
}
