package faulttest

import (
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/certsync/certsync/mapping/pkitest"
)

// Kind is one kind of injected fault.
type Kind int

const (
	// Throttle answers 429 with Retry-After, without carrying out the call.
	Throttle Kind = iota
	// Unavailable answers 503, without carrying out the call.
	Unavailable
	// DropAfterApply carries out the call, then cuts its connection
	// before the answer: the client cannot know the call landed.
	DropAfterApply
	numKinds
)

func (k Kind) String() string {
	return [...]string{"429", "503", "dropped after applied"}[k]
}

// Options configures New. The zero value injects nothing.
type Options struct {
	// Rate is the share of Graph (/v1.0/) and Exchange (/adminapi/)
	// calls that get a fault, 0..1; the kind is drawn uniformly from
	// Kinds. Token and discovery calls are never faulted.
	Rate float64
	// Kinds to draw from; empty: all three.
	Kinds []Kind
	// Seed makes the draws repeatable.
	Seed uint64
	// Latency delays every Graph and Exchange call.
	Latency time.Duration
	// RetryAfter is the Retry-After of injected 429s (whole seconds,
	// rounded up; 0: 1 s).
	RetryAfter time.Duration
}

// Write is one write the emulators applied: the whole collection a Graph
// PATCH (top level or a $batch item) or an Exchange Set-* cmdlet set on
// one account. Values of Exchange byte arrays are their base64.
type Write struct {
	Service   string // "graph" or "exchange"
	Account   string // Graph user id, or the cmdlet's -Identity
	Attribute string // certificateUserIds, UserCertificate, UserSMimeCertificate
	Values    []string
	Dropped   bool // its answer was cut off
}

// Handler is the fault-injecting middleware. Safe for concurrent use.
type Handler struct {
	next http.Handler

	mu       sync.Mutex // guards everything below
	opts     Options
	rng      *rand.Rand
	injected [numKinds]int
	calls    int
	writes   []Write
	rewrite  [2]string // emulator base → front base in answers (Serve)
}

// New wraps next, the emulator's handler.
func New(next http.Handler, opts Options) *Handler {
	if len(opts.Kinds) == 0 {
		opts.Kinds = []Kind{Throttle, Unavailable, DropAfterApply}
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = time.Second
	}
	return &Handler{next: next, opts: opts, rng: rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15))}
}

// SetRate changes the share of faulted calls (0 stops the storm).
func (h *Handler) SetRate(rate float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.opts.Rate = rate
}

// SetLatency changes the delay of every Graph and Exchange call.
func (h *Handler) SetLatency(d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.opts.Latency = d
}

// Injected counts the faults injected so far, by kind.
func (h *Handler) Injected() map[Kind]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[Kind]int{}
	for k, n := range h.injected {
		out[Kind(k)] = n
	}
	return out
}

// Calls counts the Graph and Exchange calls seen (faulted or not).
func (h *Handler) Calls() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls
}

// Writes returns the writes applied so far, in the order they landed.
func (h *Handler) Writes() []Write {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Write(nil), h.writes...)
}

func subject(r *http.Request) bool {
	return strings.HasPrefix(r.URL.Path, "/v1.0/") || strings.HasPrefix(r.URL.Path, "/adminapi/")
}

// draw decides the fault of one call: ok is false for none.
func (h *Handler) draw(r *http.Request) (k Kind, ok bool, latency, after time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !subject(r) {
		return 0, false, 0, 0
	}
	h.calls++
	latency, after = h.opts.Latency, h.opts.RetryAfter
	if h.opts.Rate <= 0 || h.rng.Float64() >= h.opts.Rate {
		return 0, false, latency, after
	}
	k = h.opts.Kinds[h.rng.IntN(len(h.opts.Kinds))]
	h.injected[k]++
	return k, true, latency, after
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	kind, fault, latency, after := h.draw(r)
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-r.Context().Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	if fault && kind != DropAfterApply {
		refuse(w, r, kind, after)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "faulttest: reading the request body: "+err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := httptest.NewRecorder()
	h.next.ServeHTTP(rec, r)
	res := rec.Result()
	answer, _ := io.ReadAll(res.Body)
	plain, gz := gunzip(res.Header, answer)
	h.logWrites(r, body, res.StatusCode, plain, fault)
	if fault {
		// The emulator carried the call out; the client never hears so.
		panic(http.ErrAbortHandler)
	}
	h.mu.Lock()
	from, to := h.rewrite[0], h.rewrite[1]
	h.mu.Unlock()
	if gz && from != "" && bytes.Contains(plain, []byte(from)) {
		answer = bytes.ReplaceAll(plain, []byte(from), []byte(to))
		res.Header.Del("Content-Encoding")
	} else if !gz && from != "" {
		answer = bytes.ReplaceAll(answer, []byte(from), []byte(to))
	}
	for k, vs := range res.Header {
		w.Header()[k] = vs
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(answer)))
	w.WriteHeader(res.StatusCode)
	_, _ = w.Write(answer)
}

