package cloudsink

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	abstractions "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoft/kiota-abstractions-go/serialization"
	"github.com/microsoft/kiota-abstractions-go/store"
	kauth "github.com/microsoft/kiota-authentication-azure-go"
	khttp "github.com/microsoft/kiota-http-go"
	kform "github.com/microsoft/kiota-serialization-form-go"
	kjson "github.com/microsoft/kiota-serialization-json-go"
	kmultipart "github.com/microsoft/kiota-serialization-multipart-go"
	ktext "github.com/microsoft/kiota-serialization-text-go"
	msgraphcore "github.com/microsoftgraph/msgraph-sdk-go-core"
	"github.com/microsoftgraph/msgraph-sdk-go/users"
	"go.uber.org/zap"
)

// GraphConfig configures the Microsoft Graph sink.
type GraphConfig struct {
	Environment string // "" = global
	// Endpoint overrides the environment's Graph root, e.g. an emulator at
	// https://127.0.0.1:8443 (no /v1.0). "" = the environment's.
	Endpoint   string
	Credential azcore.TokenCredential // non-nil
	// RootCAs, when set, is the trust used for TLS to Graph instead of the
	// system's (for an override with a private CA).
	RootCAs *x509.CertPool
	// Concurrency is how many $batch requests are in flight (default 4).
	Concurrency int
	// MaxAttempts bounds tries per request and per batch item for 429, 503
	// and 504 (default 6).
	MaxAttempts int
	// MaxWait is the longest Retry-After certsync waits (default 2m). When
	// Graph asks for longer, the request or item fails as temporary, with
	// its RetryAfter, for a later pass to pick up.
	MaxWait time.Duration
	// Backoff is the first wait when Graph gives no Retry-After, doubled
	// per attempt up to MaxWait (default 2s).
	Backoff time.Duration
	// OnRetryWait, when set, is called with each wait before a throttled
	// (429) or unavailable (503, 504) request or batch item is tried again.
	OnRetryWait func(time.Duration)
	// MaxResponseBytes bounds one Graph answer (a $batch of 20 users with
	// ten 1,024-character certificateUserIds each is under 300 KB; a page
	// of 999 listed users a few MB); default 32 MiB. A larger answer fails
	// its request instead of filling memory.
	MaxResponseBytes int64
}

// defaultMaxResponseBytes is GraphConfig.MaxResponseBytes's default.
const defaultMaxResponseBytes = 32 << 20

// Graph is the Microsoft Graph sink: certificateUserIds of Entra ID users.
type Graph struct {
	log     *zap.Logger
	users   *users.UsersRequestBuilder
	adapter *msgraphcore.GraphRequestAdapterBase
	base    string // the adapter's base URL, ending in /v1.0
	retryPolicy
}

var _ Sink = (*Graph)(nil)

// Graph's limits certsync plans around.
const (
	batchLimit            = 20   // requests per JSON $batch
	filterInLimit         = 15   // values in one `in` clause on directory objects
	filterValueLimit      = 120  // characters of a value compared in $filter
	certificateUserIDsMax = 10   // values of certificateUserIds
	certificateUserIDMax  = 1024 // characters per value
)

