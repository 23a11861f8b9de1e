package cloudsink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	abstractions "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
	"go.uber.org/zap"
)

// batchRequest is one request of a JSON $batch.
type batchRequest struct {
	ID      string            `json:"id"`
	Method  string            `json:"method"`
	URL     string            `json:"url"` // relative to /v1.0
	Headers map[string]string `json:"headers,omitempty"`
	Body    json.RawMessage   `json:"body,omitempty"`
	// errPath names the request in errors: its path without the query.
	errPath string
}

// batchResponse is one item of a $batch answer.
type batchResponse struct {
	ID      string            `json:"id"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body"`
}

func (r batchResponse) header(name string) string {
	for k, v := range r.Headers {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// outcome is the end of one request: Graph's final answer, or err when
// none came (the $batch itself failed, the context ended).
type outcome struct {
	resp batchResponse
	err  error
}

func temporaryStatus(s int) bool {
	return s == http.StatusTooManyRequests || s == http.StatusServiceUnavailable || s == http.StatusGatewayTimeout
}

// itemRequest turns a request the SDK built into a $batch item: same
// method, URL relative to the version, headers and JSON body.
func (g *Graph) itemRequest(ri *abstractions.RequestInformation, errPath string) (batchRequest, error) {
	ri.PathParameters["baseurl"] = g.base
	u, err := ri.GetUri()
	if err != nil {
		return batchRequest{}, fmt.Errorf("cloudsink: graph: %s %s: URL: %w", ri.Method, errPath, err)
	}
	rel, ok := strings.CutPrefix(u.String(), g.base)
	if !ok || !strings.HasPrefix(rel, "/") {
		return batchRequest{}, fmt.Errorf("cloudsink: graph: %s %s: URL %s is not under %s", ri.Method, errPath, u, g.base)
	}
	br := batchRequest{Method: ri.Method.String(), URL: rel, Headers: map[string]string{}, errPath: errPath}
	for _, k := range ri.Headers.ListKeys() {
		br.Headers[k] = strings.Join(ri.Headers.Get(k), ", ")
	}
	if len(ri.Content) > 0 {
		if !json.Valid(ri.Content) {
			return batchRequest{}, fmt.Errorf("cloudsink: graph: %s %s: the SDK built a body that is not JSON", ri.Method, errPath)
		}
		br.Body = json.RawMessage(ri.Content)
	}
	return br, nil
}

// postBatch sends one $batch through the SDK's adapter (auth, compression,
// retries of the whole request) and returns the answers by item id.
func (g *Graph) postBatch(ctx context.Context, items []batchRequest) (map[string]batchResponse, error) {
	body, err := json.Marshal(struct {
		Requests []batchRequest `json:"requests"`
	}{items})
	if err != nil {
		return nil, fmt.Errorf("cloudsink: graph: encode $batch: %w", err)
	}
	ri := abstractions.NewRequestInformation()
	ri.Method = abstractions.POST
	ri.UrlTemplate = "{+baseurl}/$batch"
	ri.Headers.TryAdd("Accept", "application/json")
	ri.SetStreamContentAndContentType(body, "application/json")
	raw, err := g.adapter.SendPrimitive(ctx, ri, "[]byte", abstractions.ErrorMappings{"XXX": odataerrors.CreateODataErrorFromDiscriminatorValue})
	if err != nil {
		return nil, wholeError(err)
	}
	b, _ := raw.([]byte)
	var answer struct {
		Responses []batchResponse `json:"responses"`
	}
	if err := json.Unmarshal(b, &answer); err != nil {
		return nil, fmt.Errorf("cloudsink: graph: POST /$batch: answer is not a $batch response: %w", err)
	}
	out := make(map[string]batchResponse, len(answer.Responses))
	for _, r := range answer.Responses {
		out[r.ID] = r
	}
	return out, nil
}

// wholeError turns a failed $batch POST into an *Error when Graph answered,
// and wraps anything else (no token, no connection, context ended).
func wholeError(err error) error {
	var oe *odataerrors.ODataError
	if errors.As(err, &oe) {
		e := &Error{Service: "graph", Method: http.MethodPost, Path: "/$batch", Status: oe.ResponseStatusCode}
		if m := oe.GetErrorEscaped(); m != nil {
			e.Code, e.Message = deref(m.GetCode()), deref(m.GetMessage())
		}
		if oe.ResponseHeaders != nil {
			if v := oe.ResponseHeaders.Get("Retry-After"); len(v) > 0 {
				e.RetryAfter, _ = retryAfter(v[0], time.Now())
			}
		}
		return e
	}
	var ae *abstractions.ApiError
	if errors.As(err, &ae) {
		return &Error{Service: "graph", Method: http.MethodPost, Path: "/$batch", Status: ae.ResponseStatusCode, Message: ae.Message}
	}
	return fmt.Errorf("cloudsink: graph: POST /$batch: %w", err)
}

// itemError is Graph's refusal of one item, from its {"error":{...}} body.
func itemError(req batchRequest, r batchResponse) *Error {
	e := &Error{Service: "graph", Method: req.Method, Path: req.errPath, Status: r.Status}
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(r.Body, &body) == nil {
		e.Code, e.Message = body.Error.Code, body.Error.Message
	}
	if e.Message == "" {
		e.Message = http.StatusText(r.Status)
	}
	e.RetryAfter, _ = retryAfter(r.header("Retry-After"), time.Now())
	return e
}

// send runs one $batch (at most batchLimit requests) to the end: items
// Graph answers with 429, 503 or 504 go again after the longest
// Retry-After among them (or the backoff), until MaxAttempts. The SDK's
// retry handler never sees them: the POST itself succeeded.
func (g *Graph) send(ctx context.Context, reqs []batchRequest) []outcome {
	outs := make([]outcome, len(reqs))
	pending := make([]int, len(reqs))
	for i := range reqs {
		pending[i] = i
		reqs[i].ID = strconv.Itoa(i + 1)
	}
	for attempt := 1; ; attempt++ {
		items := make([]batchRequest, len(pending))
		for n, i := range pending {
			items[n] = reqs[i]
		}
		got, err := g.postBatch(ctx, items)
		if err != nil && readsOnly(items) && transportError(err) && ctx.Err() == nil && attempt < g.maxAttempts {
			// The answer to reads was lost on the way (the connection
			// dropped): asking again changes nothing in the tenant.
			wait := g.backoffFor(attempt)
			g.log.Info("graph: retrying $batch of reads after a lost answer", zap.Error(err),
				zap.Duration("wait", wait), zap.Int("attempt", attempt+1), zap.Int("maxAttempts", g.maxAttempts))
			if sleep(ctx, wait) == nil {
				continue
			}
		}
		if err != nil {
			for _, i := range pending {
				outs[i].err = err
			}
			return outs
		}
		var again []int
		var wait time.Duration
		status := 0
		for _, i := range pending {
			r, ok := got[reqs[i].ID]
			if !ok {
				outs[i].err = fmt.Errorf("cloudsink: graph: %s %s: the $batch answer has no response for item %s", reqs[i].Method, reqs[i].errPath, reqs[i].ID)
				continue
			}
			outs[i].resp = r
			if !temporaryStatus(r.Status) || attempt >= g.maxAttempts {
				continue
			}
			w, ok := g.retryWait(r.header("Retry-After"), attempt)
			if !ok {
				continue // final: the caller reports it as temporary, with its RetryAfter
			}
			wait = max(wait, w)
			status = r.Status
			again = append(again, i)
		}
		if len(again) == 0 {
			return outs
		}
		g.log.Info("graph: retrying $batch items", zap.Int("items", len(again)), zap.Int("status", status),
			zap.Duration("wait", wait), zap.Int("attempt", attempt+1), zap.Int("maxAttempts", g.maxAttempts))
		g.waited(wait)
		if err := sleep(ctx, wait); err != nil {
			for _, i := range again {
				outs[i].err = fmt.Errorf("cloudsink: graph: %s %s: gave up waiting to retry: %w", reqs[i].Method, reqs[i].errPath, err)
			}
			return outs
		}
		pending = again
	}
}

// runEach calls f for 0..n-1, concurrency at a time. The first error f
// returns (a failure that will repeat for every call: no token, no
// connection) or the context's end stops further calls; it is returned.
func (p retryPolicy) runEach(ctx context.Context, n int, f func(i int) error) error {
	var (
		mu    sync.Mutex
		fatal error
		wg    sync.WaitGroup
	)
	next := make(chan int)
	for range min(p.concurrency, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				mu.Lock()
				stop := fatal != nil
				mu.Unlock()
				if stop || ctx.Err() != nil {
					continue
				}
				if err := f(i); err != nil {
					mu.Lock()
					if fatal == nil {
						fatal = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if fatal == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return fatal
}

// runAll sends requests in $batches of batchLimit, Concurrency at a time,
// and returns their outcomes in order. After a failure that will fail
// every batch alike (no token, no connection), the batches not yet sent
// get the same error instead of repeating it.
func (g *Graph) runAll(ctx context.Context, reqs []batchRequest) []outcome {
	outs := make([]outcome, len(reqs))
	sent := make([]bool, (len(reqs)+batchLimit-1)/batchLimit)
	fatal := g.runEach(ctx, len(sent), func(b int) error {
		start := b * batchLimit
		res := outs[start:min(start+batchLimit, len(reqs))]
		copy(res, g.send(ctx, reqs[start:start+len(res)]))
		sent[b] = true
		for _, o := range res {
			if o.err != nil && isFatal(o.err) {
				return o.err
			}
		}
		return nil
	})
	for b, ok := range sent {
		if ok {
			continue
		}
		for i := b * batchLimit; i < min((b+1)*batchLimit, len(reqs)); i++ {
			outs[i].err = fatal
		}
	}
	return outs
}

// isFatal: the failure will repeat for every batch (no token, no
// connection, a refused $batch), unlike throttling or the context ending.
func isFatal(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return !e.Temporary()
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// readsOnly: every item of the $batch is a GET.
func readsOnly(items []batchRequest) bool {
	for _, it := range items {
		if it.Method != http.MethodGet {
			return false
		}
	}
	return len(items) > 0
}

// transportError: the request got no answer from the service (the
// connection failed or dropped), as opposed to an answer that refused it.
func transportError(err error) bool {
	var e *Error
	return !errors.As(err, &e)
}