// refuse answers an injected 429 or 503 in the shape of the service asked.
func refuse(w http.ResponseWriter, r *http.Request, kind Kind, after time.Duration) {
	status, code := http.StatusServiceUnavailable, "ServiceNotAvailable"
	if kind == Throttle {
		status, code = http.StatusTooManyRequests, "TooManyRequests"
		w.Header().Set("Retry-After", strconv.FormatInt(int64((after+time.Second-1)/time.Second), 10))
	}
	body, _ := json.Marshal(map[string]any{"error": map[string]any{"code": code, "message": "faulttest: injected " + kind.String() + "."}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// gunzip returns the plain answer and whether it came compressed.
func gunzip(h http.Header, b []byte) ([]byte, bool) {
	if !strings.EqualFold(h.Get("Content-Encoding"), "gzip") {
		return b, false
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return b, false
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		return b, false
	}
	return out, true
}

// logWrites records the writes a call applied.
func (h *Handler) logWrites(r *http.Request, body []byte, status int, answer []byte, dropped bool) {
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		var ok bool
		if body, ok = gunzip(r.Header, body); !ok {
			return
		}
	}
	var ws []Write
	switch {
	case r.Method == http.MethodPatch && strings.HasPrefix(r.URL.Path, "/v1.0/users/") && status/100 == 2:
		ws = graphWrite(strings.TrimPrefix(r.URL.Path, "/v1.0/users/"), body)
	case r.Method == http.MethodPost && r.URL.Path == "/v1.0/$batch" && status == http.StatusOK:
		ws = batchWrites(body, answer)
	case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/adminapi/") && status == http.StatusOK:
		ws = exchangeWrites(body)
	}
	for i := range ws {
		ws[i].Dropped = dropped
	}
	h.mu.Lock()
	h.writes = append(h.writes, ws...)
	h.mu.Unlock()
}

func graphWrite(id string, body []byte) []Write {
	var p struct {
		AuthorizationInfo *struct {
			CertificateUserIDs []string `json:"certificateUserIds"`
		} `json:"authorizationInfo"`
	}
	if json.Unmarshal(body, &p) != nil || p.AuthorizationInfo == nil {
		return nil
	}
	return []Write{{Service: "graph", Account: id, Attribute: "certificateUserIds", Values: p.AuthorizationInfo.CertificateUserIDs}}
}

func batchWrites(body, answer []byte) []Write {
	var req struct {
		Requests []struct {
			ID, Method, URL string
			Body            json.RawMessage
		} `json:"requests"`
	}
	var resp struct {
		Responses []struct {
			ID     string `json:"id"`
			Status int    `json:"status"`
		} `json:"responses"`
	}
	if json.Unmarshal(body, &req) != nil || json.Unmarshal(answer, &resp) != nil {
		return nil
	}
	ok := map[string]bool{}
	for _, it := range resp.Responses {
		ok[it.ID] = it.Status/100 == 2
	}
	var out []Write
	for _, it := range req.Requests {
		if strings.EqualFold(it.Method, http.MethodPatch) && strings.HasPrefix(it.URL, "/users/") && ok[it.ID] {
			out = append(out, graphWrite(strings.TrimPrefix(it.URL, "/users/"), it.Body)...)
		}
	}
	return out
}

// exchangeWrites reads a Set-Mailbox or Set-MailUser: each byte-array
// parameter it sets is one write.
func exchangeWrites(body []byte) []Write {
	var in struct {
		CmdletInput struct {
			CmdletName string
			Parameters map[string]json.RawMessage
		}
	}
	if json.Unmarshal(body, &in) != nil || !strings.HasPrefix(in.CmdletInput.CmdletName, "Set-") {
		return nil
	}
	var identity string
	_ = json.Unmarshal(in.CmdletInput.Parameters["Identity"], &identity)
	var out []Write
	for name, raw := range in.CmdletInput.Parameters {
		var arrays []struct{ Data string }
		if name == "Identity" || strings.Contains(name, "@") || json.Unmarshal(raw, &arrays) != nil {
			continue
		}
		w := Write{Service: "exchange", Account: identity, Attribute: name, Values: []string{}}
		for _, a := range arrays {
			if _, err := base64.StdEncoding.DecodeString(a.Data); err == nil {
				w.Values = append(w.Values, a.Data)
			}
		}
		out = append(out, w)
	}
	return out
}

// Front is a Handler served over HTTPS on loopback with a certificate of
// its own test CA.
type Front struct {
	*Handler
	url  string
	ca   *pkitest.CA
	srv  *http.Server
	done chan struct{}
}

// Serve starts an HTTPS front for next (an emulator's handler, served
// itself at emulatorURL). Links in answers that name emulatorURL (Graph's
// @odata.nextLink) are rewritten to the front, so that every page goes
// through it too.
func Serve(next http.Handler, emulatorURL string, opts Options) (*Front, error) {
	ca, err := pkitest.NewRootCA("certsync faulttest CA")
	if err != nil {
		return nil, fmt.Errorf("faulttest: test CA: %w", err)
	}
	cert, err := ca.ServerTLS("127.0.0.1", "localhost")
	if err != nil {
		return nil, fmt.Errorf("faulttest: server certificate: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faulttest: listen on loopback: %w", err)
	}
	f := &Front{Handler: New(next, opts), url: "https://" + ln.Addr().String(), ca: ca, done: make(chan struct{})}
	f.rewrite = [2]string{strings.TrimSuffix(emulatorURL, "/"), f.url}
	f.srv = &http.Server{
		Handler:           f.Handler,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		// Aborted answers are the point; keep them out of the test log.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go func() {
		defer close(f.done)
		if err := f.srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			panic(err)
		}
	}()
	return f, nil
}

// URL is the front's base: https://127.0.0.1:PORT.
func (f *Front) URL() string { return f.url }

// CAPEM is the PEM of the CA of the front's TLS certificate.
func (f *Front) CAPEM() []byte { return pkitest.CertPEM(f.ca.Cert) }

// Close stops the front.
func (f *Front) Close() error {
	err := f.srv.Close()
	<-f.done
	return err
}