// NewGraph builds the Graph sink on msgraph-sdk-go: its azidentity auth
// provider, its middleware (request bodies still gzipped) and request
// adapter.
func NewGraph(cfg GraphConfig, log *zap.Logger) (*Graph, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if cfg.Credential == nil {
		return nil, errors.New("cloudsink: graph: no credential")
	}
	_, ep, err := environmentOrDefault(cfg.Environment)
	if err != nil {
		return nil, err
	}
	envGraph, err := url.Parse(ep.Graph)
	if err != nil {
		return nil, fmt.Errorf("cloudsink: graph: environment URL %q: %w", ep.Graph, err)
	}
	root := ep.Graph
	// The auth provider compares host names without ports and silently
	// sends no token to any other host, so the override's name goes in.
	hosts := []string{envGraph.Hostname()}
	if cfg.Endpoint != "" {
		u, err := parseOverride("graph endpoint", cfg.Endpoint)
		if err != nil {
			return nil, err
		}
		root = u.String()
		if !strings.EqualFold(u.Hostname(), envGraph.Hostname()) {
			hosts = append(hosts, u.Hostname())
		}
	}
	g := &Graph{
		log:         log,
		base:        root + "/v1.0",
		retryPolicy: newRetryPolicy(cfg.Concurrency, cfg.MaxAttempts, cfg.MaxWait, cfg.Backoff).observed(cfg.OnRetryWait),
	}
	// The token is for the environment's Graph even when an emulator
	// stands in for it: that is the resource the app is consented for.
	auth, err := kauth.NewAzureIdentityAuthenticationProviderWithScopesAndValidHosts(cfg.Credential, []string{ep.Graph + "/.default"}, hosts)
	if err != nil {
		return nil, fmt.Errorf("cloudsink: graph: auth provider: %w", err)
	}
	maxBody := cfg.MaxResponseBytes
	if maxBody <= 0 {
		maxBody = defaultMaxResponseBytes
	}
	httpClient := &http.Client{
		Transport: khttp.NewCustomTransportWithParentTransport(limitBodies{newTransport(cfg.RootCAs), maxBody}, g.middleware()...),
		// Graph redirects nothing certsync calls; a redirect is answered,
		// not followed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	adapter, err := msgraphcore.NewGraphRequestAdapterBaseWithParseNodeFactoryAndSerializationWriterFactoryAndHttpClient(auth, graphClientOptions(), nil, nil, httpClient)
	if err != nil {
		return nil, fmt.Errorf("cloudsink: graph: request adapter: %w", err)
	}
	// Before the request builder: it copies the base URL.
	adapter.SetBaseUrl(g.base)
	g.adapter = adapter
	g.users = newUsersClient(adapter)
	return g, nil
}

// graphClientOptions are msgraph-sdk-go's GetDefaultClientOptions (its
// telemetry header), with the SDK version the binary was built with: the
// SDK's root package, which holds it as a constant, is not linked.
func graphClientOptions() msgraphcore.GraphClientOptions {
	return msgraphcore.GraphClientOptions{GraphServiceLibraryVersion: graphSDKVersion()}
}

func graphSDKVersion() string {
	info, _ := debug.ReadBuildInfo()
	return moduleVersion(info, "github.com/microsoftgraph/msgraph-sdk-go")
}

// moduleVersion is the version of module path in the build (without its
// "v"), or "unknown" (test binaries carry no module list).
func moduleVersion(info *debug.BuildInfo, path string) string {
	if info != nil {
		for _, m := range info.Deps {
			if m.Path == path {
				return strings.TrimPrefix(m.Version, "v")
			}
		}
	}
	return "unknown"
}

// newUsersClient does what msgraph-sdk-go's NewGraphServiceClient does
// (the serializers, the backing store, the base URL) for the one request
// builder certsync calls, /users. The SDK's root package imports the
// request builders of every Graph API (some 350 packages); linking only
// users keeps them out of the binary.
func newUsersClient(adapter abstractions.RequestAdapter) *users.UsersRequestBuilder {
	abstractions.RegisterDefaultSerializer(func() serialization.SerializationWriterFactory { return kjson.NewJsonSerializationWriterFactory() })
	abstractions.RegisterDefaultSerializer(func() serialization.SerializationWriterFactory { return ktext.NewTextSerializationWriterFactory() })
	abstractions.RegisterDefaultSerializer(func() serialization.SerializationWriterFactory { return kform.NewFormSerializationWriterFactory() })
	abstractions.RegisterDefaultSerializer(func() serialization.SerializationWriterFactory {
		return kmultipart.NewMultipartSerializationWriterFactory()
	})
	abstractions.RegisterDefaultDeserializer(func() serialization.ParseNodeFactory { return kjson.NewJsonParseNodeFactory() })
	abstractions.RegisterDefaultDeserializer(func() serialization.ParseNodeFactory { return ktext.NewTextParseNodeFactory() })
	abstractions.RegisterDefaultDeserializer(func() serialization.ParseNodeFactory { return kform.NewFormParseNodeFactory() })
	adapter.EnableBackingStore(store.BackingStoreFactoryInstance)
	return users.NewUsersRequestBuilderInternal(map[string]string{"baseurl": adapter.GetBaseUrl()}, adapter)
}

// middleware is msgraph-sdk-go-core's default pipeline in a fixed order.
// The SDK builds it from a map, so its order changes from run to run; when
// the retry handler lands outside the compression handler, a retried POST
// goes out with "Content-Encoding: gzip" over an uncompressed body
// (microsoft/kiota-http-go#183). Compression goes first, so a retry resends
// the compressed bytes; it and the retry handler are ours: compression
// cheaper (gzipHandler), retries bounded by MaxAttempts and MaxWait, and
// logged.
func (g *Graph) middleware() []khttp.Middleware {
	opts := graphClientOptions()
	var out []khttp.Middleware
	for _, m := range msgraphcore.GetDefaultMiddlewaresWithOptions(&opts) {
		switch m.(type) {
		case *khttp.RetryHandler, *khttp.CompressionHandler:
			// Ours, below.
		default:
			out = append(out, m)
		}
	}
	retries := min(g.maxAttempts-1, 10) // kiota's ceiling
	delay := int((g.backoff + time.Second - 1) / time.Second)
	return append(out, newGzipHandler(), khttp.NewRetryHandlerWithOptions(khttp.RetryHandlerOptions{
		MaxRetries:   max(retries, 1), // kiota reads 0 as "default"; shouldRetry enforces the real bound
		DelaySeconds: max(delay, 1),
		ShouldRetry:  g.shouldRetry,
	}))
}

// shouldRetry decides on kiota's retries of a whole request (429, 503,
// 504): within MaxAttempts, and not when Graph asks for more than MaxWait.
func (g *Graph) shouldRetry(_ time.Duration, retries int, req *http.Request, resp *http.Response) bool {
	attempt := retries + 1
	if attempt >= g.maxAttempts {
		return false
	}
	wait, given := retryAfter(resp.Header.Get("Retry-After"), time.Now())
	if given && wait > g.maxWait {
		g.log.Warn("graph: not retrying: Retry-After beyond the configured maximum wait",
			zap.String("method", req.Method), zap.String("path", req.URL.Path), zap.Int("status", resp.StatusCode),
			zap.Duration("retryAfter", wait), zap.Duration("maxWait", g.maxWait))
		return false
	}
	fields := []zap.Field{
		zap.String("method", req.Method), zap.String("path", req.URL.Path), zap.Int("status", resp.StatusCode),
		zap.Int("attempt", attempt+1), zap.Int("maxAttempts", g.maxAttempts),
	}
	if given {
		fields = append(fields, zap.Duration("wait", wait))
	} else {
		fields = append(fields, zap.String("wait", "backoff"))
		wait = g.backoffFor(attempt)
	}
	g.waited(wait)
	g.log.Info("graph: retrying request", fields...)
	// kiota drops this response without closing it; close it here so the
	// connection goes back to the pool.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	return true
}

// Targets lists what the Graph sink writes.
func (g *Graph) Targets() []Target {
	return []Target{{Name: TargetCertificateUserIDs, Limit: certificateUserIDsMax}}
}

// retryPolicy is how a sink paces and retries its requests: how many are
// in flight, and how answers 429, 503 and 504 are tried again. Graph and
// Exchange take the same settings with the same defaults.
type retryPolicy struct {
	concurrency int
	maxAttempts int
	maxWait     time.Duration
	backoff     time.Duration
	onWait      func(time.Duration) // nil: nobody listens
}

// newRetryPolicy fills in the defaults of unset (zero or negative)
// settings: 4 in flight, 6 attempts, waits up to 2m, first backoff 2s.
func newRetryPolicy(concurrency, maxAttempts int, maxWait, backoff time.Duration) retryPolicy {
	p := retryPolicy{concurrency: concurrency, maxAttempts: maxAttempts, maxWait: maxWait, backoff: backoff}
	if p.concurrency <= 0 {
		p.concurrency = 4
	}
	if p.maxAttempts <= 0 {
		p.maxAttempts = 6
	}
	if p.maxWait <= 0 {
		p.maxWait = 2 * time.Minute
	}
	if p.backoff <= 0 {
		p.backoff = 2 * time.Second
	}
	return p
}

// backoffFor is the wait after attempt when the service gave no
// Retry-After: the backoff doubled per attempt, capped at maxWait.
func (p retryPolicy) backoffFor(attempt int) time.Duration {
	d := p.backoff
	for i := 1; i < attempt && d < p.maxWait; i++ {
		d *= 2
	}
	return min(d, p.maxWait)
}

// retryWait is the wait before the attempt after attempt: the answer's
// Retry-After, or the backoff when it has none. ok is false when the
// service asks for longer than maxWait (wait is then what it asked for):
// the caller stops trying and reports the answer as temporary.
func (p retryPolicy) retryWait(retryAfterHeader string, attempt int) (wait time.Duration, ok bool) {
	wait, given := retryAfter(retryAfterHeader, time.Now())
	switch {
	case !given:
		return p.backoffFor(attempt), true
	case wait > p.maxWait:
		return wait, false
	}
	return wait, true
}

// retryAfter parses a Retry-After value: delay seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil && secs >= 0 {
		// A huge value (or "Inf") does not fit a Duration: converting it
		// would give a negative wait, and a retry at once. It is the
		// longest wait instead, beyond any MaxWait: not retried.
		if ns := secs * float64(time.Second); ns < float64(math.MaxInt64) {
			return time.Duration(ns), true
		}
		return time.Duration(math.MaxInt64), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// limitBodies is a transport whose answers fail to read past max bytes
// (after decompression): the SDK reads a whole body into memory.
type limitBodies struct {
	rt  http.RoundTripper
	max int64
}

func (l limitBodies) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.rt.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	resp.Body = &limitedBody{rc: resp.Body, left: l.max, max: l.max, what: req.Method + " " + req.URL.Path}
	return resp, nil
}

// limitedBody reads at most max bytes of rc, then fails with an error
// naming the request.
type limitedBody struct {
	rc        io.ReadCloser
	left, max int64
	what      string
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One byte more tells a body of exactly max bytes from a larger one.
		var one [1]byte
		if _, err := io.ReadFull(b.rc, one[:]); err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("cloudsink: graph: %s: answer larger than the %d bytes certsync reads of one Graph answer; not read", b.what, b.max)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }
